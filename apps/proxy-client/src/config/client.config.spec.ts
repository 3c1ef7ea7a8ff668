import { loadClientSettings } from './client.config.js';

describe('loadClientSettings', () => {
  it('has the documented defaults', () => {
    expect(loadClientSettings({})).toEqual({
      listenHost: '127.0.0.1',
      listenPort: 8080,
      gatewayUrl: 'http://127.0.0.1:9080',
      region: 'us-east-1',
      service: 'execute-api',
      chunkSize: 1048576,
      maxBodySize: 5 * 1024 ** 3,
      gatewayMaxRetries: 5,
      gatewayRetryBaseMs: 100,
      gatewayCallTimeoutMs: 35000,
      requestTimeoutMs: 330000,
      uploadConcurrency: 8,
      downloadConcurrency: 8,
      combinedCall: true,
      logLevel: 'log',
      proxyAuth: undefined,
    });
  });

  it('listens on loopback only and without proxy authentication unless told otherwise', () => {
    const settings = loadClientSettings({});
    expect(settings.listenHost).toBe('127.0.0.1');
    expect(settings.proxyAuth).toBeUndefined();
    expect(loadClientSettings({ CLIENT_PROXY_AUTH: '' }).proxyAuth).toBe(
      undefined,
    );
  });

  it('reads CLIENT_PROXY_AUTH as user:password; the password may contain ":"', () => {
    expect(
      loadClientSettings({ CLIENT_PROXY_AUTH: 'alice:s3cr:et' }).proxyAuth,
    ).toBe('alice:s3cr:et');
  });

  it.each(['alice', ':secret', 'alice:', 'al\nice:secret'])(
    'refuses CLIENT_PROXY_AUTH=%j without quoting the secret',
    (value) => {
      let message = '';
      try {
        loadClientSettings({ CLIENT_PROXY_AUTH: value, CHUNK_SIZE: '1e6' });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain(
        'CLIENT_PROXY_AUTH=(not shown, a secret): must be user:password',
      );
      // Reported together with the other bad variables.
      expect(message).toContain('CHUNK_SIZE="1e6"');
      expect(message).not.toContain(value);
      expect(() => loadClientSettings({ CLIENT_PROXY_AUTH: value })).toThrow(
        /^Invalid configuration:\n {2}CLIENT_PROXY_AUTH=\(not shown/,
      );
    },
  );

  it('reads every variable; keeps the stage path, drops a trailing slash', () => {
    const settings = loadClientSettings({
      CLIENT_LISTEN_HOST: '::1',
      CLIENT_LISTEN_PORT: '0',
      API_GATEWAY_URL: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod/',
      AWS_REGION: 'eu-west-1',
      SERVICE: 'execute-api',
      CHUNK_SIZE: '1024',
      MAX_BODY_SIZE: '0',
      GATEWAY_MAX_RETRIES: '0',
      GATEWAY_RETRY_BASE_MS: '50',
      GATEWAY_CALL_TIMEOUT_MS: '40000',
      REQUEST_TIMEOUT_MS: '60000',
      UPLOAD_CONCURRENCY: '1',
      DOWNLOAD_CONCURRENCY: '64',
      COMBINED_CALL: 'false',
      LOG_LEVEL: 'debug',
    });
    expect(settings).toMatchObject({
      listenHost: '::1',
      listenPort: 0,
      gatewayUrl: 'https://abc.execute-api.eu-west-1.amazonaws.com/prod',
      chunkSize: 1024,
      maxBodySize: 0,
      gatewayMaxRetries: 0,
      requestTimeoutMs: 60000,
      uploadConcurrency: 1,
      downloadConcurrency: 64,
      combinedCall: false,
      logLevel: 'debug',
    });
  });

  it.each([
    [
      'CLIENT_LISTEN_PORT',
      'abc',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    [
      'CLIENT_LISTEN_PORT',
      '70000',
      'must be a port number (0 = any free port) from 0 to 65535',
    ],
    [
      'CHUNK_SIZE',
      '1e6',
      'must be a whole number of bytes from 1024 to 10485760',
    ],
    [
      'CHUNK_SIZE',
      '11000000',
      'must be a whole number of bytes from 1024 to 10485760',
    ],
    [
      'API_GATEWAY_URL',
      'example.com/prod',
      'must be an http(s) URL such as https://abc.execute-api.us-east-1.amazonaws.com/prod',
    ],
    ['AWS_REGION', 'mars', 'must be an AWS region such as us-east-1'],
    ['GATEWAY_MAX_RETRIES', '-1', 'must be a whole number from 0 to 20'],
    [
      'REQUEST_TIMEOUT_MS',
      '10',
      'must be a whole number of milliseconds from 1000 to 86400000',
    ],
    ['UPLOAD_CONCURRENCY', '0', 'must be a whole number from 1 to 64'],
    ['DOWNLOAD_CONCURRENCY', '65', 'must be a whole number from 1 to 64'],
    ['COMBINED_CALL', 'no', 'must be true or false'],
    [
      'LOG_LEVEL',
      'loud',
      'must be one of error, warn, log, debug, verbose, info',
    ],
  ])('refuses %s=%s naming the variable', (name, value, message) => {
    expect(() => loadClientSettings({ [name]: value })).toThrow(
      `${name}=${JSON.stringify(value)}: ${message}`,
    );
  });
});
