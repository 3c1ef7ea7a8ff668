import { setImmediate as tick } from 'node:timers/promises';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { PENDING, type ResponseChunk } from '../gateway/proxy-server-api.js';
import {
  newDownloadGauge,
  prefetchResponse,
  type PrefetchOptions,
} from './response-prefetcher.js';

const SIZE = 100;

/** A call in flight: the test decides when and how it ends. */
interface Call {
  index: number;
  signal: AbortSignal;
  /** Answers like the server would: the chunk, 409 past the end. */
  answer: () => void;
  pending: () => void;
  fail: (error: Error) => void;
}

/**
 * A response of `sizes.length` chunks as the server cuts it; `length` puts
 * a Content-Length in the head.
 */
function serverOf(sizes: number[], length?: number) {
  const calls: Call[] = [];
  /** Indexes of the chunks released, in order. */
  const released: number[] = [];
  const chunk = (index: number): ResponseChunk => ({
    index,
    more: index < sizes.length - 1,
    head:
      index === 0
        ? {
            status: 200,
            reason: 'OK',
            headers:
              length === undefined ? [] : [['Content-Length', String(length)]],
          }
        : undefined,
    parts: [Buffer.alloc(sizes[index], index)],
    size: sizes[index],
    release: () => void released.push(index),
  });
  const fetch: PrefetchOptions['fetch'] = (index, signal) =>
    new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason as Error));
      calls.push({
        index,
        signal,
        answer: () =>
          index < sizes.length
            ? resolve(chunk(index))
            : reject(
                new ProtocolError(
                  409,
                  ErrorCode.ChunkConflict,
                  `Response chunk ${index} is past the end`,
                ),
              ),
        pending: () => resolve(PENDING),
        fail: reject,
      });
    });
  return { calls, fetch, chunk, released };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await tick();
}

/**
 * Runs a download, answering every open call newest first (out of order),
 * delivering in between; checks the window rule at every call.
 */
async function download(
  window: number,
  sizes: number[],
  options: { length?: number; first?: boolean } = {},
) {
  const server = serverOf(sizes, options.length);
  const gauge = newDownloadGauge();
  const chunks = prefetchResponse({
    window,
    chunkSize: SIZE,
    fetch: server.fetch,
    first: options.first ? server.chunk(0) : undefined,
    signal: new AbortController().signal,
    gauge,
  });
  const delivered: ResponseChunk[] = [];
  const answered = new Set<Call>();
  let next = chunks.next();
  for (;;) {
    await settle();
    // Chunk j is asked for only once every chunk <= j - window was delivered.
    for (const call of server.calls)
      expect(call.index - window).toBeLessThan(delivered.length);
    const settled = await Promise.race([next, tick().then(() => undefined)]);
    if (settled) {
      if (settled.done) break;
      delivered.push(settled.value);
      next = chunks.next();
      continue;
    }
    const open = server.calls.filter((c) => !answered.has(c));
    expect(open.length).toBeGreaterThan(0);
    const call = open[open.length - 1];
    answered.add(call);
    call.answer();
  }
  return { delivered, gauge, server };
}

