import { exposureWarning, isLoopbackHost } from './exposure.js';

describe('isLoopbackHost', () => {
  it.each([
    'localhost',
    'LOCALHOST',
    'app.localhost',
    '127.0.0.1',
    '127.8.9.10',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
  ])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([
    '0.0.0.0',
    '::',
    '192.168.1.10',
    '10.0.0.1',
    '128.0.0.1',
    '::ffff:10.0.0.1',
    'fe80::1',
    'my-laptop',
    'localhost.example.com',
  ])('%s is not loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});

describe('exposureWarning', () => {
  it('warns when the proxy listens beyond loopback without authentication', () => {
    expect(exposureWarning('0.0.0.0', 8080, false)).toBe(
      'CLIENT_LISTEN_HOST=0.0.0.0 is not a loopback address and CLIENT_PROXY_AUTH is not set: anyone who can reach port 8080 can use this proxy, and its AWS credentials with it. Set CLIENT_PROXY_AUTH=user:password, or listen on 127.0.0.1.',
    );
  });

  it('stays quiet on loopback, or when CLIENT_PROXY_AUTH is set', () => {
    expect(exposureWarning('127.0.0.1', 8080, false)).toBeUndefined();
    expect(exposureWarning('::1', 8080, false)).toBeUndefined();
    expect(exposureWarning('0.0.0.0', 8080, true)).toBeUndefined();
  });
});
