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
      targetRules: {
        denyCidrs: [
          expect.objectContaining({ text: '169.254.0.0/16' }),
          expect.objectContaining({ text: 'fd00:ec2::254/128' }),
        ],
        allowCidrs: undefined,
        allowHosts: undefined,
      },
      maxConnections: 1000,
      auth: { kind: 'none' },
      logLevel: 'log',
    });
  });

  it('reads the target rules, the connection limit and SigV4 auth', () => {
    const config = loadServerConfig({
      TARGET_DENY_CIDRS: ' 10.0.0.0/8 , [fd00::1], 192.168.1.1',
      TARGET_ALLOW_CIDRS: '0.0.0.0/0,::/0',
      TARGET_ALLOW_HOSTS: 'API.example.com., *.internal.example.com, [::1]',
      MAX_CONNECTIONS: '5',
      SERVER_AUTH: 'sigv4',
      SERVER_AUTH_CREDENTIALS: 'AKIDONE:secret-one, AKIDTWO:s:2',
      AWS_REGION: 'eu-west-1',
      SERVICE: 'lambda',
    });
    expect(config.targetRules.denyCidrs.map((c) => c.text)).toEqual([
      '10.0.0.0/8',
      '[fd00::1]',
      '192.168.1.1',
    ]);
    expect(config.targetRules.denyCidrs[1].list.check('fd00::1', 'ipv6')).toBe(
      true,
    );
    expect(config.targetRules.allowCidrs?.map((c) => c.text)).toEqual([
      '0.0.0.0/0',
      '::/0',
    ]);
    expect(config.targetRules.allowHosts).toEqual([
      'api.example.com',
      '*.internal.example.com',
      '::1',
    ]);
    expect(config.maxConnections).toBe(5);
    expect(config.auth).toEqual({
      kind: 'sigv4',
      region: 'eu-west-1',
      service: 'lambda',
      credentials: new Map([
        ['AKIDONE', 'secret-one'],
        ['AKIDTWO', 's:2'],
      ]),
    });
    const local = loadServerConfig({ SERVER_AUTH: 'sigv4' }).auth;
    expect(local).toMatchObject({
      region: 'us-east-1',
      service: 'execute-api',
    });
    expect(local.kind === 'sigv4' && [...local.credentials.keys()]).toEqual([
      'AKIDCHUNKGATELOCALDEV',
    ]);
  });

  it('names SERVER_AUTH_CREDENTIALS without showing a secret', () => {
    let message = '';
    try {
      loadServerConfig({
        SERVER_AUTH: 'sigv4',
        SERVER_AUTH_CREDENTIALS: 'AKIDONE:Zq9hidden,broken',
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('SERVER_AUTH_CREDENTIALS: entry 2 must be');
    expect(message).not.toContain('Zq9hidden');
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
      'TARGET_DENY_CIDRS',
      '169.254.0.0/33',
      'must be a comma-separated list of networks in CIDR notation',
    ],
    [
      'TARGET_ALLOW_CIDRS',
      '10.0.0.0/8,intranet',
      'must be a comma-separated list of networks in CIDR notation',
    ],
    [
      'TARGET_ALLOW_HOSTS',
      'https://example.com',
      'must be a comma-separated list of host names, *.domain wildcards or IP addresses',
    ],
    ['TARGET_ALLOW_HOSTS', 'a.*.example.com', 'must be a comma-separated'],
    ['MAX_CONNECTIONS', '0', 'must be a whole number from 1 to 1000000'],
    ['SERVER_AUTH', 'iam', 'must be none or sigv4'],
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
