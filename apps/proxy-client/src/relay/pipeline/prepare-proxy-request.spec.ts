import { ProtocolError } from '@app/protocol';
import {
  prepareProxyRequest,
  prepareTargetHeaders,
  redactUrl,
  type RawProxyRequest,
} from './prepare-proxy-request.js';

const options = { proxyUrl: 'http://127.0.0.1:8080', maxBodySize: 1000 };

/** A request as Node parses it: rawHeaders plus the lower-cased record. */
function raw(
  method: string,
  url: string,
  rawHeaders: string[] = [],
): RawProxyRequest {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2)
    headers[rawHeaders[i].toLowerCase()] = rawHeaders[i + 1];
  return { method, url, rawHeaders, headers };
}

function refusal(req: RawProxyRequest): ProtocolError {
  try {
    prepareProxyRequest(req, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  return expect.unreachable('the request was accepted');
}

describe('prepareProxyRequest', () => {
  it('takes an absolute-form request apart', () => {
    const request = prepareProxyRequest(
      raw('POST', 'http://example.com:8081/upload?x=1&y=%20', [
        'Host',
        'example.com:8081',
        'Content-Length',
        '3',
      ]),
      options,
    );
    expect(request).toEqual({
      kind: 'http',
      method: 'POST',
      scheme: 'http',
      targetHost: 'example.com',
      port: 8081,
      path: '/upload?x=1&y=%20',
      headers: [['Content-Length', '3']],
      bodySize: 3,
      displayUrl: 'http://example.com:8081/upload?x=1&y=%20',
    });
  });

  it.each([
    ['http://example.com', '/', 80],
    ['http://example.com?q=1', '/?q=1', 80],
    ['http://example.com/a/../b#frag', '/a/../b', 80],
  ])(
    'keeps the path of %s as sent (%s), default port 80',
    (url, path, port) => {
      const request = prepareProxyRequest(raw('GET', url), options);
      expect(request).toMatchObject({ kind: 'http', path, port, bodySize: 0 });
    },
  );

  it('puts IPv6 hosts in brackets and drops userinfo from the logged URL', () => {
    const request = prepareProxyRequest(
      raw('GET', 'http://user:secret@[::1]:9000/x'),
      options,
    );
    expect(request).toMatchObject({
      targetHost: '[::1]',
      port: 9000,
      displayUrl: 'http://[::1]:9000/x',
    });
    expect(redactUrl('http://user:secret@host/p')).toBe('http://host/p');
  });

  it('sends a chunked body with an unknown size', () => {
    const request = prepareProxyRequest(
      raw('PUT', 'http://h/', ['Transfer-Encoding', 'chunked']),
      options,
    );
    expect(request).toMatchObject({ bodySize: null, headers: [] });
  });

  it('refuses an origin-form request with 400 saying this is a proxy and how to use it', () => {
    const error = refusal(raw('GET', '/some/path'));
    expect(error.status).toBe(400);
    expect(error.code).toBe('bad_proxy_request');
    expect(error.message).toBe(
      'This is an HTTP proxy: send absolute-form requests (curl -x http://127.0.0.1:8080 http://target/...), not "GET /some/path".',
    );
  });

  it.each([
    [
      'ftp://example.com/file',
      /Only http:\/\/ URLs can be proxied, got ftp:\/\//,
    ],
    ['https://example.com/', /https:\/\/ needs CONNECT tunnels/],
    ['http://exa mple.com/', /not a valid URL/],
    ['http://a!b.com/', /no valid host name/],
  ])('refuses %s with 400 bad_proxy_request', (url, message) => {
    const error = refusal(raw('GET', url));
    expect([error.status, error.code]).toEqual([400, 'bad_proxy_request']);
    expect(error.message).toMatch(message);
  });

  it('refuses a Content-Length over MAX_BODY_SIZE with 413 naming the limit', () => {
    const error = refusal(raw('POST', 'http://h/', ['Content-Length', '1001']));
    expect([error.status, error.code]).toEqual([413, 'body_too_large']);
    expect(error.message).toBe(
      "The request body (1001 bytes) is larger than this proxy's MAX_BODY_SIZE of 1000 bytes.",
    );
    expect(
      prepareProxyRequest(
        raw('POST', 'http://h/', ['Content-Length', '1000']),
        options,
      ),
    ).toMatchObject({
      bodySize: 1000,
    });
  });

  it('recognises CONNECT for its own strategy', () => {
    expect(
      prepareProxyRequest(raw('CONNECT', 'example.com:443'), options),
    ).toEqual({
      kind: 'connect',
      authority: 'example.com:443',
      displayUrl: 'example.com:443',
    });
  });
});

describe('prepareTargetHeaders', () => {
  it('drops hop-by-hop, Connection-named, Proxy-*, Host and Expect headers, keeping the rest in order', () => {
    expect(
      prepareTargetHeaders([
        'Host',
        'example.com',
        'Connection',
        'keep-alive, X-Private',
        'X-Private',
        'secret',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Authorization',
        'Basic dXNlcjpwYXNz',
        'Proxy-Connection',
        'keep-alive',
        'Proxy-Foo',
        'bar',
        'TE',
        'trailers',
        'Upgrade',
        'h2c',
        'Expect',
        '100-continue',
        'Authorization',
        'Bearer target-token',
        'Cookie',
        'a=1',
        'Cookie',
        'b=2',
        'Content-Length',
        '5',
      ]),
    ).toEqual([
      ['Authorization', 'Bearer target-token'],
      ['Cookie', 'a=1'],
      ['Cookie', 'b=2'],
      ['Content-Length', '5'],
    ]);
  });
});
