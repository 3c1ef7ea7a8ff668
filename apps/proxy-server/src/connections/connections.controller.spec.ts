import { randomUUID } from 'node:crypto';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';

describe('POST and DELETE /proxy/connection', () => {
  let target: Target;
  let server: TestServer;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer({
      MAX_BODY_SIZE: '1000000',
      CONNECTION_TTL_MS: '60000',
      RESPONSE_WAIT_MS: '10000',
    });
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    server.call(
      'POST',
      '/proxy/connection',
      { 'content-type': 'application/json', ...headers },
      body,
    );

  it('opens a connection: 201 with its id and ttl_ms', async () => {
    const { id, res } = await server.open({ port: target.port });
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({ connection_id: id, ttl_ms: 60000 });
  });

  it('parses the JSON whatever the Content-Type says', async () => {
    const id = randomUUID();
    const res = await post(
      JSON.stringify({
        connection_id: id,
        target_host: 'example.com',
        method: 'GET',
        path: '/',
      }),
      { 'content-type': 'text/plain' },
    );
    expect(res.status).toBe(201);
  });

  it.each([
    ['malformed JSON', '{"connection_id": ', 'not valid JSON'],
    ['an empty body', '', 'The body is empty'],
    ['a JSON array', '[1, 2]', 'must be a JSON object'],
    ['a JSON string', '"text"', 'must be a JSON object'],
  ])('refuses %s with 400 invalid_request', async (_what, body, message) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('invalid_request');
    expect(res.json().message).toContain(message);
  });

  it.each([
    [{ connection_id: '42' }, 'connection_id must be a UUID'],
    [{ target_host: undefined }, 'target_host must be a host name'],
    [{ method: undefined }, 'method must be an HTTP method token'],
    [{ path: 'relative' }, 'path must start with "/"'],
    [{ port: 70000 }, 'port must not be greater than 65535'],
    [{ scheme: 'ftp' }, 'scheme must be "http" or "https"'],
    [{ headers: { 'Bad Name': 'x' } }, 'headers must be an object'],
    [{ body_size: -5 }, 'body_size must not be negative'],
    [
      { response_chunk_size: 10 },
      'response_chunk_size must not be less than 1024',
    ],
    [{ download_window: 0 }, 'download_window must not be less than 1'],
    [{ method: 'CONNECT' }, 'CONNECT cannot be forwarded'],
    [{ path: '/caf\u20ac' }, 'percent-encode them'],
    [{ path: '/a\u0001b' }, 'percent-encode them'],
  ])('refuses %j with 400 naming the field', async (patch, message) => {
    const res = await post(
      JSON.stringify({
        connection_id: randomUUID(),
        target_host: 'example.com',
        method: 'GET',
        path: '/',
        ...patch,
      }),
    );
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('invalid_request');
    expect(res.json().message).toContain(message);
  });

  describe('bounds the headers of the connection JSON', () => {
    const withHeaders = (headers: Record<string, string | string[]>) =>
      post(
        JSON.stringify({
          connection_id: randomUUID(),
          target_host: '127.0.0.1',
          port: target.port,
          method: 'GET',
          path: '/',
          headers,
        }),
      );
    const lines = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']));

    it('accepts 200 header lines, a list counting each value', async () => {
      const res = await withHeaders({
        ...lines(198),
        'set-cookie': ['a=1', 'b=2'],
      });
      expect(res.status).toBe(201);
    });

    it('refuses 201 header lines with 400 invalid_request', async () => {
      const res = await withHeaders({ ...lines(199), cookie: ['a=1', 'b=2'] });
      expect(res.status).toBe(400);
      expect(res.json()).toEqual({
        error: 'invalid_request',
        message:
          'headers has 201 header lines (a list counts each value); at most 200 are accepted: send fewer headers.',
      });
    });

    it('refuses more than 64 KiB of names and values with 400 invalid_request', async () => {
      const ok = await withHeaders({ 'x-big': 'a'.repeat(65536 - 5) });
      expect(ok.status).toBe(201);
      const res = await withHeaders({ 'x-big': 'a'.repeat(65536 - 4) });
      expect(res.status).toBe(400);
      expect(res.json().message).toBe(
        'headers hold 65537 bytes of names and values; at most 65536 are accepted: send smaller headers.',
      );
    });
  });

  it('answers exactly what the protocol says for a non-UUID id', async () => {
    const res = await post(
      JSON.stringify({
        connection_id: '42',
        target_host: 'example.com',
        method: 'GET',
        path: '/',
      }),
    );
    expect(res.json()).toEqual({
      error: 'invalid_request',
      message: 'connection_id must be a UUID',
    });
  });

  it('refuses a body_size over MAX_BODY_SIZE with 413 body_too_large', async () => {
    const { res } = await server.open({
      port: target.port,
      method: 'POST',
      body_size: 1000001,
    });
    expect(res.status).toBe(413);
    expect(res.json().error).toBe('body_too_large');
    expect(res.json().message).toContain('MAX_BODY_SIZE (1000000 bytes)');
  });

  it('refuses connection JSON over 1 MiB with 413', async () => {
    const res = await post(
      JSON.stringify({
        connection_id: randomUUID(),
        target_host: 'example.com',
        method: 'GET',
        path: '/',
        headers: { 'X-Padding': 'x'.repeat(1024 * 1024) },
      }),
    );
    expect(res.status).toBe(413);
    expect(res.json().error).toBe('body_too_large');
  });

  it('refuses a duplicate id with 409 connection_exists', async () => {
    const { id } = await server.open({ port: target.port });
    const again = await post(
      JSON.stringify({
        connection_id: id,
        target_host: '127.0.0.1',
        method: 'GET',
        path: '/',
      }),
    );
    expect(again.status).toBe(409);
    expect(again.json().error).toBe('connection_exists');
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await server.call('GET', '/nope');
    expect(res.status).toBe(404);
    expect(res.json().message).toContain('No such endpoint: GET /nope');
  });

  describe('DELETE', () => {
    const release = (id: string) =>
      server.call('DELETE', '/proxy/connection', { 'x-connection-id': id });

    it('answers 204, then 404 for the released id', async () => {
      const { id } = await server.open({ port: target.port });
      const res = await release(id);
      expect(res.status).toBe(204);
      expect(res.body.length).toBe(0);
      const again = await release(id);
      expect(again.status).toBe(404);
      expect(again.json().error).toBe('connection_not_found');
      expect((await server.response(id, 0)).status).toBe(404);
    });

    it('answers 400 without X-Connection-ID', async () => {
      const res = await server.call('DELETE', '/proxy/connection');
      expect(res.status).toBe(400);
      expect(res.json().message).toContain('X-Connection-ID');
    });

    it('aborts the running target request, frees its chunks and ends a waiting long-poll with 404', async () => {
      const { id } = await server.open({ port: target.port, path: '/held' });
      await server.chunk(id, '', { index: 0, final: true });
      await vi.waitFor(() => expect(target.held).toHaveLength(1));
      const held = target.held[0];
      const targetClosed = new Promise<void>((resolve) =>
        held.once('close', () => resolve()),
      );

      // Chunk 0 (head + "first") is sealed only when a long-poll for it
      // expires; this one waits and gets cut short by the release.
      const waiting = server.response(id, 0);
      await vi.waitFor(async () => {
        const connection = await connectionOf(id);
        expect(connection.response.waiters).toBe(1);
      });
      const connection = await connectionOf(id);
      expect((await release(id)).status).toBe(204);

      const answer = await waiting;
      expect(answer.status).toBe(404);
      expect(answer.json().error).toBe('connection_not_found');
      await targetClosed;
      expect(connection.isReleased).toBe(true);
      expect(connection.response.bufferedBytes).toBe(0);
      expect(connection.request.bufferedBytes).toBe(0);
      expect(connection.response.waiters).toBe(0);
    });
  });

  /** The live connection object, for checks of what it holds. */
  async function connectionOf(id: string) {
    const { ConnectionsService } = await import('./connections.service.js');
    return server.app.get(ConnectionsService).require(id);
  }
});
