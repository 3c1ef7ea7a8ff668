import { randomUUID } from 'node:crypto';
import { startApp, startSystem, type RunningApp } from './support/chain.js';
import {
  closedPort,
  errorOf,
  rawExchange,
  viaCurl,
  viaNodeHttp,
  type ErrorBody,
} from './support/clients.js';

/** Bad input and failures get a clear status and message; the system keeps serving. */
describe('errors through the whole chain', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  const extra: RunningApp[] = [];

  beforeAll(async () => {
    system = await startSystem({
      client: { MAX_BODY_SIZE: String(8 * 1024 * 1024) },
    });
  });
  afterAll(async () => {
    await Promise.all(extra.map((app) => app.stop()));
    await system?.stop();
  });

  /** Starts one more proxy-client against the same gateway with other settings. */
  async function otherClient(env: Record<string, string>): Promise<RunningApp> {
    const client = await startApp('proxy-client', {
      CLIENT_LISTEN_PORT: '0',
      API_GATEWAY_URL: system.chain.gatewayUrl,
      AWS_ACCESS_KEY_ID: 'AKIDCHUNKGATELOCALDEV',
      AWS_SECRET_ACCESS_KEY: 'chunkgate-local-development-secret-key',
      GATEWAY_MAX_RETRIES: '1',
      ...env,
    });
    extra.push(client);
    return client;
  }

  describe('the client listener', () => {
    it('answers an origin-form request with 400 saying it is a proxy', async () => {
      const res = await fetch(`${system.chain.proxyUrl}/some/path`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as ErrorBody;
      expect(body.error).toBe('bad_proxy_request');
      expect(body.message).toMatch(/proxy/i);
      expect(body.message).toMatch(/absolute/i);
    });

    it('answers CONNECT to a port the server does not allow with 403', async () => {
      const answer = await rawExchange(
        system.chain.client.port,
        'CONNECT example.com:22 HTTP/1.1\r\nHost: example.com:22\r\n\r\n',
        5000,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 403 /);
      expect(answer).toContain('connect_port_forbidden');
    });

    it('answers a malformed request line with 400', async () => {
      const answer = await rawExchange(
        system.chain.client.port,
        'THIS IS NOT HTTP\r\n\r\n',
        2000,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    });

    it('answers a non-http absolute URI with 400', async () => {
      const answer = await rawExchange(
        system.chain.client.port,
        'GET ftp://example.com/file HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
      );
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain('bad_proxy_request');
    });

    it('refuses a body over MAX_BODY_SIZE from Content-Length with 413, before sending anything', async () => {
      const before = system.target.hits('/echo').length;
      const res = await viaNodeHttp(
        system.chain.proxyUrl,
        `${system.target.url}/echo`,
        {
          method: 'POST',
          body: Buffer.alloc(9 * 1024 * 1024),
        },
      );
      expect(res.status).toBe(413);
      expect(errorOf(res.body).error).toBe('body_too_large');
      expect(errorOf(res.body).message).toMatch(/MAX_BODY_SIZE/);
      expect(system.target.hits('/echo').length).toBe(before);
    });

    it('keeps serving after bad input', async () => {
      const res = await viaNodeHttp(
        system.chain.proxyUrl,
        `${system.target.url}/status/201`,
      );
      expect(res.status).toBe(201);
    });
  });

  describe('failures behind the client', () => {
    it('answers 502 naming the cause when the target refuses the connection', async () => {
      const port = await closedPort();
      const res = await viaNodeHttp(
        system.chain.proxyUrl,
        `http://127.0.0.1:${port}/`,
      );
      expect(res.status).toBe(502);
      const body = errorOf(res.body);
      expect(body.error).toBe('target_unreachable');
      expect(body.message).toMatch(/refused|ECONNREFUSED/i);
    });

    it('answers 502 saying the gateway refused the signature when the credentials are wrong', async () => {
      const client = await otherClient({
        AWS_SECRET_ACCESS_KEY: 'not-the-right-secret',
      });
      const res = await viaCurl(client.url, `${system.target.url}/echo`);
      expect(res.status).toBe(502);
      const body = errorOf(res.body);
      expect(body.error).toBe('gateway_auth_failed');
      expect(body.message).toMatch(/signature/i);
      expect(body.message).toMatch(/credentials/i);
    });

    it('answers 502 explaining the chunk size when chunks exceed the gateway limit', async () => {
      const client = await otherClient({ CHUNK_SIZE: String(3 * 1024 * 1024) });
      const res = await viaNodeHttp(client.url, `${system.target.url}/echo`, {
        method: 'POST',
        body: Buffer.alloc(4 * 1024 * 1024, 1),
      });
      expect(res.status).toBe(502);
      expect(errorOf(res.body).message).toMatch(/CHUNK_SIZE/);
    });

    it('answers 502 when the gateway cannot be reached', async () => {
      const client = await otherClient({
        API_GATEWAY_URL: `http://127.0.0.1:${await closedPort()}`,
      });
      const res = await viaNodeHttp(client.url, `${system.target.url}/echo`);
      expect(res.status).toBe(502);
      expect(errorOf(res.body).error).toBe('upstream_unavailable');
    });
  });

  describe('the server endpoints, called directly', () => {
    const url = (path: string) => `${system.chain.server.url}${path}`;

    it('refuses malformed JSON with 400 invalid_request', async () => {
      const res = await fetch(url('/proxy/connection'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"connection_id": ',
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorBody).error).toBe('invalid_request');
    });

    it('refuses a connection id that is not a UUID', async () => {
      const res = await fetch(url('/proxy/connection'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          connection_id: '42',
          target_host: 'example.com',
          method: 'GET',
          path: '/',
        }),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as ErrorBody;
      expect(body).toEqual({
        error: 'invalid_request',
        message: 'connection_id must be a UUID',
      });
    });

    it('answers 409 for a duplicate connection id', async () => {
      const connection = {
        connection_id: randomUUID(),
        target_host: '127.0.0.1',
        port: system.target.port,
        method: 'GET',
        path: '/echo',
      };
      const open = () =>
        fetch(url('/proxy/connection'), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(connection),
        });
      expect((await open()).status).toBe(201);
      const again = await open();
      expect(again.status).toBe(409);
      expect(((await again.json()) as ErrorBody).error).toBe(
        'connection_exists',
      );
      const released = await fetch(url('/proxy/connection'), {
        method: 'DELETE',
        headers: { 'x-connection-id': connection.connection_id },
      });
      expect(released.status).toBe(204);
    });

    it.each([
      ['POST', '/proxy/chunk'],
      ['GET', '/proxy/response'],
      ['DELETE', '/proxy/connection'],
    ])(
      'answers %s %s for an unknown connection with 404',
      async (method, path) => {
        const res = await fetch(url(path), {
          method,
          headers: { 'x-connection-id': randomUUID(), 'x-chunk-index': '0' },
          body: method === 'POST' ? 'data' : undefined,
        });
        expect(res.status).toBe(404);
        expect(((await res.json()) as ErrorBody).error).toBe(
          'connection_not_found',
        );
      },
    );

    it('answers a chunk without X-Connection-ID with 400', async () => {
      const res = await fetch(url('/proxy/chunk'), {
        method: 'POST',
        body: 'data',
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as ErrorBody;
      expect(body.error).toBe('invalid_request');
      expect(body.message).toMatch(/X-Connection-ID/);
    });
  });
});
