import net from 'node:net';
import { decodeHeaderPairs, type HeaderPairs } from '@app/protocol';
import { ConnectionsService } from '../connections/connections.service.js';
import {
  deterministicBytes,
  sha256Of,
  startTarget,
  type Target,
} from '../../../../test/support/target.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';

const MiB = 1024 * 1024;

const values = (pairs: HeaderPairs | undefined, name: string) =>
  (pairs ?? []).filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => probe.once('listening', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('GET /proxy/response', () => {
  let target: Target;
  let server: TestServer;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer({ RESPONSE_WAIT_MS: '300' });
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  const connectionOf = (id: string) =>
    server.app.get(ConnectionsService).require(id);

  it.each([
    ['with Content-Length', ''],
    ['chunked, of unknown length', '&chunked=1'],
  ])(
    'cuts a 5 MB response %s into 1 MiB chunks, byte for byte',
    async (_label, query) => {
      const size = 5_000_000;
      const { head, chunks, error } = await server.exchange({
        port: target.port,
        path: `/bytes?size=${size}${query}`,
      });
      expect(error).toBeUndefined();
      expect(head?.status).toBe(200);
      expect(chunks.map((c) => c.length)).toEqual([
        MiB,
        MiB,
        MiB,
        MiB,
        size - 4 * MiB,
      ]);
      expect(sha256Of(chunks)).toBe(sha256Of(deterministicBytes(size)));
      expect(values(head?.headers, 'content-length')).toEqual(
        query ? [] : [String(size)],
      );
      expect(values(head?.headers, 'transfer-encoding')).toEqual([]);
    },
  );

  it('uses the response_chunk_size the client asked for', async () => {
    const { chunks } = await server.exchange({
      port: target.port,
      path: '/bytes?size=5000',
      response_chunk_size: 2048,
    });
    expect(chunks.map((c) => c.length)).toEqual([2048, 2048, 904]);
  });

  it.each([201, 404, 500])(
    'passes target status %i, its reason and body through',
    async (code) => {
      const { head, chunks } = await server.exchange({
        port: target.port,
        path: `/status/${code}?reason=Custom%20Reason`,
      });
      expect(head?.status).toBe(code);
      expect(head?.reason).toBe('Custom Reason');
      expect(values(head?.headers, 'x-target')).toEqual(['yes']);
      expect(Buffer.concat(chunks).toString()).toBe(`status ${code}\n`);
    },
  );

  it('keeps two Set-Cookie headers two, in order', async () => {
    const { head } = await server.exchange({
      port: target.port,
      path: '/cookies',
    });
    expect(values(head?.headers, 'set-cookie')).toEqual([
      'session=abc; Path=/; HttpOnly',
      'theme=dark; Path=/',
    ]);
  });

  it('strips hop-by-hop headers of the response, and those its Connection header names', async () => {
    const { head, chunks } = await server.exchange({
      port: target.port,
      path: '/hop',
    });
    const names = (head?.headers ?? []).map(([n]) => n.toLowerCase());
    expect(names).not.toContain('connection');
    expect(names).not.toContain('keep-alive');
    expect(names).not.toContain('x-hop-secret');
    expect(values(head?.headers, 'x-end-to-end')).toEqual(['passes']);
    expect(Buffer.concat(chunks).toString()).toBe('hop');
  });

  it("strips hop-by-hop request headers and delivers the target's Authorization and Cookie intact", async () => {
    const { chunks } = await server.exchange(
      {
        port: target.port,
        method: 'POST',
        path: '/echo?secret=1',
        headers: {
          Authorization: 'Bearer target-token-123',
          Cookie: 'a=1; b=2',
          Connection: 'keep-alive, X-Private',
          'X-Private': 'secret',
          'Keep-Alive': 'timeout=5',
          'Proxy-Authorization': 'Basic dXNlcjpwYXNz',
          TE: 'trailers',
          Upgrade: 'h2c',
          'Transfer-Encoding': 'chunked',
          Expect: '100-continue',
          Host: 'wrong.example',
          'Content-Length': '999',
          'X-Multi': ['one', 'two'],
          'X-End-To-End': 'passes',
        },
      },
      'payload',
    );
    const seen = JSON.parse(Buffer.concat(chunks).toString()) as {
      rawHeaders: string[];
      bytes: number;
    };
    const pairs: HeaderPairs = [];
    for (let i = 0; i < seen.rawHeaders.length; i += 2)
      pairs.push([seen.rawHeaders[i], seen.rawHeaders[i + 1]]);
    expect(values(pairs, 'authorization')).toEqual(['Bearer target-token-123']);
    expect(values(pairs, 'cookie')).toEqual(['a=1; b=2']);
    expect(values(pairs, 'host')).toEqual([`127.0.0.1:${target.port}`]);
    expect(values(pairs, 'content-length')).toEqual(['7']);
    expect(values(pairs, 'x-multi')).toEqual(['one', 'two']);
    expect(values(pairs, 'x-end-to-end')).toEqual(['passes']);
    for (const name of [
      'x-private',
      'keep-alive',
      'proxy-authorization',
      'te',
      'upgrade',
      'transfer-encoding',
      'expect',
    ]) {
      expect(values(pairs, name), name).toEqual([]);
    }
    expect(seen.bytes).toBe(7);
  });

  it('answers HEAD with the head, its Content-Length and one empty last chunk', async () => {
    const { head, chunks } = await server.exchange({
      port: target.port,
      method: 'HEAD',
      path: '/bytes?size=5000',
    });
    expect(head?.status).toBe(200);
    expect(values(head?.headers, 'content-length')).toEqual(['5000']);
    expect(chunks.map((c) => c.length)).toEqual([0]);
  });

  it('answers 202 pending with X-Chunk-Ready: false after RESPONSE_WAIT_MS', async () => {
    const { id } = await server.open({ port: target.port, path: '/hang' });
    await server.chunk(id, '', { index: 0, final: true });
    const res = await server.response(id, 0);
    expect(res.status).toBe(202);
    expect(res.headers['x-chunk-ready']).toBe('false');
    expect(res.json<{ status: string; message: string }>()).toEqual({
      status: 'pending',
      message: expect.stringContaining('ask again'),
    });
    expect((await connectionOf(id)).response.waiters).toBe(0);
  });

  it('also answers 202 while the request body is still incomplete', async () => {
    const { id } = await server.open({ port: target.port, method: 'POST' });
    await server.chunk(id, 'part', { index: 0 });
    expect((await server.response(id, 0)).status).toBe(202);
  });

  it('seals a chunk holding bytes when its long-poll expires, so a slow stream arrives piece by piece', async () => {
    const before = target.held.length;
    const { id } = await server.open({ port: target.port, path: '/held' });
    await server.chunk(id, '', { index: 0, final: true });
    await vi.waitFor(() => expect(target.held.length).toBe(before + 1));
    const first = await server.response(id, 0);
    expect(first.status).toBe(200);
    expect(first.headers['x-target-status']).toBe('200');
    expect(first.headers['x-more-chunks']).toBe('true');
    expect(first.body.toString()).toBe('first');

    const res = target.held[before];
    res.end('second');
    const second = await server.response(id, 1);
    expect(second.status).toBe(200);
    expect(second.headers['x-more-chunks']).toBe('false');
    expect(second.body.toString()).toBe('second');
  });

  it('answers 409 for a freed chunk and for one past the end', async () => {
    const { id } = await server.exchange({
      port: target.port,
      path: '/bytes?size=3000',
      response_chunk_size: 1024,
    });
    // exchange() fetched 0, 1 and 2: asking for 2 freed 0 and 1 (window 1).
    const freed = await server.response(id, 0);
    expect(freed.status).toBe(409);
    expect(freed.json().error).toBe('chunk_conflict');
    expect(freed.json().message).toContain('was freed');
    const again = await server.response(id, 2);
    expect(again.status).toBe(200);
    const past = await server.response(id, 3);
    expect(past.status).toBe(409);
    expect(past.json().message).toContain('past the end');
  });

  it.each([
    [{ 'x-chunk-index': '0' }, 'Missing X-Connection-ID'],
    [
      { 'x-connection-id': '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11' },
      'Missing X-Chunk-Index',
    ],
    [
      {
        'x-connection-id': '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11',
        'x-chunk-index': 'x',
      },
      'X-Chunk-Index must be',
    ],
  ])('answers 400 invalid_request for headers %j', async (headers, message) => {
    const res = await server.call('GET', '/proxy/response', headers);
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('invalid_request');
    expect(res.json().message).toContain(message);
  });

  it('answers 404 for an unknown connection', async () => {
    const res = await server.response(
      '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11',
      0,
    );
    expect(res.status).toBe(404);
    expect(res.json().error).toBe('connection_not_found');
  });

  it('answers 502 naming ECONNREFUSED when the target refuses', async () => {
    const port = await closedPort();
    const { error } = await server.exchange({ port });
    expect(error?.status).toBe(502);
    expect(error?.json().error).toBe('target_unreachable');
    expect(error?.json().message).toContain('ECONNREFUSED');
    expect(error?.json().message).toContain(`http://127.0.0.1:${port}/echo`);
  });

  it('answers 502 naming ENOTFOUND for a host DNS does not know', async () => {
    const { error } = await server.exchange({
      target_host: 'no-such-host.invalid',
      port: 80,
    });
    expect(error?.status).toBe(502);
    expect(error?.json().message).toMatch(/ENOTFOUND|EAI_AGAIN/);
  });

  it('answers "response broke off after N bytes" once chunks were served and the target dropped', async () => {
    const { head, chunks, error } = await server.exchange({
      port: target.port,
      path: '/break?after=5000',
      response_chunk_size: 1024,
    });
    expect(head?.status).toBe(200);
    expect(chunks.reduce((n, c) => n + c.length, 0)).toBeLessThanOrEqual(5000);
    expect(error?.status).toBe(502);
    expect(error?.json().error).toBe('target_unreachable');
    expect(error?.json().message).toContain(
      'response broke off after 5000 bytes',
    );
  });

  it('removes the long-poll waiter when the caller hangs up', async () => {
    const slow = await startTestServer({ RESPONSE_WAIT_MS: '20000' });
    try {
      const { id } = await slow.open({ port: target.port, path: '/hang' });
      await slow.chunk(id, '', { index: 0, final: true });
      const hangUp = new AbortController();
      const { request } = await import('undici');
      const pending = request(`${slow.url}/proxy/response`, {
        headers: { 'x-connection-id': id, 'x-chunk-index': '0' },
        signal: hangUp.signal,
      }).catch((e: unknown) => e);
      const connection = await slow.app.get(ConnectionsService).require(id);
      await vi.waitFor(() => expect(connection.response.waiters).toBe(1));
      hangUp.abort();
      await pending;
      await vi.waitFor(() => expect(connection.response.waiters).toBe(0));
    } finally {
      await slow.close();
    }
  });

  it('stops reading a big target response the client does not fetch (backpressure), and resumes', async () => {
    const size = 64 * MiB;
    const chunkSize = 256 * 1024;
    const bound = 3 * chunkSize; // download_window 1: two sealed chunks and the open one
    const { id } = await server.open({
      port: target.port,
      path: `/bytes?size=${size}`,
      response_chunk_size: chunkSize,
      download_window: 1,
    });
    await server.chunk(id, '', { index: 0, final: true });
    const connection = await connectionOf(id);
    const first = await server.response(id, 0);
    expect(first.status).toBe(200);

    await vi.waitFor(() => expect(connection.response.full).toBe(true));
    expect(connection.response.bufferedBytes).toBeLessThanOrEqual(bound);
    expect(connection.response.receivedBytes).toBeLessThan(size / 4);
    expect(target.streamed.finished).toBe(false);

    let peak = 0;
    const rest = await server.fetchAll(id, () => {
      peak = Math.max(peak, connection.response.bufferedBytes);
    });
    // fetchAll started again at 0, which the first call served and still holds.
    expect(rest.error).toBeUndefined();
    expect(peak).toBeLessThanOrEqual(bound);
    expect(sha256Of(rest.chunks)).toBe(sha256Of(deterministicBytes(size)));
    expect(target.streamed.finished).toBe(true);
  });
  it('with download_window 8 holds at most 9 sealed chunks (plus the one filling) and reads the target only as the client catches up', async () => {
    const size = 64 * MiB;
    const chunkSize = 256 * 1024;
    const window = 8;
    const bound = (window + 2) * chunkSize; // window + 1 sealed, one open
    const { id } = await server.open({
      port: target.port,
      path: `/bytes?size=${size}&seed=window8`,
      response_chunk_size: chunkSize,
      download_window: window,
    });
    await server.chunk(id, '', { index: 0, final: true });
    const connection = await connectionOf(id);
    await vi.waitFor(() => expect(connection.response.full).toBe(true));
    expect(connection.response.bufferedBytes).toBeLessThanOrEqual(bound);
    const stalledAt = connection.response.receivedBytes;
    expect(stalledAt).toBeLessThanOrEqual(bound);

    // Fetching chunks 0..7 frees nothing: the client may still need them.
    for (let i = 0; i < window; i++) {
      expect((await server.response(id, i)).status).toBe(200);
    }
    expect(connection.response.full).toBe(true);
    expect(connection.response.receivedBytes).toBe(stalledAt);
    expect(target.streamed.finished).toBe(false);

    // Asking for 8 says chunk 0 was delivered: one more chunk is read.
    expect((await server.response(id, window)).status).toBe(200);
    await vi.waitFor(() =>
      expect(connection.response.receivedBytes).toBeGreaterThan(stalledAt),
    );
    await vi.waitFor(() => expect(connection.response.full).toBe(true));
    expect(connection.response.receivedBytes).toBeLessThanOrEqual(
      stalledAt + 2 * chunkSize,
    );

    const received: Buffer[] = [];
    let peak = 0;
    for (let index = window + 1; ; index++) {
      const res = await server.response(id, index);
      if (res.status === 202) {
        index -= 1;
        continue;
      }
      expect(res.status).toBe(200);
      received.push(res.body);
      peak = Math.max(peak, connection.response.bufferedBytes);
      if (res.headers['x-more-chunks'] === 'false') break;
    }
    expect(peak).toBeLessThanOrEqual(bound);
    expect(received.reduce((n, c) => n + c.length, 0)).toBe(
      size - (window + 1) * chunkSize,
    );
    expect(target.streamed.finished).toBe(true);
  });
});

describe('GET /proxy/response with a slow target', () => {
  let target: Target;
  let server: TestServer;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer({
      TARGET_TIMEOUT_MS: '300',
      RESPONSE_WAIT_MS: '10000',
    });
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  it('answers 504 target_timeout when the target sends no head within TARGET_TIMEOUT_MS', async () => {
    const started = Date.now();
    const { error } = await server.exchange({
      port: target.port,
      path: '/hang',
    });
    expect(error?.status).toBe(504);
    expect(error?.json().error).toBe('target_timeout');
    expect(error?.json().message).toContain('TARGET_TIMEOUT_MS is 300 ms');
    // The waiting long-poll was woken by the failure, not by its own 10 s bound.
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('the completion log line', () => {
  it('names method, target URL without query, status and bytes, and no header values', async () => {
    const target = await startTarget();
    const lines: string[] = [];
    const capture = (message: unknown) => void lines.push(String(message));
    const { createServerApp, listen } = await import('../app.js');
    const app = await createServerApp({
      env: {},
      logger: {
        log: capture,
        warn: capture,
        error: capture,
        debug: capture,
        verbose: capture,
      },
    });
    try {
      const url = await listen(app, 0, '127.0.0.1');
      const id = '7d7c1f3a-2b4e-4c5d-8e9f-0a1b2c3d4e5f';
      await fetch(`${url}/proxy/connection`, {
        method: 'POST',
        body: JSON.stringify({
          connection_id: id,
          target_host: '127.0.0.1',
          port: target.port,
          method: 'POST',
          path: '/status/201?token=query-secret',
          headers: {
            Authorization: 'Bearer header-secret',
            Cookie: 'sid=cookie-secret',
          },
        }),
      });
      await fetch(`${url}/proxy/chunk`, {
        method: 'POST',
        headers: { 'x-connection-id': id, 'x-chunk-final': 'true' },
        body: 'hello',
      });
      const res = await fetch(`${url}/proxy/response`, {
        headers: { 'x-connection-id': id, 'x-chunk-index': '0' },
      });
      expect(res.status).toBe(200);
      expect(
        decodeHeaderPairs(res.headers.get('x-target-headers') ?? ''),
      ).toBeInstanceOf(Array);
      await vi.waitFor(() =>
        expect(lines.filter((l) => l.includes('-> 201'))).toEqual([
          expect.stringMatching(
            new RegExp(
              `^POST http://127\\.0\\.0\\.1:${target.port}/status/201 -> 201, 5 bytes sent, 11 bytes received in \\d+ ms$`,
            ),
          ),
        ]),
      );
      expect(lines.join('\n')).not.toMatch(/secret/);
    } finally {
      await app.close();
      await target.close();
    }
  });
});
