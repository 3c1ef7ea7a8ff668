// A real HTTP target for the end-to-end tests and the benchmark.
import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';

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
 * - `GET /status/:code`  that status, with a small body
 * - `GET /cookies`    two Set-Cookie headers
 * - `GET /hop`        a response carrying hop-by-hop headers a proxy must remove
 * - `ANY /sink`       reads the body without hashing it, answers 204 (benchmarks)
 * Every request but /sink is recorded in `seen`.
 */
export async function startTarget() {
  /** @type {import('./target.d.mts').SeenRequest[]} */
  const seen = [];
  const server = http.createServer((req, res) => {
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
      route(record, res);
    });
  });
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = /** @type {import('node:net').AddressInfo} */ (server.address())
    .port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
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
 * @param {import('./target.d.mts').SeenRequest} req
 * @param {http.ServerResponse} res
 */
function route(req, res) {
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
    void streamTo(res, deterministicBytes(size, seed));
    return;
  }
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (status) {
    res.writeHead(Number(status[1]), {
      'content-type': 'text/plain',
      'x-target': 'yes',
    });
    res.end(`status ${status[1]}\n`);
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
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('no such route\n');
}

/**
 * Writes every buffer with backpressure, then ends.
 * @param {http.ServerResponse} res
 * @param {Iterable<Buffer>} chunks
 */
async function streamTo(res, chunks) {
  for (const chunk of chunks) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
}
