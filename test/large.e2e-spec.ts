import { readFileSync } from 'node:fs';
import { startSystem } from './support/chain.js';
import { viaNodeHttp } from './support/clients.js';
import { deterministicBytes, sha256Of } from './support/target.js';

const GiB = 1024 * 1024 * 1024;

/** Peak resident set size of a process so far (VmHWM), in MiB. */
function peakRssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

/**
 * A gigabyte each way through a 2 MiB gateway: the bytes arrive intact and
 * neither side holds the body (the benchmark reports the memory figures;
 * here the bound only catches a side that buffers the whole body).
 */
describe('1 GiB through the whole chain', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;

  beforeAll(async () => {
    system = await startSystem();
  });
  afterAll(async () => {
    await system?.stop();
  });

  it('uploads 1 GiB intact', { timeout: 300_000 }, async () => {
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      {
        method: 'POST',
        headers: {
          'content-length': String(GiB),
          'content-type': 'application/octet-stream',
        },
        body: deterministicBytes(GiB, 'gig-up'),
      },
    );
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as {
      bytes: number;
      sha256: string;
    };
    expect(seen.bytes).toBe(GiB);
    expect(seen.sha256).toBe(sha256Of(deterministicBytes(GiB, 'gig-up')));
  });

  it('downloads 1 GiB intact', { timeout: 300_000 }, async () => {
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/bytes?size=${GiB}&seed=gig-down`,
      {
        keepBody: false,
      },
    );
    expect(res.status).toBe(200);
    expect(res.bytes).toBe(GiB);
    expect(res.sha256).toBe(sha256Of(deterministicBytes(GiB, 'gig-down')));
  });

  it('never held a body: peak RSS of client and server stays far below 1 GiB', () => {
    const client = peakRssMiB(system.chain.client.child.pid);
    const server = peakRssMiB(system.chain.server.child.pid);
    console.log(
      `peak RSS after 1 GiB each way: client ${client.toFixed(0)} MiB, server ${server.toFixed(0)} MiB`,
    );
    expect(client).toBeLessThan(300);
    expect(server).toBeLessThan(300);
  });
});
