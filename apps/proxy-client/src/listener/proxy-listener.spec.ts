import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import {
  PROXY_HTTP_PATTERN,
  type ProxyContext,
  type ProxyExchange,
} from './proxy-context.js';
import { ProxyListener } from './proxy-listener.js';

const listeners: ProxyListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

async function listening(
  handler?: (exchange: ProxyExchange, ctx: ProxyContext) => Promise<unknown>,
) {
  const listener = new ProxyListener({ host: '127.0.0.1', port: 0 });
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
