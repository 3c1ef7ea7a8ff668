import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@app/protocol';
import { SpoolFile } from '../spool/spool-file.js';
import { RequestBody } from './request-body.js';

const b = (s: string) => Buffer.from(s);
const body = (declaredSize: number | undefined, maxBodySize: number) =>
  new RequestBody({ declaredSize, maxBodySize });

async function drained(request: RequestBody): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of request.drain()) parts.push(part);
  return Buffer.concat(parts).toString();
}

describe('RequestBody', () => {
  it('completes exactly once, when the final chunk and all before it are in', async () => {
    const request = body(undefined, 100);
    expect(await request.accept(2, b('c'), true)).toMatchObject({
      complete: false,
      completedNow: false,
    });
    expect(await request.accept(0, b('a'), false)).toMatchObject({
      complete: false,
    });
    expect(await request.accept(1, b('b'), false)).toMatchObject({
      complete: true,
      completedNow: true,
    });
    expect(await request.accept(1, b('b'), false)).toMatchObject({
      complete: true,
      completedNow: false,
    });
    expect(await request.accept(2, b('c'), true)).toMatchObject({
      complete: true,
      completedNow: false,
    });
    expect(await drained(request)).toBe('abc');
    expect(request.bufferedBytes).toBe(0);
    // Sizes are remembered after the bytes left: a late re-send is still harmless.
    expect(await request.accept(0, b('a'), false)).toMatchObject({
      index: 0,
      complete: true,
    });
  });

  it('keeps a chunk as the pieces it arrived in', async () => {
    const request = body(undefined, 100);
    const pieces = [b('ab'), b('cd')];
    await request.accept(0, pieces, true);
    const out: Buffer[] = [];
    for await (const part of request.drain()) out.push(part);
    expect(out[0]).toBe(pieces[0]);
    expect(out[1]).toBe(pieces[1]);
  });

  it('numbers chunks without index after the highest index seen', async () => {
    const request = body(undefined, 100);
    expect((await request.accept(undefined, b('a'), false)).index).toBe(0);
    expect((await request.accept(3, b('d'), false)).index).toBe(3);
    expect((await request.accept(undefined, b('e'), false)).index).toBe(4);
  });

  it('accepts indices up to body_size and refuses any beyond, whatever the chunk sizes', async () => {
    const request = body(2, 100);
    await expect(request.accept(3, b(''), true)).rejects.toMatchObject({
      status: 409,
      code: ErrorCode.ChunkConflict,
    });
    await request.accept(0, b('a'), false);
    await request.accept(1, b('b'), false);
    expect(await request.accept(2, b(''), true)).toMatchObject({
      completedNow: true,
    });
    // Without body_size the bound is the maximum body size.
    await expect(
      body(undefined, 100).accept(101, b('x'), false),
    ).rejects.toMatchObject({ status: 409 });
    expect(await body(undefined, 100).accept(100, b(''), false)).toMatchObject({
      index: 100,
    });
  });

  it('accepts an empty final chunk', async () => {
    const request = body(3, 100);
    await request.accept(0, b('abc'), false);
    expect(await request.accept(1, b(''), true)).toMatchObject({
      completedNow: true,
      receivedBytes: 3,
    });
  });

  it.each([
    [
      'an index after the final one',
      async (x: RequestBody) => {
        await x.accept(0, b('a'), true);
        await x.accept(1, b('b'), false);
      },
    ],
    [
      'a second, different final index',
      async (x: RequestBody) => {
        await x.accept(1, b('a'), true);
        await x.accept(0, b('b'), true);
      },
    ],
    [
      'a final index below one already received',
      async (x: RequestBody) => {
        await x.accept(3, b('a'), false);
        await x.accept(1, b('b'), true);
      },
    ],
    [
      'a re-sent index with another size',
      async (x: RequestBody) => {
        await x.accept(0, b('a'), false);
        await x.accept(0, b('bb'), false);
      },
    ],
  ])(
    'refuses %s with 409 chunk_conflict, and keeps going',
    async (_what, act) => {
      const request = body(undefined, 100);
      await expect(act(request)).rejects.toMatchObject({
        status: 409,
        code: ErrorCode.ChunkConflict,
      });
      expect(request.failed).toBeUndefined();
    },
  );

  it('fails for good on a body larger than the maximum, freeing its bytes', async () => {
    const request = body(undefined, 5);
    await request.accept(0, b('abc'), false);
    await expect(request.accept(1, b('def'), false)).rejects.toMatchObject({
      status: 413,
      code: ErrorCode.BodyTooLarge,
    });
    expect(request.bufferedBytes).toBe(0);
    await expect(request.accept(1, b('d'), true)).rejects.toMatchObject({
      status: 413,
    });
  });

  it('fails for good when the complete body is not body_size long', async () => {
    const request = body(5, 100);
    await expect(request.accept(0, b('abc'), true)).rejects.toMatchObject({
      status: 400,
      code: ErrorCode.SizeMismatch,
    });
    expect(request.failed?.code).toBe(ErrorCode.SizeMismatch);
    expect(request.complete).toBe(false);
  });
});

