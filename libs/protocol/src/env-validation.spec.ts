import {
  AwsRegion,
  EmptyIsUnset,
  HostName,
  HttpUrl,
  LogLevel,
  SigV4Service,
  TrueOrFalse,
  WholeNumber,
} from './env-validation.js';
import { validateEnv } from './validation.js';

class Env {
  @WholeNumber(0, 65535, 'port')
  PORT?: number;

  @WholeNumber(1, 1000, 'milliseconds')
  WAIT_MS?: number;

  @WholeNumber(0, Number.MAX_SAFE_INTEGER, 'bytes')
  SIZE?: number;

  @WholeNumber(0, 20)
  RETRIES?: number;

  @HostName()
  HOST?: string;

  @HttpUrl('http://127.0.0.1:9090')
  URL?: string;

  @AwsRegion()
  REGION?: string;

  @SigV4Service()
  SERVICE?: string;

  @LogLevel()
  LOG_LEVEL?: string;

  @EmptyIsUnset()
  @LogLevel()
  QUIET_LOG_LEVEL?: string;
}

const refusal = (name: string, value: string) => {
  try {
    validateEnv(Env, { [name]: value });
  } catch (error) {
    return (error as Error).message;
  }
  return 'accepted';
};

describe('env validation decorators', () => {
  it('convert and accept good values', () => {
    expect(
      validateEnv(Env, {
        PORT: '0',
        WAIT_MS: ' 1000 ',
        SIZE: '9007199254740991',
        RETRIES: '020',
        HOST: '::1',
        URL: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod',
        REGION: 'eu-west-1',
        SERVICE: 'execute-api',
        LOG_LEVEL: 'info',
      }),
    ).toMatchObject({
      PORT: 0,
      WAIT_MS: 1000,
      SIZE: Number.MAX_SAFE_INTEGER,
      RETRIES: 20,
      HOST: '::1',
      REGION: 'eu-west-1',
      LOG_LEVEL: 'info',
    });
  });

  it('leave unset and empty numbers unset; EmptyIsUnset does the same for strings', () => {
    const env = validateEnv(Env, { PORT: '', SIZE: '', QUIET_LOG_LEVEL: '' });
    expect([env.PORT, env.SIZE, env.QUIET_LOG_LEVEL]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(refusal('LOG_LEVEL', '')).toBe(
      'Invalid configuration:\n  LOG_LEVEL="": must be one of error, warn, log, debug, verbose, info',
    );
  });

  it.each([
    [
      'PORT',
      '70000',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    [
      'PORT',
      '80a',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    [
      'PORT',
      '0x10',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    ['WAIT_MS', '1e3', 'must be a whole number of milliseconds from 1 to 1000'],
    ['WAIT_MS', '0', 'must be a whole number of milliseconds from 1 to 1000'],
    ['WAIT_MS', '1.5', 'must be a whole number of milliseconds from 1 to 1000'],
    ['SIZE', '-1', 'must be a whole number of bytes, at least 0'],
    ['SIZE', '9007199254740992', 'must be a whole number of bytes, at least 0'],
    ['RETRIES', '21', 'must be a whole number from 0 to 20'],
    ['RETRIES', ' ', 'must be a whole number from 0 to 20'],
    ['HOST', 'http://x', 'must be a host name or IP address'],
    [
      'URL',
      'example.com/prod',
      'must be an http(s) URL such as http://127.0.0.1:9090',
    ],
    ['URL', 'ftp://x', 'must be an http(s) URL such as http://127.0.0.1:9090'],
    ['REGION', 'Mars', 'must be an AWS region such as us-east-1'],
    [
      'SERVICE',
      'execute api',
      'must be a SigV4 service name such as execute-api',
    ],
    [
      'LOG_LEVEL',
      'loud',
      'must be one of error, warn, log, debug, verbose, info',
    ],
  ])('refuse %s=%j with one message after its name', (name, value, message) => {
    expect(refusal(name, value)).toBe(
      `Invalid configuration:\n  ${name}=${JSON.stringify(value)}: ${message}`,
    );
  });
});

describe('TrueOrFalse', () => {
  class Switches {
    @TrueOrFalse()
    FLAG?: boolean;
  }

  it.each([
    ['true', true],
    [' FALSE ', false],
    ['', undefined],
  ])('reads %j as %j', (value, expected) => {
    expect(validateEnv(Switches, { FLAG: value }).FLAG).toBe(expected);
  });

  it('leaves an unset variable unset', () => {
    expect(validateEnv(Switches, {}).FLAG).toBeUndefined();
  });

  it.each(['yes', '1', 'off'])('refuses %j naming the variable', (value) => {
    expect(() => validateEnv(Switches, { FLAG: value })).toThrow(
      `Invalid configuration:\n  FLAG=${JSON.stringify(value)}: must be true or false`,
    );
  });
});
