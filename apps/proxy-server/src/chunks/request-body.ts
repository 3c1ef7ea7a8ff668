import { ErrorCode, ProtocolError } from '@app/protocol';
import type { SpoolFile } from '../spool/spool-file.js';

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

/** Where a request body may keep its bytes. */
export interface RequestBodyOptions {
  /** `body_size` of the connection, when the client declared it. */
  declaredSize: number | undefined;
  maxBodySize: number;
  /** Bytes kept in memory; chunks beyond go to the spool file. Default: no limit. */
  memoryLimit?: number;
  /** Makes the spool file, the first time a chunk does not fit in memory. */
  spool?: () => SpoolFile;
}

/**
 * The request body of one connection, assembled from chunks that may arrive
 * in any order, in parallel, more than once, or (seed clients) without an
 * index.
 *
 * Rules (docs/PROTOCOL.md, `POST /proxy/chunk`):
 * - a chunk without index takes the index after the highest one seen;
 * - the same index again with the same size is harmless, with another size
 *   it is a `chunk_conflict`, and so is any index after the final one, and
 *   any index outside the body (see {@link lastPossibleIndex});
 * - the body is complete once the final chunk and every index before it are
 *   stored; `completedNow` is true for exactly one call, which is what makes
 *   the target request happen exactly once;
 * - more bytes than `maxBodySize`, or a size that cannot match `body_size`,
 *   fail the body for good: its bytes are freed and every later call gets
 *   the same error.
 *
 * Memory stays bounded whatever the body's size: chunks are kept in memory
 * (as the pieces they were read in, never copied) while the body holds at
 * most `memoryLimit` bytes; later ones are written to a spool file, each at
 * its own offset, so parallel uploads never wait for each other. The body
 * is complete only once every chunk is stored. {@link drain} hands the body to
 * the target request in index order, from memory and file alike, freeing
 * each chunk as it goes; sizes stay, so a re-sent chunk is still recognised
 * after that.
 */
export class RequestBody {
  private readonly memory = new Map<number, readonly Buffer[]>();
  /** Offsets in the spool file of the chunks stored there. */
  private readonly spooled = new Map<number, number>();
  private readonly sizes = new Map<number, number>();
  /** Spool writes still running, by index. */
  private readonly writing = new Map<number, Promise<void>>();
  private readonly declaredSize: number | undefined;
  private readonly maxBodySize: number;
  private readonly memoryLimit: number;
  private readonly makeSpool: (() => SpoolFile) | undefined;
  private spool: SpoolFile | undefined;
  private finalIndex: number | undefined;
  private highestIndex = -1;
  private received = 0;
  private inMemory = 0;
  private peakInMemory = 0;
  private completed = false;
  private drained = false;
  private freed = false;
  private failure: ProtocolError | undefined;

