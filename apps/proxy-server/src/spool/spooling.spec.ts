import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  mkdir,
  mkdtemp,
  readdir,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionCleanupJob } from '../connections/connection-cleanup.job.js';
import type { Connection } from '../connections/connection.js';
import { ConnectionsService } from '../connections/connections.service.js';
import {
  deterministicBytes,
  sha256Of,
  startTarget,
  type Target,
} from '../../../../test/support/target.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import { SpoolService } from './spool.service.js';

const MiB = 1024 * 1024;
const THRESHOLD = 8 * MiB;

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** `size` deterministic bytes cut into chunks of `chunkSize`. */
function chunksOf(size: number, chunkSize: number, seed: string): Buffer[] {
  const whole = Buffer.concat([...deterministicBytes(size, seed)]);
  const chunks: Buffer[] = [];
  for (let at = 0; at < size; at += chunkSize) {
    chunks.push(whole.subarray(at, Math.min(at + chunkSize, size)));
  }
  return chunks;
}

/** Runs `work` over `items` with at most `concurrency` at once. */
async function inParallel<T>(
  items: T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await work(item);
      }
    }),
  );
}

describe('request bodies beyond SPOOL_THRESHOLD_BYTES', () => {
  let target: Target;
  let server: TestServer;
  let spoolDir: string;

  beforeAll(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'spooling-spec-'));
    target = await startTarget();
    server = await startTestServer({
      SPOOL_DIR: spoolDir,
      SPOOL_THRESHOLD_BYTES: String(THRESHOLD),
      CONNECTION_TTL_MS: '60000',
      RESPONSE_WAIT_MS: '10000',
    });
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
    await rm(spoolDir, { recursive: true, force: true });
  });

  const connectionOf = (id: string): Promise<Connection> =>
    server.app.get(ConnectionsService).require(id);
  const spoolPathOf = async (id: string) => {
    const path = (await connectionOf(id)).request.spoolFile?.path;
    if (!path) throw new Error(`connection ${id} has no spool file`);
    return path;
  };

  it('carries a 40 MB body sent as 1 MiB chunks out of order intact, holding at most the threshold in memory', async () => {
    const size = 40_000_000;
    const chunks = chunksOf(size, MiB, 'spooled');
    const last = chunks.length - 1;
    const { id } = await server.open({
      port: target.port,
      method: 'PUT',
      path: '/echo?spooled',
      body_size: size,
    });
    // The final chunk first, then the rest from the end, 8 at a time.
    const order = [last, ...chunks.map((_, i) => last - 1 - i).slice(0, last)];
    let spoolPath: string | undefined;
    let seenDuring = false;
    await inParallel(order, 8, async (index) => {
      const res = await server.chunk(id, chunks[index], {
        index,
        final: index === last,
      });
      expect(res.status).toBe(200);
      if (index === last - 20) {
        // Half-way: more than the threshold arrived, the file holds the rest.
        spoolPath = await spoolPathOf(id);
        seenDuring = await exists(spoolPath);
      }
    });
    expect(seenDuring).toBe(true);
    const connection = await connectionOf(id);
    expect(connection.request.peakBufferedBytes).toBeGreaterThan(0);
    expect(connection.request.peakBufferedBytes).toBeLessThanOrEqual(THRESHOLD);

    const { head, chunks: answer, error } = await server.fetchAll(id);
    expect(error).toBeUndefined();
    expect(head?.status).toBe(200);
    const echo = JSON.parse(Buffer.concat(answer).toString()) as {
      bytes: number;
      sha256: string;
    };
    expect(echo.bytes).toBe(size);
    expect(echo.sha256).toBe(sha256Of(chunks));
    expect(target.seen.filter((r) => r.url === '/echo?spooled')).toHaveLength(
      1,
    );
    // Forwarded and served: the file is gone long before the linger ends.
    await vi.waitFor(async () =>
      expect(await exists(spoolPath ?? '')).toBe(false),
    );
  });

  /** Opens a connection and sends 10 MiB + 1 chunk of 1 MiB, so that some of it is spooled. */
  async function spilled(fields: Record<string, unknown> = {}) {
    const { id } = await server.open({
      port: target.port,
      method: 'POST',
      path: '/echo?spilled',
      ...fields,
    });
    const chunks = chunksOf(10 * MiB, MiB, 'spilled');
    for (const [index, chunk] of chunks.entries()) {
      expect((await server.chunk(id, chunk, { index })).status).toBe(200);
    }
    const path = await spoolPathOf(id);
    expect(await exists(path)).toBe(true);
    expect((await stat(path)).size).toBe(2 * MiB);
    return { id, path, chunks };
  }

  it('deletes the spool file when the connection is released (DELETE)', async () => {
    const { id, path } = await spilled();
    const res = await server.call('DELETE', '/proxy/connection', {
      'x-connection-id': id,
    });
    expect(res.status).toBe(204);
    await vi.waitFor(async () => expect(await exists(path)).toBe(false));
  });

  it('deletes the spool file when the connection expires', async () => {
    const { path } = await spilled();
    server.clock.advance(60_001);
    expect(
      await server.app.get(ConnectionCleanupJob).sweep(),
    ).toBeGreaterThanOrEqual(1);
    await vi.waitFor(async () => expect(await exists(path)).toBe(false));
  });

  it('deletes the spool file when the body fails (more than body_size)', async () => {
    const { id, path } = await spilled({ body_size: 10 * MiB });
    const res = await server.chunk(id, 'one byte too many', {
      index: 10,
      final: true,
    });
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('size_mismatch');
    await vi.waitFor(async () => expect(await exists(path)).toBe(false));
  });

  it('answers 507 insufficient_storage when the spool file cannot be read back, and deletes it', async () => {
    const { id, path } = await spilled();
    await truncate(path, MiB);
    const final = await server.chunk(id, '', { index: 10, final: true });
    expect(final.status).toBe(200);
    const answer = await server.response(id, 0);
    expect(answer.status).toBe(507);
    expect(answer.json()).toEqual({
      error: 'insufficient_storage',
      message: expect.stringMatching(
        /^proxy-server could not read from the spool file of this request body in SPOOL_DIR \(the file ends at \d+ bytes, \d+ bytes short\); the connection is closed\./,
      ),
    });
    expect(answer.json().message).not.toContain(spoolDir);
    await vi.waitFor(async () => expect(await exists(path)).toBe(false));
  });

  it('spools only beyond the threshold: a body below it makes no file', async () => {
    const { id } = await server.open({
      port: target.port,
      method: 'POST',
      path: '/echo',
    });
    await server.chunk(id, Buffer.alloc(MiB), { index: 0 });
    expect((await connectionOf(id)).request.spoolFile).toBeUndefined();
  });
});

