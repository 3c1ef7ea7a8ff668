import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import {
  PROXY_HTTP_PATTERN,
  type ProxyContext,
  type ProxyExchange,
} from './proxy-context.js';
import { ProxyListener, type ProxyListenerOptions } from './proxy-listener.js';

const listeners: ProxyListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

async function listening(
  handler?: (exchange: ProxyExchange, ctx: ProxyContext) => Promise<unknown>,
  options: Omit<ProxyListenerOptions, 'host' | 'port'> = {},
) {
  const listener = new ProxyListener({
    host: '127.0.0.1',
    port: 0,
    ...options,
  });
  listeners.push(listener);
  if (handler) listener.addHandler(PROXY_HTTP_PATTERN, handler as never);
  const err = await new Promise<unknown>((resolve) => listener.listen(resolve));
  expect(err).toBeUndefined();
  return listener;
}

/** Writes raw bytes and collects the answer until the socket closes or `ms` pass. */
async function exchange(
  port: number,
  bytes: string,
  ms = 2000,
): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(bytes);
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
  await Promise.race([
    once(socket, 'close'),
    new Promise((r) => setTimeout(r, ms)),
  ]);
  socket.destroy();
  return out;
}

describe('ProxyListener', () => {
  it('reports a bind error through the listen callback when the port is taken', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const { port } = blocker.address() as AddressInfo;
    try {
      const listener = new ProxyListener({ host: '127.0.0.1', port });
      const err = await new Promise<unknown>((resolve) =>
        listener.listen(resolve),
      );
      expect((err as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
      await listener.close();
    } finally {
      blocker.close();
    }
  });

  it('knows its real address once listening on port 0', async () => {
    const listener = await listening();
    const { host, port, url } = listener.address();
    expect(host).toBe('127.0.0.1');
    expect(port).toBeGreaterThan(0);
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(() => new ProxyListener({ host: '::1', port: 0 }).address()).toThrow(
      /not listening/,
    );
  });

  it('hands each exchange to the proxy.http handler with the raw request and response', async () => {
    const seen: Array<{
      exchange: ProxyExchange;
      method?: string;
      url?: string;
    }> = [];
    const listener = await listening(async (exchange, ctx) => {
      const req = ctx.getRequest();
      seen.push({ exchange, method: req.method, url: req.url });
      for await (const _ of req); // read the body
      ctx.getResponse().end('handled');
    });
    const { port, url } = listener.address();
    const answer = await exchange(
      port,
      'POST http://target.test/x HTTP/1.1\r\nHost: target.test\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhi',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(answer).toMatch(/handled$/);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: 'http://target.test/x',
    });
    expect(seen[0].exchange).toMatchObject({
      expectsContinue: true,
      proxyUrl: url,
    });
  });

  it('accepts an absolute-form HTTP/1.1 request without a Host header', async () => {
    const listener = await listening(async (_exchange, ctx) => {
      ctx.getResponse().end(`got ${ctx.getRequest().url}`);
    });
    const answer = await exchange(
      listener.address().port,
      'GET http://target.test/x HTTP/1.1\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(answer).toMatch(/got http:\/\/target\.test\/x$/);
  });

  it('hands CONNECT over with a response bound to the socket, closed after the answer', async () => {
    const listener = await listening(async (_exchange, ctx) => {
      expect(ctx.getRequest().method).toBe('CONNECT');
      ctx.getResponse().writeHead(501, { 'content-length': 4 }).end('nope');
    });
    const answer = await exchange(
      listener.address().port,
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(answer).toMatch(/nope$/);
  });

  it('answers 500 internal_error in JSON when the handler fails unexpectedly, and keeps serving', async () => {
    let calls = 0;
    const listener = await listening(async (_exchange, ctx) => {
      calls += 1;
      if (calls === 1) throw new Error('boom');
      ctx.getResponse().end('fine');
    });
    const port = listener.address().port;
    const first = await exchange(
      port,
      'GET http://t/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
    );
    expect(first).toMatch(/^HTTP\/1\.1 500 /);
    expect(first).toContain('"error":"internal_error"');
    const second = await exchange(
      port,
      'GET http://t/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
    );
    expect(second).toMatch(/fine$/);
  });

  it('answers a request Node cannot parse with a JSON 400', async () => {
    const listener = await listening(async () => undefined);
    const answer = await exchange(
      listener.address().port,
      'THIS IS NOT HTTP\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toContain('"error":"bad_proxy_request"');
  });

  it('close() destroys open sockets, also of exchanges still in progress', async () => {
    let entered!: () => void;
    const handlerEntered = new Promise<void>((resolve) => (entered = resolve));
    const listener = await listening(() => {
      entered();
      return new Promise(() => undefined); // never answers
    });
    const port = listener.address().port;
    const busy = net.connect(port, '127.0.0.1');
    const idle = net.connect(port, '127.0.0.1');
    await Promise.all([once(busy, 'connect'), once(idle, 'connect')]);
    busy.write('GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n');
    await handlerEntered;
    const closed = Promise.all([once(busy, 'close'), once(idle, 'close')]);
    await listener.close();
    await closed;
    expect(listener.unwrap<http.Server>().listening).toBe(false);
  });
});

/** Status line and parsed JSON body of one raw HTTP answer. */
function parsed(answer: string): {
  head: string;
  body: { error?: string; message?: string };
} {
  const at = answer.indexOf('\r\n\r\n');
  return {
    head: answer.slice(0, at),
    body: JSON.parse(answer.slice(at + 4)) as { error: string },
  };
}

const basic = (credentials: string) =>
  `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;

describe('ProxyListener with CLIENT_PROXY_AUTH', () => {
  const handled: string[] = [];
  const handler = async (_exchange: ProxyExchange, ctx: ProxyContext) => {
    const req = ctx.getRequest();
    handled.push(`${req.method} ${req.url}`);
    for await (const _ of req); // read the body
    ctx.getResponse().end('handled');
  };
  beforeEach(() => {
    handled.length = 0;
  });
  const authenticated = () => listening(handler, { proxyAuth: 'alice:pä:ss' });

  it('answers a request without credentials 407 with the Basic challenge, then serves the retry with credentials on the same connection', async () => {
    const listener = await authenticated();
    const socket = net.connect(listener.address().port, '127.0.0.1');
    await once(socket, 'connect');
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('utf8')));
    socket.write(
      'POST http://t/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello',
    );
    await vi.waitFor(() => expect(out).toMatch(/\}$/));
    const first = parsed(out);
    expect(first.head).toMatch(
      /^HTTP\/1\.1 407 Proxy Authentication Required\r\n/,
    );
    expect(first.head).toContain(
      '\r\nproxy-authenticate: Basic realm="chunkgate"',
    );
    expect(first.head).not.toMatch(/connection: close/i);
    expect(first.body).toEqual({
      error: 'proxy_auth_required',
      message: expect.stringMatching(
        /^This proxy requires authentication: send the user and password of its CLIENT_PROXY_AUTH as Basic Proxy-Authorization/,
      ) as unknown,
    });
    out = '';
    socket.write(
      `GET http://t/y HTTP/1.1\r\nHost: t\r\nProxy-Authorization: ${basic('alice:pä:ss')}\r\nConnection: close\r\n\r\n`,
    );
    await once(socket, 'close');
    expect(out).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(out).toMatch(/handled$/);
    expect(handled).toEqual(['GET http://t/y']);
  });

  it.each([
    ['a wrong password', basic('alice:pä:sS')],
    ['a longer password', basic('alice:pä:ss-and-more')],
    ['the right user alone', basic('alice')],
    ['an empty Basic token', 'Basic '],
    ['another scheme', `Bearer ${basic('alice:pä:ss').slice(6)}`],
    [
      'a Latin-1 encoding of the password',
      `Basic ${Buffer.from('alice:pä:ss', 'latin1').toString('base64')}`,
    ],
  ])(
    'refuses %s with 407 saying the credentials are not valid',
    async (_what, header) => {
      const listener = await authenticated();
      const answer = await exchange(
        listener.address().port,
        `GET http://t/ HTTP/1.1\r\nHost: t\r\nProxy-Authorization: ${header}\r\nConnection: close\r\n\r\n`,
      );
      const { head, body } = parsed(answer);
      expect(head).toMatch(/^HTTP\/1\.1 407 /);
      expect(body.error).toBe('proxy_auth_required');
      expect(body.message).toMatch(
        /^The Proxy-Authorization credentials are not valid for this proxy/,
      );
      expect(handled).toEqual([]);
    },
  );

  it('accepts the scheme in any case', async () => {
    const listener = await authenticated();
    const answer = await exchange(
      listener.address().port,
      `GET http://t/ HTTP/1.1\r\nHost: t\r\nProxy-Authorization: bAsIc ${basic('alice:pä:ss').slice(6)}\r\nConnection: close\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK/);
  });

  it('guards CONNECT alike: 407 without credentials, the tunnel strategy with them', async () => {
    const listener = await listening(
      async (_exchange, ctx) => {
        handled.push(`CONNECT ${ctx.getRequest().url}`);
        ctx.getResponse().writeHead(200, 'Connection Established').end();
      },
      { proxyAuth: 'alice:secret' },
    );
    const port = listener.address().port;
    const refused = await exchange(
      port,
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    );
    expect(refused).toMatch(/^HTTP\/1\.1 407 /);
    expect(refused).toContain('proxy-authenticate: Basic realm="chunkgate"');
    expect(parsed(refused).body.error).toBe('proxy_auth_required');
    expect(handled).toEqual([]);
    const admitted = await exchange(
      port,
      `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: ${basic('alice:secret')}\r\n\r\n`,
    );
    expect(admitted).toMatch(/^HTTP\/1\.1 200 Connection Established/);
    expect(handled).toEqual(['CONNECT example.com:443']);
  });

  it('never logs the credentials', async () => {
    const logged: string[] = [];
    const spies = (['log', 'warn', 'error', 'debug', 'verbose'] as const).map(
      (level) =>
        vi
          .spyOn(Logger.prototype, level)
          .mockImplementation((...args: unknown[]) => {
            logged.push(JSON.stringify(args));
          }),
    );
    try {
      const listener = await authenticated();
      const port = listener.address().port;
      for (const header of [basic('alice:pä:ss'), basic('alice:wrong')]) {
        await exchange(
          port,
          `GET http://t/ HTTP/1.1\r\nHost: t\r\nProxy-Authorization: ${header}\r\nConnection: close\r\n\r\n`,
        );
      }
      expect(logged.some((line) => line.includes('407'))).toBe(true);
      for (const secret of [
        'pä:ss',
        'wrong',
        basic('alice:pä:ss').slice(6),
        basic('alice:wrong').slice(6),
      ]) {
        expect(logged.join('\n')).not.toContain(secret);
      }
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });
});

