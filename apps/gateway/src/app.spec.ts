import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import {
  LOCAL_DEV_ACCESS_KEY_ID as AKID,
  LOCAL_DEV_SECRET_ACCESS_KEY as SECRET,
} from '@app/protocol';
import { SIGNATURE_MISMATCH_MESSAGE } from './common/gateway-responses.js';
import type { GatewayStats } from './stats/stats.service.js';
import { signedCall, startGateway } from './testing/gateway-harness.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TOO_LARGE = '{"message":"Request Entity Too Large"}';

/** A 16 MiB deterministic answer the upstream streams for `/big`. */
const BIG_RESPONSE = Buffer.alloc(16 * MiB);
for (let i = 0; i < BIG_RESPONSE.length; i += 4)
  BIG_RESPONSE.writeUInt32LE(i, i);

/** What the upstream saw of one request. */
interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  sha256: string;
  length: number;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function headerValues(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
  return out;
}

/** A real upstream: records what it receives and answers by path. */
async function startUpstream(): Promise<{
  server: http.Server;
  url: string;
  seen: Seen[];
  aborted: string[];
}> {
  const seen: Seen[] = [];
  const aborted: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        sha256: sha256(body),
        length: body.length,
      });
      if (req.url?.startsWith('/slow')) {
        const timer = setTimeout(() => res.end('too late'), 5_000);
        res.on('close', () => {
          clearTimeout(timer);
          if (!res.writableFinished) aborted.push(req.url ?? '');
        });
        return;
      }
      if (req.url === '/big') {
        // Written in pieces, honouring backpressure, so the gateway really streams.
        let offset = 0;
        const pump = (): void => {
          while (offset < BIG_RESPONSE.length) {
            const piece = BIG_RESPONSE.subarray(offset, offset + 256 * 1024);
            offset += piece.length;
            if (!res.write(piece)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      res.statusCode = req.url?.startsWith('/created') ? 201 : 200;
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
      res.setHeader('X-Upstream', 'yes');
      res.setHeader('Content-Type', 'application/octet-stream');
      res.end(body.length > 0 ? body : Buffer.from(`seen ${req.url}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, seen, aborted };
}

/** Sends with curl, signing with `--aws-sigv4`; returns status and body. */
async function curl(
  args: string[],
): Promise<{ status: number; body: string; exitCode: number }> {
  try {
    const { stdout } = await run(
      '/usr/bin/curl',
      ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args],
      { maxBuffer: 16 * MiB, encoding: 'utf8' },
    );
    const cut = stdout.lastIndexOf('\n');
    return {
      status: Number(stdout.slice(cut + 1)),
      body: stdout.slice(0, cut),
      exitCode: 0,
    };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    throw new Error(`curl failed (${e.code}): ${e.stderr}`);
  }
}

const CURL_SIGV4 = [
  '--aws-sigv4',
  'aws:amz:us-east-1:execute-api',
  '--user',
  `${AKID}:${SECRET}`,
];

describe('gateway app (stage prod, 2 MiB, 400 ms integration timeout)', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  let tmp: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    gateway = await startGateway({
      GATEWAY_UPSTREAM_URL: upstream.url,
      GATEWAY_STAGE: 'prod',
      GATEWAY_MAX_BODY_BYTES: String(2 * MiB),
      GATEWAY_TIMEOUT_MS: '400',
      GATEWAY_CREDENTIALS: `${AKID}:${SECRET},AKIDSECOND:second-secret`,
    });
    tmp = await mkdtemp(join(tmpdir(), 'gateway-spec-'));
  });

  afterAll(async () => {
    await gateway?.app.close();
    await new Promise((resolve) => upstream?.server.close(resolve));
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  beforeEach(() => {
    upstream.seen.length = 0;
  });

  it('forwards a signed request: stage stripped, signature headers stripped, body intact', async () => {
    const body = Buffer.from(
      Array.from({ length: 300_000 }, (_, i) => i % 251),
    );
    const res = await signedCall(gateway.url, 'POST', '/prod/created/x', {
      query: { b: '2', a: 'x y' },
      body,
      headers: {
        'content-type': 'application/octet-stream',
        'x-connection-id': 'c-1',
      },
      sessionToken: 'session-token-value',
    });
    expect(res.status).toBe(201);
    expect(sha256(res.body)).toBe(sha256(body));
    expect(res.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/);

    expect(upstream.seen).toHaveLength(1);
    const seen = upstream.seen[0];
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/created/x?b=2&a=x%20y');
    expect(seen.sha256).toBe(sha256(body));
    for (const name of [
      'authorization',
      'x-amz-date',
      'x-amz-content-sha256',
      'x-amz-security-token',
    ]) {
      expect(headerValues(seen.rawHeaders, name)).toEqual([]);
    }
    expect(headerValues(seen.rawHeaders, 'x-connection-id')).toEqual(['c-1']);
    expect(headerValues(seen.rawHeaders, 'host')).toEqual([
      new URL(upstream.url).host,
    ]);
  });

  it('forwards a path with spaces, unicode and odd escapes exactly as sent', async () => {
    const path = '/prod/files/my%20file%20%C3%BC.txt/a%zz';
    const res = await signedCall(gateway.url, 'GET', path);
    expect(res.status).toBe(200);
    expect(upstream.seen[0].url).toBe('/files/my%20file%20%C3%BC.txt/a%zz');
  });

  it('refuses paths outside the stage with 404 before checking the signature', async () => {
    const res = await signedCall(gateway.url, 'GET', '/staging/x');
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe(
      '{"message":"Missing Authentication Token"}',
    );
    expect(upstream.seen).toHaveLength(0);
  });

  describe('403 with AWS messages', () => {
    it('no Authorization header', async () => {
      const res = await request(`${gateway.url}/prod/x`);
      expect(res.statusCode).toBe(403);
      expect(res.headers['x-amzn-errortype']).toBe(
        'MissingAuthenticationTokenException',
      );
      expect(await res.body.text()).toBe(
        '{"message":"Missing Authentication Token"}',
      );
    });

    it('unknown access key', async () => {
      const res = await signedCall(gateway.url, 'GET', '/prod/x', {
        accessKeyId: 'AKIDNOBODY',
      });
      expect(res.status).toBe(403);
      expect(res.headers['x-amzn-errortype']).toBe(
        'UnrecognizedClientException',
      );
      expect(JSON.parse(res.body.toString())).toEqual({
        message: 'The security token included in the request is invalid.',
      });
    });

    it('wrong secret', async () => {
      const res = await signedCall(gateway.url, 'GET', '/prod/x', {
        secret: 'wrong',
      });
      expect(res.status).toBe(403);
      expect(res.headers['x-amzn-errortype']).toBe('InvalidSignatureException');
      expect(JSON.parse(res.body.toString())).toEqual({
        message: SIGNATURE_MISMATCH_MESSAGE,
      });
    });

    it('wrong region', async () => {
      const res = await signedCall(gateway.url, 'GET', '/prod/x', {
        region: 'eu-central-1',
      });
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body.toString())).toEqual({
        message:
          "Credential should be scoped to a valid region, not 'eu-central-1'. ",
      });
    });

    it('a second configured key pair is accepted', async () => {
      const res = await signedCall(gateway.url, 'GET', '/prod/x', {
        accessKeyId: 'AKIDSECOND',
        secret: 'second-secret',
      });
      expect(res.status).toBe(200);
    });
  });

  describe('413 for bodies over the limit, received by the client (no reset)', () => {
    const big = Buffer.alloc(3 * MiB, 7);

    it('signed 3 MB body with Content-Length (undici, no Expect)', async () => {
      const res = await signedCall(gateway.url, 'POST', '/prod/upload', {
        body: big,
      });
      expect(res.status).toBe(413);
      expect(res.body.toString()).toBe(TOO_LARGE);
      expect(upstream.seen).toHaveLength(0);
    });

    it('3 MB from curl, with and without Expect: 100-continue', async () => {
      const file = join(tmp, 'three-mb.bin');
      await writeFile(file, big);
      for (const extra of [[], ['-H', 'Expect:']]) {
        const res = await curl([
          ...CURL_SIGV4,
          ...extra,
          '--data-binary',
          `@${file}`,
          '-H',
          'Content-Type: application/octet-stream',
          `${gateway.url}/prod/upload`,
        ]);
        expect(res).toEqual({ status: 413, body: TOO_LARGE, exitCode: 0 });
      }
      expect(upstream.seen).toHaveLength(0);
    });

    it('3 MB chunked (no Content-Length), cut off while reading', async () => {
      const res = await new Promise<{ status: number; body: string }>(
        (resolve, reject) => {
          const req = http.request(
            `${gateway.url}/prod/upload`,
            { method: 'POST', headers: { 'Transfer-Encoding': 'chunked' } },
            (r) => {
              const parts: Buffer[] = [];
              r.on('data', (c: Buffer) => parts.push(c));
              r.on('end', () =>
                resolve({
                  status: r.statusCode ?? 0,
                  body: Buffer.concat(parts).toString(),
                }),
              );
            },
          );
          req.on('error', reject);
          const piece = Buffer.alloc(64 * 1024, 1);
          let sent = 0;
          const pump = (): void => {
            while (sent < big.length) {
              sent += piece.length;
              if (!req.write(piece)) {
                req.once('drain', pump);
                return;
              }
            }
            req.end();
          };
          pump();
        },
      );
      expect(res).toEqual({ status: 413, body: TOO_LARGE });
    });

    it('declared too large with Expect: 100-continue: refused without asking for the body', async () => {
      const outcome = await new Promise<{ status: number; continued: boolean }>(
        (resolve, reject) => {
          let continued = false;
          const req = http.request(`${gateway.url}/prod/upload`, {
            method: 'POST',
            headers: {
              'Content-Length': String(big.length),
              Expect: '100-continue',
            },
          });
          req.on('continue', () => {
            continued = true;
            req.end(big);
          });
          req.on('response', (r) => {
            r.resume();
            r.on('end', () =>
              resolve({ status: r.statusCode ?? 0, continued }),
            );
          });
          req.on('error', reject);
          req.flushHeaders();
        },
      );
      expect(outcome).toEqual({ status: 413, continued: false });
    });

    it('exactly the limit is accepted', async () => {
      const body = Buffer.alloc(2 * MiB, 3);
      const res = await signedCall(gateway.url, 'PUT', '/prod/exact', { body });
      expect(res.status).toBe(200);
      expect(upstream.seen[0].length).toBe(2 * MiB);
    });
  });

  it('504 when the upstream sends no head in time, and the upstream request is aborted', async () => {
    const started = Date.now();
    const res = await signedCall(gateway.url, 'GET', '/prod/slow');
    expect(res.status).toBe(504);
    expect(res.body.toString()).toBe(
      '{"message":"Endpoint request timed out"}',
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    await vi.waitFor(() => expect(upstream.aborted).toContain('/slow'));
  });

  it('aborts the upstream request when the client leaves, and counts it as 499', async () => {
    await request(`${gateway.url}/_gateway/stats/reset`, { method: 'POST' });
    const leave = new AbortController();
    const call = signedCall(gateway.url, 'GET', '/prod/slow-leave', {
      signal: leave.signal,
    });
    await vi.waitFor(() => expect(upstream.seen).toHaveLength(1));
    leave.abort();
    await expect(call).rejects.toThrow();
    await vi.waitFor(() => expect(upstream.aborted).toContain('/slow-leave'));
    await vi.waitFor(async () => {
      const stats = (await (
        await request(`${gateway.url}/_gateway/stats`)
      ).body.json()) as GatewayStats;
      expect(stats.by_status).toEqual({ '499': 1 });
    });
  });

  it('streams a large upstream response back intact (no size limit on answers)', async () => {
    const res = await signedCall(gateway.url, 'GET', '/prod/big');
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(BIG_RESPONSE.length);
    expect(sha256(res.body)).toBe(sha256(BIG_RESPONSE));
  });

  describe('requests signed by curl --aws-sigv4 (7.88 signs the raw path and query)', () => {
    it('GET with an unsorted, encoded query', async () => {
      const res = await curl([
        ...CURL_SIGV4,
        `${gateway.url}/prod/search?z=1&a=x%20y&b=c+d&flag`,
      ]);
      expect(res.status).toBe(200);
      expect(upstream.seen[0].url).toBe('/search?z=1&a=x%20y&b=c+d&flag');
    });

    it('POST with a body', async () => {
      const res = await curl([
        ...CURL_SIGV4,
        '--data-binary',
        'hello=world&x=1',
        '-H',
        'Content-Type: application/x-www-form-urlencoded',
        `${gateway.url}/prod/form`,
      ]);
      expect(res).toEqual({
        status: 200,
        body: 'hello=world&x=1',
        exitCode: 0,
      });
      expect(
        headerValues(upstream.seen[0].rawHeaders, 'authorization'),
      ).toEqual([]);
    });

    it('with the wrong secret', async () => {
      const res = await curl([
        '--aws-sigv4',
        'aws:amz:us-east-1:execute-api',
        '--user',
        `${AKID}:wrong`,
        `${gateway.url}/prod/x`,
      ]);
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body)).toEqual({
        message: SIGNATURE_MISMATCH_MESSAGE,
      });
    });
  });

  it('counts calls by path and status; /_gateway/stats is unsigned and never forwarded', async () => {
    await request(`${gateway.url}/_gateway/stats/reset`, { method: 'POST' });
    await signedCall(gateway.url, 'GET', '/prod/counted');
    await signedCall(gateway.url, 'GET', '/prod/counted');
    await request(`${gateway.url}/prod/counted`).then((r) => r.body.dump());

    const res = await request(`${gateway.url}/_gateway/stats`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-amzn-requestid']).toBeDefined();
    const stats = (await res.body.json()) as GatewayStats;
    expect(stats.total).toBe(3);
    expect(stats.by_path).toEqual({ '/counted': 3 });
    expect(stats.by_status).toEqual({ '200': 2, '403': 1 });
    expect(upstream.seen.map((s) => s.url)).toEqual(['/counted', '/counted']);

    const reset = await request(`${gateway.url}/_gateway/stats/reset`, {
      method: 'POST',
    });
    expect(((await reset.body.json()) as GatewayStats).total).toBe(3);
    const after = await request(`${gateway.url}/_gateway/stats`);
    expect(((await after.body.json()) as GatewayStats).total).toBe(0);
  });
});

describe('gateway app without stage, upstream down, 150 ms added latency', () => {
  let gateway: Awaited<ReturnType<typeof startGateway>>;

  beforeAll(async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) =>
      closed.listen(0, '127.0.0.1', resolve),
    );
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    gateway = await startGateway({
      GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${port}`,
      GATEWAY_LATENCY_MS: '150',
    });
  });

  afterAll(async () => {
    await gateway?.app.close();
  });

  it('answers 502 naming the socket error, after the added latency', async () => {
    const started = Date.now();
    const res = await signedCall(gateway.url, 'GET', '/anything');
    expect(res.status).toBe(502);
    expect(res.body.toString()).toBe(
      '{"message":"Bad Gateway: upstream unreachable (ECONNREFUSED)"}',
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(145);
  });

  it('refuses signatures for the default local dev credentials only', async () => {
    const res = await signedCall(gateway.url, 'GET', '/x', {
      accessKeyId: 'AKIDSECOND',
      secret: 'second-secret',
    });
    expect(res.status).toBe(403);
  });
});