describe('prefetchResponse', () => {
  it.each([1, 2, 8])(
    'delivers in order with a window of %i though answers come back out of order; holds at most window + 1',
    async (window) => {
      const sizes = [...Array.from({ length: 19 }, () => SIZE), 7];
      const { delivered, gauge } = await download(window, sizes);
      expect(delivered.map((c) => c.index)).toEqual(sizes.map((_, i) => i));
      expect(delivered.map((c) => c.size)).toEqual(sizes);
      expect(gauge.maxInFlight).toBeLessThanOrEqual(window);
      expect(gauge.maxHeld).toBeLessThanOrEqual(window + 1);
      if (window > 1) expect(gauge.maxInFlight).toBe(window);
    },
  );

  it('asks for nothing ahead of chunk 0: a one-chunk response costs one call', async () => {
    const { gauge } = await download(8, [5]);
    expect(gauge.asked).toEqual([0]);
  });

  it('with the first chunk in hand asks for nothing more when it is the last', async () => {
    const { delivered, gauge } = await download(8, [5], { first: true });
    expect(delivered.map((c) => c.index)).toEqual([0]);
    expect(gauge.asked).toEqual([]);
  });

  it('with a Content-Length asks for no chunk past the end', async () => {
    const sizes = [SIZE, SIZE, SIZE, 50];
    const { gauge } = await download(8, sizes, { length: 350 });
    expect([...gauge.asked].sort()).toEqual([0, 1, 2, 3]);
  });

  it('with a Content-Length that is a multiple of the chunk size still asks for the empty last chunk the server announced', async () => {
    const sizes = [SIZE, SIZE, 0];
    const { delivered } = await download(8, sizes, { length: 200 });
    expect(delivered.map((c) => [c.index, c.more])).toEqual([
      [0, true],
      [1, true],
      [2, false],
    ]);
  });

  it('without a Content-Length ignores the 409s of chunks past the end', async () => {
    const sizes = [SIZE, SIZE, 30];
    const { delivered, gauge } = await download(8, sizes);
    expect(delivered.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(Math.max(...gauge.asked)).toBeGreaterThan(2); // it did ask past the end
  });

  it.each([
    [[SIZE, 10], 0],
    [[SIZE, SIZE, 10], 1],
    [[SIZE, SIZE, SIZE, 10], 3],
  ])(
    'without a Content-Length starts asking ahead slowly: %j costs at most %i calls past its end',
    async (sizes, wasted) => {
      const { gauge } = await download(8, sizes);
      expect(
        gauge.asked.filter((i) => i >= sizes.length).length,
      ).toBeLessThanOrEqual(wasted);
    },
  );

  it('without a Content-Length widens to the whole window as full chunks keep coming', async () => {
    const sizes = Array.from({ length: 30 }, () => SIZE);
    const { gauge } = await download(8, sizes);
    expect(gauge.maxInFlight).toBe(8);
    expect(gauge.asked.filter((i) => i >= sizes.length).length).toBeLessThan(8);
  });

  it('asks for a chunk again after 202, and for that chunk only', async () => {
    const server = serverOf([SIZE, 10]);
    const gauge = newDownloadGauge();
    const chunks = prefetchResponse({
      window: 4,
      chunkSize: SIZE,
      fetch: server.fetch,
      signal: new AbortController().signal,
      gauge,
    });
    const first = chunks.next();
    await settle();
    server.calls[0].pending();
    await settle();
    expect(server.calls.map((c) => c.index)).toEqual([0, 0]);
    server.calls[1].answer();
    expect((await first).value?.index).toBe(0);
    const second = chunks.next();
    await settle();
    for (const call of server.calls.slice(2)) call.answer();
    expect((await second).value?.index).toBe(1);
    expect((await chunks.next()).done).toBe(true);
    expect(gauge.asked.slice(0, 3)).toEqual([0, 0, 1]);
  });

  it('throws the failure of a chunk when its turn comes, after the chunks before it', async () => {
    const server = serverOf([SIZE, SIZE, SIZE, SIZE], 4 * SIZE);
    const chunks = prefetchResponse({
      window: 4,
      chunkSize: SIZE,
      fetch: server.fetch,
      first: server.chunk(0),
      signal: new AbortController().signal,
    });
    expect((await chunks.next()).value?.index).toBe(0);
    const second = chunks.next();
    await settle();
    const broke = new ProtocolError(
      502,
      ErrorCode.TargetUnreachable,
      "The target's response broke off",
    );
    server.calls.find((c) => c.index === 2)!.fail(broke);
    server.calls.find((c) => c.index === 1)!.answer();
    expect((await second).value?.index).toBe(1);
    await expect(chunks.next()).rejects.toBe(broke);
    // the calls still in flight were cancelled
    expect(
      server.calls.filter((c) => c.index > 2).every((c) => c.signal.aborted),
    ).toBe(true);
  });

  it('cancels every call in flight when the consumer stops early', async () => {
    const server = serverOf([SIZE, SIZE, SIZE, SIZE, SIZE]);
    const chunks = prefetchResponse({
      window: 3,
      chunkSize: SIZE,
      fetch: server.fetch,
      first: server.chunk(0),
      signal: new AbortController().signal,
    });
    // Chunk 0 is being delivered (the consumer holds it) when it stops.
    expect((await chunks.next()).value?.index).toBe(0);
    await settle();
    await chunks.return(undefined);
    expect(server.calls.length).toBeGreaterThan(0);
    expect(server.calls.every((c) => c.signal.aborted)).toBe(true);
  });

  it('releases the chunks it received but never delivered when the consumer stops', async () => {
    // With a Content-Length, chunks 1 and 2 are asked for at once.
    const server = serverOf([SIZE, SIZE, SIZE, SIZE, SIZE], 5 * SIZE);
    const chunks = prefetchResponse({
      window: 3,
      chunkSize: SIZE,
      fetch: server.fetch,
      first: server.chunk(0),
      signal: new AbortController().signal,
    });
    expect((await chunks.next()).value?.index).toBe(0);
    await settle();
    // Chunk 2 arrives (held: chunk 1 comes first); chunk 1 does not.
    server.calls.find((c) => c.index === 2)?.answer();
    await settle();
    expect(server.released).toEqual([]);
    await chunks.return(undefined);
    // Chunk 0 was delivered: the consumer's to release.
    expect(server.released).toEqual([2]);
  });

  it('stops with the reason when the exchange is aborted', async () => {
    const server = serverOf([SIZE, SIZE]);
    const controller = new AbortController();
    const chunks = prefetchResponse({
      window: 2,
      chunkSize: SIZE,
      fetch: server.fetch,
      signal: controller.signal,
    });
    const first = chunks.next();
    await settle();
    const reason = new Error('no progress for REQUEST_TIMEOUT_MS');
    controller.abort(reason);
    await expect(first).rejects.toBe(reason);
    expect(server.calls[0].signal.aborted).toBe(true);
  });
});
