import { randomUUID } from 'node:crypto';
import { decodeHeaderPairs } from '@app/protocol';
import { ConnectionCleanupJob } from '../connections/connection-cleanup.job.js';
import { ConnectionsService } from '../connections/connections.service.js';
import {
  sha256,
  startTarget,
  type Target,
} from '../../../../test/support/target.js';
import {
  type Answer,
  startTestServer,
  type TestServer,
} from '../testing/test-server.js';

interface Echo {
  method: string;
  url: string;
  bytes: number;
  sha256: string;
}

describe('POST /proxy/exchange', () => {
  let target: Target;
  let server: TestServer;
  let calls = 0;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer({
      RESPONSE_WAIT_MS: '5000',
      MAX_CHUNK_SIZE: String(64 * 1024),
      CONNECTION_TTL_MS: '60000',
      FINISHED_LINGER_MS: '30000',
    });
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  const head = (fields: Record<string, unknown> = {}) => ({
    connection_id: randomUUID(),
    target_host: '127.0.0.1',
    port: target.port,
    method: 'GET',
    path: '/echo',
    ...fields,
  });
  /** Every call of these tests goes through here, so it can be counted. */
  const exchange = (
    fields: Record<string, unknown>,
    body: Buffer | string = '',
    options: { final?: boolean; headLength?: string | null } = {},
  ): Promise<Answer> => {
    calls += 1;
    return server.exchangeCall(fields, body, options);
  };
  const connectionOf = (id: string) =>
    server.app.get(ConnectionsService).require(id);

  it('answers a small request with response chunk 0 in ONE call and hits the target once', async () => {
    const fields = head({ method: 'POST', path: '/echo?one-call' });
    const before = calls;
    const res = await exchange(fields, 'hello');
    expect(calls - before).toBe(1);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['x-chunk-index']).toBe('0');
    expect(res.headers['x-more-chunks']).toBe('false');
    expect(res.headers['x-target-status']).toBe('200');
    expect(res.headers['x-target-reason']).toBe('OK');
    expect(
      decodeHeaderPairs(String(res.headers['x-target-headers'])),
    ).toContainEqual(['content-type', 'application/json']);
    const echo = res.json<Echo>();
    expect(echo).toMatchObject({
      method: 'POST',
      url: '/echo?one-call',
      bytes: 5,
      sha256: sha256('hello'),
    });
    expect(target.seen.filter((r) => r.url === '/echo?one-call')).toHaveLength(
      1,
    );
  });

  it('answers a retry (same id, same head) like the first call, without a second target request', async () => {
    const fields = head({ method: 'PUT', path: '/echo?retried' });
    const first = await exchange(fields, 'same bytes');
    const again = await exchange(fields, 'same bytes');
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.headers['x-target-status']).toBe('200');
    expect(again.headers['x-more-chunks']).toBe('false');
    expect(again.body.equals(first.body)).toBe(true);
    expect(target.seen.filter((r) => r.url === '/echo?retried')).toHaveLength(
      1,
    );
  });

  it('treats the same head with its keys in another order and the id in upper case as the same', async () => {
    const fields = head({ path: '/echo?reordered', headers: { A: '1' } });
    expect((await exchange(fields)).status).toBe(200);
    const reordered = Object.fromEntries(Object.entries(fields).reverse());
    reordered.connection_id = String(fields.connection_id).toUpperCase();
    expect((await exchange(reordered)).status).toBe(200);
    expect(target.seen.filter((r) => r.url === '/echo?reordered')).toHaveLength(
      1,
    );
  });

  it('refuses a different head under a known id with 409 connection_exists', async () => {
    const fields = head({ path: '/echo?first-head' });
    expect((await exchange(fields)).status).toBe(200);
    const other = await exchange({ ...fields, path: '/echo?other-head' });
    expect(other.status).toBe(409);
    expect(other.json()).toEqual({
      error: 'connection_exists',
      message: `Connection ${String(fields.connection_id)} already exists with another head (a retry must send the same connection JSON): choose a new UUID for a new request.`,
    });
    expect(target.seen.some((r) => r.url === '/echo?other-head')).toBe(false);
  });

  it('without X-Chunk-Final answers 201 with the receipt of chunk 0; chunks 1..n follow out of order', async () => {
    const parts = [0, 1, 2, 3, 4].map((i) => Buffer.alloc(40_000 + i, 65 + i));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const fields = head({
      method: 'POST',
      path: '/echo?parallel',
      body_size: total,
    });
    const id = String(fields.connection_id);
    const opened = await exchange(fields, parts[0], { final: false });
    expect(opened.status).toBe(201);
    expect(opened.json()).toEqual({
      connection_id: id,
      chunk_index: 0,
      received_bytes: parts[0].length,
      complete: false,
    });
    // A retry of that call changes nothing.
    const retried = await exchange(fields, parts[0], { final: false });
    expect(retried.status).toBe(201);
    expect(retried.json()).toEqual(opened.json());

    const answers = await Promise.all(
      [4, 2, 3, 1].map((index) =>
        server.chunk(id, parts[index], { index, final: index === 4 }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(
      answers.filter((a) => a.json<Echo & { complete: boolean }>().complete),
    ).not.toHaveLength(0);
    const { chunks, error } = await server.fetchAll(id);
    expect(error).toBeUndefined();
    const echo = JSON.parse(Buffer.concat(chunks).toString()) as Echo;
    expect(echo.bytes).toBe(total);
    expect(echo.sha256).toBe(sha256(Buffer.concat(parts)));
    expect(target.seen.filter((r) => r.url === '/echo?parallel')).toHaveLength(
      1,
    );
  });

  it.each([
    [
      null,
      'Missing X-Head-Length header: send the byte length of the connection JSON that starts the body.',
    ],
    [
      'ten',
      'X-Head-Length must be the byte length of the connection JSON, a whole number, got "ten".',
    ],
    [
      '-5',
      'X-Head-Length must be the byte length of the connection JSON, a whole number, got "-5".',
    ],
  ])(
    'answers X-Head-Length %j with 400 invalid_request',
    async (value, message) => {
      const res = await exchange(head(), 'x', { headLength: value });
      expect(res.status).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', message });
    },
  );

  it('answers an X-Head-Length longer than the body with 400 invalid_request', async () => {
    const fields = head();
    const json = Buffer.byteLength(JSON.stringify(fields));
    const res = await exchange(fields, 'ab', {
      headLength: String(json + 10),
    });
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({
      error: 'invalid_request',
      message: `X-Head-Length is ${json + 10}, but the body has only ${json + 2} bytes: send the connection JSON's byte length, then the JSON, then the chunk.`,
    });
  });

  it('answers an X-Head-Length that cuts the JSON short with the 400 of bad JSON', async () => {
    const res = await exchange(head(), '', { headLength: '10' });
    expect(res.status).toBe(400);
    expect(res.json().message).toMatch(
      /^The body is not valid JSON \(.+\): send the connection as a JSON object\.$/,
    );
  });

  it('refuses a head the DTO refuses with the very message of POST /proxy/connection', async () => {
    const bad = head({ method: 'G E T', port: 0, scheme: 'ftp' });
    const viaExchange = await exchange(bad);
    const viaConnection = await server.call(
      'POST',
      '/proxy/connection',
      { 'content-type': 'application/json' },
      JSON.stringify(bad),
    );
    expect(viaExchange.status).toBe(400);
    expect(viaConnection.status).toBe(400);
    expect(viaExchange.json()).toEqual(viaConnection.json());
    expect(viaExchange.json().message).toContain(
      'scheme must be "http" or "https"',
    );
  });

  it('answers a head over 1 MiB with 413 body_too_large before reading it', async () => {
    const res = await exchange(head(), '', {
      headLength: String(2 * 1024 * 1024),
    });
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({
      error: 'body_too_large',
      message: `The connection JSON is ${2 * 1024 * 1024} bytes; at most 1048576 are accepted.`,
    });
  });

  it('answers a first chunk over MAX_CHUNK_SIZE with 413 chunk_too_large and opens nothing', async () => {
    const fields = head({ method: 'POST' });
    const res = await exchange(fields, Buffer.alloc(64 * 1024 + 1));
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({
      error: 'chunk_too_large',
      message: `Chunk of ${64 * 1024 + 1} bytes is larger than MAX_CHUNK_SIZE (65536 bytes): send smaller chunks.`,
    });
    await expect(
      connectionOf(String(fields.connection_id)),
    ).rejects.toMatchObject({ status: 404 });
  });

  it('answers a body_size the chunk contradicts with 400 size_mismatch, also on a retry', async () => {
    const fields = head({ method: 'POST', body_size: 10 });
    const res = await exchange(fields, 'abc');
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('size_mismatch');
    expect((await exchange(fields, 'abc')).json()).toEqual(res.json());
  });

  it("answers the target's failure like GET /proxy/response: 502 target_unreachable", async () => {
    const res = await exchange(head({ port: 1 }));
    expect(res.status).toBe(502);
    expect(res.json().error).toBe('target_unreachable');
  });

  it('answers 202 pending when the target is slower than RESPONSE_WAIT_MS', async () => {
    const quick = await startTestServer({ RESPONSE_WAIT_MS: '200' });
    try {
      const res = await quick.exchangeCall(head({ path: '/hang' }));
      expect(res.status).toBe(202);
      expect(res.headers['x-chunk-ready']).toBe('false');
      expect(res.json<{ status: string }>().status).toBe('pending');
    } finally {
      await quick.close();
    }
  });

  describe('release without a call', () => {
    it('keeps the last chunk re-fetchable for FINISHED_LINGER_MS, then the sweep forgets the connection', async () => {
      const fields = head({ path: '/echo?linger' });
      const id = String(fields.connection_id);
      const first = await exchange(fields);
      expect(first.status).toBe(200);
      expect(first.headers['x-more-chunks']).toBe('false');
      const connection = await connectionOf(id);
      expect(connection.finishedAt).toBe(server.clock.now());
      expect(connection.request.bufferedBytes).toBe(0);

      const job = server.app.get(ConnectionCleanupJob);
      server.clock.advance(29_999);
      await job.sweep();
      const again = await server.response(id, 0);
      expect(again.status).toBe(200);
      expect(again.body.equals(first.body)).toBe(true);

      // Re-fetching did not extend the linger: it counts from the first time.
      server.clock.advance(2);
      await job.sweep();
      await expect(connectionOf(id)).rejects.toMatchObject({ status: 404 });
      expect((await server.response(id, 0)).status).toBe(404);
    });

    it('frees the request body when the last chunk is served and keeps the window for lost answers', async () => {
      const { id } = await server.open({
        port: target.port,
        method: 'POST',
        path: '/bytes?size=5000',
        response_chunk_size: 1024,
        download_window: 2,
      });
      await server.chunk(id, 'request body', { index: 0, final: true });
      const { chunks } = await server.fetchAll(id);
      expect(chunks.map((c) => c.length)).toEqual([
        1024, 1024, 1024, 1024, 904,
      ]);
      const connection = await connectionOf(id);
      expect(connection.finishedAt).toBeDefined();
      expect(connection.request.bufferedBytes).toBe(0);
      // Asking for 4 freed ≤ 2; 3 and 4 stay until the connection is forgotten.
      expect(connection.response.bufferedBytes).toBe(1024 + 904);
      expect((await server.response(id, 2)).status).toBe(409);
      expect((await server.response(id, 3)).status).toBe(200);
      expect((await server.response(id, 4)).status).toBe(200);
    });

    it('still answers DELETE with 204 while lingering', async () => {
      const fields = head({ path: '/echo?deleted' });
      expect((await exchange(fields)).status).toBe(200);
      const res = await server.call('DELETE', '/proxy/connection', {
        'x-connection-id': String(fields.connection_id),
      });
      expect(res.status).toBe(204);
    });
  });

  describe('past the end', () => {
    it('answers a prefetch past the last chunk with 409 chunk_conflict', async () => {
      const fields = head({ path: '/bytes?size=100', download_window: 8 });
      const res = await exchange(fields);
      expect(res.status).toBe(200);
      const past = await server.response(String(fields.connection_id), 3);
      expect(past.status).toBe(409);
      expect(past.json()).toEqual({
        error: 'chunk_conflict',
        message: 'Response chunk 3 is past the end: the last chunk is 0.',
      });
    });

    it('wakes a long-poll already waiting past the end when the response ends', async () => {
      const fields = head({
        path: '/held',
        response_chunk_size: 1024,
        download_window: 8,
      });
      const id = String(fields.connection_id);
      const before = target.held.length;
      const first = exchange(fields);
      await vi.waitFor(() => expect(target.held.length).toBe(before + 1));
      const held = target.held[before];
      held.write(Buffer.alloc(1024 - 'first'.length, 120)); // seals chunk 0
      const chunk0 = await first;
      expect(chunk0.status).toBe(200);
      expect(chunk0.headers['x-more-chunks']).toBe('true');

      const started = Date.now();
      const prefetch = server.response(id, 3);
      const connection = await connectionOf(id);
      await vi.waitFor(() => expect(connection.response.waiters).toBe(1));
      held.end();
      const past = await prefetch;
      expect(past.status).toBe(409);
      expect(past.json().message).toBe(
        'Response chunk 3 is past the end: the last chunk is 1.',
      );
      expect(Date.now() - started).toBeLessThan(4000);
      const last = await server.response(id, 1);
      expect(last.status).toBe(200);
      expect(last.headers['x-more-chunks']).toBe('false');
    });
  });
});
