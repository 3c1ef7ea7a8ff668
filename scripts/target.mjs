// A real HTTP target for the end-to-end tests and the benchmark.
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Deterministic pseudo-random bytes (AES-128-CTR keystream of `seed`): the
 * target can stream any size without holding it, and a test can compute the
 * SHA-256 it expects without the target telling it.
 *
 * @param {number} size
 * @param {string} [seed]
 * @returns {Generator<Buffer>}
 */
export function* deterministicBytes(size, seed = 'chunkgate') {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const block = Buffer.alloc(64 * 1024);
  for (let left = size; left > 0; left -= block.length) {
    yield cipher.update(left >= block.length ? block : block.subarray(0, left));
  }
}

/** @param {Iterable<Buffer>} chunks */
export function sha256Of(chunks) {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

/** @param {Buffer | string} data */
export function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Starts the target on 127.0.0.1 and a free port. Routes:
 * - `ANY /echo`       JSON {method, url, bytes, sha256, rawHeaders} of what it received
 * - `GET /bytes?size=N&seed=S[&chunked=1]`  N deterministic bytes, with Content-Length or chunked
 *                     (progress of the latest one in `streamed`)
 * - `GET /status/:code[?reason=R]`  that status (reason phrase R if given), body
 *                     `status N\n` (none for 204 and 304)
 * - `GET /cookies`    two Set-Cookie headers
 * - `GET /hop`        a response carrying hop-by-hop headers a proxy must remove
 * - `GET /hang`       never answers (the responses are kept in `hanging`)
 * - `GET /break?after=N`  promises 10·N bytes, sends N, then drops the connection
 * - `GET /held`       sends the head and "first", then leaves the response (in
 *                     `held`) to the test to continue or end
 * - `ANY /sink`       reads the body without hashing it, answers 204 (benchmarks)
 * Every request but /sink is recorded in `seen`.
 */
export async function startTarget(options = {}) {
  /** @type {import('./target.d.mts').SeenRequest[]} */
  const seen = [];
  /** @type {TargetState} */
  const state = {
    hanging: [],
    held: [],
    streamed: { written: 0, finished: false },
  };
  const handler = (req, res) => {
    if (req.url?.startsWith('/sink')) {
      req.resume();
      req.on('end', () => {
        res.writeHead(204);
        res.end();
      });
      return;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const record = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        bytes,
        sha256: hash.digest('hex'),
      };
      seen.push(record);
      route(record, res, state);
    });
  };
  const server = options.tls
    ? https.createServer(options.tls, handler)
    : http.createServer(handler);
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = /** @type {import('node:net').AddressInfo} */ (server.address())
    .port;
  return {
    port,
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    seen,
    ...state,
    /** @param {string} path */
    hits: (path) => seen.filter((r) => r.url.split('?')[0] === path),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/**
 * What the routes leave for the test to look at.
 * @typedef {Pick<import('./target.d.mts').Target, 'hanging' | 'held' | 'streamed'>} TargetState
 */

/**
 * @param {import('./target.d.mts').SeenRequest} req
 * @param {http.ServerResponse} res
 * @param {TargetState} state
 */
function route(req, res, state) {
  const url = new URL(req.url, 'http://target');
  if (url.pathname === '/echo') {
    const body = JSON.stringify(req);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  if (url.pathname === '/bytes') {
    const size = Number(url.searchParams.get('size') ?? 0);
    const seed = url.searchParams.get('seed') ?? 'chunkgate';
    /** @type {Record<string, string | number>} */
    const headers = { 'content-type': 'application/octet-stream' };
    if (url.searchParams.get('chunked') !== '1')
      headers['content-length'] = size;
    res.writeHead(200, headers);
    const streamed = state.streamed;
    streamed.written = 0;
    streamed.finished = false;
    void streamTo(res, deterministicBytes(size, seed), (n) => {
      streamed.written += n;
    }).then((ended) => {
      streamed.finished = ended;
    });
    return;
  }
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (status) {
    const code = Number(status[1]);
    const bodyless = code === 204 || code === 304;
    res.writeHead(code, url.searchParams.get('reason') ?? undefined, {
      'x-target': 'yes',
      ...(bodyless ? {} : { 'content-type': 'text/plain' }),
    });
    res.end(bodyless ? undefined : `status ${code}\n`);
    return;
  }
  if (url.pathname === '/cookies') {
    res.setHeader('set-cookie', [
      'session=abc; Path=/; HttpOnly',
      'theme=dark; Path=/',
    ]);
    res.end('cookies');
    return;
  }
  if (url.pathname === '/hop') {
    res.writeHead(200, [
      'Connection',
      'X-Hop-Secret',
      'X-Hop-Secret',
      'must-not-pass',
      'Keep-Alive',
      'timeout=5',
      'X-End-To-End',
      'passes',
      'Content-Length',
      '3',
    ]);
    res.end('hop');
    return;
  }
  if (url.pathname === '/hang') {
    state.hanging.push(res);
    return;
  }
  if (url.pathname === '/break') {
    const after = Number(url.searchParams.get('after') ?? 0);
    res.writeHead(200, { 'content-length': after * 10 });
    res.write(Buffer.alloc(after, 1), () => res.destroy());
    return;
  }
  if (url.pathname === '/held') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first');
    state.held.push(res);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('no such route\n');
}

/**
 * Writes every buffer with backpressure, then ends; resolves true once it
 * has ended (false when the response was destroyed on the way).
 * @param {http.ServerResponse} res
 * @param {Iterable<Buffer>} chunks
 * @param {(bytes: number) => void} onWrite
 * @returns {Promise<boolean>}
 */
async function streamTo(res, chunks, onWrite) {
  for (const chunk of chunks) {
    if (res.destroyed) return false;
    onWrite(chunk.length);
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
  return true;
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl
 * into `dir`: trusted only by the clients that are given `cert` as their CA.
 *
 * @param {string} dir
 * @returns {Promise<{ key: Buffer, cert: Buffer, certFile: string }>}
 */
export async function makeCertificate(dir) {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-days',
    '1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  return {
    key: await readFile(keyFile),
    cert: await readFile(certFile),
    certFile,
  };
}
