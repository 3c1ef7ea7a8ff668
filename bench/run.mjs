// `npm run bench`: chunkgate against going straight to the target and against a
// plain forward proxy, side by side in one run, on loopback.
//
// Workloads: 1,000 small GETs at concurrency 50; a 200 MB upload; a 200 MB
// download; 10 concurrent 20 MB uploads. Configurations: direct; the npm
// package `proxy` (a plain forward proxy without size limit); chunkgate in the
// seed's sequential mode; chunkgate as configured by default — the chunkgate
// ones once with no added gateway latency and once with 30 ms per call.
//
// Writes bench/RESULTS.md and bench/results.svg. Figures from one run on a
// shared machine are noisy: compare ratios within the run, not across runs.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { createProxy } from 'proxy';
import { Agent, ProxyAgent, request } from 'undici';
import { startChain } from '../scripts/chain.mjs';
import {
  deterministicBytes,
  makeCertificate,
  startTarget,
} from '../scripts/target.mjs';
import { renderChart } from './chart.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = 1000 * 1000;
const QUICK = process.argv.includes('--quick');
const SMALL_COUNT = QUICK ? 200 : 1000;
const SMALL_CONCURRENCY = 50;
const SINGLE_COUNT = QUICK ? 50 : 200;
const BIG = (QUICK ? 50 : 200) * MB;
const PARALLEL_COUNT = 10;
const PARALLEL_SIZE = (QUICK ? 5 : 20) * MB;

/** The seed's behaviour: chunks one after another, three calls per small request. */
const SEED_MODE = {
  UPLOAD_CONCURRENCY: '1',
  DOWNLOAD_CONCURRENCY: '1',
  COMBINED_CALL: 'false',
};

