import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { startSystem } from './support/chain.js';
import { viaNodeHttp } from './support/clients.js';
import { deterministicBytes, sha256, sha256Of } from './support/target.js';

const MB = 1000 * 1000;

/** What the target's /echo route answers. */
interface Echo {
  method: string;
  url: string;
  bytes: number;
  sha256: string;
}

/** The gateway's `/_gateway/stats`, the part these tests read. */
interface GatewayStats {
  total: number;
  by_path: Record<string, number>;
  by_status: Record<string, number>;
  faults: {
    total: number;
    by_kind: Record<string, number>;
    by_path: Record<string, number>;
  };
}

type System = Awaited<ReturnType<typeof startSystem>>;

async function gatewayStats(system: System): Promise<GatewayStats> {
  const res = await request(`${system.chain.gateway.url}/_gateway/stats`);
  return (await res.body.json()) as GatewayStats;
}

async function resetGatewayStats(system: System): Promise<void> {
  const res = await request(
    `${system.chain.gateway.url}/_gateway/stats/reset`,
    { method: 'POST' },
  );
  await res.body.dump();
}

/**
 * Retries proxy-client made, read from its debug log (`… attempt N/M`, one
 * line per attempt): every attempt after the first of a call is a retry.
 */
function clientRetries(system: System): number {
  let retries = 0;
  for (const match of system.chain.client
    .output()
    .matchAll(/attempt (\d+)\/\d+/g)) {
    if (Number(match[1]) > 1) retries += 1;
  }
  return retries;
}

/** The requests the target saw with exactly this path and query. */
function hitsOf(system: System, url: string): number {
  return system.target.seen.filter((seen) => seen.url === url).length;
}

/** Runs `task` over `items`, at most `limit` at a time. */
async function eachLimited<T>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** POSTs `body` to the target's /echo through the chain; checks it arrived whole, once. */
async function echoOnce(
  system: System,
  id: string,
  body: Buffer | undefined,
): Promise<void> {
  const url = `/echo?id=${id}`;
  const res = await viaNodeHttp(
    system.chain.proxyUrl,
    `${system.target.url}${url}`,
    body === undefined
      ? {}
      : {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/octet-stream' },
        },
  );
  expect(res.status, res.body.toString().slice(0, 300)).toBe(200);
  const echo = JSON.parse(res.body.toString()) as Echo;
  expect(echo).toMatchObject({
    url,
    bytes: body?.length ?? 0,
    sha256: sha256(body ?? Buffer.alloc(0)),
  });
  expect(hitsOf(system, url)).toBe(1);
}

/** Prints the figures of a faulty run, for the record. */
function report(label: string, stats: GatewayStats, retries: number): void {
  console.log(
    `[faults] ${label}: ${stats.total} gateway calls, ${stats.faults.total} faulted ${JSON.stringify(stats.faults.by_kind)} on ${JSON.stringify(stats.faults.by_path)}; proxy-client retried ${retries} times`,
  );
}

/**
 * A gateway that misbehaves as real ones do (dropped connections, lost
 * answers, throttling, 5xx, latency): every request still completes byte
 * for byte, and the target sees each exactly once.
 */
