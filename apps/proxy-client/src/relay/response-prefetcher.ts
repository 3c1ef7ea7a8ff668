import { PENDING, type ResponseChunk } from '../gateway/proxy-server-api.js';
import { untilAborted } from './exchange-deadline.js';
import { contentLength } from './response-writer.js';

/** How many response chunks a download asked for and held at once, at most (for tests). */
export interface DownloadGauge {
  /** Chunk calls in flight now / at most. */
  inFlight: number;
  maxInFlight: number;
  /** Chunks held now / at most: received and not yet delivered, plus the one being delivered. */
  held: number;
  maxHeld: number;
  /** Every index asked for, in the order asked (202 re-asks included). */
  asked: number[];
}

export function newDownloadGauge(): DownloadGauge {
  return { inFlight: 0, maxInFlight: 0, held: 0, maxHeld: 0, asked: [] };
}

export interface PrefetchOptions {
  /** DOWNLOAD_CONCURRENCY, sent to the server as `download_window`. */
  window: number;
  /** The `response_chunk_size` asked of the server: no chunk is larger. */
  chunkSize: number;
  /** One `GET /proxy/response`: the chunk, or PENDING after the server's long-poll. */
  fetch: (
    index: number,
    signal: AbortSignal,
  ) => Promise<ResponseChunk | typeof PENDING>;
  /** Chunk 0 when the exchange call already brought it. */
  first?: ResponseChunk;
  /** The exchange's signal: aborting it stops every call. */
  signal: AbortSignal;
  gauge?: DownloadGauge;
}

/** One response chunk asked for. */
interface Slot {
  /** Settles with the chunk; rejections are observed only for chunks up to the last. */
  promise: Promise<ResponseChunk>;
  chunk?: ResponseChunk;
}

/**
 * Step: fetches the response chunks, up to `window` at once, and yields them
 * strictly in order. The consumer delivers each chunk (writes it, awaits
 * `drain`) before it asks for the next, which is what "delivered" means here.
 *
 * ```
 * chunk 0 (from the exchange, or GET #0) ─▶ head known
 *   GET #1 … #W at once ─▶ answers in any order ─▶ yield #1, #2 … in order
 *   each delivery of #d lets #d+W be asked for; 202 ─▶ ask that index again
 *   a chunk with X-More-Chunks: false ─▶ the end; later answers are ignored
 * ```
 *
 * The rules, from docs/PROTOCOL.md ("Freeing response chunks"):
 * - chunk j is asked for only once every chunk ≤ j − window was delivered
 *   (the server frees those when j is asked for), so at most `window` calls
 *   are in flight and at most `window` + 1 chunks are held;
 * - nothing is asked for ahead of chunk 0: until its head says otherwise
 *   the response may be one chunk, and every speculative call is a round
 *   trip that counts against the gateway's quota;
 * - with a Content-Length, only chunks that can still hold part of the body
 *   are asked for ahead (chunks are at most `chunkSize`), so a response
 *   of known length costs no call past its end; without one, asking ahead
 *   starts slowly (see `speculation`) and at most `window` − 1 calls go
 *   past the end and come back 409, ignored;
 * - whatever the length says, the chunk after one that announced more is
 *   always asked for.
 *
 * When the consumer stops early (the application left, an error) every call
 * still in flight is aborted, and chunks received but not delivered are
 * released (see {@link ResponseChunk.release}); a delivered chunk is the
 * consumer's to release. At the normal end calls past the end are left
 * to finish: the server already answers them 409, and aborting would throw
 * their keep-alive connections away.
 */
