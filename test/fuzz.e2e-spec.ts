import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ErrorCode } from '@app/protocol';
import { startSystem } from './support/chain.js';
import { viaNodeHttp } from './support/clients.js';
import {
  headerOf,
  parseResponses,
  rawSend,
  type RawOutcome,
  type RawResponse,
} from './support/raw-http.js';
import { sha256 } from './support/target.js';

/*
 * Property-based tests: generated garbage at every proxy-server endpoint
 * (called directly, as a broken or hostile caller behind the gateway would)
 * and at the proxy-client listener over raw TCP. Whatever arrives, the
 * answer is a well-formed HTTP response, never a 500; an error is JSON
 * {error, message} with a known code; the processes keep serving; and the
 * server keeps nothing once its TTL has passed (spool empty, memory flat).
 */

const RUNS = 200;
const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));
/** Node's own answer to a request its parser rejects (the server has no clientError handler). */
const NODE_BARE_400 = (r: RawResponse) =>
  r.status === 400 &&
  r.body.length === 0 &&
  /close/i.test(headerOf(r, 'connection') ?? '');

/** 5xx that report a target, the gateway or a full disk, never a bug: 502, 503, 504, 507. */
const UPSTREAM_STATUSES = new Set([502, 503, 504, 507]);

type Pairs = Array<[string, string]>;

/** Statuses answered during the current property (`closed`: no answer), logged after it: what the garbage reached. */
const answered = new Map<string, number>();
function tally(key: string): void {
  answered.set(key, (answered.get(key) ?? 0) + 1);
}
afterEach((context) => {
  if (answered.size === 0) return;
  const counts = [...answered.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, n]) => `${key}×${n}`);
  console.log(`${context.task.name}: ${counts.join(' ')}`);
  answered.clear();
});

// --- arbitraries ------------------------------------------------------------

/** Visible ASCII and space: what a header value may hold. */
const printable = (maxLength = 40) =>
  fc.string({
    unit: fc.mapToConstant({
      num: 95,
      build: (v) => String.fromCharCode(0x20 + v),
    }),
    maxLength,
  });

const tokenChars = fc.constantFrom(
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
);
const token = fc.string({ unit: tokenChars, minLength: 1, maxLength: 16 });

/** Values for numeric headers: fine, negative, huge, not numbers at all. */
const numberish = fc.oneof(
  { weight: 3, arbitrary: fc.nat(5).map(String) },
  fc.nat().map(String),
  fc.integer({ min: -1_000_000, max: -1 }).map(String),
  fc.constantFrom(
    '',
    ' ',
    '00',
    '1e3',
    '0x10',
    '1.5',
    '-0',
    'NaN',
    'Infinity',
    '999999999',
    '1000000000',
    '99999999999999999999999999',
    '1,2',
    'true',
  ),
  printable(12),
);

const booleanish = fc.oneof(
  fc.constantFrom('true', 'false', 'TRUE', ' true ', '1', 'yes', ''),
  printable(8),
);

/**
 * A JSON field: mostly a plausible value, sometimes any JSON at all or
 * absent (`undefined` leaves it out of the JSON), so that most heads are
 * wrong in one or two places and some are right.
 */
const field = <T>(plausible: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: 14, arbitrary: plausible as fc.Arbitrary<unknown> },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

const sizeish = fc.oneof(
  { weight: 4, arbitrary: fc.nat(3000) },
  fc.integer({ min: -1_000_000, max: -1 }),
  fc.constantFrom(
    null,
    0.5,
    -0,
    1e300,
    2 ** 53,
    5 * 1024 ** 3 + 1,
    1024,
    10 * 1024 * 1024 + 1,
  ),
);

