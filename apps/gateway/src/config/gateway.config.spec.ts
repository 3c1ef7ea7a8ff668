import {
  LOCAL_DEV_ACCESS_KEY_ID,
  LOCAL_DEV_SECRET_ACCESS_KEY,
} from '@app/protocol';
import { gatewayConfig, parseCredentials } from './gateway.config.js';

/** Runs the config factory against exactly `env`. */
function configFor(
  env: Record<string, string>,
): ReturnType<typeof gatewayConfig> {
  const saved = process.env;
  process.env = { ...env };
  try {
    return gatewayConfig();
  } finally {
    process.env = saved;
  }
}

describe('gateway config', () => {
  it('has the documented defaults', () => {
    expect(configFor({})).toEqual({
      listenHost: '127.0.0.1',
      listenPort: 9080,
      region: 'us-east-1',
      service: 'execute-api',
      credentials: new Map([
        [LOCAL_DEV_ACCESS_KEY_ID, LOCAL_DEV_SECRET_ACCESS_KEY],
      ]),
      maxBodyBytes: 2097152,
      timeoutMs: 29000,
      upstreamOrigin: 'http://127.0.0.1:9090',
      upstreamBasePath: '',
      stage: '',
      latencyMs: 0,
      faults: {
        rate: 0,
        kinds: [
          'reset-before',
          'reset-after',
          '429',
          '502',
          '503',
          '504',
          'latency',
        ],
        latencyMs: 2000,
        seed: undefined,
      },
      logLevel: 'log',
    });
  });

  it('reads every variable', () => {
    const config = configFor({
      GATEWAY_LISTEN_HOST: '0.0.0.0',
      GATEWAY_LISTEN_PORT: '0',
      AWS_REGION: 'eu-west-1',
      SERVICE: 'execute-api',
      GATEWAY_CREDENTIALS: 'AKIDONE:s1/x+y, AKIDTWO:s:2',
      GATEWAY_MAX_BODY_BYTES: '1024',
      GATEWAY_TIMEOUT_MS: '500',
      GATEWAY_UPSTREAM_URL: 'http://localhost:7000/base/',
      GATEWAY_STAGE: '/prod',
      GATEWAY_LATENCY_MS: '40',
      GATEWAY_FAULT_RATE: '0.25',
      GATEWAY_FAULT_KINDS: ' 503, reset-after ,,latency',
      GATEWAY_FAULT_LATENCY_MS: '300',
      GATEWAY_FAULT_SEED: 'run-7',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      listenHost: '0.0.0.0',
      listenPort: 0,
      region: 'eu-west-1',
      maxBodyBytes: 1024,
      timeoutMs: 500,
      upstreamOrigin: 'http://localhost:7000',
      upstreamBasePath: '/base',
      stage: 'prod',
      latencyMs: 40,
      faults: {
        rate: 0.25,
        kinds: ['503', 'reset-after', 'latency'],
        latencyMs: 300,
        seed: 'run-7',
      },
      logLevel: 'debug',
    });
    expect([...config.credentials]).toEqual([
      ['AKIDONE', 's1/x+y'],
      ['AKIDTWO', 's:2'],
    ]);
  });

  it.each([
    [
      'GATEWAY_LISTEN_PORT',
      '70000',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    [
      'GATEWAY_LISTEN_PORT',
      'abc',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    [
      'GATEWAY_MAX_BODY_BYTES',
      '1e3',
      'must be a whole number of bytes from 1 to 1073741824',
    ],
    [
      'GATEWAY_TIMEOUT_MS',
      '0',
      'must be a whole number of milliseconds from 1 to 3600000',
    ],
    [
      'GATEWAY_LATENCY_MS',
      '-5',
      'must be a whole number of milliseconds from 0 to 60000',
    ],
    [
      'GATEWAY_UPSTREAM_URL',
      'ftp://x',
      'must be an http(s) URL such as http://127.0.0.1:9090',
    ],
    [
      'GATEWAY_STAGE',
      'a/b',
      'must be a stage name of letters, digits, "-" and "_" (such as prod), or empty for none',
    ],
    ['AWS_REGION', 'Mars', 'must be an AWS region such as us-east-1'],
    [
      'GATEWAY_FAULT_RATE',
      '1.5',
      'must be a probability from 0 to 1, such as 0.1',
    ],
    [
      'GATEWAY_FAULT_RATE',
      '10%',
      'must be a probability from 0 to 1, such as 0.1',
    ],
    [
      'GATEWAY_FAULT_KINDS',
      '503,500',
      'must be a comma-separated list of fault kinds from reset-before, reset-after, 429, 502, 503, 504, latency',
    ],
    [
      'GATEWAY_FAULT_KINDS',
      ' , ',
      'must be a comma-separated list of fault kinds from reset-before, reset-after, 429, 502, 503, 504, latency',
    ],
    [
      'GATEWAY_FAULT_LATENCY_MS',
      '2s',
      'must be a whole number of milliseconds from 0 to 60000',
    ],
    [
      'GATEWAY_FAULT_SEED',
      'two words',
      'must be 1 to 100 printable characters without spaces, such as 42',
    ],
    [
      'LOG_LEVEL',
      'loud',
      'must be one of error, warn, log, debug, verbose, info',
    ],
  ])('stops on %s=%s with a message naming it', (name, value, message) => {
    expect(() => configFor({ [name]: value })).toThrow(
      `Invalid configuration:\n  ${name}=${JSON.stringify(value)}: ${message}`,
    );
  });

  it.each([
    ['0', 0],
    ['1', 1],
    ['.5', 0.5],
    [' 0.05 ', 0.05],
    ['', 0],
  ])('reads GATEWAY_FAULT_RATE=%j as %d', (value, rate) => {
    expect(configFor({ GATEWAY_FAULT_RATE: value }).faults.rate).toBe(rate);
  });

  it('refuses malformed credentials without printing them', () => {
    expect(() => parseCredentials('AKIDONE:secret-one,AKIDTWO')).toThrow(
      /GATEWAY_CREDENTIALS: entry 2 must be ACCESS_KEY_ID:SECRET_ACCESS_KEY/,
    );
    let message = '';
    try {
      parseCredentials('AKIDONE:Zq9hiddenOne,:Zq9hiddenTwo');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/entry 2/);
    expect(message).not.toContain('Zq9hidden');
  });
});
