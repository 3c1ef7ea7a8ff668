import { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { readChunks, type BodyChunk } from './chunk-reader.js';
import { newUploadGauge, uploadChunks } from './chunk-uploader.js';
import { untilAborted } from './exchange-deadline.js';

const CHUNK = 1024;

/** A call in flight: the test decides when and how it ends. */
interface Call {
  chunk: BodyChunk;
  signal: AbortSignal;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A body of `chunks` chunks that counts what it was asked to produce. */
function countingBody(chunks: number) {
  const body = { pulled: 0, stream: undefined as unknown as Readable };
  body.stream = new Readable({
    highWaterMark: CHUNK,
    read() {
      if (body.pulled >= chunks * CHUNK) {
        this.push(null);
        return;
      }
      body.pulled += CHUNK / 4;
      this.push(Buffer.alloc(CHUNK / 4, body.pulled % 251));
    },
  });
  return body;
}

/** Starts an upload whose sends wait for the test; returns its handles. */
function start(window: number, chunks: number) {
  const body = countingBody(chunks);
  const reader = readChunks(body.stream, {
    chunkSize: CHUNK,
    expectedBytes: chunks * CHUNK,
  });
  const calls: Call[] = [];
  const sent: number[] = [];
  const gauge = newUploadGauge();
  const controller = new AbortController();
  const done = uploadChunks({
    window,
    read: (signal) => untilAborted(reader.next(), signal),
    send: (chunk, signal) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ chunk, signal, resolve, reject });
        signal.addEventListener('abort', () => reject(signal.reason as Error));
      }),
    onSent: (chunk) => sent.push(chunk.index),
    signal: controller.signal,
    gauge,
  });
  done.catch(() => undefined);
  return { body, calls, sent, gauge, done, controller };
}

/** Lets the reader and the uploader run until nothing moves any more. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await tick();
}

describe('uploadChunks', () => {
  it.each([1, 3, 8])(
    'keeps at most %i chunks in flight and holds at most one more, answers coming back in any order',
    async (window) => {
      const total = 25;
      const up = start(window, total);
      const answered = new Set<Call>();
      while (answered.size < total) {
        await settle();
        const open = up.calls.filter((c) => !answered.has(c));
        expect(open.length).toBeGreaterThan(0);
        expect(open.length).toBeLessThanOrEqual(window);
        // While the window is full the application is not read: what was
        // pulled is the chunks sent so far plus the stream's own buffer.
        if (open.length === window)
          expect(up.body.pulled).toBeLessThanOrEqual(
            (answered.size + window + 2) * CHUNK,
          );
        // Answer the newest first: acknowledgements arrive out of order.
        const call = open[open.length - 1];
        answered.add(call);
        call.resolve();
      }
      await up.done;
      expect(up.gauge.maxInFlight).toBe(Math.min(window, total));
      expect(up.gauge.maxHeld).toBeLessThanOrEqual(window + 1);
      expect([...up.sent].sort((a, b) => a - b)).toEqual(
        Array.from({ length: total }, (_, i) => i),
      );
      const finals = up.calls.filter((c) => c.chunk.final);
      expect(finals.map((c) => c.chunk.index)).toEqual([total - 1]);
    },
  );

  it('with a window of 1 sends one chunk after the other, like the seed', async () => {
    const up = start(1, 4);
    for (let i = 0; i < 4; i++) {
      await settle();
      expect(up.calls.map((c) => c.chunk.index)).toEqual(
        Array.from({ length: i + 1 }, (_, k) => k),
      );
      up.calls[i].resolve();
    }
    await up.done;
    expect(up.gauge.maxInFlight).toBe(1);
  });

  it('fails the upload when one chunk fails for good: the others are cancelled, nothing more is read', async () => {
    const up = start(4, 20);
    await settle();
    expect(up.calls).toHaveLength(4);
    const failure = new Error('chunk 1 failed after its retries');
    up.calls[1].reject(failure);
    await expect(up.done).rejects.toBe(failure);
    expect(up.calls.map((c) => c.signal.aborted)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    const pulled = up.body.pulled;
    await settle();
    expect(up.calls).toHaveLength(4);
    expect(up.body.pulled).toBe(pulled);
  });

  it('stops at once when the exchange is aborted, with its reason', async () => {
    const up = start(2, 10);
    await settle();
    const reason = new Error('the application went away');
    up.controller.abort(reason);
    await expect(up.done).rejects.toBe(reason);
    expect(up.calls.every((c) => c.signal.aborted)).toBe(true);
  });

  it('reports a body that fails while being read, and cancels the chunks in flight', async () => {
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(CHUNK * 2));
    const reader = readChunks(source, { chunkSize: CHUNK });
    const signals: AbortSignal[] = [];
    const done = uploadChunks({
      window: 4,
      read: (signal) => untilAborted(reader.next(), signal),
      send: (_chunk, signal) => {
        signals.push(signal);
        return new Promise<void>((_resolve, reject) =>
          signal.addEventListener('abort', () =>
            reject(signal.reason as Error),
          ),
        );
      },
      signal: new AbortController().signal,
    });
    await settle();
    source.destroy(new Error('aborted'));
    await expect(done).rejects.toThrow('aborted');
    expect(signals.length).toBeGreaterThan(0);
    expect(signals.every((s) => s.aborted)).toBe(true);
  });
});