  constructor(options: RequestBodyOptions) {
    this.declaredSize = options.declaredSize;
    this.maxBodySize = options.maxBodySize;
    this.memoryLimit = options.memoryLimit ?? Number.POSITIVE_INFINITY;
    this.makeSpool = options.spool;
  }

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
    return this.inMemory;
  }

  /** The most bytes ever held in memory at once (never above `memoryLimit`). */
  get peakBufferedBytes(): number {
    return this.peakInMemory;
  }

  /** The spool file, once a chunk went there (until the body is freed). */
  get spoolFile(): SpoolFile | undefined {
    return this.spool;
  }

  /**
   * Takes one chunk and resolves once it is stored; rejects with a
   * ProtocolError when it contradicts what came before or cannot be stored.
   */
  async accept(
    requestedIndex: number | undefined,
    data: Buffer | readonly Buffer[],
    final: boolean,
  ): Promise<ChunkReceipt> {
    if (this.failure) throw this.failure;
    const parts: readonly Buffer[] = Buffer.isBuffer(data) ? [data] : data;
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    const index = requestedIndex ?? this.highestIndex + 1;
    if (index > this.lastPossibleIndex) throw this.outsideBody(index);

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
      if (known !== size) {
        throw conflict(
          `Chunk ${index} already arrived with ${known} bytes; this copy has ${size}. Re-send a chunk only with the same bytes.`,
        );
      }
      // A re-send whose first answer was lost: nothing changes, except that
      // it may be the first time this index is declared final. If the first
      // copy is still being written, answer once it is stored.
      if (final) this.finalIndex = index;
      await this.settled(this.writing.get(index));
      return this.receipt(index);
    }
    if (this.freed) throw released();

    if (this.received + size > this.maxBodySize) {
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
      this.received + size > this.declaredSize
    ) {
      this.fail(
        sizeMismatch(
          `Chunk ${index} brings the body to ${this.received + size} bytes, more than body_size ${this.declaredSize}`,
        ),
      );
    }

    // Everything above and below until the write is synchronous: a parallel
    // chunk sees this one's index, size and finality at once.
    this.sizes.set(index, size);
    this.received += size;
    this.highestIndex = Math.max(this.highestIndex, index);
    if (final) this.finalIndex = index;

    if (this.inMemory + size <= this.memoryLimit || !this.makeSpool) {
      this.memory.set(index, parts);
      this.inMemory += size;
      this.peakInMemory = Math.max(this.peakInMemory, this.inMemory);
    } else {
      this.spool ??= this.makeSpool();
      const offset = this.spool.reserve(size);
      const write = this.spool.write(parts, offset);
      this.writing.set(index, write);
      try {
        await this.settled(write);
      } finally {
        this.writing.delete(index);
      }
      this.spooled.set(index, offset);
    }
    return this.receipt(index);
  }

  /**
   * The highest index a chunk of this body can have. Chunk sizes are the
   * client's to choose, but every chunk before the final one carries at
   * least one byte (an empty one would add nothing), so a body of N bytes
   * has at most N + 1 chunks: indices 0 to N, the final one possibly empty.
   * N is `body_size` when declared, else MAX_BODY_SIZE. A higher index can
   * only be a client's mistake, and would otherwise wait for chunks that
   * can never come.
   */
  private get lastPossibleIndex(): number {
    return this.declaredSize ?? this.maxBodySize;
  }

  private outsideBody(index: number): ProtocolError {
    const bound =
      this.declaredSize === undefined
        ? `MAX_BODY_SIZE (${this.maxBodySize} bytes)`
        : `body_size ${this.declaredSize}`;
    return conflict(
      `Chunk ${index} is outside the body: with ${bound} the chunk indices run from 0 to ${this.lastPossibleIndex} at most (every chunk but the final one carries at least one byte). Number chunks from 0 in the order of their bytes.`,
    );
  }

  /**
   * Waits for a spool write; its failure fails the body (507). Afterwards,
   * the body may have failed or been freed by someone else meanwhile.
   */
  private async settled(write: Promise<void> | undefined): Promise<void> {
    try {
      await write;
    } catch (error) {
      // A chunk that could not be stored leaves a hole: the body fails for
      // good, whatever the cause (507 for the disk, 500 for a bug).
      if (!this.failure && !this.freed) this.fail(storeFailure(error));
    }
    if (this.failure) throw this.failure;
    if (this.freed && !this.completed) throw released();
  }

  /**
   * Yields the body in index order, from memory and spool file, each chunk
   * forgotten once handed out, so the body is never copied into one buffer.
   * Only for a complete body, once. Ends early when the body is freed
   * (connection released while the target request runs).
   */
  async *drain(): AsyncGenerator<Buffer, void, undefined> {
    if (!this.completed || this.drained || this.finalIndex === undefined) {
      throw new Error('drain() needs a complete body and runs only once');
    }
    this.drained = true;
    for (let index = 0; index <= this.finalIndex; index++) {
      if (this.freed) return;
      const parts = this.memory.get(index);
      if (parts) {
        this.memory.delete(index);
        this.inMemory -= this.sizes.get(index) ?? 0;
        yield* parts;
        continue;
      }
      const offset = this.spooled.get(index);
      if (offset === undefined || !this.spool) return;
      try {
        yield* this.spool.read(offset, this.sizes.get(index) ?? 0);
      } catch (error) {
        if (this.freed) return;
        throw error;
      }
    }
  }

  /** Frees every chunk: memory now, the spool file in the background. */
  free(): void {
    this.freed = true;
    this.memory.clear();
    this.inMemory = 0;
    this.spooled.clear();
    void this.spool?.discard();
  }

  private receipt(index: number): ChunkReceipt {
    let completedNow = false;
    if (
      !this.completed &&
      this.finalIndex !== undefined &&
      this.sizes.size === this.finalIndex + 1 &&
      this.writing.size === 0
    ) {
      // No index above the final one is ever accepted, so finalIndex + 1
      // distinct indices are exactly 0 … finalIndex; none is still being written.
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

function storeFailure(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error;
  return new ProtocolError(
    500,
    ErrorCode.Internal,
    `proxy-server failed to store a request chunk (a bug: ${error instanceof Error ? error.message : String(error)}); the connection is closed.`,
    { cause: error },
  );
}

function released(): ProtocolError {
  return new ProtocolError(
    404,
    ErrorCode.ConnectionNotFound,
    'The connection was released while this chunk arrived: open a new one with POST /proxy/connection.',
  );
}
