import { ErrorCode, ProtocolError, type TargetHead } from '@app/protocol';
import { type ReadyChunk, ResponseChunks } from './response-chunks.js';

const head: TargetHead = { status: 200, reason: 'OK', headers: [['X-A', '1']] };
const bytes = (n: number, fill = 1) => Buffer.alloc(n, fill);
const text = (chunk: ReadyChunk) => Buffer.concat(chunk.parts).toString();

async function ready(
  chunks: ResponseChunks,
  index: number,
  waitMs = 0,
): Promise<ReadyChunk> {
  const read = await chunks.read(index, waitMs);
  if (!read.ready) throw new Error(`chunk ${index} not ready`);
  return read;
}

describe('ResponseChunks', () => {
  it('seals full chunks as bytes arrive and the rest when the body ends', async () => {
    const chunks = new ResponseChunks(4, 8);
    chunks.start(head);
    chunks.push(Buffer.from('abcdefghij'));
    chunks.end();
    const first = await ready(chunks, 0);
    expect([text(first), first.more, first.head]).toEqual(['abcd', true, head]);
    const second = await ready(chunks, 1);
    expect([text(second), second.more, second.head]).toEqual([
      'efgh',
      true,
      undefined,
    ]);
    const last = await ready(chunks, 2);
    expect([text(last), last.more]).toEqual(['ij', false]);
  });

  it('keeps chunk 0 as the pieces that came; copies later chunks into buffers it reuses once they are freed', async () => {
    const chunks = new ResponseChunks(4, 1);
    chunks.start(head);
    const piece = Buffer.from('abcdefgh');
    chunks.push(piece);
    const first = await ready(chunks, 0);
    expect(first.parts[0].buffer).toBe(piece.buffer); // a view, no copy
    const second = await ready(chunks, 1); // frees chunk 0
    expect(text(second)).toBe('efgh');
    const own = second.parts[0].buffer;
    expect(own).not.toBe(piece.buffer);
    expect(own.byteLength).toBe(4); // one chunk's buffer
    chunks.push(Buffer.from('ijkl'));
    expect(text(await ready(chunks, 2))).toBe('ijkl'); // frees chunk 1
    chunks.push(Buffer.from('mnop'));
    const fourth = await ready(chunks, 3);
    expect(text(fourth)).toBe('mnop');
    // Chunk 1's buffer, free since chunk 2 was asked for, now holds chunk 3.
    expect(fourth.parts[0].buffer).toBe(own);
  });

  it('a chunk not yet freed keeps its bytes however much follows', async () => {
    const chunks = new ResponseChunks(4, 2);
    chunks.start(head);
    chunks.push(Buffer.from('abcdefghijkl'));
    const second = await ready(chunks, 1);
    chunks.push(Buffer.from('mnopqrst'));
    chunks.end();
    // Chunk 1 is still within the window: nothing reused its buffer.
    expect(text(second)).toBe('efgh');
    expect(text(await ready(chunks, 2))).toBe('ijkl');
    expect(text(second)).toBe('efgh');
  });

  it('makes the last full chunk the last one when nobody was told more follows', async () => {
    const chunks = new ResponseChunks(4, 8);
    chunks.start(head);
    chunks.push(Buffer.from('abcdefgh'));
    chunks.end();
    expect((await ready(chunks, 1)).more).toBe(false);
    await expect(chunks.read(2, 0)).rejects.toMatchObject({ status: 409 });
  });

  it('ends with an empty chunk when a full chunk was already served with more: true', async () => {
    const chunks = new ResponseChunks(4, 8);
    chunks.start(head);
    chunks.push(Buffer.from('abcd'));
    expect((await ready(chunks, 0)).more).toBe(true);
    chunks.end();
    const last = await ready(chunks, 1);
    expect([last.size, last.more]).toEqual([0, false]);
  });

  it('an empty body is one empty chunk 0 with the head', async () => {
    const chunks = new ResponseChunks(4, 1);
    chunks.start(head);
    chunks.end();
    const only = await ready(chunks, 0);
    expect([only.size, only.more, only.head]).toEqual([0, false, head]);
  });

  it('waits for a chunk and is woken by new data, without leaving listeners', async () => {
    const chunks = new ResponseChunks(4, 1);
    const waiting = chunks.read(0, 10_000);
    expect(chunks.waiters).toBe(1);
    chunks.start(head);
    chunks.push(Buffer.from('abcd'));
    expect(text(await ready(chunks, 0))).toBe('abcd');
    expect((await waiting).ready).toBe(true);
    expect(chunks.waiters).toBe(0);
  });

  it('when the wait expires: seals the open chunk if it holds bytes (chunk 0: or the head), else pending', async () => {
    const chunks = new ResponseChunks(1024, 1);
    expect(await chunks.read(0, 5)).toEqual({ ready: false });
    chunks.start(head);
    const headOnly = await ready(chunks, 0, 5);
    expect([headOnly.size, headOnly.more, headOnly.head]).toEqual([
      0,
      true,
      head,
    ]);
    expect(await chunks.read(1, 5)).toEqual({ ready: false });
    chunks.push(Buffer.from('slow'));
    expect(text(await ready(chunks, 1, 5))).toBe('slow');
    chunks.push(Buffer.from('er'));
    chunks.end();
    expect([
      text(await ready(chunks, 2)),
      (await ready(chunks, 2)).more,
    ]).toEqual(['er', false]);
  });

  it('frees chunks ≤ j − window when chunk j is asked for', async () => {
    const chunks = new ResponseChunks(2, 2);
    chunks.start(head);
    chunks.push(Buffer.from('aabbccdd'));
    chunks.end();
    await ready(chunks, 0);
    await ready(chunks, 2); // frees 0
    await ready(chunks, 1); // still there: window 2
    await expect(chunks.read(0, 0)).rejects.toMatchObject({
      status: 409,
      code: ErrorCode.ChunkConflict,
    });
    expect(chunks.bufferedBytes).toBe(6);
    await ready(chunks, 3); // frees 1
    expect(chunks.bufferedBytes).toBe(4);
  });

  it('asked for an enormous index, frees what it holds at once (no loop over the indexes)', async () => {
    const chunks = new ResponseChunks(4, 1);
    chunks.start(head);
    chunks.push(Buffer.from('abcdefgh'));
    const started = performance.now();
    await expect(chunks.read(999_999_999, 0)).resolves.toEqual({
      ready: false,
    });
    expect(performance.now() - started).toBeLessThan(50);
    await expect(chunks.read(0, 0)).rejects.toMatchObject({ status: 409 });
  });

  it('after serving the last chunk keeps the window: a lost answer of a parallel fetch can be fetched again', async () => {
    const chunks = new ResponseChunks(2, 3);
    chunks.start(head);
    chunks.push(Buffer.from('aabbccdd'));
    chunks.end();
    await ready(chunks, 0);
    await ready(chunks, 1);
    await ready(chunks, 2);
    expect(chunks.delivered).toBe(false);
    const last = await ready(chunks, 3); // frees 0
    expect(last.more).toBe(false);
    expect(chunks.delivered).toBe(true);
    expect(chunks.bufferedBytes).toBe(6);
    // The answer for 1 or 2 got lost on the way: asked again, it is there.
    expect(text(await ready(chunks, 2))).toBe('cc');
    expect(text(await ready(chunks, 1))).toBe('bb');
    await expect(chunks.read(0, 0)).rejects.toMatchObject({
      status: 409,
      message: expect.stringContaining('was freed'),
    });
    expect(text(await ready(chunks, 3))).toBe('dd');
  });

  it('answers a chunk past the end 409 once the end is known, also to a long-poll already waiting for it', async () => {
    const chunks = new ResponseChunks(4, 8);
    chunks.start(head);
    chunks.push(Buffer.from('abcdef'));
    const prefetch = chunks.read(3, 10_000);
    const next = chunks.read(2, 10_000);
    expect(chunks.waiters).toBe(2);
    chunks.end();
    await expect(prefetch).rejects.toMatchObject({
      status: 409,
      code: ErrorCode.ChunkConflict,
      message: 'Response chunk 3 is past the end: the last chunk is 1.',
    });
    await expect(next).rejects.toMatchObject({ status: 409 });
    expect(chunks.waiters).toBe(0);
    await expect(chunks.read(7, 10_000)).rejects.toMatchObject({
      status: 409,
    });
  });

  it('with download_window 8 holds at most 9 sealed chunks and stops the producer until the client catches up', async () => {
    const chunks = new ResponseChunks(4, 8);
    chunks.start(head);
    let pushed = 0;
    // The producer as TargetService runs it: push, then wait while full.
    const producer = (async () => {
      while (pushed < 100) {
        chunks.push(bytes(4));
        pushed += 1;
        if (chunks.full) await chunks.waitForRoom();
      }
      chunks.end();
    })();
    await new Promise((resolve) => setImmediate(resolve));
    expect(pushed).toBe(9);
    expect(chunks.bufferedBytes).toBe(9 * 4);
    // Fetching 0 and 1 frees nothing (window 8); nothing more is read.
    await ready(chunks, 0);
    await ready(chunks, 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(pushed).toBe(9);
    // Asking for 9 says 0 and 1 are delivered: they go, two more are read.
    const ninth = chunks.read(9, 1000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(pushed).toBe(11);
    expect((await ninth).ready).toBe(true);
    let peak = 0;
    for (let i = 2; i < 100; i++) {
      const chunk = await ready(chunks, i, 1000);
      peak = Math.max(peak, chunks.bufferedBytes);
      expect(chunk.size).toBe(4);
    }
    await producer;
    expect(peak).toBeLessThanOrEqual(9 * 4);
  });

  it('is full while holding more than window sealed chunks, and makes room as they are freed', async () => {
    const chunks = new ResponseChunks(4, 1);
    chunks.start(head);
    chunks.push(bytes(8));
    expect(chunks.full).toBe(true);
    let resumed = false;
    const room = chunks.waitForRoom().then(() => (resumed = true));
    await ready(chunks, 0);
    await Promise.resolve();
    expect(resumed).toBe(false);
    await ready(chunks, 1); // frees 0
    await room;
    expect(chunks.full).toBe(false);
    expect(chunks.waiters).toBe(0);
  });

  it('keeps sealed chunks servable after a failure and answers the error after them', async () => {
    const chunks = new ResponseChunks(4, 8);
    chunks.start(head);
    chunks.push(Buffer.from('abcdef'));
    const failure = new ProtocolError(
      502,
      ErrorCode.TargetUnreachable,
      'broke off',
    );
    chunks.fail(failure);
    expect(text(await ready(chunks, 0))).toBe('abcd');
    await expect(chunks.read(1, 1000)).rejects.toBe(failure);
  });

  it('wakes a waiter with the failure', async () => {
    const chunks = new ResponseChunks(4, 1);
    const waiting = chunks.read(0, 10_000);
    const failure = new ProtocolError(504, ErrorCode.TargetTimeout, 'slow');
    chunks.fail(failure);
    await expect(waiting).rejects.toBe(failure);
    expect(chunks.waiters).toBe(0);
  });

  it('answers waiters 404 on release and frees everything', async () => {
    const chunks = new ResponseChunks(4, 1);
    chunks.start(head);
    chunks.push(bytes(6));
    const waiting = chunks.read(1, 10_000);
    chunks.release();
    await expect(waiting).rejects.toMatchObject({
      status: 404,
      code: ErrorCode.ConnectionNotFound,
    });
    expect(chunks.bufferedBytes).toBe(0);
    expect(chunks.waiters).toBe(0);
    await chunks.waitForRoom(); // never blocks a released producer
  });

  it('gives up the wait when the caller hangs up, removing its listener and timer', async () => {
    const chunks = new ResponseChunks(4, 1);
    const hangUp = new AbortController();
    const waiting = chunks.read(0, 10_000, hangUp.signal);
    expect(chunks.waiters).toBe(1);
    hangUp.abort();
    expect(await waiting).toEqual({ ready: false });
    expect(chunks.waiters).toBe(0);
  });
});
