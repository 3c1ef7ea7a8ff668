import { prepareProxyRequest } from '../relay/pipeline/prepare-proxy-request.js';
import { PROXY_AUTHENTICATE, ProxyAuth } from './proxy-auth.js';

const basic = (credentials: string) =>
  `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;

describe('ProxyAuth', () => {
  const auth = new ProxyAuth('alice:se:cret');
  const check = (header?: string) =>
    auth.check({ headers: { 'proxy-authorization': header } });

  it('admits the configured user and password, whatever the padding of the base64', () => {
    expect(check(basic('alice:se:cret'))).toBeUndefined();
    expect(
      check(
        `Basic ${Buffer.from('alice:se:cret').toString('base64').replace(/=+$/, '')}`,
      ),
    ).toBeUndefined();
    expect(
      check(`basic\t${basic('alice:se:cret').slice(6)}  `),
    ).toBeUndefined();
  });

  it('answers a missing header with 407 proxy_auth_required', () => {
    const error = check(undefined);
    expect(error?.status).toBe(407);
    expect(error?.toBody()).toEqual({
      error: 'proxy_auth_required',
      message:
        'This proxy requires authentication: send the user and password of its CLIENT_PROXY_AUTH as Basic Proxy-Authorization, e.g. curl -x http://USER:PASSWORD@HOST:PORT http://target/... (or --proxy-user USER:PASSWORD).',
    });
  });

  it.each([
    basic('alice:se:creT'),
    basic('alice:se:cret '),
    basic('bob:se:cret'),
    basic(''),
    'Basic',
    'Basic !!!!',
    `Digest ${basic('alice:se:cret').slice(6)}`,
    basic('alice:se:cret') + ' extra',
  ])('refuses %j as not valid, never echoing it', (header) => {
    const error = check(header);
    expect(error?.status).toBe(407);
    expect(error?.message).toMatch(
      /^The Proxy-Authorization credentials are not valid for this proxy: /,
    );
    for (const word of header.split(/\s+/).slice(1).filter(Boolean)) {
      expect(error?.message).not.toContain(word);
    }
  });

  it('challenges for Basic credentials in the realm chunkgate', () => {
    expect(PROXY_AUTHENTICATE).toBe('Basic realm="chunkgate"');
  });
});

describe('the prepare step and Proxy-Authorization', () => {
  it('never forwards the credentials to the target', () => {
    const request = prepareProxyRequest(
      {
        method: 'GET',
        url: 'http://target.test/',
        rawHeaders: [
          'Host',
          'target.test',
          'Proxy-Authorization',
          basic('alice:se:cret'),
          'PROXY-AUTHORIZATION',
          basic('again'),
          'Authorization',
          'Bearer for-the-target',
        ],
        headers: {},
      },
      { proxyUrl: 'http://127.0.0.1:8080', maxBodySize: 1024 },
    );
    expect(request.kind).toBe('http');
    expect(request.kind === 'http' && request.headers).toEqual([
      ['Authorization', 'Bearer for-the-target'],
    ]);
  });
});
