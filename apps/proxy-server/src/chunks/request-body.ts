import { ErrorCode, ProtocolError } from '@app/protocol';

/** What `POST /proxy/chunk` answers about one accepted chunk. */
export interface ChunkReceipt {
  index: number;
  /** Bytes of the body received so far. */
  receivedBytes: number;
  /** The final chunk and every index before it have arrived. */
  complete: boolean;
  /** This very chunk completed the body: the target request must start now. */
  completedNow: boolean;
}

/**
 * The request body of one connection, assembled from chunks that may arrive
 * in any order, more than once, or (seed clients) without an index.
 *
 * Rules (docs/PROTOCOL.md, `POST /proxy/chunk`):
 * - a chunk without index takes the index after the highest one seen;
 * - the same index again with the same size is harmless, with another size
 *   it is a `chunk_conflict`, and so is any index after the final one;
 * - the body is complete once the final chunk and every index before it are
 *   there; `completedNow` is true for exactly one call, which is what makes
 *   the target request happen exactly once;
 * - more bytes than `maxBodySize`, or a size that cannot match `body_size`,
 *   fail the body for good: its memory is freed and every later call gets
 *   the same error.
 *
 * Chunks are kept in memory until {@link drain} hands them to the target
 * request one by one; their sizes stay, so a re-sent chunk is still
 * recognised after that.
 */
export class RequestBody {
  private readonly buffers = new Map<number, Buffer>();
  private readonly sizes = new Map<number, number>();
  private finalIndex: number | undefined;
  private highestIndex = -1;
  private received = 0;
  private completed = false;
  private drained = false;
  private failure: ProtocolError | undefined;

  constructor(
    private readonly declaredSize: number | undefined,
    private readonly maxBodySize: number,
  ) {}

  get receivedBytes(): number {
    return this.received;
  }

  get complete(): boolean {
    return this.completed;
  }

  /** Why the body can never complete, if it cannot. */
  get failed(): ProtocolError | undefined {
    return this.failure;
  }

  /** Bytes held in memory, waiting to be sent to the target. */
  get bufferedBytes(): number {
    let bytes = 0;
    for (const buffer of this.buffers.values()) bytes += buffer.length;
    return bytes;
  }

  /** Takes one chunk; throws a ProtocolError when it contradicts what came before. */
  accept(
    requestedIndex: number | undefined,
    data: Buffer,
    final: boolean,
  ): ChunkReceipt {
    if (this.failure) throw this.failure;
    const index = requestedIndex ?? this.highestIndex + 1;

    if (this.finalIndex !== undefined && index > this.finalIndex) {
      throw conflict(
        `Chunk ${index} comes after the final chunk ${this.finalIndex}: the body is already whole. Open a new connection for another request.`,
      );
    }
    if (final && this.finalIndex !== undefined && index !== this.finalIndex) {
      throw conflict(
        `Chunk ${index} is marked final, but chunk ${this.finalIndex} already was.`,
      );
    }
    if (final && index < this.highestIndex) {
      throw conflict(
        `Chunk ${index} is marked final, but chunk ${this.highestIndex} already arrived after it.`,
      );
    }

    const known = this.sizes.get(index);
    if (known !== undefined) {
      if (known !== data.length) {
        throw conflict(
          `Chunk ${index} already arrived with ${known} bytes; this copy has ${data.length}. Re-send a chunk only with the same bytes.`,
        );
      }
      // A re-send whose first answer was lost: nothing changes, except that
      // it may be the first time this index is declared final.
      if (final) this.finalIndex = index;
      return this.receipt(index);
    }

    if (this.received + data.length > this.maxBodySize) {
      this.fail(
        new ProtocolError(
          413,
          ErrorCode.BodyTooLarge,
          `The request body grew past MAX_BODY_SIZE (${this.maxBodySize} bytes) with chunk ${index}; the connection is closed.`,
        ),
      );
    }
    if (
      this.declaredSize !== undefined &&
      this.received + data.length > this.declaredSize
    ) {
      this.fail(
        sizeMismatch(
          `Chunk ${index} brings the body to ${this.received + data.length} bytes, more than body_size ${this.declaredSize}`,
        ),
      );
    }

    this.buffers.set(index, data);
    this.sizes.set(index, data.length);
    this.received += data.length;
    this.highestIndex = Math.max(this.highestIndex, index);
    if (final) this.finalIndex = index;
    return this.receipt(index);
  }

  /**
   * Yields the chunks in index order, each forgotten once handed out, so the
   * body is never copied into one buffer. Only for a complete body, once.
   */
  *drain(): Generator<Buffer, void, undefined> {
    if (!this.completed || this.drained || this.finalIndex === undefined) {
      throw new Error('drain() needs a complete body and runs only once');
    }
    this.drained = true;
    for (let index = 0; index <= this.finalIndex; index++) {
      const buffer = this.buffers.get(index);
      // Released (connection deleted) while the target request was running.
      if (buffer === undefined) return;
      this.buffers.delete(index);
      yield buffer;
    }
  }

  /** Frees every buffered chunk. */
  free(): void {
    this.buffers.clear();
  }

  private receipt(index: number): ChunkReceipt {
    let completedNow = false;
    if (
      !this.completed &&
      this.finalIndex !== undefined &&
      this.sizes.size === this.finalIndex + 1
    ) {
      // No index above the final one is ever accepted, so finalIndex + 1
      // distinct indices are exactly 0 … finalIndex.
      if (
        this.declaredSize !== undefined &&
        this.received !== this.declaredSize
      ) {
        this.fail(
          sizeMismatch(
            `The body is complete with ${this.received} bytes, but body_size is ${this.declaredSize}`,
          ),
        );
      }
      this.completed = true;
      completedNow = true;
    }
    return {
      index,
      receivedBytes: this.received,
      complete: this.completed,
      completedNow,
    };
  }

  private fail(error: ProtocolError): never {
    this.failure = error;
    this.free();
    throw error;
  }
}

function conflict(message: string): ProtocolError {
  return new ProtocolError(409, ErrorCode.ChunkConflict, message);
}

function sizeMismatch(what: string): ProtocolError {
  return new ProtocolError(
    400,
    ErrorCode.SizeMismatch,
    `${what}; the connection is closed. Send body_size equal to the bytes you send, or leave it out when unknown.`,
  );
}
