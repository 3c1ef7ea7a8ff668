// `npm run soak`: a short load soak of the whole chain on loopback, bounded in
// time and count. It builds first, as bench/run.mjs does (`--no-build` skips
// that when dist/ is current; without a build it stops, saying to run
// `npm run build`).
//
// Starts a local target and the chain (server, gateway with a 2 MiB limit,
// client; all on 127.0.0.1), records the resident memory (VmRSS) of client
// and server, then runs at once
//   - 500 concurrent small requests (1 KiB up, echoed back as JSON), and
//   - 20 concurrent 20 MB uploads to the target's /echo, each verified by
//     SHA-256,
// waits a few seconds for the processes to settle (nothing is triggered in
// them: the script only waits and samples), and prints RSS start / peak /
// end for client and server. Exits 1 on any error, or when the soak takes
// longer than its time bound.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { startChain } from './chain.mjs';
import {
  deterministicBytes,
  sha256,
  sha256Of,
  startTarget,
} from './target.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SMALL_COUNT = 500;
const SMALL_SIZE = 1024;
const BIG_COUNT = 20;
const BIG_SIZE = 20 * 1000 * 1000;
const SETTLE_MS = 5_000;
const SAMPLE_MS = 100;
/** The whole soak, start-up included, must end within this. */
const TIME_BOUND_MS = 5 * 60_000;

if (!process.argv.includes('--no-build')) {
  execFileSync('npm', ['run', 'build', '--silent'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

const bound = setTimeout(() => {
  console.error(`soak: not done within ${TIME_BOUND_MS / 1000} s, giving up`);
  process.exit(1);
}, TIME_BOUND_MS);
bound.unref();

const errors = [];
const target = await startTarget();
const chain = await startChain({
  stage: 'prod',
  server: { SERVER_LISTEN_HOST: '127.0.0.1' },
  gateway: {
    GATEWAY_LISTEN_HOST: '127.0.0.1',
    GATEWAY_MAX_BODY_BYTES: String(2 * 1024 * 1024),
  },
  client: { CLIENT_LISTEN_HOST: '127.0.0.1' },
});
const proxy = new URL(chain.proxyUrl);

/** Resident set size of a process now, in MiB. */
function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

/** Start, peak and latest RSS of one process, sampled every SAMPLE_MS. */
function tracker(app) {
  const first = rssMiB(app.child.pid);
  const rss = { start: first, peak: first, end: first };
  const sample = () => {
    rss.end = rssMiB(app.child.pid);
    rss.peak = Math.max(rss.peak, rss.end);
  };
  return { rss, sample };
}

const tracked = {
  client: tracker(chain.client),
  server: tracker(chain.server),
};
const sampler = setInterval(() => {
  for (const t of Object.values(tracked)) t.sample();
}, SAMPLE_MS);

/**
 * POSTs `body` (a Buffer, or an iterable of Buffers streamed with
 * backpressure) through the proxy to the target's /echo and returns what the
 * target saw. A fresh connection per request (`agent: false`): all of them
 * are open at once.
 */
function postViaProxy(body, size, label) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port,
      method: 'POST',
      path: `${target.url}/echo?${label}`,
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': size,
      },
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) {
          reject(
            new Error(`${label}: ${res.statusCode} ${text.slice(0, 300)}`),
          );
          return;
        }
        resolve(JSON.parse(text));
      });
    });
    if (Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    void (async () => {
      for (const chunk of body) {
        if (!req.write(chunk)) {
          await new Promise((drained) => req.once('drain', drained));
        }
      }
      req.end();
    })().catch(reject);
  });
}

async function small(i) {
  const body = Buffer.alloc(SMALL_SIZE, `small request ${i} `);
  const seen = await postViaProxy(body, SMALL_SIZE, `small-${i}`);
  if (seen.bytes !== SMALL_SIZE || seen.sha256 !== sha256(body)) {
    throw new Error(
      `small-${i}: the target got ${seen.bytes} bytes, other ones`,
    );
  }
}

async function big(i) {
  const seed = `soak-${i}`;
  const seen = await postViaProxy(
    deterministicBytes(BIG_SIZE, seed),
    BIG_SIZE,
    `big-${i}`,
  );
  const expected = sha256Of(deterministicBytes(BIG_SIZE, seed));
  if (seen.bytes !== BIG_SIZE || seen.sha256 !== expected) {
    throw new Error(`big-${i}: the target got ${seen.bytes} bytes, other ones`);
  }
}

/** Runs `count` tasks at once; records each failure, returns the time taken. */
async function burst(name, count, task) {
  const started = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => task(i)),
  );
  const failed = results.filter((r) => r.status === 'rejected');
  for (const f of failed)
    errors.push(`${name}: ${f.reason?.message ?? f.reason}`);
  return {
    name,
    ok: count - failed.length,
    count,
    seconds: (performance.now() - started) / 1000,
  };
}

let bursts = [];
try {
  process.stdout.write(
    `soak: ${SMALL_COUNT} small requests and ${BIG_COUNT} × ${BIG_SIZE / 1e6} MB uploads at once through ${chain.proxyUrl}\n`,
  );
  bursts = await Promise.all([
    burst(`${SMALL_COUNT} small requests`, SMALL_COUNT, small),
    burst(`${BIG_COUNT} × ${BIG_SIZE / 1e6} MB uploads`, BIG_COUNT, big),
  ]);
  process.stdout.write(`soak: load done, waiting ${SETTLE_MS / 1000} s\n`);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  for (const t of Object.values(tracked)) t.sample();
} catch (error) {
  errors.push(`soak: ${error.message}`);
} finally {
  clearInterval(sampler);
  for (const [name, app] of [
    ['client', chain.client],
    ['server', chain.server],
    ['gateway', chain.gateway],
  ]) {
    if (app.child.exitCode !== null || app.child.signalCode !== null) {
      errors.push(
        `${name} exited (${app.child.signalCode ?? app.child.exitCode})`,
      );
    }
  }
  await chain.stop();
  await target.close();
}

const mib = (n) => n.toFixed(0).padStart(6);
const lines = [
  '',
  'workload                     ok / count   seconds',
  ...bursts.map(
    (b) =>
      `${b.name.padEnd(28)} ${String(b.ok).padStart(4)} / ${String(b.count).padEnd(5)} ${b.seconds.toFixed(1).padStart(7)}`,
  ),
  '',
  'RSS (MiB)   start   peak    end',
  ...Object.entries(tracked).map(
    ([name, t]) =>
      `${name.padEnd(10)}${mib(t.rss.start)} ${mib(t.rss.peak)} ${mib(t.rss.end)}`,
  ),
  '',
];
process.stdout.write(lines.join('\n'));
if (errors.length > 0) {
  console.error(`\nsoak FAILED with ${errors.length} error(s):`);
  for (const e of errors.slice(0, 20)) console.error(`  ${e}`);
  process.exit(1);
}
process.stdout.write('soak passed: no errors\n');
process.exit(0);
