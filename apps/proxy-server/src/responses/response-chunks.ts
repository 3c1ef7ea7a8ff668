import {
  BufferPool,
  ErrorCode,
  ProtocolError,
  type PooledBuffer,
  type TargetHead,
} from '@app/protocol';

/** One response chunk, ready to be served. */
export interface ReadyChunk {
  ready: true;
  index: number;
  /** The bytes, in one or more pieces (written out without joining them). */
  parts: Buffer[];
  size: number;
  /** False on the last chunk. */
  more: boolean;
  /** The target's status line and headers, on chunk 0 only. */
  head?: TargetHead;
}

/** The chunk asked for was not ready within the wait: ask again. */
export interface PendingChunk {
  ready: false;
}

export type ChunkRead = ReadyChunk | PendingChunk;

interface Sealed {
  parts: Buffer[];
  size: number;
  /** The response's own buffer holding the bytes (chunks after 0), given back when freed. */
  lease?: PooledBuffer;
}

type Wake = 'changed' | 'timeout' | 'aborted';

/**
 * The target's response of one connection, cut into chunks as it streams in,
 * and the waiting on both sides of it (docs/PROTOCOL.md, `GET /proxy/response`).
 *
 * Producer (the target request): {@link start} with the head, {@link push}
 * body bytes, {@link end} or {@link fail}; between pushes it awaits
 * {@link waitForRoom}, which holds it back while more than `window` sealed
 * chunks are not yet freed: that is the backpressure that stops reading the
 * target's body when the client does not fetch.
 *
 * Consumer (`GET /proxy/response`): {@link read} frees chunks ≤ j − window,
 * then waits up to the long-poll bound for chunk j. A chunk is sealed when it
 * is full, when the body ends, or when a long-poll for it expires while it
 * holds bytes (chunk 0: or just the head).
 *
 * Every change wakes every waiter, which then re-checks the state; a waiter
 * removes its listener, timer and abort handler whichever way it wakes.
 *
 * Memory: chunk 0 keeps the target's socket reads as they came (a small
 * response costs no buffer of its own). From chunk 1 on, the bytes are
 * copied into `chunkSize` buffers of this response, reused for later
 * chunks as earlier ones are freed: the socket reads then die young
 * instead of living through the window into costly full garbage
 * collections (the server's peak RSS over a 1 GiB download, and a good
 * part of its CPU). A buffer is reused only once its chunk is freed — after
 * the client asked for a chunk `window` later, which a client following
 * the protocol does only once it has the freed one — or the connection is
 * released. A client that asks ahead of that rule can garble only its own
 * response: the buffers never pass from one connection to another.
 */
