/** A buffer lent by a {@link BufferPool}. */
export interface PooledBuffer {
  /** The whole buffer, `size` bytes; what it held before is undefined. */
  readonly buffer: Buffer;
  /**
   * Gives the buffer back. Call it once nothing reads the buffer any more
   * (the call that sent it is over); calling it again does nothing. Views
   * into the buffer must not be used afterwards: it is lent out again.
   */
  release(): void;
}

/**
 * Buffers of one size, lent out and given back, so that memory which only
 * carries bytes through (a request chunk while it is uploaded, a body while
 * the gateway checks and forwards it) is reused instead of allocated per
 * call. A fresh megabyte costs page faults while it is first written (on a
 * virtual machine, where the host hands out pages lazily, several times the
 * cost of copying into it) and garbage collection once dropped; a reused one
 * costs neither. Copying socket reads into a pooled buffer also lets a body
 * go out in one write instead of one per read.
 *
 * At most `maxFree` buffers wait for reuse; more given back are left to the
 * garbage collector, so an idle process holds at most `size * maxFree`
 * bytes here. Pure: no I/O.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly size: number,
    private readonly maxFree: number,
  ) {}

  /** Buffers waiting for reuse (for tests). */
  get idle(): number {
    return this.free.length;
  }

  /** Lends a buffer of `size` bytes: a free one, or a new one. */
  take(): PooledBuffer {
    const buffer = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    let lent = true;
    return {
      buffer,
      release: () => {
        if (!lent) return;
        lent = false;
        if (this.free.length < this.maxFree) this.free.push(buffer);
      },
    };
  }
}
