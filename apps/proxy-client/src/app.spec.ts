import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LoggerService } from '@nestjs/common';
import { ProxyAgent, request as undiciRequest } from 'undici';
import { startApp, type RunningApp } from '../../../scripts/chain.mjs';
import {
  deterministicBytes,
  sha256,
  startTarget,
  type SeenRequest,
  type Target,
} from '../../../test/support/target.js';
import { RelayService } from './relay/relay.service.js';
import { ensureBuilt } from './testing/built-apps.js';
import {
  startMeteringProxy,
  type MeteredCall,
  type MeteringProxy,
  type MeteringProxyOptions,
} from './testing/metering-proxy.js';
import {
  errorOf,
  eventually,
  header,
  startClient as startClientApp,
  viaProxy,
  type RunningClient,
} from './testing/proxy-harness.js';

/*
 * Whole proxy exchanges through the real proxy-server and gateway (built
 * apps, started as child processes: the gateway verifies SigV4 with KEY
 * and has a stage), with a metering hop between client and gateway that
 * records every call and its answer, and can lose a chosen call's answer or
 * send it to a gateway that faults. Every client here uses the separate
 * calls (COMBINED_CALL=false); the one-call exchange is tested in
 * relay/pipeline/forward-http.spec.ts.
 */

const run = promisify(execFile);
const KiB = 1024;
const STAGE = 'prod';
const KEY = {
  accessKeyId: 'AKIDAPPSPEC',
  secretAccessKey: 'app-spec-secret',
};
/** AWS's words for a signature that does not verify, as the gateway answers them. */
const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** Every log line of every client in this file, for assertions on logging. */
const logs: Array<{ level: string; message: string; context?: string }> = [];
const captureLogger: LoggerService = Object.fromEntries(
  ['log', 'error', 'warn', 'debug', 'verbose', 'fatal'].map((level) => [
    level,
    (message: unknown, ...rest: unknown[]) =>
      logs.push({
        level,
        message: String(message),
        context:
          typeof rest.at(-1) === 'string' ? (rest.at(-1) as string) : undefined,
      }),
  ]),
) as unknown as LoggerService;

/** Everything started here, closed in reverse order after the file. */
const started: Array<{ close: () => Promise<unknown> }> = [];
let target: Target;
let server: RunningApp;
/** The gateway in front of `server`: stage `prod`, 80 KiB payload limit, knows KEY. */
let gateway: RunningApp;
const savedEnv = { ...process.env };

beforeAll(async () => {
  await ensureBuilt(['proxy-server', 'gateway']);
  // The SDK's default chain reads these when a client first signs (lazily,
  // then cached), so they stay set for the whole file.
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: KEY.accessKeyId,
    AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  target = await startTarget();
  server = await startApp('proxy-server', {
    SERVER_LISTEN_PORT: '0',
    // Long-polls end (202) after 500 ms, so a slow target shows within a
    // test, yet a quick one answers the first poll even on a busy machine.
    RESPONSE_WAIT_MS: '500',
  });
  started.push({ close: () => server.stop() });
  gateway = await startGateway({ GATEWAY_MAX_BODY_BYTES: String(80 * KiB) });
});
afterAll(async () => {
  for (const s of started.reverse()) await s.close();
  await target?.close();
  process.env = savedEnv;
});

/**
 * Starts one more real gateway (stage `prod`, knowing KEY unless `env` says
 * otherwise), in front of `upstream` (default: the proxy-server).
 */
async function startGateway(
  env: Record<string, string> = {},
  upstream = server.url,
): Promise<RunningApp> {
  const app = await startApp('gateway', {
    GATEWAY_LISTEN_PORT: '0',
    GATEWAY_UPSTREAM_URL: upstream,
    GATEWAY_STAGE: STAGE,
    GATEWAY_CREDENTIALS: `${KEY.accessKeyId}:${KEY.secretAccessKey}`,
    ...env,
  });
  started.push({ close: () => app.stop() });
  return app;
}

/** A metering hop in front of `gateway` (see testing/metering-proxy.ts). */
async function startMeter(
  options: Omit<MeteringProxyOptions, 'upstream'> = {},
): Promise<MeteringProxy> {
  const meter = await startMeteringProxy({ upstream: gateway.url, ...options });
  started.push(meter);
  return meter;
}