export async function* prefetchResponse(
  options: PrefetchOptions,
): AsyncGenerator<ResponseChunk> {
  const { window, chunkSize, gauge = newDownloadGauge() } = options;
  const controller = new AbortController();
  const stop = () => controller.abort(options.signal.reason);
  if (options.signal.aborted) stop();
  options.signal.addEventListener('abort', stop, { once: true });

  const slots = new Map<number, Slot>();
  /** Index of the next chunk to deliver; every chunk below it was delivered. */
  let next = 0;
  /** Body bytes of the chunks delivered. */
  let deliveredBytes = 0;
  /** The highest index asked for. */
  let asked = -1;
  /** The index of the last chunk, once a chunk said no more follow. */
  let last: number | undefined;
  /** Content-Length of the target's response, once chunk 0 is in. */
  let length: number | undefined;
  let headKnown = false;
  /** Chunks received full and announcing more: evidence of a long response. */
  let fullChunks = 0;
  let inFlight = 0;
  let delivering = false;

  const measure = () => {
    let received = 0;
    for (const slot of slots.values()) if (slot.chunk) received += 1;
    gauge.inFlight = inFlight;
    gauge.held = received + (delivering ? 1 : 0);
    gauge.maxInFlight = Math.max(gauge.maxInFlight, gauge.inFlight);
    gauge.maxHeld = Math.max(gauge.maxHeld, gauge.held);
  };

  /** True if chunk j can hold part of the response, as far as is known. */
  const mayExist = (j: number): boolean => {
    if (last !== undefined) return j <= last;
    if (j === 0) return true;
    if (!headKnown) return false;
    if (j <= frontier()) return true;
    if (length === undefined) return j <= frontier() + speculation();
    let most = deliveredBytes;
    for (let i = next; i < j; i++)
      most += slots.get(i)?.chunk?.size ?? chunkSize;
    return most < length;
  };

  /** The highest index known to exist: the one after the latest that announced more. */
  const frontier = (): number => {
    let known = next;
    for (const [i, slot] of slots)
      if (slot.chunk?.more) known = Math.max(known, i + 1);
    return known;
  };

  /**
   * How far past the frontier to ask when the length is unknown (a chunked
   * response): nothing until two full chunks came, then 1, 3, 7… up to
   * `window` − 1, doubling with each full chunk. A response of a few
   * chunks so costs no call past its end; a long one soon prefetches at
   * full width, paying at most `window` − 1 calls (409) past its end.
   */
  const speculation = (): number =>
    fullChunks < 2 ? 0 : Math.min(window - 1, 2 ** (fullChunks - 1) - 1);

  const record = (index: number, slot: Slot, chunk: ResponseChunk) => {
    slot.chunk = chunk;
    if (chunk.more && chunk.size >= chunkSize) fullChunks += 1;
    if (index === 0) {
      headKnown = true;
      length = chunk.head && contentLength(chunk.head);
    }
    if (!chunk.more && (last === undefined || index < last)) last = index;
  };

  /** Asks for chunk `index` until it is ready (202 means: ask again). */
  const fetchReady = async (index: number): Promise<ResponseChunk> => {
    for (;;) {
      gauge.asked.push(index);
      inFlight += 1;
      measure();
      let answer: ResponseChunk | typeof PENDING;
      try {
        answer = await options.fetch(index, controller.signal);
      } finally {
        inFlight -= 1;
      }
      if (answer !== PENDING) return answer;
      if (last !== undefined && index > last) {
        throw new RangeError(`Response chunk ${index} is past the end`);
      }
    }
  };

  const ask = (index: number) => {
    asked = index;
    const slot = { promise: undefined } as unknown as Slot;
    slot.promise = fetchReady(index).then((chunk) => {
      if (stopped) {
        chunk.release(); // arrived after the download stopped: never delivered
        return chunk;
      }
      record(index, slot, chunk);
      measure();
      fill();
      return chunk;
    });
    // Observed by the delivery loop for chunks up to the last; past the
    // end (409, aborted) a rejection is expected and ignored.
    slot.promise.catch(() => undefined);
    slots.set(index, slot);
  };

  /** Asks for every chunk the rules allow now. */
  const fill = () => {
    if (controller.signal.aborted) return;
    while (asked + 1 <= next - 1 + window && mayExist(asked + 1)) {
      ask(asked + 1);
    }
  };

  let finished = false;
  /** Set once the generator is done: chunks arriving later are released at once. */
  let stopped = false;
  try {
    if (options.first) {
      const slot: Slot = { promise: Promise.resolve(options.first) };
      record(0, slot, options.first);
      slots.set(0, slot);
      asked = 0;
    }
    fill();
    for (;;) {
      const slot = slots.get(next);
      if (!slot) {
        // Unreachable by the rules above: the chunk after one that said
        // more is always asked for. Guarded so a bug cannot hang the exchange.
        throw new Error(`Response chunk ${next} was never asked for`);
      }
      const chunk = await untilAborted(slot.promise, controller.signal);
      slots.delete(next);
      delivering = true;
      measure();
      yield chunk;
      delivering = false;
      deliveredBytes += chunk.size;
      if (!chunk.more) {
        finished = true;
        return;
      }
      next += 1;
      fill();
      measure();
    }
  } finally {
    stopped = true;
    options.signal.removeEventListener('abort', stop);
    if (!finished) controller.abort(new Error('The download stopped'));
    // Received, never delivered: their buffers are free.
    for (const slot of slots.values()) slot.chunk?.release();
  }
}
