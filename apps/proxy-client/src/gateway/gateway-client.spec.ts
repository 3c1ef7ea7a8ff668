import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  verifySignature,
  type ReceivedRequest,
} from '../testing/verify-signature.js';
import { withCallTally } from './call-tally.js';
import {
  GatewayClient,
  GatewayCredentialsError,
  GatewayUnreachableError,
  type GatewayClientOptions,
} from './gateway-client.js';

const key = {
  accessKeyId: 'AKIDTESTTESTTEST',
  secretAccessKey: 'test-secret',
  region: 'eu-west-1',
  service: 'execute-api',
};

type Reply = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  n: number,
) => void;

/** A real HTTP server on port 0 that records each request and answers with `reply`. */
async function startServer(reply: Reply) {
  const received: ReceivedRequest[] = [];
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(parts),
    });
    reply(req, res, received.length);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

function answer(
  res: http.ServerResponse,
  status: number,
  body: unknown = {},
): void {
  if (status === 204) {
    res.writeHead(204).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const clients: GatewayClient[] = [];
const servers: Array<{ close: () => Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

function clientFor(
  gatewayUrl: string,
  extra: Partial<GatewayClientOptions> = {},
  credentials = key as never,
): GatewayClient {
  const client = new GatewayClient(
    {
      gatewayUrl,
      region: key.region,
      service: key.service,
      callTimeoutMs: 5000,
      connections: 128,
      maxRetries: 3,
      baseMs: 1,
      ...extra,
    },
    credentials,
  );
  clients.push(client);
  return client;
}

async function serverReplying(reply: Reply) {
  const server = await startServer(reply);
  servers.push(server);
  return server;
}

describe('GatewayClient signing', () => {
  it('signs exactly what it sends, stage path included, and the signature verifies', async () => {
    const server = await serverReplying((_req, res) =>
      answer(res, 200, { ok: true }),
    );
    const client = clientFor(`${server.url}/prod/`);
    const body = Buffer.from('chunk bytes \x00\xff', 'latin1');
    const result = await client.call({
      method: 'POST',
      path: '/proxy/chunk',
      headers: {
        'content-type': 'application/octet-stream',
        'x-connection-id': 'abc',
        'x-chunk-index': '0',
      },
      body,
    });
    expect(result).toMatchObject({ status: 200, attempts: 1 });

    const [seen] = server.received;
    expect(seen.url).toBe('/prod/proxy/chunk');
    expect(seen.body.equals(body)).toBe(true);
    expect(seen.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(seen.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDTESTTESTTEST\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*host[^,]*, Signature=[0-9a-f]{64}$/,
    );
    expect(seen.headers.authorization).toMatch(
      /SignedHeaders=[^,]*x-chunk-index/,
    );
    expect(seen.headers['x-amz-content-sha256']).toBe(
      createHash('sha256').update(body).digest('hex'),
    );

    expect((await verifySignature(seen, key)).valid).toBe(true);
    // The stage is part of what was signed: without it the signature differs.
    expect((await verifySignature(seen, key, '/proxy/chunk')).valid).toBe(
      false,
    );
    // So is the body.
    expect(
      (await verifySignature({ ...seen, body: Buffer.from('other') }, key))
        .valid,
    ).toBe(false);
    // And the secret.
    expect(
      (await verifySignature(seen, { ...key, secretAccessKey: 'wrong' })).valid,
    ).toBe(false);
  });

  it('keeps an answer as the pieces it arrived in, joining them only when asked', async () => {
    const server = await serverReplying((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(70_000, 1));
      res.end(Buffer.alloc(70_000, 2));
    });
    const result = await clientFor(server.url).call({
      method: 'GET',
      path: '/proxy/response',
    });
    expect(result.size).toBe(140_000);
    expect(result.parts.length).toBeGreaterThan(1);
    expect(result.parts.reduce((sum, part) => sum + part.length, 0)).toBe(
      140_000,
    );
    expect(Buffer.concat(result.parts).equals(result.body)).toBe(true);
    expect(result.body.subarray(69_999, 70_001)).toEqual(Buffer.from([1, 2]));
  });

  it('reads a large answer into a pooled buffer, lent again once released', async () => {
    const server = await serverReplying((_req, res, n) => {
      const size = n === 3 ? 100 : 100_000; // the third one is small
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': size,
      });
      res.write(Buffer.alloc(60_000, n));
      res.end(Buffer.alloc(size - 60_000 > 0 ? size - 60_000 : 0, n));
    });
    const client = clientFor(server.url, { answerBufferBytes: 128 * 1024 });
    const get = () => client.call({ method: 'GET', path: '/proxy/response' });

    const first = await get();
    expect(first.parts).toHaveLength(1);
    expect(first.parts[0].buffer.byteLength).toBe(128 * 1024); // the pool's
    expect(first.parts[0].equals(Buffer.alloc(100_000, 1))).toBe(true);
    const pooled = first.parts[0].buffer;
    first.release();

    const second = await get();
    expect(second.parts[0].buffer).toBe(pooled); // the same memory again
    expect(second.parts[0].equals(Buffer.alloc(100_000, 2))).toBe(true);
    second.release();
    second.release(); // harmless

    const small = await get();
    expect(small.size).toBe(100);
    expect(small.body.buffer).not.toBe(pooled);
  });

  it('signs GET and DELETE calls without a body', async () => {
    const server = await serverReplying((_req, res) => answer(res, 204));
    const client = clientFor(server.url);
    await client.call({
      method: 'DELETE',
      path: '/proxy/connection',
      headers: { 'x-connection-id': 'abc' },
    });
    const [seen] = server.received;
    expect(seen.url).toBe('/proxy/connection');
    expect((await verifySignature(seen, key)).valid).toBe(true);
  });

  it('carries a session token when the credentials have one', async () => {
    const server = await serverReplying((_req, res) => answer(res, 200));
    const client = clientFor(server.url, {}, {
      ...key,
      sessionToken: 'the-token',
    } as never);
    await client.call({ method: 'GET', path: '/proxy/response' });
    expect(server.received[0].headers['x-amz-security-token']).toBe(
      'the-token',
    );
    expect(server.received[0].headers.authorization).toMatch(
      /x-amz-security-token/,
    );
  });

  it('reports missing credentials as a credentials error, without calling', async () => {
    const server = await serverReplying((_req, res) => answer(res, 200));
    const client = clientFor(server.url, {}, (() =>
      Promise.reject(
        new Error('Could not load credentials from any providers'),
      )) as never);
    await expect(
      client.call({ method: 'GET', path: '/proxy/response' }),
    ).rejects.toBeInstanceOf(GatewayCredentialsError);
    expect(server.received).toHaveLength(0);
  });
});

describe('GatewayClient retries', () => {
  it.each([429, 502, 503, 504])(
    'retries a gateway %i and re-signs every attempt',
    async (status) => {
      const server = await serverReplying((_req, res, n) =>
        n <= 2
          ? answer(res, status, { message: 'try later' })
          : answer(res, 200, { ok: true }),
      );
      const client = clientFor(`${server.url}/prod`);
      const result = await client.call({
        method: 'GET',
        path: '/proxy/response',
        headers: { 'x-chunk-index': '0' },
      });
      expect(result).toMatchObject({ status: 200, attempts: 3 });
      expect(server.received).toHaveLength(3);
      for (const seen of server.received)
        expect((await verifySignature(seen, key)).valid).toBe(true);
    },
  );

  it('does not retry a 403 (a signature that failed once fails again)', async () => {
    const server = await serverReplying((_req, res) =>
      answer(res, 403, {
        message: 'The request signature we calculated does not match',
      }),
    );
    const result = await clientFor(server.url).call({
      method: 'GET',
      path: '/proxy/response',
    });
    expect(result).toMatchObject({ status: 403, attempts: 1 });
    expect(server.received).toHaveLength(1);
  });

  it("does not retry the server's 502 target_unreachable", async () => {
    const server = await serverReplying((_req, res) =>
      answer(res, 502, {
        error: 'target_unreachable',
        message: 'connect ECONNREFUSED',
      }),
    );
    const result = await clientFor(server.url).call({
      method: 'GET',
      path: '/proxy/response',
    });
    expect(result).toMatchObject({ status: 502, attempts: 1 });
  });

  it('gives up after GATEWAY_MAX_RETRIES and returns the last answer', async () => {
    const server = await serverReplying((_req, res) =>
      answer(res, 503, { message: 'Service Unavailable' }),
    );
    const result = await clientFor(server.url, { maxRetries: 2 }).call({
      method: 'GET',
      path: '/proxy/response',
    });
    expect(result).toMatchObject({ status: 503, attempts: 3 });
    expect(server.received).toHaveLength(3);
  });

  it('retries a connection the server resets', async () => {
    const server = await serverReplying((req, res, n) => {
      if (n <= 2) req.socket.destroy();
      else answer(res, 200, { ok: true });
    });
    const result = await clientFor(server.url).call({
      method: 'POST',
      path: '/proxy/chunk',
      body: Buffer.from('abc'),
    });
    expect(result).toMatchObject({ status: 200, attempts: 3 });
    expect(server.received.map((r) => r.body.toString())).toEqual([
      'abc',
      'abc',
      'abc',
    ]);
  });

  it('reports an unreachable gateway after every attempt, naming the cause and URL', async () => {
    const server = await startServer(() => undefined);
    await server.close(); // nothing listens there any more
    const client = clientFor(`${server.url}/prod`, { maxRetries: 2 });
    const error = await client
      .call({ method: 'GET', path: '/proxy/response' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GatewayUnreachableError);
    expect((error as GatewayUnreachableError).attempts).toBe(3);
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect((error as Error).message).toContain(
      `${server.url}/prod/proxy/response`,
    );
  });

  it('stops waiting when aborted, with the abort reason', async () => {
    const server = await serverReplying((_req, res) =>
      answer(res, 503, { message: 'busy' }),
    );
    const client = clientFor(server.url, {
      maxRetries: 5,
      baseMs: 60_000,
      maxDelayMs: 60_000,
      random: () => 0.9,
    });
    const controller = new AbortController();
    const reason = new Error('application went away');
    const call = client.call({
      method: 'GET',
      path: '/proxy/response',
      signal: controller.signal,
    });
    while (server.received.length === 0)
      await new Promise((r) => setImmediate(r));
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    expect(server.received).toHaveLength(1);
  });
});

describe('GatewayClient per call', () => {
  it('sends one precomputed x-amz-content-sha256 on every attempt, and the signer signs it as the payload hash', async () => {
    const body = Buffer.from('chunk that needs a retry');
    const server = await serverReplying((req, res, n) => {
      if (n === 1) req.socket.destroy();
      else answer(res, 200, { ok: true });
    });
    await clientFor(server.url).call({
      method: 'POST',
      path: '/proxy/chunk',
      body,
    });
    const hash = createHash('sha256').update(body).digest('hex');
    expect(
      server.received.map((r) => r.headers['x-amz-content-sha256']),
    ).toEqual([hash, hash]);
    for (const seen of server.received)
      expect((await verifySignature(seen, key)).valid).toBe(true);
    // smithy takes a present header as the payload hash without hashing
    // the body (what makes hashing once possible): signed with a header
    // that lies, the signature only verifies over a body that matches it.
    const lying = await clientFor(server.url).sign({
      method: 'POST',
      path: '/proxy/chunk',
      headers: {
        'x-amz-content-sha256': createHash('sha256')
          .update('other')
          .digest('hex'),
      },
      body,
    });
    const asIfOther = await verifySignature(
      {
        method: 'POST',
        url: lying.path,
        headers: { ...lying.headers, host: lying.headers.host },
        body: Buffer.from('other'),
      },
      key,
    );
    expect(asIfOther.valid).toBe(true);
  });

  it('keeps many calls in flight at once over its pool', async () => {
    const waiting: Array<() => void> = [];
    const server = await serverReplying((_req, res) => {
      waiting.push(() => answer(res, 200, { ok: true }));
      // answer only once all 24 are in: a pool that serialised calls would hang
      if (waiting.length === 24) for (const release of waiting) release();
    });
    const client = clientFor(server.url);
    const results = await Promise.all(
      Array.from({ length: 24 }, () =>
        client.call({ method: 'GET', path: '/proxy/response' }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
  });

  it('counts every attempt into the running tally', async () => {
    const server = await serverReplying((_req, res, n) =>
      n % 2 === 1 ? answer(res, 503, { message: 'busy' }) : answer(res, 200),
    );
    const client = clientFor(server.url);
    const calls = await withCallTally(async (tally) => {
      await client.call({ method: 'GET', path: '/proxy/response' });
      await client.call({ method: 'GET', path: '/proxy/response' });
      return tally.calls;
    });
    expect(calls).toBe(4);
  });
});
