import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { GatewayStats } from '../stats/stats.service.js';
import { signedCall, startGateway } from '../testing/gateway-harness.js';
import { FaultPlan } from './fault-plan.js';

/** A real upstream that records each call it answered in full. */
async function startUpstream(): Promise<{
  server: http.Server;
  url: string;
  /** URLs of the calls the upstream received and answered to the end. */
  answered: string[];
}> {
  const answered: string[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      res.on('finish', () => answered.push(req.url ?? ''));
      res.setHeader('content-type', 'application/octet-stream');
      // Echo the body, or a 300 kB answer for bodiless calls: larger than
      // socket buffers, so reset-after must really read it before dropping.
      res.end(
        parts.length > 0 ? Buffer.concat(parts) : Buffer.alloc(300_000, 7),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, answered };
}

async function stats(base: string): Promise<GatewayStats> {
  const res = await request(`${base}/_gateway/stats`);
  return (await res.body.json()) as GatewayStats;
}

/** The error code behind an undici failure (`UND_ERR_SOCKET`, `ECONNRESET`). */
function codeOf(error: unknown): string | undefined {
  const e = error as { code?: string; cause?: { code?: string } };
  return e.code ?? e.cause?.code;
}

describe('fault injection against a real upstream', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await new Promise((resolve) => upstream?.server.close(resolve));
  });
  beforeEach(() => {
    upstream.answered.length = 0;
  });
  afterEach(async () => {
    await gateway?.app.close();
    gateway = undefined;
  });

  /** A gateway faulting every call with the given kinds. */
  async function faultyGateway(
    env: Record<string, string>,
  ): Promise<NonNullable<typeof gateway>> {
    gateway = await startGateway({
      GATEWAY_UPSTREAM_URL: upstream.url,
      GATEWAY_FAULT_RATE: '1',
      GATEWAY_FAULT_SEED: 'spec',
      ...env,
    });
    return gateway;
  }

  it('reset-before: the client gets a socket error, the upstream never sees the call', async () => {
    const { url } = await faultyGateway({
      GATEWAY_FAULT_KINDS: 'reset-before',
    });
    const error: unknown = await signedCall(url, 'POST', '/upload', {
      body: Buffer.from('lost on the way in'),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(codeOf(error)).toMatch(/^(UND_ERR_SOCKET|ECONNRESET)$/);
    expect(upstream.answered).toEqual([]);
    const counted = await stats(url);
    expect(counted.faults).toEqual({
      total: 1,
      by_kind: { 'reset-before': 1 },
      by_path: { '/upload': 1 },
    });
    expect(counted.by_status).toEqual({ '0': 1 });
  });

  it('reset-after: the upstream answered exactly once, the client got a socket error instead', async () => {
    const { url } = await faultyGateway({
      GATEWAY_FAULT_KINDS: 'reset-after',
    });
    const error: unknown = await signedCall(url, 'GET', '/answer-lost').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(codeOf(error)).toMatch(/^(UND_ERR_SOCKET|ECONNRESET)$/);
    expect(upstream.answered).toEqual(['/answer-lost']);
    const counted = await stats(url);
    expect(counted.faults.by_kind).toEqual({ 'reset-after': 1 });
    expect(counted.by_status).toEqual({ '0': 1 });
    // The upstream's answer was read, none of it was sent on.
    expect(counted.response_bytes).toBe(0);
  });

  it.each([
    ['429', 'Too Many Requests', 'TooManyRequestsException'],
    ['502', 'Internal server error', 'InternalServerErrorException'],
    ['503', 'Service Unavailable', 'ServiceUnavailableException'],
    ['504', 'Endpoint request timed out', undefined],
  ])(
    '%s: answered by the gateway with AWS words, not forwarded',
    async (kind, message, errorType) => {
      const { url } = await faultyGateway({ GATEWAY_FAULT_KINDS: kind });
      const res = await signedCall(url, 'POST', '/x', {
        body: Buffer.from('never forwarded'),
      });
      expect(res.status).toBe(Number(kind));
      expect(res.body.toString()).toBe(JSON.stringify({ message }));
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['x-amzn-errortype']).toBe(errorType);
      expect(upstream.answered).toEqual([]);
      const counted = await stats(url);
      expect(counted.faults.by_kind).toEqual({ [kind]: 1 });
      expect(counted.by_status).toEqual({ [kind]: 1 });
    },
  );

  it('latency: forwards after the delay the seed dictates', async () => {
    const options = {
      rate: 1,
      kinds: ['latency'] as const,
      latencyMs: 300,
      seed: 'latency-seed',
    };
    const { url } = await faultyGateway({
      GATEWAY_FAULT_KINDS: 'latency',
      GATEWAY_FAULT_LATENCY_MS: String(options.latencyMs),
      GATEWAY_FAULT_SEED: options.seed,
    });
    const twin = new FaultPlan(options);
    for (let i = 0; i < 4; i++) {
      const fault = twin.draw();
      const expected = fault?.kind === 'latency' ? fault.latencyMs : -1;
      expect(expected).toBeGreaterThanOrEqual(0);
      const started = performance.now();
      const res = await signedCall(url, 'POST', `/slow-${i}`, {
        body: Buffer.from(`call ${i}`),
      });
      const elapsed = performance.now() - started;
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(`call ${i}`);
      expect(elapsed).toBeGreaterThanOrEqual(expected - 2);
      expect(elapsed).toBeLessThan(expected + 250);
    }
    expect(upstream.answered).toEqual([
      '/slow-0',
      '/slow-1',
      '/slow-2',
      '/slow-3',
    ]);
    expect((await stats(url)).faults.by_kind).toEqual({ latency: 4 });
  });

  it('spares the gateway endpoints and refused calls', async () => {
    const { url } = await faultyGateway({
      GATEWAY_FAULT_KINDS: 'reset-before',
    });
    for (let i = 0; i < 3; i++) {
      const res = await request(`${url}/_gateway/stats`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    // Unsigned: refused by the gateway's own check before any fault is drawn.
    const refused = await request(`${url}/x`);
    expect(refused.statusCode).toBe(403);
    await refused.body.dump();
    const counted = await stats(url);
    expect(counted.faults.total).toBe(0);
    expect(counted.by_status).toEqual({ '403': 1 });
  });

  it('at rate 0 (the default) forwards every call untouched', async () => {
    gateway = await startGateway({ GATEWAY_UPSTREAM_URL: upstream.url });
    for (let i = 0; i < 20; i++) {
      const res = await signedCall(gateway.url, 'GET', `/ok-${i}`);
      expect(res.status).toBe(200);
    }
    expect(upstream.answered).toHaveLength(20);
    expect((await stats(gateway.url)).faults.total).toBe(0);
  });

  it('at rate 0.5 with a seed, faults the same calls in every run', async () => {
    const run = async (): Promise<number[]> => {
      gateway = await startGateway({
        GATEWAY_UPSTREAM_URL: upstream.url,
        GATEWAY_FAULT_RATE: '0.5',
        GATEWAY_FAULT_KINDS: '503',
        GATEWAY_FAULT_SEED: 'twice',
      });
      const statuses: number[] = [];
      for (let i = 0; i < 16; i++) {
        statuses.push((await signedCall(gateway.url, 'GET', `/r${i}`)).status);
      }
      await gateway.app.close();
      gateway = undefined;
      return statuses;
    };
    const first = await run();
    expect(await run()).toEqual(first);
    expect(first).toContain(503);
    expect(first).toContain(200);
  });
});