describe('ProxyListener head limits', () => {
  const ok = async (_exchange: ProxyExchange, ctx: ProxyContext) => {
    ctx.getResponse().end(`ok ${ctx.getRequest().rawHeaders.length / 2}`);
  };
  const headers = (count: number) =>
    Array.from({ length: count }, (_, i) => `X-H${i}: v\r\n`).join('');

  it('answers a head over maxHeaderSize 431 in JSON and keeps serving', async () => {
    const listener = await listening(ok, { maxHeaderSize: 4096 });
    const port = listener.address().port;
    const answer = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`,
    );
    const { head, body } = parsed(answer);
    expect(head).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(head).toContain('\r\nConnection: close');
    expect(body).toEqual({
      error: 'bad_proxy_request',
      message:
        'The request head (request line and headers) is larger than 4096 bytes, the most this proxy accepts: send fewer or shorter headers.',
    });
    const next = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\nHost: t\r\nX-Fits: ${'a'.repeat(3000)}\r\nConnection: close\r\n\r\n`,
    );
    expect(next).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok 3$/);
  });

  it('sets 32 KiB as the head limit by default', async () => {
    const listener = await listening(ok);
    const port = listener.address().port;
    const fits = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\nX-Big: ${'a'.repeat(30 * 1024)}\r\nConnection: close\r\n\r\n`,
    );
    expect(fits).toMatch(/^HTTP\/1\.1 200 OK/);
    const over = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\nX-Big: ${'a'.repeat(33 * 1024)}\r\nConnection: close\r\n\r\n`,
    );
    expect(over).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('delivers the 431 even while the application is still sending its head', async () => {
    const listener = await listening(ok, { maxHeaderSize: 4096 });
    const socket = net.connect(listener.address().port, '127.0.0.1');
    await once(socket, 'connect');
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('error', () => undefined);
    const closed = once(socket, 'close');
    socket.write(`GET http://t/ HTTP/1.1\r\nX-Big: ${'a'.repeat(8000)}`);
    for (let i = 0; i < 20 && socket.writable; i += 1) {
      socket.write('b'.repeat(8000));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    socket.end();
    await closed;
    expect(out).toMatch(/^HTTP\/1\.1 431 /);
    expect(out).toMatch(/"error":"bad_proxy_request"/);
  });

  it('answers more header lines than allowed with 431 naming the limit, also for CONNECT', async () => {
    const listener = await listening(ok, { maxHeaderCount: 20 });
    const port = listener.address().port;
    const within = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\n${headers(19)}Connection: close\r\n\r\n`,
    );
    expect(within).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok 20$/);
    for (const line of ['GET http://t/ HTTP/1.1', 'CONNECT t:443 HTTP/1.1']) {
      const answer = await exchange(
        port,
        `${line}\r\n${headers(20)}Connection: close\r\n\r\n`,
      );
      const { head, body } = parsed(answer);
      expect(head).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large/);
      expect(body).toEqual({
        error: 'bad_proxy_request',
        message:
          'The request carries more than 20 header lines, the most this proxy accepts: send fewer headers.',
      });
    }
  });

  it('allows 200 header lines by default and refuses 201', async () => {
    const listener = await listening(ok);
    const port = listener.address().port;
    const within = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\n${headers(199)}Connection: close\r\n\r\n`,
    );
    expect(within).toMatch(/ok 200$/);
    const over = await exchange(
      port,
      `GET http://t/ HTTP/1.1\r\n${headers(1000)}Connection: close\r\n\r\n`,
    );
    expect(over).toMatch(/^HTTP\/1\.1 431 /);
    expect(over).toContain('more than 200 header lines');
  });
});