if (!process.argv.includes('--no-build')) {
  execFileSync('npm', ['run', 'build', '--silent'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

const target = await startTarget();
const certDir = mkdtempSync(join(os.tmpdir(), 'chunkgate-bench-'));
const certificate = await makeCertificate(certDir);
const httpsTarget = await startTarget({
  tls: { key: certificate.key, cert: certificate.cert },
});
const tls = { ca: certificate.cert };
const HTTPS_SMALL_COUNT = QUICK ? 50 : 200;
const HTTPS_DOWNLOAD = 50 * MB;
const results = [];

/** Configurations in the order they are measured and shown. */
const configurations = [
  {
    name: 'direct',
    latency: 0,
    start: async () => ({
      dispatcher: new Agent({ connections: 64 }),
      httpsDispatcher: new Agent({ connect: tls }),
      stop: async () => {},
    }),
  },
  { name: 'plain proxy (npm proxy)', latency: 0, start: startPlainProxy },
  ...[0, 30].flatMap((latency) => [
    {
      name: `chunkgate seed mode, +${latency} ms`,
      latency,
      start: () => startChunkgate(latency, SEED_MODE),
    },
    {
      name: `chunkgate default, +${latency} ms`,
      latency,
      start: () => startChunkgate(latency, {}),
    },
  ]),
];

for (const configuration of configurations) {
  process.stdout.write(`\n== ${configuration.name}\n`);
  const running = await configuration.start();
  const row = { name: configuration.name, latency: configuration.latency };
  try {
    row.small = await measureSmallGets(running);
    row.upload = await measureTransfer(running, 'upload', () =>
      uploadOnce(running.dispatcher, BIG),
    );
    row.download = await measureTransfer(running, 'download', () =>
      downloadOnce(running.dispatcher, BIG),
    );
    row.parallel = await measureTransfer(
      running,
      'parallel uploads',
      async () => {
        await Promise.all(
          Array.from({ length: PARALLEL_COUNT }, () =>
            uploadOnce(running.dispatcher, PARALLEL_SIZE),
          ),
        );
        return PARALLEL_COUNT * PARALLEL_SIZE;
      },
    );
    if (!configuration.name.includes('seed'))
      row.https = await measureHttps(running);
    if (running.peakRss) row.rss = running.peakRss();
  } finally {
    await running.stop();
  }
  results.push(row);
}
await target.close();
await httpsTarget.close();
rmSync(certDir, { recursive: true, force: true });

const markdown = renderMarkdown(results);
writeFileSync(`${ROOT}bench/RESULTS.md`, markdown);
writeFileSync(`${ROOT}bench/results.svg`, renderChart(results));
process.stdout.write(
  `\n${markdown}\nWrote bench/RESULTS.md and bench/results.svg\n`,
);

// ---------------------------------------------------------------------------

async function startPlainProxy() {
  const server = createProxy(http.createServer());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const uri = `http://127.0.0.1:${server.address().port}`;
  const httpsDispatcher = new ProxyAgent({ uri, requestTls: tls });
  const dispatcher = new ProxyAgent({
    uri,
    proxyTunnel: false,
    connections: 64,
  });
  return {
    dispatcher,
    httpsDispatcher,
    stop: async () => {
      await dispatcher.close();
      await httpsDispatcher.close();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function startChunkgate(latency, mode) {
  const chain = await startChain({
    gateway: {
      GATEWAY_LATENCY_MS: String(latency),
      GATEWAY_MAX_BODY_BYTES: String(2 * 1024 * 1024),
    },
    client: { ...mode },
    server: { CONNECT_ALLOWED_PORTS: String(httpsTarget.port) },
  });
  const dispatcher = new ProxyAgent({
    uri: chain.proxyUrl,
    proxyTunnel: false,
    connections: 64,
  });
  const httpsDispatcher = new ProxyAgent({
    uri: chain.proxyUrl,
    requestTls: tls,
  });
  const stats = async () => {
    const res = await request(`${chain.gateway.url}/_gateway/stats`);
    return res.body.json();
  };
  return {
    dispatcher,
    httpsDispatcher,
    gatewayCalls: async () => (await stats()).total,
    peakRss: () => ({
      client: peakRssMb(chain.client.child.pid),
      server: peakRssMb(chain.server.child.pid),
    }),
    stop: async () => {
      await dispatcher.close();
      await httpsDispatcher.close();
      await chain.stop();
    },
  };
}

/** Peak resident set size of a process so far (VmHWM), in MB. */
function peakRssMb(pid) {
  const match = /VmHWM:\s+(\d+) kB/.exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  );
  return match ? Math.round(Number(match[1]) / 1024) : NaN;
}

/**
 * `count` small GETs, `concurrency` at a time: requests per second and
 * latency percentiles. Under load (50 at a time) the figures show what the
 * machine's two cores sustain; one at a time they show the cost of one
 * request's path, which is what the gateway latency target is about.
 */
async function smallGets(running, count, concurrency) {
  const latencies = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        const t0 = performance.now();
        const res = await request(`${target.url}/status/200`, {
          dispatcher: running.dispatcher,
        });
        await res.body.text();
        if (res.statusCode !== 200)
          throw new Error(`small GET answered ${res.statusCode}`);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rps: count / seconds,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
  };
}

async function measureSmallGets(running) {
  const callsBefore = running.gatewayCalls
    ? await running.gatewayCalls()
    : undefined;
  const loaded = await smallGets(running, SMALL_COUNT, SMALL_CONCURRENCY);
  const calls =
    callsBefore === undefined
      ? undefined
      : ((await running.gatewayCalls()) - callsBefore) / SMALL_COUNT;
  const single = await smallGets(running, SINGLE_COUNT, 1);
  const result = { ...loaded, single: single.p50, callsPerRequest: calls };
  process.stdout.write(
    `small GETs: ${result.rps.toFixed(0)} req/s, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms ` +
      `at ${SMALL_CONCURRENCY} at a time; p50 ${single.p50.toFixed(1)} ms one at a time` +
      (calls === undefined
        ? '\n'
        : `; ${calls.toFixed(2)} gateway calls/request\n`),
  );
  return result;
}

/**
 * HTTPS through a warm tunnel (or straight over TLS): small GETs one at a
 * time after a warm-up, so each reuses the open connection, and one 50 MB
 * download.
 */
async function measureHttps(running) {
  const get = async (path) => {
    const res = await request(`${httpsTarget.url}${path}`, {
      dispatcher: running.httpsDispatcher,
    });
    let bytes = 0;
    for await (const chunk of res.body) bytes += chunk.length;
    if (res.statusCode !== 200)
      throw new Error(`HTTPS ${path} answered ${res.statusCode}`);
    return bytes;
  };
  for (let i = 0; i < 5; i += 1) await get('/status/200');
  const callsBefore = running.gatewayCalls
    ? await running.gatewayCalls()
    : undefined;
  const latencies = [];
  for (let i = 0; i < HTTPS_SMALL_COUNT; i += 1) {
    const t0 = performance.now();
    await get('/status/200');
    latencies.push(performance.now() - t0);
  }
  const calls =
    callsBefore === undefined
      ? undefined
      : ((await running.gatewayCalls()) - callsBefore) / HTTPS_SMALL_COUNT;
  latencies.sort((a, b) => a - b);
  const started = performance.now();
  const bytes = await get(`/bytes?size=${HTTPS_DOWNLOAD}&seed=bench-tls`);
  if (bytes !== HTTPS_DOWNLOAD)
    throw new Error(`HTTPS download got ${bytes} bytes`);
  const mbps = bytes / MB / ((performance.now() - started) / 1000);
  const result = { p50: latencies[latencies.length >> 1], calls, mbps };
  process.stdout.write(
    `HTTPS: small GET p50 ${result.p50.toFixed(1)} ms through a warm tunnel` +
      (calls === undefined ? '' : ` (${calls.toFixed(2)} gateway calls each)`) +
      `, ${HTTPS_DOWNLOAD / MB} MB download ${mbps.toFixed(1)} MB/s\n`,
  );
  return result;
}

async function measureTransfer(running, label, transfer) {
  const callsBefore = running.gatewayCalls
    ? await running.gatewayCalls()
    : undefined;
  const started = performance.now();
  const bytes = await transfer();
  const seconds = (performance.now() - started) / 1000;
  const calls =
    callsBefore === undefined
      ? undefined
      : (await running.gatewayCalls()) - callsBefore;
  const result = { seconds, mbps: bytes / MB / seconds, calls };
  process.stdout.write(
    `${label}: ${seconds.toFixed(2)} s, ${result.mbps.toFixed(1)} MB/s` +
      (calls === undefined ? '\n' : `, ${calls} gateway calls\n`),
  );
  return result;
}

async function uploadOnce(dispatcher, size) {
  const res = await request(`${target.url}/sink`, {
    method: 'POST',
    dispatcher,
    headers: {
      'content-length': String(size),
      'content-type': 'application/octet-stream',
    },
    body: deterministicBytes(size, 'bench-up'),
  });
  await res.body.dump();
  if (res.statusCode !== 204)
    throw new Error(`upload answered ${res.statusCode}`);
  return size;
}

async function downloadOnce(dispatcher, size) {
  const res = await request(
    `${target.url}/bytes?size=${size}&seed=bench-down`,
    { dispatcher },
  );
  let received = 0;
  for await (const chunk of res.body) received += chunk.length;
  if (res.statusCode !== 200 || received !== size) {
    throw new Error(
      `download answered ${res.statusCode} with ${received} of ${size} bytes`,
    );
  }
  return size;
}

function renderMarkdown(rows) {
  const fmt = (value, digits = 1) =>
    value === undefined || Number.isNaN(value) ? '—' : value.toFixed(digits);
  const lines = [
    '# chunkgate benchmark',
    '',
    `Run ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, loopback only. Command: \`npm run bench\`.`,
    '',
    'One run on a shared, noisy machine: read the ratios between rows of the same run, not the absolute figures.',
    `Gateway stand-in limit 2 MiB; "+30 ms" adds 30 ms to every gateway call, as a stand-in for AWS's per-call cost.`,
    '',
    `| configuration | small GETs req/s (${SMALL_CONCURRENCY} at a time) | p50 ms | p99 ms | p50 ms one at a time | gateway calls / small GET | ${BIG / MB} MB up MB/s | ${BIG / MB} MB down MB/s | ${PARALLEL_COUNT}×${PARALLEL_SIZE / MB} MB up MB/s | peak RSS client / server MB |`,
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${fmt(r.small.rps, 0)} | ${fmt(r.small.p50)} | ${fmt(r.small.p99)} | ${fmt(r.small.single)} | ${fmt(r.small.callsPerRequest, 2)} | ` +
        `${fmt(r.upload.mbps)} | ${fmt(r.download.mbps)} | ${fmt(r.parallel.mbps)} | ` +
        `${r.rss ? `${r.rss.client} / ${r.rss.server}` : '—'} |`,
    );
  }
  lines.push(
    '',
    '### HTTPS (CONNECT tunnels; TLS end to end)',
    '',
    `| configuration | small GET p50 ms, warm tunnel, one at a time | gateway calls / small GET | ${HTTPS_DOWNLOAD / MB} MB download MB/s |`,
    '|---|---|---|---|',
  );
  for (const r of rows.filter((row) => row.https)) {
    lines.push(
      `| ${r.name} | ${fmt(r.https.p50)} | ${fmt(r.https.calls, 2)} | ${fmt(r.https.mbps)} |`,
    );
  }
  lines.push(
    '',
    '![throughput and latency per configuration](results.svg)',
    '',
  );
  return lines.join('\n');
}