/** What the gateway counted (`GET /_gateway/stats`). */
async function statsOf(app: RunningApp): Promise<{
  total: number;
  faults: { total: number; by_kind: Record<string, number> };
}> {
  const res = await fetch(`${app.url}/_gateway/stats`);
  return (await res.json()) as Awaited<ReturnType<typeof statsOf>>;
}

/**
 * Starts proxy-client in this process with `env`, through `meter` (or
 * API_GATEWAY_URL in `env`), with the separate calls.
 */
async function startClient(
  meter: MeteringProxy | undefined,
  env: Record<string, string> = {},
): Promise<RunningClient> {
  const client = await startClientApp(
    {
      COMBINED_CALL: 'false',
      ...(meter ? { API_GATEWAY_URL: `${meter.url}/${STAGE}` } : {}),
      ...env,
    },
    captureLogger,
  );
  started.push(client.app);
  return client;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

/** A target started for one test, closed after the file. */
async function startOwnTarget(handler: http.RequestListener): Promise<string> {
  const own = http.createServer(handler);
  own.listen(0, '127.0.0.1');
  await once(own, 'listening');
  started.push({
    close: async () => {
      own.closeAllConnections();
      own.close();
    },
  });
  return `http://127.0.0.1:${(own.address() as AddressInfo).port}`;
}

/**
 * proxy-server as it was before `POST /proxy/exchange`: the real server
 * behind a hop that answers that one call as a server answers a path it
 * does not know. The only stand-in in this file, because the real server
 * never answers 404 to its own exchange. It goes behind a real gateway, where
 * the server is; `seen` is every call it got, with the status answered.
 */
async function startOldServer() {
  const seen: Array<{ method: string; path: string; status?: number }> = [];
  const old = http.createServer((req, res) => {
    const call: (typeof seen)[number] = {
      method: req.method ?? '',
      path: req.url ?? '',
    };
    seen.push(call);
    res.on('finish', () => (call.status = res.statusCode));
    if (call.method === 'POST' && call.path === '/proxy/exchange') {
      req.resume();
      const text = JSON.stringify({
        error: 'invalid_request',
        message:
          'No such endpoint: POST /proxy/exchange. proxy-server serves POST and DELETE /proxy/connection, POST /proxy/chunk and GET /proxy/response.',
      });
      res.writeHead(404, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return;
    }
    const forward = http.request(`${server.url}${call.path}`, {
      method: call.method,
      headers: req.headers,
      agent: false,
    });
    forward.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  old.listen(0, '127.0.0.1');
  await once(old, 'listening');
  started.push({
    close: async () => {
      old.closeAllConnections();
      old.close();
    },
  });
  const { port } = old.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen };
}

/** `METHOD /path INDEX STATUS` of each call, `lost` for an answer the meter lost. */
function traceOf(calls: MeteredCall[]): string[] {
  return calls.map(
    (c) =>
      `${c.method} ${c.path} ${c.headers['x-chunk-index'] ?? ''} ${c.lost ? 'lost' : (c.status ?? 'dropped')}`,
  );
}

// ----------------------------------------------------------------- tests --

describe('proxy-client relaying through a signed gateway with a stage', () => {
  let meter: MeteringProxy;
  let client: RunningClient;
  beforeAll(async () => {
    meter = await startMeter();
    client = await startClient(meter, {
      CHUNK_SIZE: String(64 * KiB),
      MAX_BODY_SIZE: String(1024 * KiB),
      LOG_LEVEL: 'debug',
    });
  });

  const callsOf = (id: string) =>
    meter.calls.filter(
      (c) => c.headers['x-connection-id'] === id || c.body.includes(id),
    );
  /** The connection id of the first connection opened after call `before`. */
  const firstId = (before: number): string => {
    const open = meter.calls
      .slice(before)
      .find((c) => c.path === '/proxy/connection' && c.method === 'POST')!;
    return (JSON.parse(open.body.toString()) as { connection_id: string })
      .connection_id;
  };
  it('carries a GET with the separate calls: connection, final empty chunk, response; no release after the last chunk', async () => {
    const before = meter.calls.length;
    const res = await viaProxy(client.url, `${target.url}/echo?q=1`, {
      headers: {
        'proxy-authorization': 'Basic eDp5',
        cookie: 'c=1',
        'x-custom': 'kept',
      },
    });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as SeenRequest;
    expect(seen).toMatchObject({ method: 'GET', url: '/echo?q=1', bytes: 0 });
    expect(header(seen.rawHeaders, 'host')).toEqual([
      `127.0.0.1:${target.port}`,
    ]);
    expect(header(seen.rawHeaders, 'cookie')).toEqual(['c=1']);
    expect(header(seen.rawHeaders, 'x-custom')).toEqual(['kept']);
    expect(header(seen.rawHeaders, 'proxy-authorization')).toEqual([]);
    // The server frees a connection whose last chunk it served: no DELETE
    // (a later request's calls prove this one's are all in).
    await viaProxy(client.url, `${target.url}/echo?q=2`);
    const calls = callsOf(firstId(before));
    expect(calls.map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual([
      'POST /proxy/connection 201',
      'POST /proxy/chunk 200',
      'GET /proxy/response 200',
    ]);
    const connection = JSON.parse(calls[0].body.toString()) as Record<
      string,
      unknown
    >;
    expect(connection).toMatchObject({
      target_host: '127.0.0.1',
      port: target.port,
      scheme: 'http',
      method: 'GET',
      path: '/echo?q=1',
      body_size: 0,
      response_chunk_size: 64 * KiB,
      download_window: 8,
    });
    expect(connection.connection_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(calls[1].headers).toMatchObject({
      'x-chunk-index': '0',
      'x-chunk-final': 'true',
    });
    expect(calls[1].body.length).toBe(0);
  });

  it('uploads a Content-Length body in CHUNK_SIZE chunks, intact', async () => {
    const body = randomBytes(200 * KiB + 7);
    const before = meter.calls.length;
    const res = await viaProxy(client.url, `${target.url}/echo`, {
      method: 'POST',
      body,
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({
      bytes: body.length,
      sha256: sha256(body),
    });
    // (sent UPLOAD_CONCURRENCY at once: they may arrive in any order)
    const chunks = meter.calls
      .slice(before)
      .filter((c) => c.path === '/proxy/chunk')
      .sort(
        (a, b) =>
          Number(a.headers['x-chunk-index']) -
          Number(b.headers['x-chunk-index']),
      );
    expect(
      chunks.map((c) => [
        c.headers['x-chunk-index'],
        c.headers['x-chunk-final'],
        c.body.length,
      ]),
    ).toEqual([
      ['0', 'false', 64 * KiB],
      ['1', 'false', 64 * KiB],
      ['2', 'false', 64 * KiB],
      ['3', 'true', 8 * KiB + 7],
    ]);
  });

  it('uploads a chunked body of unknown size with body_size null', async () => {
    const pieces = Array.from({ length: 10 }, () => randomBytes(13 * KiB));
    const before = meter.calls.length;
    const res = await viaProxy(client.url, `${target.url}/echo`, {
      method: 'PUT',
      headers: { 'transfer-encoding': 'chunked' },
      body: pieces,
    });
    expect(res.status, res.body.toString()).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({
      bytes: 130 * KiB,
      sha256: sha256(Buffer.concat(pieces)),
    });
    const open = meter.calls
      .slice(before)
      .find((c) => c.method === 'POST' && c.path === '/proxy/connection');
    expect(JSON.parse(open!.body.toString()).body_size).toBeNull();
  });

  it('answers Expect: 100-continue (curl) and carries the body', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'proxy-client-spec-'));
    try {
      const body = randomBytes(300 * KiB);
      await writeFile(join(dir, 'body'), body);
      const { stdout } = await run('curl', [
        '-sS',
        '-x',
        client.url,
        '-H',
        'Expect: 100-continue',
        '--data-binary',
        `@${join(dir, 'body')}`,
        `${target.url}/echo`,
      ]);
      expect(JSON.parse(stdout)).toMatchObject({
        method: 'POST',
        bytes: body.length,
        sha256: sha256(body),
      });
      const seen = target.seen.at(-1)!;
      expect(header(seen.rawHeaders, 'expect')).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['with Content-Length', ''],
    ['chunked', '&chunked=1'],
  ])('streams a response of many chunks %s, intact', async (_label, query) => {
    const size = 300 * KiB + 5;
    const res = await viaProxy(
      client.url,
      `${target.url}/bytes?size=${size}${query}`,
    );
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.body.equals(Buffer.concat([...deterministicBytes(size)]))).toBe(
      true,
    );
    expect(header(res.rawHeaders, 'content-length')).toEqual(
      query ? [] : [String(size)],
    );
    expect(header(res.rawHeaders, 'transfer-encoding')).toEqual(
      query ? ['chunked'] : [],
    );
  });

  it('serves undici ProxyAgent', async () => {
    const body = randomBytes(150 * KiB);
    const res = await undiciRequest(`${target.url}/echo`, {
      method: 'POST',
      body,
      dispatcher: new ProxyAgent({ uri: client.url, proxyTunnel: false }),
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({
      bytes: body.length,
      sha256: sha256(body),
    });
  });

  it('passes status, reason and headers through; two Set-Cookie stay two', async () => {
    const res = await viaProxy(
      client.url,
      `${target.url}/status/418?reason=Custom%20Reason`,
    );
    expect(res.status).toBe(418);
    expect(res.body.toString()).toBe('status 418\n');
    expect(header(res.rawHeaders, 'x-target')).toEqual(['yes']);
    const cookies = await viaProxy(client.url, `${target.url}/cookies`);
    expect(header(cookies.rawHeaders, 'set-cookie')).toEqual([
      'session=abc; Path=/; HttpOnly',
      'theme=dark; Path=/',
    ]);
  });

  it('answers HEAD and 204 without a body', async () => {
    const head = await viaProxy(client.url, `${target.url}/bytes?size=5000`, {
      method: 'HEAD',
    });
    expect([head.status, head.body.length]).toEqual([200, 0]);
    expect(header(head.rawHeaders, 'content-length')).toEqual(['5000']);
    expect(target.seen.at(-1)?.method).toBe('HEAD');
    const empty = await viaProxy(client.url, `${target.url}/status/204`);
    expect([empty.status, empty.body.length, empty.complete]).toEqual([
      204,
      0,
      true,
    ]);
  });

  it('passes the server verdict target_unreachable on as 502 with its message', async () => {
    const res = await viaProxy(
      client.url,
      `http://127.0.0.1:${await closedPort()}/`,
    );
    expect(res.status).toBe(502);
    expect(errorOf(res).error).toBe('target_unreachable');
    expect(errorOf(res).message).toMatch(/ECONNREFUSED/);
  });

  it.each([
    ['closes (Connection: close)', undefined],
    ['stays open (keep-alive)', new http.Agent({ keepAlive: true })],
  ])(
    'refuses a Content-Length over MAX_BODY_SIZE with 413 before any gateway call, on a connection that %s',
    async (_label, agent) => {
      const before = meter.calls.length;
      const size = 8 * 1024 * KiB;
      const res = await viaProxy(client.url, `${target.url}/echo`, {
        method: 'POST',
        body: Buffer.alloc(size),
        agent,
      });
      agent?.destroy();
      expect(res.status).toBe(413);
      // the application got its answer, not a reset while it was still sending
      expect(res.requestError).toBeUndefined();
      expect(errorOf(res)).toEqual({
        error: 'body_too_large',
        message: `The request body (${size} bytes) is larger than this proxy's MAX_BODY_SIZE of 1048576 bytes.`,
      });
      // (a release of an earlier exchange may still arrive)
      expect(
        meter.calls.slice(before).filter((c) => c.method !== 'DELETE'),
      ).toEqual([]);
    },
  );

  it('refuses a chunked upload with 413 as it passes MAX_BODY_SIZE, and releases the connection', async () => {
    const before = meter.calls.length;
    const pieces = Array.from({ length: 40 }, () => Buffer.alloc(32 * KiB, 3)); // 1.25 MiB
    const res = await viaProxy(client.url, `${target.url}/echo`, {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: pieces,
    });
    expect(res.status).toBe(413);
    expect(res.requestError).toBeUndefined();
    expect(errorOf(res).error).toBe('body_too_large');
    expect(errorOf(res).message).toMatch(/MAX_BODY_SIZE of 1048576 bytes/);
    const calls = meter.calls.slice(before);
    expect(
      calls.filter((c) => c.path === '/proxy/chunk').length,
    ).toBeLessThanOrEqual(16);
    await eventually(() =>
      meter.calls
        .slice(before)
        .some((c) => c.method === 'DELETE' && c.status === 204),
    );
    // nothing reached the target
    expect(calls.every((c) => c.headers['x-chunk-final'] !== 'true')).toBe(
      true,
    );
  });

  // (A CONNECT without a port: test/tunnel.e2e-spec.ts asserts its exact 400.)
  it('answers an origin-form request with 400 saying how to use the proxy', async () => {
    const res = await fetch(`${client.url}/some/path`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: 'bad_proxy_request',
      message: `This is an HTTP proxy: send absolute-form requests (curl -x ${client.url} http://target/...), not "GET /some/path".`,
    });
  });

  it('logs each gateway call at debug and one access line per request, never secrets', async () => {
    logs.length = 0;
    await viaProxy(
      client.url,
      `${target.url.replace('http://', 'http://user:pw@')}/echo?log=1`,
      {
        headers: {
          cookie: 'secret-cookie=1',
          authorization: 'Bearer secret-token',
        },
      },
    );
    // (an earlier exchange's access line may come in late: find this one's)
    const mine = (l: (typeof logs)[number]) =>
      l.context === 'Access' && l.message.includes('/echo?log=1');
    await eventually(() => logs.some(mine));
    const debug = logs
      .filter((l) => l.level === 'debug' && l.context === 'GatewayClient')
      .map((l) => l.message);
    expect(debug).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^POST \/prod\/proxy\/connection 201 \d+ms attempt 1\/6$/,
        ),
        expect.stringMatching(
          /^GET \/prod\/proxy\/response 200 \d+ms attempt 1\/6$/,
        ),
      ]),
    );
    const access = logs.find(mine)!;
    expect(access.level).toBe('log');
    expect(access.message).toMatch(
      new RegExp(
        `^GET http://127\\.0\\.0\\.1:${target.port}/echo\\?log=1 200 up=0B down=\\d+B chunks=1/1 calls=3 \\d+ms$`,
      ),
    );
    const all = logs.map((l) => l.message).join('\n');
    for (const secret of [
      'AWS4-HMAC',
      'secret-cookie',
      'secret-token',
      'pw@',
      KEY.secretAccessKey,
    ])
      expect(all).not.toContain(secret);
  });

  it('answers 502 explaining CHUNK_SIZE when the gateway refuses a chunk as too large, and releases the connection', async () => {
    const big = await startClient(meter, { CHUNK_SIZE: String(100 * KiB) });
    const before = meter.calls.length;
    const res = await viaProxy(big.url, `${target.url}/echo`, {
      method: 'POST',
      body: Buffer.alloc(150 * KiB),
    });
    expect(res.status).toBe(502);
    expect(errorOf(res).error).toBe('chunk_too_large');
    expect(errorOf(res).message).toMatch(
      /^The API Gateway refused a chunk of 102400 bytes as larger than it allows \(413: Request Entity Too Large\): lower CHUNK_SIZE/,
    );
    // A chunk that failed for good abandons the exchange: DELETE.
    await eventually(() =>
      meter.calls
        .slice(before)
        .some((c) => c.method === 'DELETE' && c.status === 204),
    );
  });

  it('answers 502 gateway_auth_failed when the gateway refuses the signature', async () => {
    // A gateway that holds another secret for KEY than the one the client signs with.
    const strict = await startGateway({
      GATEWAY_CREDENTIALS: `${KEY.accessKeyId}:another-secret`,
    });
    const wrong = await startClient(undefined, {
      API_GATEWAY_URL: `${strict.url}/${STAGE}`,
    });
    const res = await viaProxy(wrong.url, `${target.url}/echo`);
    expect(res.status).toBe(502);
    expect(errorOf(res)).toEqual({
      error: 'gateway_auth_failed',
      message: `The API Gateway refused the request signature (403: ${SIGNATURE_MISMATCH}): check AWS credentials, AWS_REGION and API_GATEWAY_URL`,
    });
    const stats = await statsOf(strict);
    expect([stats.total, stats.faults.total]).toEqual([1, 0]); // not retried
  });
});

describe('proxy-client when things fail', () => {
  it('falls back to the separate calls, for good, when proxy-server predates POST /proxy/exchange', async () => {
    const old = await startOldServer();
    const oldGateway = await startGateway({}, old.url);
    const client = await startClient(undefined, {
      API_GATEWAY_URL: `${oldGateway.url}/${STAGE}`,
      COMBINED_CALL: 'true',
    });
    logs.length = 0;
    const body = randomBytes(3000);
    for (let i = 0; i < 2; i++) {
      const res = await viaProxy(client.url, `${target.url}/echo`, {
        method: 'POST',
        body,
      });
      expect(JSON.parse(res.body.toString())).toMatchObject({
        bytes: body.length,
        sha256: sha256(body),
      });
    }
    expect(old.seen.map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual([
      'POST /proxy/exchange 404',
      'POST /proxy/connection 201',
      'POST /proxy/chunk 200',
      'GET /proxy/response 200',
      'POST /proxy/connection 201',
      'POST /proxy/chunk 200',
      'GET /proxy/response 200',
    ]);
    expect(
      logs.filter((l) =>
        l.message.includes('does not know POST /proxy/exchange'),
      ),
    ).toHaveLength(1);
  });

  it('answers 502 upstream_unavailable naming the cause and URL when the gateway is unreachable', async () => {
    const port = await closedPort();
    const client = await startClient(undefined, {
      API_GATEWAY_URL: `http://127.0.0.1:${port}/prod`,
      GATEWAY_MAX_RETRIES: '1',
    });
    const res = await viaProxy(client.url, `${target.url}/echo`);
    expect(res.status).toBe(502);
    expect(errorOf(res).error).toBe('upstream_unavailable');
    expect(errorOf(res).message).toMatch(
      new RegExp(
        `^Could not reach the API Gateway: .*ECONNREFUSED.* calling http://127\\.0\\.0\\.1:${port}/prod/proxy/connection \\(2 attempts\\)`,
      ),
    );
  });

  it('retries gateway 503s and lost answers; a 409 on a retried create means created', async () => {
    // The first two response reads go to a gateway that answers every call
    // 503 itself; the answers of the create and of chunk 1's first send are
    // lost after the server acted on them.
    const faulty = await startGateway({
      GATEWAY_FAULT_RATE: '1',
      GATEWAY_FAULT_KINDS: '503',
    });
    let refused = 0;
    let chunkOneSeen = 0;
    const meter = await startMeter({
      route: (call) =>
        call.path === '/proxy/response' && refused++ < 2
          ? faulty.url
          : undefined,
      loseAnswer: (call) =>
        call.n === 1 ||
        (call.path === '/proxy/chunk' &&
          call.headers['x-chunk-index'] === '1' &&
          ++chunkOneSeen === 1),
    });
    const client = await startClient(meter, { CHUNK_SIZE: String(4 * KiB) });
    const body = randomBytes(10 * KiB);
    const res = await viaProxy(client.url, `${target.url}/echo`, {
      method: 'POST',
      body,
    });
    expect(res.status, res.body.toString()).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({
      bytes: body.length,
      sha256: sha256(body),
    });
    const trace = traceOf(meter.calls);
    expect(trace.slice(0, 2)).toEqual([
      'POST /proxy/connection  lost',
      'POST /proxy/connection  409',
    ]);
    expect(trace.filter((t) => t.startsWith('POST /proxy/chunk 1 '))).toEqual([
      'POST /proxy/chunk 1 lost',
      'POST /proxy/chunk 1 200',
    ]);
    expect(
      trace.filter((t) => t.startsWith('GET /proxy/response 0 503')),
    ).toHaveLength(2);
    expect((await statsOf(faulty)).faults).toMatchObject({
      total: 2,
      by_kind: { '503': 2 },
    });
    expect(target.seen.filter((s) => s.sha256 === sha256(body))).toHaveLength(
      1,
    );
  });

  it('asks again after 202 while the target is slow', async () => {
    const slow = await startOwnTarget((_req, res) =>
      setTimeout(() => res.end('late'), 1400),
    );
    const meter = await startMeter();
    const client = await startClient(meter);
    const res = await viaProxy(client.url, `${slow}/`);
    expect([res.status, res.body.toString()]).toEqual([200, 'late']);
    expect(
      meter.calls.filter(
        (c) => c.path === '/proxy/response' && c.status === 202,
      ).length,
    ).toBeGreaterThanOrEqual(2);
  });

  it('answers 504 when nothing progresses for REQUEST_TIMEOUT_MS, and releases', async () => {
    const meter = await startMeter();
    const client = await startClient(meter, { REQUEST_TIMEOUT_MS: '1000' });
    const res = await viaProxy(client.url, `${target.url}/hang`);
    expect(res.status).toBe(504);
    expect(errorOf(res).error).toBe('gateway_timeout');
    expect(errorOf(res).message).toMatch(/REQUEST_TIMEOUT_MS/);
    await eventually(() =>
      meter.calls.some((c) => c.method === 'DELETE' && c.status === 204),
    );
  });

  it.each([
    [
      'with Content-Length',
      async () => `${target.url}/break?after=${40 * KiB}`,
    ],
    [
      'chunked',
      () =>
        startOwnTarget((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.write(Buffer.alloc(40 * KiB, 1), () => res.destroy());
        }),
    ],
  ])(
    'cuts the application off, never ends it cleanly, when the response breaks after the head (%s)',
    async (_label, breaking) => {
      // The target sends 40 KiB and drops the connection: the server serves
      // the two 16 KiB chunks it sealed and answers chunk 2 with 502.
      const url = await breaking();
      const meter = await startMeter();
      const client = await startClient(meter, {
        CHUNK_SIZE: String(16 * KiB),
      });
      const res = await viaProxy(client.url, url);
      expect(res.status).toBe(200);
      expect(res.complete).toBe(false);
      expect(res.body.length).toBe(32 * KiB);
      expect(
        traceOf(meter.calls).filter((t) => t.startsWith('GET /proxy/response')),
      ).toContain('GET /proxy/response 2 502');
    },
  );

  it('stops and releases the server connection when the application goes away', async () => {
    const meter = await startMeter();
    const client = await startClient(meter, { CHUNK_SIZE: String(16 * KiB) });
    await viaProxy(client.url, `${target.url}/bytes?size=${4096 * KiB}`, {
      onResponse: (res) => res.destroy(),
    });
    await eventually(() =>
      meter.calls.some((c) => c.method === 'DELETE' && c.status === 204),
    );
    const reads = meter.calls.filter(
      (c) => c.path === '/proxy/response',
    ).length;
    expect(reads).toBeLessThan(64); // far from the 256 chunks of the whole body
  });

  it('on shutdown answers running exchanges 503 and releases them before the pool closes', async () => {
    const meter = await startMeter();
    const client = await startClient(meter);
    const pending = viaProxy(client.url, `${target.url}/hang?shutdown=1`);
    await eventually(() =>
      meter.calls.some((c) => c.path === '/proxy/response'),
    );
    // What Nest's shutdown hooks run on SIGTERM, before the transport closes.
    await client.app.get(RelayService).beforeApplicationShutdown();
    const res = await pending;
    expect(res.status).toBe(503);
    expect(errorOf(res)).toEqual({
      error: 'upstream_unavailable',
      message: 'proxy-client is shutting down: send the request again.',
    });
    expect(
      meter.calls.some((c) => c.method === 'DELETE' && c.status === 204),
    ).toBe(true);
    const late = await viaProxy(client.url, `${target.url}/echo`);
    expect(late.status).toBe(503);
  });

  it('stops uploading and releases when the application goes away mid-body', async () => {
    const meter = await startMeter();
    const client = await startClient(meter, { CHUNK_SIZE: String(16 * KiB) });
    const proxy = new URL(client.url);
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port,
      method: 'PUT',
      path: `${target.url}/echo?gone=1`,
      headers: { 'transfer-encoding': 'chunked' },
      agent: false,
    });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(40 * KiB, 1));
    await eventually(() =>
      meter.calls.some((c) => c.path === '/proxy/chunk' && c.status === 200),
    );
    req.destroy();
    await eventually(() =>
      meter.calls.some((c) => c.method === 'DELETE' && c.status === 204),
    );
    const chunks = meter.calls.filter((c) => c.path === '/proxy/chunk');
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.every((c) => c.headers['x-chunk-final'] === 'false')).toBe(
      true,
    );
    expect(target.seen.filter((r) => r.url === '/echo?gone=1')).toEqual([]);
  });
});