describe('ProxyListener and requests cut short', () => {
  it('answers a body shorter than its Content-Length, then the end of the connection, with a JSON 400 saying so', async () => {
    const listener = await listening(async () => undefined);
    const socket = net.connect(listener.address().port, '127.0.0.1');
    await once(socket, 'connect');
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const closed = once(socket, 'close');
    socket.end(
      'POST http://t/ HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc',
    );
    await closed;
    const { head, body } = parsed(out);
    expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(body).toEqual({
      error: 'bad_proxy_request',
      message:
        'The request ended before it was complete: the connection was closed before the whole head, or all the body bytes its Content-Length or chunked encoding announced, arrived.',
    });
  });
});

describe('ProxyListener and Expect', () => {
  it('refuses an Expect other than 100-continue with a JSON 417, and keeps the connection', async () => {
    const listener = await listening(async (_exchange, ctx) => {
      ctx.getResponse().end('handled');
    });
    const socket = net.connect(listener.address().port, '127.0.0.1');
    await once(socket, 'connect');
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.write(
      'POST http://t/ HTTP/1.1\r\nHost: t\r\nExpect: the-unexpected\r\nContent-Length: 2\r\n\r\nhi',
    );
    await vi.waitFor(() => expect(out).toMatch(/\}$/));
    const { head, body } = parsed(out);
    expect(head).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/);
    expect(body).toEqual({
      error: 'bad_proxy_request',
      message:
        'Expect: "the-unexpected" is not supported: this proxy understands only Expect: 100-continue; send the request without it.',
    });
    out = '';
    const closed = once(socket, 'close');
    socket.write(
      'GET http://t/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
    );
    await closed;
    expect(out).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*handled$/);
  });
});
