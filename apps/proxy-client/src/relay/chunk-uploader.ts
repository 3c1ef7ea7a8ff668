import type { BodyChunk } from './chunk-reader.js';

/** How many chunks an upload held and sent at once, at most (for tests and the bounds they check). */
export interface UploadGauge {
  /** Chunk calls in flight now / at most. */
  inFlight: number;
  maxInFlight: number;
  /** Chunks held now / at most: those in flight plus the one being read. */
  held: number;
  maxHeld: number;
}

export function newUploadGauge(): UploadGauge {
  return { inFlight: 0, maxInFlight: 0, held: 0, maxHeld: 0 };
}

export interface UploadChunksOptions {
  /** UPLOAD_CONCURRENCY: most chunk calls in flight at once. */
  window: number;
  /** Reads the next chunk; rejects with the signal's reason once it aborts. */
  read: (signal: AbortSignal) => Promise<IteratorResult<BodyChunk>>;
  /** Uploads one chunk (with its retries); rejects if it finally failed. */
  send: (chunk: BodyChunk, signal: AbortSignal) => Promise<void>;
  /** Called for each chunk the server acknowledged. */
  onSent?: (chunk: BodyChunk) => void;
  /** The exchange's signal: aborting it stops everything. */
  signal: AbortSignal;
  gauge?: UploadGauge;
}

/**
 * Step: uploads the chunks `read` yields, up to `window` calls at once.
 *
 * ```
 * read #i ─▶ POST /proxy/chunk #i ─┐   (up to `window` in flight,
 * read #i+1 ─▶ POST … ─────────────┤    each with X-Chunk-Index;
 * (window full: wait for one) ◀────┘    the last one X-Chunk-Final)
 * ─▶ resolves once every chunk up to the final one was acknowledged
 * ```
 *
 * Nothing is read while `window` chunks are in flight, so the application
 * is paused and at most `window` chunks plus the one being read are held.
 * The final chunk may go before the others are acknowledged: the server
 * assembles by index. A chunk that failed after its retries fails the
 * whole upload at once: the other calls are cancelled and the error thrown.
 * With `window` 1 this is the seed's upload: read, send, wait, read on.
 */
export async function uploadChunks(
  options: UploadChunksOptions,
): Promise<void> {
  const { window, gauge = newUploadGauge() } = options;
  const controller = new AbortController();
  const stop = () => controller.abort(options.signal.reason);
  if (options.signal.aborted) stop();
  options.signal.addEventListener('abort', stop, { once: true });
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    controller.abort(error);
  };
  const measure = (reading: boolean) => {
    gauge.inFlight = inFlight.size;
    gauge.held = inFlight.size + (reading ? 1 : 0);
    gauge.maxInFlight = Math.max(gauge.maxInFlight, gauge.inFlight);
    gauge.maxHeld = Math.max(gauge.maxHeld, gauge.held);
  };

  try {
    for (;;) {
      while (inFlight.size >= window && !failure) await Promise.race(inFlight);
      if (failure) break;
      measure(true);
      let next: IteratorResult<BodyChunk>;
      try {
        next = await options.read(controller.signal);
      } catch (error) {
        fail(error);
        break;
      }
      if (next.done) break;
      const chunk = next.value;
      const sending: Promise<void> = options
        .send(chunk, controller.signal)
        .then(() => options.onSent?.(chunk), fail)
        .finally(() => {
          inFlight.delete(sending);
          measure(false);
        });
      inFlight.add(sending);
      measure(false);
      if (chunk.final) break;
    }
    // `sending` never rejects (failures go to `fail`), so this waits for all.
    await Promise.all(inFlight);
  } finally {
    options.signal.removeEventListener('abort', stop);
  }
  if (failure) throw failure.error;
}
