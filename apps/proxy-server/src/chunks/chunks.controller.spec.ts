import { createHash } from 'node:crypto';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';

const sha256 = (data: Buffer) =>
  createHash('sha256').update(data).digest('hex');

interface Echo {
  method: string;
  url: string;
  bytes: number;
  sha256: string;
  rawHeaders: string[];
}

describe('POST /proxy/chunk', () => {
  let target: Target;
  let server: TestServer;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer({
      MAX_CHUNK_SIZE: String(64 * 1024),
      MAX_BODY_SIZE: String(256 * 1024),
    });
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  const echoOf = async (id: string) => {
    const { head, chunks, error } = await server.fetchAll(id);
    expect(error).toBeUndefined();
    expect(head?.status).toBe(200);
    return JSON.parse(Buffer.concat(chunks).toString()) as Echo;
  };

  it('assembles indexed chunks that arrive out of order and forwards the body once', async () => {
    const parts = [
      Buffer.alloc(1000, 1),
      Buffer.alloc(1000, 2),
      Buffer.alloc(500, 3),
    ];
    const { id } = await server.open({
      port: target.port,
      method: 'POST',
      path: '/echo?order=shuffled',
      body_size: 2500,
    });
    const last = await server.chunk(id, parts[2], { index: 2, final: true });
    expect(last.status).toBe(200);
    expect(last.json()).toEqual({
      connection_id: id,
      chunk_index: 2,
      received_bytes: 500,
      complete: false,
    });
    expect(
      (await server.chunk(id, parts[0], { index: 0 })).json(),
    ).toMatchObject({
      complete: false,
      received_bytes: 1500,
    });
    const completing = await server.chunk(id, parts[1], { index: 1 });
    expect(completing.json()).toEqual({
      connection_id: id,
      chunk_index: 1,
      received_bytes: 2500,
      complete: true,
    });
    const echo = await echoOf(id);
    expect(echo.bytes).toBe(2500);
    expect(echo.sha256).toBe(sha256(Buffer.concat(parts)));
    expect(
      target.hits('/echo').filter((r) => r.url === '/echo?order=shuffled'),
    ).toHaveLength(1);
  });

  it('takes chunks without X-Chunk-Index in arrival order (the seed behaviour)', async () => {
    const { id } = await server.open({ port: target.port, method: 'PUT' });
    const a = await server.chunk(id, 'hello ');
    const b = await server.chunk(id, 'chunked ');
    const c = await server.chunk(id, 'world', { final: true });
    expect(
      [a, b, c].map((r) => r.json<{ chunk_index: number }>().chunk_index),
    ).toEqual([0, 1, 2]);
    expect(c.json()).toMatchObject({ complete: true, received_bytes: 19 });
    const echo = await echoOf(id);
    expect(echo.method).toBe('PUT');
    expect(echo.sha256).toBe(sha256(Buffer.from('hello chunked world')));
  });

  it('accepts raw bytes of any Content-Type, JSON included, untouched', async () => {
    const { id } = await server.open({ port: target.port, method: 'POST' });
    const json = '{"looks": "like JSON", "but": "is body bytes"}';
    const res = await server.chunk(id, json, {
      index: 0,
      final: true,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect((await echoOf(id)).sha256).toBe(sha256(Buffer.from(json)));
  });

  it('answers a re-sent final chunk like the first time and hits the target exactly once', async () => {
    const path = `/echo?once=${Date.now()}`;
    const { id } = await server.open({
      port: target.port,
      method: 'POST',
      path,
      body_size: 6,
    });
    await server.chunk(id, 'abc', { index: 0 });
    // The final chunk three times at once, then once more after completion.
    const concurrent = await Promise.all(
      [1, 2, 3].map(() => server.chunk(id, 'def', { index: 1, final: true })),
    );
    for (const res of concurrent) {
      expect(res.status).toBe(200);
      expect(res.json()).toMatchObject({
        chunk_index: 1,
        received_bytes: 6,
        complete: true,
      });
    }
    const again = await server.chunk(id, 'def', { index: 1, final: true });
    expect(again.status).toBe(200);
    expect(again.json()).toMatchObject({ complete: true, received_bytes: 6 });
    const alsoFirst = await server.chunk(id, 'abc', { index: 0 });
    expect(alsoFirst.status).toBe(200);
    await echoOf(id);
    expect(target.seen.filter((r) => r.url === path)).toHaveLength(1);
  });

  it('sends GET with an empty body without Content-Length, POST with Content-Length: 0', async () => {
    const get = await server.exchange({
      port: target.port,
      method: 'GET',
      path: '/echo?m=get',
    });
    const getSeen = JSON.parse(Buffer.concat(get.chunks).toString()) as Echo;
    expect(getSeen.rawHeaders.map((h) => h.toLowerCase())).not.toContain(
      'content-length',
    );
    const post = await server.exchange({
      port: target.port,
      method: 'POST',
      path: '/echo?m=post',
    });
    const postSeen = JSON.parse(Buffer.concat(post.chunks).toString()) as Echo;
    const cl = postSeen.rawHeaders.findIndex(
      (h) => h.toLowerCase() === 'content-length',
    );
    expect(postSeen.rawHeaders[cl + 1]).toBe('0');
  });

  describe('refuses', () => {
    it('a size different from body_size with 400 size_mismatch, and fails the connection', async () => {
      const { id } = await server.open({
        port: target.port,
        method: 'POST',
        path: '/echo?mismatch=1',
        body_size: 10,
      });
      const res = await server.chunk(id, 'too short', {
        index: 0,
        final: true,
      });
      expect(res.status).toBe(400);
      expect(res.json().error).toBe('size_mismatch');
      expect(res.json().message).toContain('9 bytes, but body_size is 10');
      // Every later call gets the same answer; nothing reached the target.
      const later = await server.chunk(id, 'x', { index: 1 });
      expect(later.status).toBe(400);
      expect(later.json().error).toBe('size_mismatch');
      expect((await server.response(id, 0)).json().error).toBe('size_mismatch');
      expect(
        target.seen.filter((r) => r.url === '/echo?mismatch=1'),
      ).toHaveLength(0);
    });

    it('more bytes than body_size as soon as they arrive', async () => {
      const { id } = await server.open({
        port: target.port,
        method: 'POST',
        body_size: 4,
      });
      const res = await server.chunk(id, '12345', { index: 0 });
      expect(res.status).toBe(400);
      expect(res.json().error).toBe('size_mismatch');
    });

    it('a chunk after the final one with 409 chunk_conflict', async () => {
      const { id } = await server.open({ port: target.port, method: 'POST' });
      await server.chunk(id, 'a', { index: 0, final: true });
      const res = await server.chunk(id, 'b', { index: 1 });
      expect(res.status).toBe(409);
      expect(res.json()).toEqual({
        error: 'chunk_conflict',
        message: expect.stringContaining('after the final chunk 0'),
      });
      const unindexed = await server.chunk(id, 'b');
      expect(unindexed.status).toBe(409);
    });

    it('an index outside the declared body with 409 chunk_conflict; the connection stays usable', async () => {
      const { id } = await server.open({
        port: target.port,
        method: 'POST',
        body_size: 3,
      });
      const res = await server.chunk(id, '', { index: 4, final: true });
      expect(res.status).toBe(409);
      expect(res.json()).toEqual({
        error: 'chunk_conflict',
        message:
          'Chunk 4 is outside the body: with body_size 3 the chunk indices run from 0 to 3 at most (every chunk but the final one carries at least one byte). Number chunks from 0 in the order of their bytes.',
      });
      // Index 3 is still possible (three one-byte chunks and an empty final one).
      for (const [index, data] of ['a', 'b', 'c'].entries()) {
        expect((await server.chunk(id, data, { index })).status).toBe(200);
      }
      const last = await server.chunk(id, '', { index: 3, final: true });
      expect(last.json()).toMatchObject({ complete: true, received_bytes: 3 });
      expect((await echoOf(id)).bytes).toBe(3);
    });

    it('an index no body within MAX_BODY_SIZE can reach when body_size is unknown', async () => {
      const { id } = await server.open({ port: target.port, method: 'POST' });
      const res = await server.chunk(id, 'x', { index: 256 * 1024 + 1 });
      expect(res.status).toBe(409);
      expect(res.json().message).toContain(
        `with MAX_BODY_SIZE (${256 * 1024} bytes) the chunk indices run from 0 to ${256 * 1024} at most`,
      );
    });

    it('a re-sent index with another size with 409 chunk_conflict', async () => {
      const { id } = await server.open({ port: target.port, method: 'POST' });
      await server.chunk(id, 'abc', { index: 0 });
      const res = await server.chunk(id, 'abcd', { index: 0 });
      expect(res.status).toBe(409);
      expect(res.json().error).toBe('chunk_conflict');
      expect(res.json().message).toContain('3 bytes');
    });

    it('a chunk over MAX_CHUNK_SIZE with 413 chunk_too_large, by Content-Length and while reading', async () => {
      const { id } = await server.open({ port: target.port, method: 'POST' });
      const big = Buffer.alloc(64 * 1024 + 1);
      const declared = await server.chunk(id, big, { index: 0 });
      expect(declared.status).toBe(413);
      expect(declared.json().error).toBe('chunk_too_large');
      expect(declared.json().message).toContain('MAX_CHUNK_SIZE');
      async function* streamed() {
        for (let i = 0; i < 5; i++) yield Buffer.alloc(20 * 1024);
      }
      const chunked = await server.call(
        'POST',
        '/proxy/chunk',
        { 'x-connection-id': id, 'x-chunk-index': '0' },
        streamed(),
      );
      expect(chunked.status).toBe(413);
      expect(chunked.json().error).toBe('chunk_too_large');
      // The connection is still usable.
      expect(
        (await server.chunk(id, 'ok', { index: 0, final: true })).status,
      ).toBe(200);
    });

    it('a body growing past MAX_BODY_SIZE with 413 body_too_large', async () => {
      const { id } = await server.open({ port: target.port, method: 'POST' });
      for (let i = 0; i < 4; i++) {
        expect(
          (await server.chunk(id, Buffer.alloc(64 * 1024), { index: i }))
            .status,
        ).toBe(200);
      }
      const res = await server.chunk(id, 'x', { index: 4 });
      expect(res.status).toBe(413);
      expect(res.json().error).toBe('body_too_large');
      expect(res.json().message).toContain('MAX_BODY_SIZE');
    });

    it.each([
      [
        { 'x-connection-id': undefined },
        400,
        'invalid_request',
        'Missing X-Connection-ID',
      ],
      [
        { 'x-connection-id': 'not-a-uuid' },
        400,
        'invalid_request',
        'X-Connection-ID must be a UUID',
      ],
      [
        { 'x-chunk-index': '-1' },
        400,
        'invalid_request',
        'X-Chunk-Index must be a non-negative integer',
      ],
      [
        { 'x-chunk-index': '1.5' },
        400,
        'invalid_request',
        'X-Chunk-Index must be a non-negative integer',
      ],
      [
        { 'x-chunk-final': 'yes' },
        400,
        'invalid_request',
        'X-Chunk-Final must be "true" or "false"',
      ],
    ])('headers %j with %i %s', async (patch, status, error, message) => {
      const { id } = await server.open({ port: target.port, method: 'POST' });
      const headers: Record<string, string | undefined> = {
        'x-connection-id': id,
        ...patch,
      };
      const sent = Object.fromEntries(
        Object.entries(headers).filter(
          (e): e is [string, string] => e[1] !== undefined,
        ),
      );
      const res = await server.call('POST', '/proxy/chunk', sent, 'data');
      expect(res.status).toBe(status);
      expect(res.json().error).toBe(error);
      expect(res.json().message).toContain(message);
    });

    it('an unknown connection with 404 connection_not_found', async () => {
      const res = await server.chunk(
        '3f1b5a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
        'x',
        { index: 0 },
      );
      expect(res.status).toBe(404);
      expect(res.json().error).toBe('connection_not_found');
      expect(res.json().message).toContain('POST /proxy/connection');
    });
  });
});
