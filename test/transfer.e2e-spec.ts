import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProxyAgent, request } from 'undici';
import { startSystem } from './support/chain.js';
import { viaCurl, viaNodeHttp } from './support/clients.js';
import { deterministicBytes, sha256, sha256Of } from './support/target.js';

const MB = 1000 * 1000;
const run = promisify(execFile);

/**
 * Bodies far larger than the gateway's 2 MiB limit travel byte for byte,
 * both ways, with every kind of client an application would use.
 */
describe('transfers through the whole chain (gateway limit 2 MiB)', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  let dir: string;

  beforeAll(async () => {
    system = await startSystem();
    dir = await mkdtemp(join(tmpdir(), 'chunkgate-e2e-'));
  });
  afterAll(async () => {
    await system?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('carries a small GET (curl)', async () => {
    const res = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/echo?q=1`,
    );
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as {
      method: string;
      url: string;
      bytes: number;
    };
    expect(seen).toMatchObject({ method: 'GET', url: '/echo?q=1', bytes: 0 });
  });

  it('carries a 3 MB POST from curl (Expect: 100-continue) intact', async () => {
    const body = randomBytes(3 * MB);
    const file = join(dir, 'three-mb');
    await writeFile(file, body);
    const res = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      [
        '--data-binary',
        `@${file}`,
        '-H',
        'Content-Type: application/octet-stream',
      ],
    );
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as {
      bytes: number;
      sha256: string;
    };
    expect(seen.bytes).toBe(body.length);
    expect(seen.sha256).toBe(sha256(body));
  });

  it('carries a 25 MB POST from undici ProxyAgent intact', async () => {
    const body = randomBytes(25 * MB);
    const res = await request(`${system.target.url}/echo`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream' },
      dispatcher: new ProxyAgent({
        uri: system.chain.proxyUrl,
        proxyTunnel: false,
      }),
    });
    expect(res.statusCode).toBe(200);
    const seen = (await res.body.json()) as { bytes: number; sha256: string };
    expect(seen.bytes).toBe(body.length);
    expect(seen.sha256).toBe(sha256(body));
  });

  it('carries a chunked upload of unknown size (node:http)', async () => {
    const pieces = [...deterministicBytes(4 * MB + 12345, 'chunked-upload')];
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      {
        method: 'PUT',
        headers: { 'transfer-encoding': 'chunked' },
        body: pieces,
      },
    );
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as {
      bytes: number;
      sha256: string;
      rawHeaders: string[];
    };
    expect(seen.bytes).toBe(4 * MB + 12345);
    expect(seen.sha256).toBe(sha256Of(pieces));
  });

  it.each([
    ['with Content-Length', ''],
    ['with Transfer-Encoding: chunked', '&chunked=1'],
  ])('streams a 5 MB response %s intact', async (_label, query) => {
    const size = 5 * MB;
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/bytes?size=${size}&seed=dl${query}`,
    );
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(size);
    expect(res.sha256).toBe(sha256Of(deterministicBytes(size, 'dl')));
  });

  it('keeps Content-Length when the target sent one, and chunks when it did not', async () => {
    const sized = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/bytes?size=3000000&seed=cl`,
    );
    expect(sized.head).toMatch(/content-length: 3000000/i);
    const chunked = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/bytes?size=3000000&seed=cl&chunked=1`,
    );
    expect(chunked.head).toMatch(/transfer-encoding: chunked/i);
    expect(chunked.sha256).toBe(sized.sha256);
    expect(sized.sha256).toBe(sha256Of(deterministicBytes(3000000, 'cl')));
  });

  it('serves Python requests with proxies= as in the seed', async (ctx) => {
    const probe = await run('python3', ['-c', 'import requests']).catch(
      () => undefined,
    );
    if (!probe) ctx.skip();
    const script = `
import hashlib, requests, sys
proxies = {"http": sys.argv[1]}
data = b"x" * (3 * 1024 * 1024)
r = requests.post(sys.argv[2] + "/echo", data=data, proxies=proxies, timeout=120)
print(r.status_code, r.json()["sha256"] == hashlib.sha256(data).hexdigest())
`;
    const { stdout } = await run('python3', [
      '-c',
      script,
      system.chain.proxyUrl,
      system.target.url,
    ]);
    expect(stdout.trim()).toBe('200 True');
  });
});