function arbitraries(targetPort: number) {
  const host = fc.oneof(
    { weight: 4, arbitrary: fc.constant('127.0.0.1') },
    fc.constantFrom(
      'localhost',
      '[::1]',
      '::1',
      '169.254.169.254',
      '10.1.2.3',
      'example.invalid',
      '',
      'a b',
      '127.0.0.1:80',
      'http://127.0.0.1',
    ),
  );
  const port = fc.oneof(
    { weight: 4, arbitrary: fc.constant(targetPort) },
    fc.integer({ min: -5, max: 70_000 }),
    fc.constantFrom(443, 0, 65536, 1.5, 1e308),
  );
  const garbledConnection = {
    connection_id: field(fc.uuid()),
    target_host: field(host),
    port: field(port),
    scheme: field(fc.constantFrom('http', 'https', 'ftp', 'HTTP')),
    method: field(
      fc.constantFrom(
        'GET',
        'POST',
        'PUT',
        'HEAD',
        'CONNECT',
        'get',
        'G T',
        '',
      ),
    ),
    path: field(
      fc.oneof(
        fc.constant('/echo'),
        printable().map((s) => `/echo?${s}`),
        printable(),
      ),
    ),
    headers: field(
      fc.oneof(
        fc.dictionary(
          token,
          fc.oneof(printable(), fc.array(printable(), { maxLength: 3 })),
          {
            maxKeys: 5,
          },
        ),
        fc.array(fc.tuple(token, printable()), { maxLength: 3 }),
      ),
    ),
    body_size: field(sizeish),
    response_chunk_size: field(sizeish),
    download_window: field(
      fc.oneof(fc.integer({ min: -2, max: 100 }), fc.constant(1e9)),
    ),
  };
  const garbledTunnel = {
    tunnel_id: field(fc.uuid()),
    target_host: field(host),
    port: field(port),
    segment_size: field(sizeish),
  };
  /**
   * A head that is right but for up to three fields, each replaced by a
   * generated value: most heads are near misses, some are valid.
   */
  const nearMiss = <K extends string>(
    valid: fc.Arbitrary<Record<K, unknown>>,
    garbled: Record<K, fc.Arbitrary<unknown>>,
  ) =>
    fc
      .tuple(
        valid,
        fc.record(garbled),
        fc.subarray(Object.keys(garbled) as K[], { maxLength: 3 }),
      )
      .map(([head, values, keys]) => {
        const mixed: Record<string, unknown> = { ...head };
        const generated = values as Record<K, unknown>;
        for (const key of keys) mixed[key] = generated[key];
        return mixed;
      });
  const connectionHead = nearMiss(
    fc.record({
      connection_id: fc.uuid() as fc.Arbitrary<unknown>,
      target_host: fc.constant('127.0.0.1'),
      port: fc.constant(targetPort),
      scheme: fc.constant('http'),
      method: fc.constantFrom('GET', 'POST', 'PUT'),
      path: fc.constant('/echo'),
      headers: fc.constant({ 'x-fuzz': 'yes' }),
      body_size: fc.option(fc.nat(3000), { nil: null }),
      response_chunk_size: fc.integer({ min: 1024, max: 1024 * 1024 }),
      download_window: fc.integer({ min: 1, max: 8 }),
    }),
    garbledConnection,
  );
  const tunnelHead = nearMiss(
    fc.record({
      tunnel_id: fc.uuid() as fc.Arbitrary<unknown>,
      target_host: fc.constant('127.0.0.1'),
      port: fc.constant(443),
      segment_size: fc.integer({ min: 1024, max: 1024 * 1024 }),
    }),
    garbledTunnel,
  );
  /** A connection head the server accepts: forwarded to the target's /echo once complete. */
  const validHead = (bodySize: number | null) => ({
    connection_id: randomUUID(),
    target_host: '127.0.0.1',
    port: targetPort,
    method: 'POST',
    path: '/echo',
    headers: { 'x-fuzz': 'yes' },
    body_size: bodySize,
  });
  return { connectionHead, tunnelHead, validHead };
}

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/octet-stream',
  'text/plain',
  undefined,
);

// --- raw calls and what every answer must be --------------------------------