export class ResponseChunks {
  private head: TargetHead | undefined;
  private readonly sealed = new Map<number, Sealed>();
  private open: Buffer[] = [];
  /** The buffer the open chunk is copied into (chunks after 0). */
  private openLease: PooledBuffer | undefined;
  private openBytes = 0;
  /** This response's chunk buffers: a window's worth at most, reused. */
  private readonly buffers: BufferPool;
  /** Index of the chunk being filled. */
  private openIndex = 0;
  /** Set once the body ended: the index of the last chunk. */
  private lastIndex: number | undefined;
  /** Chunks below this index are freed. */
  private freedBelow = 0;
  /** The highest index served with `more: true`. */
  private announcedMore = -1;
  /** The last chunk was served: the client has the whole response. */
  private wholeServed = false;
  private failure: ProtocolError | undefined;
  private released = false;
  private bodyBytes = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly chunkSize: number,
    readonly window: number,
  ) {
    this.buffers = new BufferPool(chunkSize, window + 2);
  }

  /** Response body bytes received from the target so far. */
  get receivedBytes(): number {
    return this.bodyBytes;
  }

  /** Bytes held in memory: sealed chunks not yet freed plus the open one. */
  get bufferedBytes(): number {
    let bytes = this.openBytes;
    for (const chunk of this.sealed.values()) bytes += chunk.size;
    return bytes;
  }

  /** True while the producer must not read more of the target's body. */
  get full(): boolean {
    return !this.released && this.sealed.size > this.window;
  }

  get headReceived(): boolean {
    return this.head !== undefined;
  }

  /** The last chunk was served (X-More-Chunks: false) at least once. */
  get delivered(): boolean {
    return this.wholeServed;
  }

  /** The body ended or failed: nothing more will be pushed. */
  get finished(): boolean {
    return this.lastIndex !== undefined || this.failure !== undefined;
  }

  start(head: TargetHead): void {
    this.head = head;
    this.notify();
  }

  push(data: Buffer): void {
    if (this.released || this.finished) return;
    this.bodyBytes += data.length;
    let rest = data;
    while (rest.length > 0) {
      const take = Math.min(this.chunkSize - this.openBytes, rest.length);
      if (this.openIndex === 0) {
        this.open.push(rest.subarray(0, take));
      } else {
        this.openLease ??= this.buffers.take();
        rest.copy(this.openLease.buffer, this.openBytes, 0, take);
      }
      this.openBytes += take;
      rest = rest.subarray(take);
      if (this.openBytes === this.chunkSize) this.seal();
    }
    this.notify();
  }

  end(): void {
    if (this.released || this.finished) return;
    const previous = this.openIndex - 1;
    if (
      this.openBytes === 0 &&
      previous >= 0 &&
      this.sealed.has(previous) &&
      this.announcedMore < previous
    ) {
      // The body ended exactly at a chunk boundary and nobody was told yet
      // that more follows the last full chunk: it becomes the last one
      // instead of an empty chunk after it.
      this.lastIndex = previous;
    } else {
      this.lastIndex = this.openIndex;
      this.seal();
    }
    this.notify();
  }

  /** The target failed; chunks sealed before stay servable, the rest answer `error`. */
  fail(error: ProtocolError): void {
    if (this.released || this.finished) return;
    this.failure = error;
    this.dropOpen();
    this.notify();
  }

  /** Frees everything and answers every waiter with 404. */
  release(): void {
    this.released = true;
    for (const chunk of this.sealed.values()) chunk.lease?.release();
    this.sealed.clear();
    this.dropOpen();
    this.notify();
  }

  /** Resolves once the producer may read more (or the connection is gone). */
  async waitForRoom(): Promise<void> {
    while (this.full) await this.changed();
  }

  /**
   * Answers `GET /proxy/response` for chunk `index`: the chunk, or pending
   * after `waitMs`, or a ProtocolError (404 released, 409 freed or past the
   * end, 502/504 the target failed). `signal` ends the wait early when the
   * caller went away.
   */
  async read(
    index: number,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<ChunkRead> {
    this.freeUpTo(index - this.window);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const chunk = this.tryRead(index);
      if (chunk) return chunk;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const wake = await this.changed(remaining, signal);
      if (wake === 'aborted') return { ready: false };
    }
    this.sealOnExpiry(index);
    return this.tryRead(index) ?? { ready: false };
  }

  private tryRead(index: number): ReadyChunk | undefined {
    if (this.released) throw released();
    const chunk = this.sealed.get(index);
    if (chunk) return this.serve(index, chunk);
    if (index < this.openIndex || index < this.freedBelow) {
      // Cut already, and no longer here: freed.
      throw new ProtocolError(
        409,
        ErrorCode.ChunkConflict,
        `Response chunk ${index} was freed: a chunk at least download_window (${this.window}) later was already asked for. Ask for chunks in order, at most download_window ahead.`,
      );
    }
    if (this.lastIndex !== undefined && index > this.lastIndex) {
      throw new ProtocolError(
        409,
        ErrorCode.ChunkConflict,
        `Response chunk ${index} is past the end: the last chunk is ${this.lastIndex}.`,
      );
    }
    if (this.failure) throw this.failure;
    return undefined;
  }

  /**
   * Hands out a sealed chunk. Serving the last one marks the response
   * {@link delivered}. The chunks still held then are at most the window's
   * (everything ≤ j − window is freed already), and they stay until the
   * connection is forgotten: with parallel fetches, the answer of one of
   * them may have been lost while the last one went through, and the client
   * asks for it again.
   */
  private serve(index: number, chunk: Sealed): ReadyChunk {
    const more = this.lastIndex !== index;
    if (more) this.announcedMore = Math.max(this.announcedMore, index);
    else this.wholeServed = true;
    return {
      ready: true,
      index,
      parts: chunk.parts,
      size: chunk.size,
      more,
      head: index === 0 ? this.head : undefined,
    };
  }

  /** A long-poll for the open chunk expired: hand out what it holds rather than nothing. */
  private sealOnExpiry(index: number): void {
    if (this.released || this.finished || index !== this.openIndex) return;
    if (this.openBytes > 0 || (index === 0 && this.head !== undefined)) {
      this.seal();
    }
  }

  private seal(): void {
    const lease = this.openLease;
    const parts = lease
      ? [lease.buffer.subarray(0, this.openBytes)]
      : this.open;
    if (this.openIndex >= this.freedBelow) {
      this.sealed.set(this.openIndex, { parts, size: this.openBytes, lease });
    } else {
      lease?.release();
    }
    this.openIndex += 1;
    this.open = [];
    this.openLease = undefined;
    this.openBytes = 0;
  }

  /** Forgets the open chunk's bytes (and gives its buffer back). */
  private dropOpen(): void {
    this.openLease?.release();
    this.openLease = undefined;
    this.open = [];
    this.openBytes = 0;
  }

  private freeUpTo(upTo: number): void {
    if (upTo < this.freedBelow) return;
    // Over the chunks held, not over the indexes: an index may be asked for
    // up to 999999999, and a loop to it would block the server for seconds.
    for (const [i, chunk] of this.sealed) {
      if (i > upTo) continue;
      this.sealed.delete(i);
      chunk.lease?.release();
    }
    this.freedBelow = upTo + 1;
    this.notify();
  }

  private notify(): void {
    // A listener deletes itself; a Set iteration copes with that.
    for (const listener of this.listeners) listener();
  }

  /** Resolves at the next change, after `timeoutMs`, or when `signal` aborts. */
  private changed(timeoutMs?: number, signal?: AbortSignal): Promise<Wake> {
    if (signal?.aborted) return Promise.resolve('aborted');
    return new Promise<Wake>((resolve) => {
      const done = (wake: Wake) => {
        this.listeners.delete(onChange);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(wake);
      };
      const onChange = () => done('changed');
      const onAbort = () => done('aborted');
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => done('timeout'), timeoutMs);
      this.listeners.add(onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Listeners currently waiting (for tests: none may be left behind). */
  get waiters(): number {
    return this.listeners.size;
  }
}

function released(): ProtocolError {
  return new ProtocolError(
    404,
    ErrorCode.ConnectionNotFound,
    'The connection was released while waiting for its response: open a new one with POST /proxy/connection.',
  );
}
