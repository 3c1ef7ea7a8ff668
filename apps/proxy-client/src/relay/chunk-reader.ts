import type { Readable } from 'node:stream';

/** One piece of a request body, as uploaded in one `POST /proxy/chunk`. */
export interface BodyChunk {
  index: number;
  data: Buffer;
  /** True on the last piece: nothing follows. */
  final: boolean;
}

export interface ChunkReaderOptions {
  /** Bytes per chunk (CHUNK_SIZE); every chunk but the last is exactly this size. */
  chunkSize: number;
  /** Most bytes the body may have; exceeding it throws `tooLarge()` at once. */
  maxBytes?: number;
  tooLarge?: (maxBytes: number) => Error;
}

/**
 * Reads a body stream as chunks of `chunkSize` bytes, one at a time.
 *
 * It only reads while the consumer asks for the next chunk: while a chunk is
 * being uploaded nothing is pulled, the stream's buffer fills and Node stops
 * reading the socket, so the application is slowed down to the gateway's
 * pace and at most one chunk (plus one socket read) is held.
 *
 * The last chunk is marked `final`. To know a full chunk is the last, the
 * reader peeks at one more read before yielding it; an empty body yields one
 * empty final chunk. The stream is not destroyed when the consumer stops
 * early: the caller decides what happens to the rest (see app-answers).
 */
export async function* readChunks(
  source: Readable,
  options: ChunkReaderOptions,
): AsyncGenerator<BodyChunk> {
  const { chunkSize, maxBytes } = options;
  const it = source.iterator({ destroyOnReturn: false });
  let pending: Buffer | undefined;
  let ended = false;
  let total = 0;

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
      const parts: Buffer[] = [];
      let size = 0;
      while (size < chunkSize) {
        const piece = await pull();
        if (!piece) break;
        const room = chunkSize - size;
        if (piece.length > room) {
          parts.push(piece.subarray(0, room));
          pending = piece.subarray(room);
          size += room;
        } else {
          parts.push(piece);
          size += piece.length;
        }
      }
      let final = size < chunkSize;
      if (!final && !pending) {
        pending = await pull();
        final = pending === undefined;
      }
      yield { index, data: Buffer.concat(parts, size), final };
      if (final) return;
    }
  } finally {
    await it.return?.();
  }
}

function defaultTooLarge(maxBytes: number): Error {
  return new RangeError(`The body is larger than ${maxBytes} bytes`);
}