describe('through a gateway faulting 10% of calls (all kinds, seeded)', () => {
  let system: System;

  beforeAll(async () => {
    system = await startSystem({
      gateway: {
        GATEWAY_FAULT_RATE: '0.1',
        GATEWAY_FAULT_SEED: 'faults-e2e',
        GATEWAY_FAULT_LATENCY_MS: '200',
      },
      client: {
        GATEWAY_RETRY_BASE_MS: '20',
        GATEWAY_MAX_RETRIES: '8',
        LOG_LEVEL: 'debug',
      },
    });
  });
  afterAll(async () => {
    if (system) {
      report(
        '10% of all kinds',
        await gatewayStats(system),
        clientRetries(system),
      );
      await system.stop();
    }
  });

  it('uploads 50 MB intact, forwarded once', async () => {
    const body = Buffer.concat([...deterministicBytes(50 * MB, 'faults-up')]);
    await echoOnce(system, 'upload-50mb', body);
  }, 40_000);

  it('downloads 50 MB intact, asked for once', async () => {
    const url = `/bytes?size=${50 * MB}&seed=faults-down&id=download-50mb`;
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}${url}`,
      { keepBody: false },
    );
    expect(res.status).toBe(200);
    expect(res.bytes).toBe(50 * MB);
    expect(res.sha256).toBe(
      sha256Of(deterministicBytes(50 * MB, 'faults-down')),
    );
    expect(hitsOf(system, url)).toBe(1);
  }, 40_000);

  it('carries 200 small requests, 10 at a time, each once', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => i);
    await eachLimited(ids, 10, (i) =>
      echoOnce(
        system,
        `small-${i}`,
        i % 2 === 0 ? undefined : randomBytes(100 + i * 37),
      ),
    );
    const stats = await gatewayStats(system);
    // The faults really happened, of several kinds.
    expect(stats.faults.total).toBeGreaterThan(10);
    expect(Object.keys(stats.faults.by_kind).length).toBeGreaterThan(3);
  }, 40_000);
});

/**
 * Lost answers are the hard case: the server did the work, the client does
 * not know. With only `reset-after`, every call (the final chunk's too) may
 * have its answer lost after the server acted on it; re-sending must not
 * send the target a second request.
 */
describe('through a gateway losing 30% of answers (reset-after only)', () => {
  let system: System;

  beforeAll(async () => {
    system = await startSystem({
      gateway: {
        GATEWAY_FAULT_RATE: '0.3',
        GATEWAY_FAULT_KINDS: 'reset-after',
        GATEWAY_FAULT_SEED: 'lost-answers',
      },
      client: {
        GATEWAY_RETRY_BASE_MS: '20',
        GATEWAY_MAX_RETRIES: '10',
        LOG_LEVEL: 'debug',
      },
    });
  });
  afterAll(async () => {
    if (system) {
      report(
        '30% reset-after',
        await gatewayStats(system),
        clientRetries(system),
      );
      await system.stop();
    }
  });

  it('re-sends a final chunk whose answer was lost: the target still sees one request', async () => {
    await resetGatewayStats(system);
    // Bodies of one chunk: every chunk sent is the final one.
    for (let i = 0; i < 20; i++) {
      await echoOnce(system, `final-${i}`, randomBytes(1000 + i));
    }
    const stats = await gatewayStats(system);
    const lostFinalChunks =
      (stats.faults.by_path['/proxy/chunk'] ?? 0) +
      (stats.faults.by_path['/proxy/exchange'] ?? 0);
    expect(lostFinalChunks).toBeGreaterThan(0);
    expect(stats.by_status['0']).toBe(stats.faults.total);
  }, 30_000);

  it('completes multi-chunk uploads and downloads whose answers get lost', async () => {
    for (let i = 0; i < 2; i++) {
      const body = Buffer.concat([
        ...deterministicBytes(5 * MB + 12345, `lost-up-${i}`),
      ]);
      await echoOnce(system, `lost-upload-${i}`, body);
    }
    const url = `/bytes?size=${5 * MB}&seed=lost-down&id=lost-download`;
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}${url}`,
    );
    expect(res.status).toBe(200);
    expect(res.sha256).toBe(sha256Of(deterministicBytes(5 * MB, 'lost-down')));
    expect(hitsOf(system, url)).toBe(1);
  }, 30_000);
});

/**
 * When the gateway never recovers, the application gets a prompt 502 that
 * names what went wrong last, never a hang.
 */
describe('a gateway that keeps failing', () => {
  it.each([
    ['503', /503 \(Service Unavailable\)/],
    ['reset-before', /UND_ERR_SOCKET|ECONNRESET|other side closed/],
  ])(
    'with %s on every call: 502 naming the cause after the retries',
    async (kind, cause) => {
      const system = await startSystem({
        gateway: { GATEWAY_FAULT_RATE: '1', GATEWAY_FAULT_KINDS: kind },
        client: { GATEWAY_RETRY_BASE_MS: '20', GATEWAY_MAX_RETRIES: '2' },
      });
      try {
        const started = Date.now();
        const res = await viaNodeHttp(
          system.chain.proxyUrl,
          `${system.target.url}/echo?id=exhausted`,
          { method: 'POST', body: Buffer.from('never arrives') },
        );
        const elapsed = Date.now() - started;
        expect(res.status).toBe(502);
        const body = JSON.parse(res.body.toString()) as {
          error: string;
          message: string;
        };
        expect(body.error).toBe('upstream_unavailable');
        expect(body.message).toMatch(cause);
        expect(body.message).toMatch(/3 attempts/);
        expect(elapsed).toBeLessThan(5_000);
        expect(system.target.seen).toEqual([]);
        const stats = await gatewayStats(system);
        expect(stats.faults.by_kind[kind]).toBeGreaterThanOrEqual(3);
      } finally {
        await system.stop();
      }
    },
    20_000,
  );
});