describe('the spool folder', () => {
  let spoolDir: string;
  beforeEach(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'spool-folder-spec-'));
  });
  afterEach(async () => {
    await rm(spoolDir, { recursive: true, force: true });
  });

  /** The pid of a process that ran and is gone. */
  function deadPid(): number {
    const child = spawnSync(process.execPath, ['-e', '0']);
    return child.pid ?? 0;
  }

  it('at start-up deletes the spool files a dead run of this server left, and nothing else', async () => {
    const host = hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'host';
    const dead = join(spoolDir, `proxy-server.${host}.${deadPid()}.1`);
    const leftover = join(dead, `${randomUUID()}.body`);
    await mkdir(dead, { recursive: true });
    await writeFile(leftover, 'left behind');
    // Not ours: another host's run, an alive process's folder, a stranger's file.
    const otherHost = join(spoolDir, `proxy-server.elsewhere.${deadPid()}.1`);
    await mkdir(otherHost);
    await writeFile(join(otherHost, `${randomUUID()}.body`), 'theirs');
    const alive = join(spoolDir, `proxy-server.${host}.1.1`);
    await mkdir(alive);
    await writeFile(join(alive, `${randomUUID()}.body`), 'running');
    await writeFile(join(spoolDir, 'notes.txt'), 'keep me');

    const server = await startTestServer({ SPOOL_DIR: spoolDir });
    try {
      expect(await exists(leftover)).toBe(false);
      expect(await exists(dead)).toBe(false);
      expect((await readdir(otherHost)).length).toBe(1);
      expect((await readdir(alive)).length).toBe(1);
      expect(await exists(join(spoolDir, 'notes.txt'))).toBe(true);
      expect(await exists(server.app.get(SpoolService).folder)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('leaves a folder holding files that are not spool files in place, deleting only the spool files', async () => {
    const host = hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'host';
    const dead = join(spoolDir, `proxy-server.${host}.${deadPid()}.7`);
    await mkdir(dead);
    await writeFile(join(dead, `${randomUUID()}.body`), 'left behind');
    await writeFile(join(dead, 'README'), 'not a spool file');
    const server = await startTestServer({ SPOOL_DIR: spoolDir });
    await server.close();
    expect(await readdir(dead)).toEqual(['README']);
  });

  it('removes its own folder, and the files in it, at shutdown', async () => {
    const target = await startTarget();
    const server = await startTestServer({
      SPOOL_DIR: spoolDir,
      SPOOL_THRESHOLD_BYTES: '0',
    });
    const folder = server.app.get(SpoolService).folder;
    try {
      const { id } = await server.open({
        port: target.port,
        method: 'POST',
        path: '/echo',
      });
      await server.chunk(id, 'spooled at once', { index: 0 });
      expect(await readdir(folder)).toEqual([`${id}.body`]);
    } finally {
      await server.close();
      await target.close();
    }
    expect(await exists(folder)).toBe(false);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('stops the server at start-up when SPOOL_DIR cannot be made, naming it', async () => {
    const blocker = join(spoolDir, 'a-file');
    await writeFile(blocker, '');
    await expect(
      startTestServer({ SPOOL_DIR: join(blocker, 'spool') }),
    ).rejects.toThrow(
      `SPOOL_DIR=${JSON.stringify(join(blocker, 'spool'))} cannot be used for spool files`,
    );
  });
});
