import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import type { LoggerService } from '@nestjs/common';
import {
  LOCAL_DEV_ACCESS_KEY_ID,
  LOCAL_DEV_SECRET_ACCESS_KEY,
  MiB,
} from '@app/protocol';
import { startApp, type RunningApp } from '../../../../../scripts/chain.mjs';
import {
  deterministicBytes,
  sha256,
  sha256Of,
  startTarget,
  type Target,
} from '../../../../../test/support/target.js';
import {
  startMeteringProxy,
  type MeteredCall,
  type MeteringProxy,
} from '../../testing/metering-proxy.js';
import {
  errorOf,
  eventually,
  startClient,
  viaProxy,
  type RunningClient,
} from '../../testing/proxy-harness.js';

/*
 * The HTTP strategy against the real proxy-server and gateway (built:
 * `npx nest build proxy-server gateway`, as `npm test` does), with a
 * metering hop between client and gateway that counts calls in flight and
 * can slow answers down. Gateway calls are the currency: they are counted
 * at the gateway (`GET /_gateway/stats`) and at the meter.
 */

const STAGE = 'prod';
const CHUNK = MiB;

let target: Target;
let server: RunningApp;
let gateway: RunningApp;
let meter: MeteringProxy;
/** How long the meter holds each answer back; set per test. */
let delay: (call: MeteredCall) => number = () => 0;
const clients: RunningClient[] = [];
const access: string[] = [];
const logger: LoggerService = {
  log: (message: unknown, context?: unknown) => {
    if (context === 'Access') access.push(String(message));
  },
  error: () => undefined,
  warn: () => undefined,
};
const savedEnv = { ...process.env };

beforeAll(async () => {
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: LOCAL_DEV_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: LOCAL_DEV_SECRET_ACCESS_KEY,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  target = await startTarget();
  server = await startApp('proxy-server', {
    SERVER_LISTEN_PORT: '0',
  });
  gateway = await startApp('gateway', {
    GATEWAY_LISTEN_PORT: '0',
    GATEWAY_UPSTREAM_URL: server.url,
    GATEWAY_STAGE: STAGE,
    GATEWAY_MAX_BODY_BYTES: String(2 * MiB),
  });
  meter = await startMeteringProxy({
    upstream: gateway.url,
    delay: (call) => delay(call),
  });
});

afterAll(async () => {
  for (const client of clients) await client.app.close();
  await meter?.close();
  await gateway?.stop();
  await server?.stop();
  await target?.close();
  process.env = savedEnv;
});

beforeEach(async () => {
  delay = () => 0;
  await resetCounts();
});

async function client(env: Record<string, string> = {}) {
  const started = await startClient(
    { API_GATEWAY_URL: `${meter.url}/${STAGE}`, ...env },
    logger,
  );
  clients.push(started);
  return started.url;
}

interface Stats {
  total: number;
  by_path: Record<string, number>;
  by_status: Record<string, number>;
}

async function resetCounts(): Promise<void> {
  await eventually(() => meter.busy() === 0);
  await fetch(`${gateway.url}/_gateway/stats/reset`, { method: 'POST' });
  meter.reset();
}

/** The gateway's counts once every call (also a straggler past the end) came back. */
async function counts(): Promise<Stats> {
  await eventually(() => meter.busy() === 0);
  return (await (await fetch(`${gateway.url}/_gateway/stats`)).json()) as Stats;
}

function trace(): string[] {
  return meter.calls.map((c) => `${c.method} ${c.path}`);
}

function index(call: MeteredCall): number {
  return Number(call.headers['x-chunk-index']);
}

function expected(size: number, seed?: string): string {
  return sha256Of(deterministicBytes(size, seed));
}