describe('RequestBody with a spool file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'request-body-spec-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const spooling = (name: string, memoryLimit: number) => {
    const file = new SpoolFile(join(dir, name));
    const request = new RequestBody({
      declaredSize: undefined,
      maxBodySize: 1000,
      memoryLimit,
      spool: () => file,
    });
    return { request, file };
  };
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );

  it('keeps chunks in memory up to the limit and spools the rest, in any order and in parallel', async () => {
    const { request, file } = spooling('parallel', 4);
    const sent = ['ab', 'cd', 'ef', 'gh', 'ij'];
    // All at once, last first: 'ij' and 'gh' fit in memory, the rest spool.
    const receipts = await Promise.all(
      [4, 3, 2, 1, 0].map((i) => request.accept(i, b(sent[i]), i === 4)),
    );
    expect(receipts.filter((r) => r.completedNow)).toHaveLength(1);
    expect(request.bufferedBytes).toBe(4);
    expect(request.peakBufferedBytes).toBe(4);
    expect(file.size).toBe(6);
    expect(await exists(file.path)).toBe(true);
    expect(await drained(request)).toBe('abcdefghij');
    request.free();
    await file.discard();
    expect(await exists(file.path)).toBe(false);
  });

  it('answers a re-send whose first copy is still being written once it is stored', async () => {
    const { request } = spooling('resend', 0);
    const [first, again] = await Promise.all([
      request.accept(0, b('abc'), true),
      request.accept(0, b('abc'), true),
    ]);
    expect([first.completedNow, again.completedNow].sort()).toEqual([
      false,
      true,
    ]);
    expect(again.complete).toBe(true);
    expect(await drained(request)).toBe('abc');
  });

  it('fails for good with 507 insufficient_storage when the spool file cannot be made', async () => {
    // A folder that is a plain file: open fails with ENOTDIR, as a real disk error would.
    await writeFile(join(dir, 'plain'), '');
    const file = new SpoolFile(join(dir, 'plain', 'x.body'));
    const request = new RequestBody({
      declaredSize: undefined,
      maxBodySize: 100,
      memoryLimit: 0,
      spool: () => file,
    });
    await expect(request.accept(0, b('abc'), false)).rejects.toMatchObject({
      status: 507,
      code: ErrorCode.InsufficientStorage,
      message: expect.stringContaining('(ENOTDIR from open)'),
    });
    await expect(request.accept(1, b('d'), true)).rejects.toMatchObject({
      status: 507,
    });
  });

  it('deletes the spool file when the body fails', async () => {
    const { request, file } = spooling('fails', 0);
    await request.accept(0, b('abc'), false);
    expect(await exists(file.path)).toBe(true);
    await expect(
      request.accept(1, Buffer.alloc(998), false),
    ).rejects.toMatchObject({ status: 413 });
    await file.discard();
    expect(await exists(file.path)).toBe(false);
  });
});
