import { createCipheriv, createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Deterministic pseudo-random bytes (AES-128-CTR keystream of `seed`): the
 * target can stream any size without holding it, and the test can compute
 * the SHA-256 it expects without the target telling it.
 */
export function* deterministicBytes(
  size: number,
  seed = 'chunkgate',
): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const block = Buffer.alloc(64 * 1024);
  for (let left = size; left > 0; left -= block.length) {
    yield cipher.update(left >= block.length ? block : block.subarray(0, left));
  }
}

export function sha256Of(chunks: Iterable<Buffer>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What the target saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  bytes: number;
  sha256: string;
}

/**
 * A real HTTP target for the end-to-end tests. Routes:
 * - `ANY /echo`       answers JSON {method, url, bytes, sha256, rawHeaders} of what it received
 * - `GET /bytes?size=N&seed=S[&chunked=1]`  N deterministic bytes, with Content-Length or chunked
 * - `GET /status/:code`  that status, with a small body
 * - `GET /cookies`    two Set-Cookie headers
 * - `GET /hop`        a response carrying hop-by-hop headers a proxy must remove
 * Every request is recorded in `seen`.
 */
export async function startTarget() {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const record: SeenRequest = {
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
  server.keepAliveTimeout = 1000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    /** Requests the target received for `path` (query ignored). */
    hits: (path: string) => seen.filter((r) => r.url.split('?')[0] === path),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

export type Target = Awaited<ReturnType<typeof startTarget>>;

function route(req: SeenRequest, res: http.ServerResponse): void {
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
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
    };
    if (url.searchParams.get('chunked') !== '1')
      headers['content-length'] = size;
    res.writeHead(200, headers);
    void streamTo(res, deterministicBytes(size, seed));
    return;
  }
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (status) {
    const body = `status ${status[1]}\n`;
    res.writeHead(Number(status[1]), {
      'content-type': 'text/plain',
      'x-target': 'yes',
    });
    res.end(body);
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

/** Writes every buffer with backpressure, then ends. */
async function streamTo(
  res: http.ServerResponse,
  chunks: Iterable<Buffer>,
): Promise<void> {
  for (const chunk of chunks) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
}
