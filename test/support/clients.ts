import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = promisify(execFile);

/** What a test needs of one proxied response. */
export interface ProxiedResponse {
  status: number;
  /** Raw header pairs as received, repeated names kept. */
  rawHeaders: string[];
  /** The body; empty when the caller asked for `keepBody: false`. */
  body: Buffer;
  /** Number of body bytes received. */
  bytes: number;
  sha256: string;
}

/** Values of every header called `name` (case-insensitive). */
export function headerValues(rawHeaders: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i].toLowerCase() === name.toLowerCase())
      values.push(rawHeaders[i + 1]);
  }
  return values;
}

/**
 * One request through an HTTP proxy with node:http: absolute-form request
 * line, as every proxy-aware client sends it. `body` may be a Buffer, or an
 * iterable of Buffers sent with Transfer-Encoding: chunked (unknown size).
 */
export async function viaNodeHttp(
  proxyUrl: string,
  targetUrl: string,
  options: {
    method?: string;
    headers?: http.OutgoingHttpHeaders | string[];
    body?: Buffer | Iterable<Buffer>;
    /** false: only hash and count the response body (for bodies too big to hold). */
    keepBody?: boolean;
  } = {},
): Promise<ProxiedResponse> {
  const proxy = new URL(proxyUrl);
  const req = http.request({
    host: proxy.hostname,
    port: proxy.port,
    method: options.method ?? 'GET',
    path: targetUrl,
    headers: options.headers,
    agent: false,
  });
  const responded = once(req, 'response') as Promise<[http.IncomingMessage]>;
  if (options.body === undefined) {
    req.end();
  } else if (Buffer.isBuffer(options.body)) {
    req.end(options.body);
  } else {
    for (const chunk of options.body) {
      if (!req.write(chunk)) await once(req, 'drain');
    }
    req.end();
  }
  const [res] = await responded;
  return collect(
    res.statusCode ?? 0,
    res.rawHeaders,
    res,
    options.keepBody ?? true,
  );
}

async function collect(
  status: number,
  rawHeaders: string[],
  body: AsyncIterable<Buffer | Uint8Array>,
  keepBody: boolean,
): Promise<ProxiedResponse> {
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of body) {
    const buf = Buffer.from(chunk);
    if (keepBody) chunks.push(buf);
    bytes += buf.length;
    hash.update(buf);
  }
  return {
    status,
    rawHeaders,
    body: Buffer.concat(chunks),
    bytes,
    sha256: hash.digest('hex'),
  };
}

/**
 * Runs curl as a subprocess through the proxy. Resolves the final status,
 * the response head as curl printed it, the body and its SHA-256.
 */
export async function viaCurl(
  proxyUrl: string,
  targetUrl: string,
  args: string[] = [],
): Promise<{ status: number; head: string; body: Buffer; sha256: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'chunkgate-curl-'));
  try {
    const headFile = join(dir, 'head');
    const bodyFile = join(dir, 'body');
    const { stdout } = await run(
      'curl',
      [
        '-sS',
        '--max-time',
        '180',
        '-x',
        proxyUrl,
        '-D',
        headFile,
        '-o',
        bodyFile,
        '-w',
        '%{http_code}',
        ...args,
        targetUrl,
      ],
      { maxBuffer: 1024 * 1024 },
    ).catch((error: { stderr?: string; message: string }) => {
      throw new Error(`curl failed: ${error.message}\n${error.stderr ?? ''}`);
    });
    const body = await readFile(bodyFile).catch(() => Buffer.alloc(0));
    return {
      status: Number(stdout.trim()),
      head: await readFile(headFile, 'latin1'),
      body,
      sha256: createHash('sha256').update(body).digest('hex'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Sends raw bytes to the proxy over TCP and returns whatever it answers
 * until it closes or `timeoutMs` passes: for malformed requests no HTTP
 * client library would send.
 */
export async function rawExchange(
  port: number,
  bytes: string | Buffer,
  timeoutMs = 5000,
): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(bytes);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await Promise.race([
    once(socket, 'close'),
    new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
  ]);
  socket.destroy();
  return Buffer.concat(chunks).toString('latin1');
}

/** The JSON body of every error chunkgate answers. */
export interface ErrorBody {
  error: string;
  message: string;
}

export function errorOf(body: Buffer | string): ErrorBody {
  return JSON.parse(body.toString()) as ErrorBody;
}

/** A port nothing listens on: bound once, then closed. */
export async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
