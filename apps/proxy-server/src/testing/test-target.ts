import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the target saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  bytes: number;
  sha256: string;
}

/** A response the test writes by hand (`GET /held`): head sent, body open. */
export interface HeldResponse {
  res: http.ServerResponse;
}

/**
 * Deterministic bytes (a counter pattern mixed with the index) so that a
 * test can compute the SHA-256 it expects without the target telling it.
 */
export function* patternBytes(
  size: number,
  block = 64 * 1024,
): Generator<Buffer> {
  for (let offset = 0; offset < size; offset += block) {
    const length = Math.min(block, size - offset);
    const buffer = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) buffer[i] = ((offset + i) * 31 + 7) & 0xff;
    yield buffer;
  }
}

export function sha256Of(chunks: Iterable<Buffer>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

/**
 * A real HTTP target on 127.0.0.1 and a free port, for proxy-server specs.
 * Routes:
 * - `ANY /echo`            JSON {method, url, rawHeaders, bytes, sha256} of the request
 * - `GET /bytes?size=N[&chunked=1]`  N pattern bytes, Content-Length or chunked,
 *                          written with backpressure; progress in `streamed`
 * - `GET /status/:code`    that status, reason "Custom Reason", body `status N`
 * - `GET /cookies`         two Set-Cookie headers
 * - `GET /hop`             hop-by-hop headers a proxy must remove, and one it must keep
 * - `GET /hang`            never answers (the responses are kept in `hanging`)
 * - `GET /break?after=N`   promises more, sends N bytes, then drops the connection
 * - `GET /held`            sends the head and "first", then leaves the response to the test
 */
export async function startTestTarget() {
  const seen: SeenRequest[] = [];
  const held: HeldResponse[] = [];
  const hanging: http.ServerResponse[] = [];
  /** Bytes written so far by the latest /bytes answer, and whether it finished. */
  const streamed = { written: 0, finished: false };
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

  function route(req: SeenRequest, res: http.ServerResponse): void {
    const url = new URL(req.url, 'http://target');
    const status = /^\/status\/(\d{3})$/.exec(url.pathname);
    if (url.pathname === '/echo') {
      const body = JSON.stringify(req);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    } else if (url.pathname === '/bytes') {
      const size = Number(url.searchParams.get('size') ?? 0);
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
      };
      if (url.searchParams.get('chunked') !== '1')
        headers['content-length'] = size;
      res.writeHead(200, headers);
      streamed.written = 0;
      streamed.finished = false;
      void (async () => {
        for (const chunk of patternBytes(size)) {
          if (res.destroyed) return;
          streamed.written += chunk.length;
          if (!res.write(chunk)) await once(res, 'drain');
        }
        res.end();
        streamed.finished = true;
      })().catch(() => undefined);
    } else if (status) {
      res.writeHead(Number(status[1]), 'Custom Reason', {
        'content-type': 'text/plain',
        'x-target': 'yes',
      });
      res.end(`status ${status[1]}`);
    } else if (url.pathname === '/cookies') {
      res.setHeader('set-cookie', [
        'session=abc; Path=/; HttpOnly',
        'theme=dark',
      ]);
      res.end('cookies');
    } else if (url.pathname === '/hop') {
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
    } else if (url.pathname === '/hang') {
      // Never answers; kept so a test can see the proxy give up on it.
      hanging.push(res);
    } else if (url.pathname === '/break') {
      const after = Number(url.searchParams.get('after') ?? 0);
      res.writeHead(200, { 'content-length': after * 10 });
      res.write(Buffer.alloc(after, 1), () => res.destroy());
    } else if (url.pathname === '/held') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      held.push({ res });
    } else {
      res.writeHead(404);
      res.end('no such route');
    }
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    held,
    hanging,
    streamed,
    hits: (path: string) => seen.filter((r) => r.url.split('?')[0] === path),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

export type TestTarget = Awaited<ReturnType<typeof startTestTarget>>;
