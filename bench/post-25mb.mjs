// Times one 25 MB POST straight to a local target and through the whole
// chain (client -> gateway stand-in with a 2 MiB limit -> server), in one
// run: `node bench/post-25mb.mjs` after `npm run build`.
import { randomBytes } from 'node:crypto';
import { Agent, ProxyAgent, request } from 'undici';
import { startChain } from '../scripts/chain.mjs';
import { sha256, startTarget } from '../scripts/target.mjs';

const body = randomBytes(25 * 1000 * 1000);
const expected = sha256(body);
const target = await startTarget();
const chain = await startChain({
  gateway: { GATEWAY_MAX_BODY_BYTES: String(2 * 1024 * 1024) },
});

async function post(dispatcher) {
  const started = performance.now();
  const res = await request(`${target.url}/echo`, {
    method: 'POST',
    body,
    dispatcher,
  });
  const seen = await res.body.json();
  const ms = performance.now() - started;
  if (seen.sha256 !== expected) throw new Error('body arrived altered');
  return ms;
}

const direct = new Agent();
const proxied = new ProxyAgent({ uri: chain.proxyUrl, proxyTunnel: false });
try {
  // One warm-up each, then the median of five.
  await post(direct);
  await post(proxied);
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const directMs = [];
  const chainMs = [];
  for (let i = 0; i < 5; i += 1) {
    directMs.push(await post(direct));
    chainMs.push(await post(proxied));
  }
  console.log(
    `25 MB POST, median of 5: direct ${median(directMs).toFixed(0)} ms, through the chain ${median(chainMs).toFixed(0)} ms ` +
      `(${(median(chainMs) / median(directMs)).toFixed(1)}x)`,
  );
} finally {
  await direct.close();
  await proxied.close();
  await chain.stop();
  await target.close();
}
