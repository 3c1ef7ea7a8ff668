import {
  DEFAULT_MAX_BODY_SIZE,
  MAX_CHUNK_SIZE,
  MAX_RESPONSE_WAIT_MS,
} from '@app/protocol';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadServerConfig } from './server.config.js';

describe('loadServerConfig', () => {
  it('applies the documented defaults', () => {
    expect(loadServerConfig({})).toEqual({
      listenHost: '127.0.0.1',
      listenPort: 9090,
      connectionTtlMs: 300_000,
      responseWaitMs: 20_000,
      targetTimeoutMs: 300_000,
      maxBodySize: DEFAULT_MAX_BODY_SIZE,
      maxChunkSize: MAX_CHUNK_SIZE,
      chunkSize: 1024 * 1024,
      cleanupIntervalMs: 30_000,
      finishedLingerMs: 30_000,
      spoolThresholdBytes: 8 * 1024 * 1024,
      spoolDir: join(tmpdir(), 'chunkgate-spool'),
      connectAllowedPorts: [443],
      tunnelIdleTimeoutMs: 300_000,
      tunnelWaitMs: 20_000,
      tunnelConnectTimeoutMs: 10_000,
      logLevel: 'log',
    });
  });

  it('reads every variable, port 0 included; empty counts as unset', () => {
    const config = loadServerConfig({
      SERVER_LISTEN_HOST: '0.0.0.0',
      SERVER_LISTEN_PORT: '0',
      CONNECTION_TTL_MS: '5000',
      RESPONSE_WAIT_MS: '1500',
      TARGET_TIMEOUT_MS: '2000',
      MAX_BODY_SIZE: '1000',
      MAX_CHUNK_SIZE: '2048',
      CHUNK_SIZE: '4096',
      CLEANUP_INTERVAL_MS: '100',
      FINISHED_LINGER_MS: '0',
      SPOOL_THRESHOLD_BYTES: '0',
      SPOOL_DIR: '/var/spool/chunkgate',
      LOG_LEVEL: 'debug',
      UNRELATED: 'x',
    });
    expect(config).toMatchObject({
      listenHost: '0.0.0.0',
      listenPort: 0,
      connectionTtlMs: 5000,
      responseWaitMs: 1500,
      targetTimeoutMs: 2000,
      maxBodySize: 1000,
      maxChunkSize: 2048,
      chunkSize: 4096,
      cleanupIntervalMs: 100,
      finishedLingerMs: 0,
      spoolThresholdBytes: 0,
      spoolDir: '/var/spool/chunkgate',
      logLevel: 'debug',
    });
    expect(loadServerConfig({ SPOOL_DIR: 'spool' }).spoolDir).toBe(
      resolve('spool'),
    );
    expect(loadServerConfig({ SERVER_LISTEN_PORT: '' }).listenPort).toBe(9090);
  });

  it.each([
    [
      'SERVER_LISTEN_PORT',
      '70000',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    ['SERVER_LISTEN_PORT', '80a', 'must be a port number'],
    [
      'RESPONSE_WAIT_MS',
      String(MAX_RESPONSE_WAIT_MS + 1),
      `must be a whole number of milliseconds from 1 to ${MAX_RESPONSE_WAIT_MS}`,
    ],
    [
      'MAX_CHUNK_SIZE',
      String(MAX_CHUNK_SIZE + 1),
      `must be a whole number of bytes from 1 to ${MAX_CHUNK_SIZE}`,
    ],
    ['CHUNK_SIZE', '1e6', 'must be a whole number of bytes'],
    ['TARGET_TIMEOUT_MS', '-1', 'must be a whole number of milliseconds'],
    ['FINISHED_LINGER_MS', '30s', 'must be a whole number of milliseconds'],
    ['SPOOL_THRESHOLD_BYTES', '8MiB', 'must be a whole number of bytes'],
    [
      'LOG_LEVEL',
      'loud',
      'must be one of error, warn, log, debug, verbose, info',
    ],
  ])('stops on %s=%s with a message naming it', (name, value, message) => {
    expect(() => loadServerConfig({ [name]: value })).toThrow(
      `${name}=${JSON.stringify(value)}: ${message}`,
    );
  });
});