/** The bytes of one HTTP/1.1 request; `declaredLength` overrides Content-Length (a body cut short). */
function requestBytes(
  method: string,
  path: string,
  headers: Pairs,
  body: Uint8Array,
  declaredLength?: number,
): Buffer {
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: fuzz\r\n` +
    headers.map(([n, v]) => `${n}: ${v}\r\n`).join('') +
    `Content-Length: ${declaredLength ?? body.length}\r\n` +
    'Connection: close\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * Checks one raw exchange and returns its responses: well-formed, no 500,
 * every error a JSON {error, message} with a known code. Where the input
 * was cut short or unparsable, a close without answer is accepted
 * (`mayClose`), and on the server Node's own bare 400 (`nodeBare400`: the
 * server's parser rejected the input before the app saw it).
 */
function checkAnswer(
  outcome: RawOutcome,
  what: string,
  options: {
    mayClose?: boolean;
    nodeBare400?: boolean;
    headRequest?: boolean;
  } = {},
): RawResponse[] {
  let responses: RawResponse[];
  try {
    responses = parseResponses(outcome.data, {
      closed: outcome.closed,
      headRequest: options.headRequest,
    });
  } catch (error) {
    throw new Error(
      `${what}: not a well-formed HTTP answer (${(error as Error).message})`,
    );
  }
  if (responses.length === 0) tally('closed');
  for (const response of responses) tally(String(response.status));
  if (responses.length === 0 && !(options.mayClose && outcome.closed)) {
    throw new Error(`${what}: no answer (closed: ${outcome.closed})`);
  }
  for (const response of responses) {
    if (response.status >= 500 && !UPSTREAM_STATUSES.has(response.status)) {
      throw new Error(
        `${what}: answered ${response.status} ${response.body.toString()}`,
      );
    }
    if (response.status < 400) continue;
    if (options.nodeBare400 && NODE_BARE_400(response)) continue;
    if (options.headRequest && response.body.length === 0) continue;
    const type = headerOf(response, 'content-type') ?? '';
    let body: { error?: unknown; message?: unknown };
    try {
      if (!type.startsWith('application/json'))
        throw new Error(`Content-Type ${type}`);
      body = JSON.parse(response.body.toString('utf8')) as typeof body;
    } catch (error) {
      throw new Error(
        `${what}: ${response.status} without a JSON body (${(error as Error).message}): ${response.body.toString().slice(0, 200)}`,
      );
    }
    if (
      typeof body.error !== 'string' ||
      !KNOWN_CODES.has(body.error) ||
      typeof body.message !== 'string' ||
      body.message.length === 0
    ) {
      throw new Error(
        `${what}: ${response.status} with body ${response.body.toString().slice(0, 200)}`,
      );
    }
  }
  return responses;
}

/** Every file below `dir`, recursively. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await filesBelow(path)));
    else files.push(path);
  }
  return files;
}

/** Resident set size of a process now (VmRSS), in MiB. */
function rssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

describe('generated garbage', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  let spoolDir: string;
  let serverPort: number;
  let arb: ReturnType<typeof arbitraries>;
  const rssAtStart = { server: 0, client: 0 };

  beforeAll(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'chunkgate-fuzz-spool-'));
    system = await startSystem({
      server: {
        SPOOL_DIR: spoolDir,
        // Every body byte goes through the spool: its files must all go.
        SPOOL_THRESHOLD_BYTES: '0',
        CONNECTION_TTL_MS: '1000',
        CLEANUP_INTERVAL_MS: '100',
        FINISHED_LINGER_MS: '200',
        RESPONSE_WAIT_MS: '50',
        TUNNEL_WAIT_MS: '50',
        TARGET_TIMEOUT_MS: '3000',
        TUNNEL_CONNECT_TIMEOUT_MS: '2000',
        // Only loopback targets: generated hosts never leave the machine.
        TARGET_ALLOW_CIDRS: '127.0.0.0/8,::1/128',
      },
    });
    serverPort = system.chain.server.port;
    arb = arbitraries(system.target.port);
    await expectServing(); // warm up before the first memory sample
    rssAtStart.server = rssMiB(system.chain.server.child.pid);
    rssAtStart.client = rssMiB(system.chain.client.child.pid);
  });
  afterAll(async () => {
    await system?.stop();
    await rm(spoolDir, { recursive: true, force: true });
  });

  /** Every process is alive and a normal request goes through the whole chain. */
  async function expectServing(): Promise<void> {
    for (const app of [
      system.chain.server,
      system.chain.gateway,
      system.chain.client,
    ]) {
      expect(app.child.exitCode, `${app.app} exited`).toBeNull();
      expect(app.child.signalCode, `${app.app} was killed`).toBeNull();
    }
    const body = Buffer.from(`still serving ${randomUUID()}`);
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      {
        method: 'POST',
        body,
      },
    );
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body.toString()) as { sha256: string }).sha256).toBe(
      sha256(body),
    );
  }

  /**
   * Waits until no file is left in SPOOL_DIR: what the properties left
   * behind is released or expires after CONNECTION_TTL_MS (1 s here).
   */
  async function expectSpoolEmpties(): Promise<void> {
    const deadline = Date.now() + 5_000;
    let left = await filesBelow(spoolDir);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await filesBelow(spoolDir);
    }
    expect(left, 'spool files left after CONNECTION_TTL_MS').toEqual([]);
  }

  /** One raw call to the server, checked. */
  async function server(
    method: string,
    path: string,
    headers: Pairs,
    body: Uint8Array = new Uint8Array(),
  ): Promise<RawResponse[]> {
    const outcome = await rawSend(
      serverPort,
      requestBytes(method, path, headers, body),
      {
        timeoutMs: 5000,
      },
    );
    return checkAnswer(outcome, `${method} ${path} ${JSON.stringify(headers)}`);
  }

  /** Opens a valid connection and returns its id. */
  async function openConnection(bodySize: number | null): Promise<string> {
    const head = arb.validHead(bodySize);
    const [answer] = await server(
      'POST',
      '/proxy/connection',
      [['Content-Type', 'application/json']],
      Buffer.from(JSON.stringify(head)),
    );
    expect(answer.status).toBe(201);
    return head.connection_id;
  }

  /** Frees a connection the run may have left (204, or 404 when already gone). */
  async function release(id: unknown): Promise<void> {
    if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/i.test(id)) return;
    const [answer] = await server('DELETE', '/proxy/connection', [
      ['X-Connection-ID', id],
    ]);
    expect([204, 404]).toContain(answer.status);
  }

  it('POST /proxy/connection and /proxy/tunnel: any JSON, wrong types, negative and enormous sizes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/proxy/connection', '/proxy/tunnel'),
        fc.oneof(
          { weight: 4, arbitrary: fc.constant('head') },
          fc.constant('json'),
          fc.constant('text'),
        ),
        arb.connectionHead,
        arb.tunnelHead,
        fc.jsonValue({ maxDepth: 3 }),
        fc.string({ maxLength: 80 }),
        contentType,
        async (path, kind, connection, tunnel, json, text, type) => {
          const body =
            kind === 'head'
              ? JSON.stringify(path === '/proxy/tunnel' ? tunnel : connection)
              : kind === 'json'
                ? JSON.stringify(json)
                : text;
          const headers: Pairs = type ? [['Content-Type', type]] : [];
          const [answer] = await server(
            'POST',
            path,
            headers,
            Buffer.from(body, 'utf8'),
          );
          if (answer.status === 201 && path === '/proxy/connection') {
            await release(connection.connection_id);
          }
          if (answer.status === 201 && path === '/proxy/tunnel') {
            const [closed] = await server('DELETE', '/proxy/tunnel', [
              ['X-Tunnel-ID', String(tunnel.tunnel_id)],
            ]);
            expect([204, 404]).toContain(closed.status);
          }
        },
      ),
      { numRuns: RUNS },
    );
    await expectSpoolEmpties();
    await expectServing();
  });

  it('chunk, response, release and tunnel calls with random ids, indexes, flags and bodies', async () => {
    const endpoint = fc.constantFrom(
      ['POST', '/proxy/chunk'],
      ['GET', '/proxy/response'],
      ['DELETE', '/proxy/connection'],
      ['POST', '/proxy/tunnel/send'],
      ['GET', '/proxy/tunnel/receive'],
      ['DELETE', '/proxy/tunnel'],
      ['PUT', '/proxy/chunk'],
      ['GET', '/proxy/chunk'],
      ['POST', '/proxy/response'],
      ['GET', '/proxy/nothing'],
    );
    const call = fc.record({
      endpoint,
      id: fc.oneof(
        { weight: 4, arbitrary: fc.constant('known') },
        fc.uuid(),
        printable(40),
        fc.constant(undefined),
      ),
      index: fc.option(numberish, { nil: undefined }),
      final: fc.option(booleanish, { nil: undefined }),
      body: fc.uint8Array({ maxLength: 2048 }),
      /** The id header sent twice, the second a fresh UUID. */
      twice: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constant(null), fc.nat(4096)),
        fc.array(call, { minLength: 1, maxLength: 6 }),
        async (bodySize, calls) => {
          const known = await openConnection(bodySize);
          for (const c of calls) {
            const [method, path] = c.endpoint;
            const id = c.id === 'known' ? known : c.id;
            const headers: Pairs = [];
            for (const name of ['X-Connection-ID', 'X-Tunnel-ID']) {
              if (id !== undefined) headers.push([name, id]);
              if (c.twice) headers.push([name, randomUUID()]);
            }
            if (c.index !== undefined) {
              headers.push(['X-Chunk-Index', c.index], ['X-Sequence', c.index]);
            }
            if (c.final !== undefined) {
              headers.push(
                ['X-Chunk-Final', c.final],
                ['X-Tunnel-Close', c.final],
              );
            }
            await server(
              method,
              path,
              headers,
              method === 'POST' ? c.body : undefined,
            );
          }
          await release(known);
        },
      ),
      { numRuns: RUNS },
    );
    await expectSpoolEmpties();
    await expectServing();
  });

  it('POST /proxy/exchange: X-Head-Length and the head/body framing garbled', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          { weight: 2, arbitrary: fc.constant('valid') },
          fc.constant('generated'),
          fc.constant('text'),
        ),
        arb.connectionHead,
        fc.string({ maxLength: 60 }),
        fc.oneof(
          { weight: 4, arbitrary: fc.constant('exact') },
          {
            weight: 3,
            arbitrary: fc.constantFrom('exact+1', 'exact-1', 'all', 'none'),
          },
          numberish,
        ),
        fc.uint8Array({ maxLength: 2048 }),
        fc.option(
          fc.oneof({ weight: 3, arbitrary: fc.constant('true') }, booleanish),
          { nil: undefined },
        ),
        fc.option(
          fc.oneof(
            { weight: 3, arbitrary: fc.constant(0) },
            fc.integer({ min: -10, max: 10 }),
          ),
          { nil: undefined },
        ),
        async (kind, generated, text, headLength, rest, final, sizeSkew) => {
          const head =
            kind === 'valid'
              ? arb.validHead(
                  sizeSkew === undefined
                    ? null
                    : Math.max(0, rest.length + sizeSkew),
                )
              : kind === 'generated'
                ? generated
                : text;
          const json = Buffer.from(
            typeof head === 'string' ? head : JSON.stringify(head),
            'utf8',
          );
          const lengths: Record<string, string | undefined> = {
            exact: String(json.length),
            'exact+1': String(json.length + 1),
            'exact-1': String(json.length - 1),
            all: String(json.length + rest.length + 1),
            none: undefined,
          };
          const declared =
            headLength in lengths ? lengths[headLength] : headLength;
          const headers: Pairs = [['Content-Type', 'application/octet-stream']];
          if (declared !== undefined) headers.push(['X-Head-Length', declared]);
          if (final !== undefined) headers.push(['X-Chunk-Final', final]);
          await server(
            'POST',
            '/proxy/exchange',
            headers,
            Buffer.concat([json, rest]),
          );
          if (typeof head === 'object' && head !== null) {
            await release((head as { connection_id?: unknown }).connection_id);
          }
        },
      ),
      { numRuns: RUNS },
    );
    await expectSpoolEmpties();
    await expectServing();
  });

  it('bodies cut short: a Content-Length larger than the bytes sent, then the connection closed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          '/proxy/connection',
          '/proxy/chunk',
          '/proxy/exchange',
          '/proxy/tunnel',
          '/proxy/tunnel/send',
        ),
        fc.boolean(),
        fc.uint8Array({ maxLength: 4096 }),
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.option(booleanish, { nil: undefined }),
        async (path, onKnown, sent, missing, final) => {
          const known = await openConnection(
            onKnown ? null : sent.length + missing,
          );
          const id = onKnown ? known : randomUUID();
          const headers: Pairs = [
            ['X-Connection-ID', id],
            ['X-Tunnel-ID', id],
            ['X-Chunk-Index', '0'],
            ['X-Sequence', '0'],
            ['X-Head-Length', String(Math.min(sent.length, 10))],
          ];
          if (final !== undefined) headers.push(['X-Chunk-Final', final]);
          if (path.endsWith('connection') || path.endsWith('tunnel')) {
            headers.push(['Content-Type', 'application/json']);
          }
          const outcome = await rawSend(
            serverPort,
            requestBytes('POST', path, headers, sent, sent.length + missing),
            { halfClose: true, timeoutMs: 5000 },
          );
          checkAnswer(outcome, `POST ${path} cut short`, {
            mayClose: true,
            nodeBare400: true,
          });
          await release(known);
        },
      ),
      { numRuns: RUNS },
    );
    await expectSpoolEmpties();
    await expectServing();
  });

  it('the client listener over raw TCP: bad request lines, URIs, headers, lengths and bodies', async () => {
    const targetHostPort = `127.0.0.1:${system.target.port}`;
    const method = fc.oneof(
      {
        weight: 12,
        arbitrary: fc.constantFrom(
          'GET',
          'POST',
          'PUT',
          'DELETE',
          'HEAD',
          'OPTIONS',
          'PATCH',
          'CONNECT',
        ),
      },
      token,
      printable(12),
    );
    const uri = fc.oneof(
      {
        weight: 12,
        arbitrary: printable(30).map(
          (q) => `http://${targetHostPort}/echo?${encodeURIComponent(q)}`,
        ),
      },
      fc.constantFrom(
        '*',
        '/',
        '/relative/path',
        'http://',
        'http:///x',
        'http://[::1',
        'http://a:99999/',
        'http://a:-1/',
        'ftp://127.0.0.1/',
        'https://127.0.0.1/',
        `http://user:pw@${targetHostPort}/echo`,
        'http://%zz/',
        `http://${targetHostPort}/echo?a=%`,
        `http://${targetHostPort}/echo#frag`,
        'http://169.254.169.254/latest/meta-data/',
        'http://10.1.2.3:1/',
        `${targetHostPort}`,
        '127.0.0.1:443',
        '[::1]:443',
        ':443',
        'x:',
        'example.invalid:443',
      ),
      printable(60),
      fc
        .uint8Array({ minLength: 1, maxLength: 40 })
        .map((b) => Buffer.from(b).toString('latin1')),
    );
    const version = fc.oneof(
      { weight: 20, arbitrary: fc.constant('HTTP/1.1') },
      fc.constantFrom(
        'HTTP/1.0',
        'HTTP/2.0',
        'HTTP/1.2',
        'HTTP/1',
        'http/1.1',
        'HTTP/1.1 x',
        '',
      ),
    );
    const headerValue = fc.oneof(
      { weight: 12, arbitrary: printable(40) },
      fc
        .uint8Array({ maxLength: 20 })
        .map((b) => Buffer.from(b).toString('latin1')),
    );
    const headers = fc.array(
      fc.tuple(
        fc.oneof({ weight: 20, arbitrary: token }, printable(10)),
        headerValue,
      ),
      { maxLength: 8 },
    );
    const framing = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({ kind: fc.constant('none' as const) }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('length' as const),
          body: fc.uint8Array({ maxLength: 2048 }),
        }),
      },
      fc.record({
        kind: fc.constant('short' as const),
        body: fc.uint8Array({ maxLength: 2048 }),
        missing: fc.integer({ min: 1, max: 1_000_000 }),
      }),
      fc.record({
        kind: fc.constant('bad-length' as const),
        value: fc.oneof(
          fc.constantFrom(
            '-1',
            'abc',
            '1e3',
            '0x10',
            '99999999999999999999',
            '1, 2',
            '',
            '+5',
          ),
          printable(10),
        ),
        body: fc.uint8Array({ maxLength: 64 }),
      }),
      fc.record({
        kind: fc.constant('two-lengths' as const),
        a: fc.nat(100),
        b: fc.nat(100),
        body: fc.uint8Array({ maxLength: 100 }),
      }),
      fc.record({
        kind: fc.constant('chunked' as const),
        body: fc.uint8Array({ maxLength: 2048 }),
        broken: fc.boolean(),
      }),
      // Under the listener's 32 KiB limit, but not between the target's
      // own 16 KiB (Node's default) and 32 KiB: the target's bare 431
      // would be relayed faithfully, and is not chunkgate's to judge.
      fc.record({
        kind: fc.constant('huge-header' as const),
        size: fc.oneof(
          fc.integer({ min: 8_000, max: 15_000 }),
          fc.integer({ min: 33_000, max: 48_000 }),
        ),
      }),
      fc.record({
        kind: fc.constant('many-headers' as const),
        count: fc.integer({ min: 150, max: 400 }),
      }),
      fc.record({
        kind: fc.constant('duplicates' as const),
        name: fc.constantFrom(
          'Host',
          'Content-Type',
          'Proxy-Authorization',
          'Transfer-Encoding',
          'Expect',
          'Connection',
          'X-Same',
        ),
        values: fc.array(headerValue, { minLength: 2, maxLength: 5 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        method,
        uri,
        version,
        headers,
        framing,
        async (m, u, v, extra, f) => {
          const lines: string[] = [`${m} ${u} ${v}`.trimEnd()];
          for (const [name, value] of extra) lines.push(`${name}: ${value}`);
          let body: Uint8Array = new Uint8Array();
          let cutShort = false;
          switch (f.kind) {
            case 'none':
              break;
            case 'length':
              lines.push(`Content-Length: ${f.body.length}`);
              body = f.body;
              break;
            case 'short':
              lines.push(`Content-Length: ${f.body.length + f.missing}`);
              body = f.body;
              cutShort = true;
              break;
            case 'bad-length':
              lines.push(`Content-Length: ${f.value}`);
              body = f.body;
              break;
            case 'two-lengths':
              lines.push(`Content-Length: ${f.a}`, `Content-Length: ${f.b}`);
              body = f.body;
              break;
            case 'chunked': {
              lines.push('Transfer-Encoding: chunked');
              const hex = f.body.length.toString(16);
              body = Buffer.concat([
                Buffer.from(f.broken ? `${hex}zz\r\n` : `${hex}\r\n`),
                f.body,
                Buffer.from(f.body.length > 0 ? '\r\n0\r\n\r\n' : '\r\n'),
              ]);
              cutShort = f.broken;
              break;
            }
            case 'huge-header':
              lines.push(`X-Huge: ${'h'.repeat(f.size)}`);
              break;
            case 'many-headers':
              for (let i = 0; i < f.count; i += 1)
                lines.push(`X-Many-${i}: ${i}`);
              break;
            case 'duplicates':
              for (const value of f.values) lines.push(`${f.name}: ${value}`);
              break;
          }
          lines.push('Connection: close');
          const bytes = Buffer.concat([
            Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'),
            body,
          ]);
          const outcome = await rawSend(system.chain.client.port, bytes, {
            halfClose: cutShort,
            finAfterMs: 2000,
            timeoutMs: 4000,
          });
          // Generated framing is not always what it seems (a value with a
          // CR LF in it starts a new header): what the listener could not
          // parse may be answered 400 or just closed.
          checkAnswer(
            outcome,
            JSON.stringify(bytes.subarray(0, 300).toString('latin1')),
            { mayClose: true, headRequest: m === 'HEAD' },
          );
        },
      ),
      { numRuns: RUNS },
    );
    await expectSpoolEmpties();
    await expectServing();
  });

  it('leaves nothing behind: a body abandoned in the spool goes with the TTL, memory stays flat', async () => {
    // The check above sees spool files: one chunk of a connection nobody
    // finishes or releases is on disk until CONNECTION_TTL_MS passed.
    const abandoned = await openConnection(null);
    const [stored] = await server(
      'POST',
      '/proxy/chunk',
      [
        ['X-Connection-ID', abandoned],
        ['X-Chunk-Index', '0'],
      ],
      Buffer.from('abandoned bytes'),
    );
    expect(stored.status).toBe(200);
    expect(await filesBelow(spoolDir)).toHaveLength(1);
    await expectSpoolEmpties();
    const serverRss = rssMiB(system.chain.server.child.pid);
    const clientRss = rssMiB(system.chain.client.child.pid);
    console.log(
      `RSS after the properties: server ${rssAtStart.server.toFixed(0)} -> ${serverRss.toFixed(0)} MiB, client ${rssAtStart.client.toFixed(0)} -> ${clientRss.toFixed(0)} MiB`,
    );
    expect(serverRss - rssAtStart.server).toBeLessThan(150);
    expect(clientRss - rssAtStart.client).toBeLessThan(150);
    expect(system.chain.server.output()).not.toMatch(
      /ERROR \[ProtocolExceptionFilter\]/,
    );
    expect(system.chain.client.output()).not.toMatch(/failed unexpectedly/);
    await expectServing();
  });
});