describe('default mode: COMBINED_CALL, UPLOAD_CONCURRENCY=8, DOWNLOAD_CONCURRENCY=8', () => {
  let proxy: string;
  beforeAll(async () => {
    proxy = await client();
  });

  it('carries a small GET in one gateway call, without a DELETE', async () => {
    access.length = 0;
    const res = await viaProxy(proxy, `${target.url}/echo?small=1`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({
      method: 'GET',
      url: '/echo?small=1',
      bytes: 0,
    });
    const stats = await counts();
    expect(stats.total).toBe(1);
    expect(stats.by_path).toEqual({ '/proxy/exchange': 1 });
    expect(meter.calls[0].headers).toMatchObject({ 'x-chunk-final': 'true' });
    await eventually(() => access.length > 0);
    expect(access[0]).toMatch(/ chunks=1\/1 calls=1 \d+ms$/);
  });

  it('carries a small POST in one gateway call', async () => {
    const body = randomBytes(10_000);
    const res = await viaProxy(proxy, `${target.url}/echo`, {
      method: 'POST',
      body,
    });
    expect(JSON.parse(res.body.toString())).toMatchObject({
      bytes: body.length,
      sha256: sha256(body),
    });
    expect((await counts()).by_path).toEqual({ '/proxy/exchange': 1 });
  });

  it('carries a chunked POST of a few bytes in one call too', async () => {
    const res = await viaProxy(proxy, `${target.url}/echo`, {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: [Buffer.from('a'), Buffer.from('bc')],
    });
    expect(JSON.parse(res.body.toString())).toMatchObject({ bytes: 3 });
    expect((await counts()).total).toBe(1);
  });

  it('sends chunk 0 of a larger body with the exchange and the rest in parallel, intact', async () => {
    const size = 5 * CHUNK + 3;
    const body = randomBytes(size);
    const res = await viaProxy(proxy, `${target.url}/echo`, {
      method: 'POST',
      body,
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({
      bytes: size,
      sha256: sha256(body),
    });
    const stats = await counts();
    const exchange = meter.calls[0];
    expect(exchange.path).toBe('/proxy/exchange');
    expect(exchange.headers['x-chunk-final']).toBe('false');
    expect(exchange.bytes).toBe(CHUNK); // JSON head + chunk 0 fill one chunk
    const head = Number(exchange.headers['x-head-length']);
    const rest = size - (CHUNK - head);
    const chunks = meter.calls.filter((c) => c.path === '/proxy/chunk');
    expect(chunks.map(index).sort((a, b) => a - b)).toEqual(
      Array.from({ length: Math.ceil(rest / CHUNK) }, (_, i) => i + 1),
    );
    expect(
      chunks.filter((c) => c.headers['x-chunk-final'] === 'true').map(index),
    ).toEqual([Math.ceil(rest / CHUNK)]);
    expect(stats.by_path).toEqual({
      '/proxy/exchange': 1,
      '/proxy/chunk': Math.ceil(rest / CHUNK),
      '/proxy/response': 1,
    });
  });

  it.each([
    [8, 'Content-Length'],
    [3, 'chunked'],
  ])(
    'keeps UPLOAD_CONCURRENCY=%i chunk calls in flight, never more (%s body)',
    async (concurrency, framing) => {
      // Small chunks are read from the application faster than the slowed
      // gateway answers: the window fills, and must not overflow.
      const small = await client({
        UPLOAD_CONCURRENCY: String(concurrency),
        CHUNK_SIZE: String(64 * 1024),
      });
      delay = (call) => (call.path === '/proxy/chunk' ? 100 : 0);
      const body = randomBytes(2 * MiB);
      const res = await viaProxy(small, `${target.url}/echo`, {
        method: 'POST',
        ...(framing === 'chunked'
          ? {
              headers: { 'transfer-encoding': 'chunked' },
              body: [body.subarray(0, MiB), body.subarray(MiB)],
            }
          : { body }),
      });
      expect(JSON.parse(res.body.toString())).toMatchObject({
        sha256: sha256(body),
      });
      expect(meter.maxInFlight('POST /proxy/chunk')).toBe(concurrency);
    },
  );

  it('prefetches a response of known length in order, though answers come back out of order, and asks for nothing past its end', async () => {
    // Every third chunk is slow: later chunks overtake it.
    delay = (call) =>
      call.path === '/proxy/response' && index(call) % 3 === 1 ? 60 : 0;
    const size = 6 * CHUNK + 1234;
    const res = await viaProxy(proxy, `${target.url}/bytes?size=${size}`);
    expect([res.status, res.complete, res.body.length]).toEqual([
      200,
      true,
      size,
    ]);
    expect(sha256(res.body)).toBe(expected(size));
    await counts();
    const reads = meter.calls.filter((c) => c.path === '/proxy/response');
    expect(reads.every((c) => c.status === 200)).toBe(true);
    const indices = reads.map(index);
    expect(new Set(indices).size).toBe(indices.length); // each asked once
    expect(Math.min(...indices)).toBe(1); // chunk 0 came with the exchange
    expect(meter.maxInFlight('GET /proxy/response')).toBeGreaterThan(1);
    expect(meter.maxInFlight('GET /proxy/response')).toBeLessThanOrEqual(8);
    // some answer came back before one asked for earlier
    const order = [...reads]
      .sort((a, b) => (a.answered ?? 0) - (b.answered ?? 0))
      .map(index);
    expect(order).not.toEqual([...order].sort((a, b) => a - b));
    expect(trace()).not.toContain('DELETE /proxy/connection');
  });

  it('prefetches a chunked response and ignores the 409 answers past its end', async () => {
    const size = 3 * CHUNK + 77;
    const res = await viaProxy(
      proxy,
      `${target.url}/bytes?size=${size}&chunked=1&seed=c`,
    );
    expect([res.status, res.complete]).toEqual([200, true]);
    expect(sha256(res.body)).toBe(expected(size, 'c'));
    const stats = await counts();
    expect(stats.by_path['/proxy/connection']).toBeUndefined();
    expect(trace()).not.toContain('DELETE /proxy/connection');
  });

  it('releases an exchange the application abandons with a DELETE', async () => {
    const res = await viaProxy(
      proxy,
      `${target.url}/bytes?size=${40 * CHUNK}`,
      { onResponse: (r) => r.destroy() },
    );
    expect(res.complete).toBe(false);
    await eventually(() =>
      meter.calls.some(
        (c) => c.method === 'DELETE' && c.path === '/proxy/connection',
      ),
    );
    const stats = await counts();
    expect(stats.by_path['/proxy/response'] ?? 0).toBeLessThan(39);
  });

  it('answers 502 naming CHUNK_SIZE when the exchange is larger than the gateway allows, without resetting the application', async () => {
    const big = await client({ CHUNK_SIZE: String(3 * MiB) });
    const started = Date.now();
    const res = await viaProxy(big, `${target.url}/echo`, {
      method: 'POST',
      body: randomBytes(4 * MiB), // Connection: close, 1 MiB still unread
    });
    expect(res.status).toBe(502);
    expect(res.requestError).toBeUndefined();
    expect(errorOf(res)).toEqual({
      error: 'chunk_too_large',
      message: `The API Gateway refused a chunk of ${3 * MiB} bytes as larger than it allows (413: Request Entity Too Large): lower CHUNK_SIZE below the gateway's payload limit`,
    });
    expect(Date.now() - started).toBeLessThan(5000); // not after the 10 s linger
    expect(trace()).toEqual(['POST /proxy/exchange']);
  });

  it("passes the target's failure on the exchange as 502 and releases the connection", async () => {
    const s = net.createServer().listen(0, '127.0.0.1');
    await once(s, 'listening');
    const { port } = s.address() as AddressInfo;
    s.close();
    const res = await viaProxy(proxy, `http://127.0.0.1:${port}/`);
    expect(res.status).toBe(502);
    expect(errorOf(res).error).toBe('target_unreachable');
    await counts();
    expect(trace()).toEqual([
      'POST /proxy/exchange',
      'DELETE /proxy/connection',
    ]);
  });
});

describe('seed mode: UPLOAD_CONCURRENCY=1, DOWNLOAD_CONCURRENCY=1, COMBINED_CALL=false', () => {
  let proxy: string;
  beforeAll(async () => {
    proxy = await client({
      UPLOAD_CONCURRENCY: '1',
      DOWNLOAD_CONCURRENCY: '1',
      COMBINED_CALL: 'false',
    });
  });

  it("carries a small GET with the seed's calls: connection, chunk, response", async () => {
    const res = await viaProxy(proxy, `${target.url}/echo?seed=1`);
    expect(res.status).toBe(200);
    await counts();
    expect(trace()).toEqual([
      'POST /proxy/connection',
      'POST /proxy/chunk',
      'GET /proxy/response',
    ]);
  });

  it('uploads and downloads one chunk at a time, in order', async () => {
    delay = () => 5;
    const body = randomBytes(3 * CHUNK);
    const up = await viaProxy(proxy, `${target.url}/echo`, {
      method: 'POST',
      body,
    });
    expect(JSON.parse(up.body.toString())).toMatchObject({
      sha256: sha256(body),
    });
    await counts();
    expect(trace()).toEqual([
      'POST /proxy/connection',
      'POST /proxy/chunk',
      'POST /proxy/chunk',
      'POST /proxy/chunk',
      'GET /proxy/response',
    ]);
    expect(
      meter.calls.filter((c) => c.path === '/proxy/chunk').map(index),
    ).toEqual([0, 1, 2]);
    expect(meter.maxInFlight('POST /proxy/chunk')).toBe(1);

    meter.reset();
    const size = 3 * CHUNK;
    const down = await viaProxy(proxy, `${target.url}/bytes?size=${size}`);
    expect(sha256(down.body)).toBe(expected(size));
    await counts();
    const reads = meter.calls.filter((c) => c.path === '/proxy/response');
    expect(reads.map(index)).toEqual(reads.map((_, i) => i));
    expect(meter.maxInFlight('GET /proxy/response')).toBe(1);
    expect(trace().slice(0, 2)).toEqual([
      'POST /proxy/connection',
      'POST /proxy/chunk',
    ]);
    expect(trace()).not.toContain('DELETE /proxy/connection');
  });
});
