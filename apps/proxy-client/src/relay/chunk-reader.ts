import type { Readable } from 'node:stream';
import { BufferPool, MiB } from '@app/protocol';

/** One piece of a request body, as uploaded in one call. */
export interface BodyChunk {
  index: number;
  data: Buffer;
  /** True on the last piece: nothing follows. */
  final: boolean;
  /**
   * Chunk 0 when a `firstChunkPrefix` was given: the prefix followed by
   * `data` in one buffer (`data` is a view into it), so the one-call
   * exchange sends its JSON head and first chunk without a second copy.
   */
  framed?: Buffer;
  /**
   * Gives the chunk's buffer back to the pool it was lent from, once the
   * call that sends it is over (`data` and `framed` must not be used after).
   * Idempotent; a chunk never released only costs the pool a reuse.
   */
  release(): void;
}

/** Chunk buffers kept for reuse, per chunk size: a window's worth of the default 1 MiB chunks. */
const POOLED_BYTES = 16 * MiB;
const pools = new Map<number, BufferPool>();

/**
 * The process's pool of chunk buffers of `size` bytes: every exchange of
 * one CHUNK_SIZE shares it, and at most {@link POOLED_BYTES} wait idle.
 */
export function chunkBufferPool(size: number): BufferPool {
  let pool = pools.get(size);
  if (!pool) {
    pool = new BufferPool(size, Math.max(1, Math.floor(POOLED_BYTES / size)));
    pools.set(size, pool);
  }
  return pool;
}

export interface ChunkReaderOptions {
  /** Bytes per chunk (CHUNK_SIZE); every chunk but the first and the last is exactly this size. */
  chunkSize: number;
  /** Bytes of chunk 0, when less than `chunkSize` (the exchange leaves room for its JSON head). */
  firstChunkSize?: number;
  /** Bytes to put in front of chunk 0, in the same buffer: see {@link BodyChunk.framed}. */
  firstChunkPrefix?: Buffer;
  /**
   * The declared body size (Content-Length), or null when unknown. When
   * known, the chunk that reaches it is final at once (no waiting for the
   * stream's end), and a stream that ends before it throws
   * {@link BodyEndedEarlyError}.
   */
  expectedBytes?: number | null;
  /** Most bytes the body may have; exceeding it throws `tooLarge()` at once. */
  maxBytes?: number;
  tooLarge?: (maxBytes: number) => Error;
  /** Lends the buffers chunks are assembled in; without one each chunk gets a new buffer. */
  pool?: BufferPool;
}

/** The body stream ended before the bytes its Content-Length promised. */
export class BodyEndedEarlyError extends Error {
  readonly code = 'BODY_ENDED_EARLY';
  constructor(
    readonly received: number,
    readonly expected: number,
  ) {
    super(
      `The request body ended after ${received} of ${expected} bytes (Content-Length)`,
    );
    this.name = 'BodyEndedEarlyError';
  }
}

/**
 * Reads a body stream as chunks of `chunkSize` bytes, one at a time.
 *
 * It only reads while the consumer asks for the next chunk: between two
 * calls nothing is pulled, the stream's buffer fills and Node stops reading
 * the socket, so the application is slowed down to the gateway's pace and
 * the reader itself holds at most one chunk being assembled.
 *
 * No byte is copied when a subarray will do: a chunk made of one socket read
 * (or a slice of one) is that read; a chunk assembled from several reads is
 * copied once (chunk 0 together with its prefix) into a buffer lent by
 * `pool`, which the caller gives back with {@link BodyChunk.release} once
 * the chunk is sent. The same few buffers so carry the whole body: no fresh
 * megabyte (page faults, garbage) per chunk, and the chunk goes out in one
 * write rather than one per socket read.
 *
 * The last chunk is marked `final`. With a known size the reader counts;
 * without (chunked upload) it peeks at one more read before yielding a full
 * chunk, so an empty final chunk is never needed after a full one. An empty
 * body yields one empty final chunk. The stream is not destroyed when the
 * consumer stops early: the caller decides what happens to the rest (see
 * app-answers).
 */
export async function* readChunks(
  source: Readable,
  options: ChunkReaderOptions,
): AsyncGenerator<BodyChunk> {
  const { chunkSize, maxBytes } = options;
  const expected = options.expectedBytes ?? null;
  const it = source.iterator({ destroyOnReturn: false });
  let pending: Buffer | undefined;
  let ended = false;
  /** Bytes read from the stream (pending included). */
  let total = 0;
  /** Bytes handed out in chunks. */
  let consumed = 0;

  /** The next non-empty piece of the stream, or undefined at its end. */
  const pull = async (): Promise<Buffer | undefined> => {
    if (pending) {
      const piece = pending;
      pending = undefined;
      return piece;
    }
    while (!ended) {
      const next = await it.next();
      if (next.done) {
        ended = true;
        break;
      }
      const piece = Buffer.isBuffer(next.value)
        ? next.value
        : Buffer.from(next.value as Uint8Array);
      if (piece.length === 0) continue;
      total += piece.length;
      if (maxBytes !== undefined && total > maxBytes) {
        throw (options.tooLarge ?? defaultTooLarge)(maxBytes);
      }
      return piece;
    }
    return undefined;
  };

  try {
    for (let index = 0; ; index++) {
      const budget =
        index === 0 ? (options.firstChunkSize ?? chunkSize) : chunkSize;
      const parts: Buffer[] = [];
      let size = 0;
      while (size < budget && consumed + size !== expected) {
        const piece = await pull();
        if (!piece) break;
        const room = budget - size;
        if (piece.length > room) {
          parts.push(piece.subarray(0, room));
          pending = piece.subarray(room);
          size += room;
        } else {
          parts.push(piece);
          size += piece.length;
        }
      }
      consumed += size;
      let final: boolean;
      if (expected !== null) {
        if (consumed < expected && size < budget) {
          throw new BodyEndedEarlyError(consumed, expected);
        }
        final = consumed >= expected;
      } else {
        final = size < budget;
        if (!final && !pending) {
          pending = await pull();
          final = pending === undefined;
        }
      }
      const prefix = index === 0 ? options.firstChunkPrefix : undefined;
      if (!prefix && parts.length <= 1) {
        yield {
          index,
          data: parts[0] ?? Buffer.alloc(0),
          final,
          release: () => {},
        };
      } else {
        const lease = lend(options.pool, (prefix?.length ?? 0) + size);
        const framed = join(lease.buffer, prefix ? [prefix, ...parts] : parts);
        yield {
          index,
          data: framed.subarray(prefix?.length ?? 0),
          final,
          framed: prefix ? framed : undefined,
          release: lease.release,
        };
      }
      if (final) return;
    }
  } finally {
    await it.return?.();
  }
}

/** A buffer of at least `size` bytes: from the pool when it has them, otherwise a new one. */
function lend(
  pool: BufferPool | undefined,
  size: number,
): { buffer: Buffer; release: () => void } {
  if (pool && size <= pool.size) return pool.take();
  return { buffer: Buffer.allocUnsafe(size), release: () => {} };
}

/** Copies `parts` one after the other to the start of `buffer`; returns the view of what they fill. */
function join(buffer: Buffer, parts: Buffer[]): Buffer {
  let offset = 0;
  for (const part of parts) offset += part.copy(buffer, offset);
  return buffer.subarray(0, offset);
}

function defaultTooLarge(maxBytes: number): Error {
  return new RangeError(`The body is larger than ${maxBytes} bytes`);
}
