import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextIoTurn } from 'node:timers/promises';
import { ByteQueue, ErrorCode, ProtocolError } from '@app/protocol';
import type { Clock } from '../common/clock.js';
import {
  parkedError,
  tunnelFailure,
  type TunnelTarget,
} from './target-socket.js';

/** One downstream segment: bytes from the target, in order. */
export interface Segment {
  sequence: number;
  data: Buffer;
  /** The target finished sending and this segment holds its last bytes (FIN). */
  closed: boolean;
}

export interface TunnelOptions {
  /** Largest downstream segment (the client's `segment_size`). */
  segmentSize: number;
  /** TUNNEL_CONNECT_TIMEOUT_MS, for messages about timeouts. */
  connectTimeoutMs: number;
  /** Time source of `lastActivity`. */
  clock: Clock;
}

/**
 * How long a long-poll woken by the first bytes keeps collecting while more
 * keep arriving: a TLS flight or a burst of writes leaves in one segment
 * instead of one per TCP read, at a cost of at most this much latency.
 */
const COALESCE_MS = 2;

/** 404 for a tunnel that is unknown, closed or expired. */
export function tunnelNotFound(id: string): ProtocolError {
  return new ProtocolError(
    404,
    ErrorCode.ConnectionNotFound,
    `Tunnel ${id} is unknown, closed or expired: open a new one with POST /proxy/tunnel.`,
  );
}

function conflict(message: string): ProtocolError {
  return new ProtocolError(409, ErrorCode.ChunkConflict, message);
}

/**
 * One CONNECT tunnel on the server: the TCP connection to the target and
 * the sequence numbers that make every call about it safe to retry.
 *
 * ```
 * upstream   send #n ──▶ n < next: already written, answered again (after its write)
 *                        n = next: written once ──▶ socket (await drain) ──▶ FIN if X-Tunnel-Close
 *                        n > next: 409
 * downstream socket ──data──▶ pending (≤ segmentSize, then socket paused: backpressure)
 *            receive #n ──▶ n = served: the same segment again (a lost answer)
 *                           n = served+1: frees it, cuts pending ≤ segmentSize
 *                                         or waits until bytes, FIN or error arrive
 * ```
 *
 * The server keeps at most `segmentSize` pending bytes plus the one segment
 * served last (until the client asks for the next), whatever the target
 * sends: memory per tunnel stays bounded.
 */
export class Tunnel {
  /** When bytes last moved either way, or the tunnel opened (clock milliseconds). */
  lastActivity: number;
  /** Upstream bytes accepted so far. */
  receivedBytes = 0;
  /** Downstream bytes cut into segments so far. */
  sentBytes = 0;

  private nextUp = 0;
  private lastWrite: { sequence: number; written: Promise<void> } | undefined;
  private upstreamEnded = false;

  private readonly pending = new ByteQueue();
  private targetEnded = false;
  private failure: ProtocolError | undefined;
  private served: Segment | undefined;
  /** Long-polls and writes waiting for something to change. */
  private readonly listeners = new Set<() => void>();
  private released = false;

  constructor(
    readonly id: string,
    readonly target: TunnelTarget,
    private readonly socket: Socket,
    private readonly options: TunnelOptions,
  ) {
    this.lastActivity = options.clock.now();
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('end', () => {
      this.targetEnded = true;
      this.notify();
    });
    socket.on('error', (error: Error) => this.onError(error));
    socket.on('close', () => this.onClose());
    socket.off('error', parkedError);
    if (socket.errored) this.onError(socket.errored);
    else if (socket.destroyed) this.onClose();
  }

  /** Largest downstream segment. */
  get segmentSize(): number {
    return this.options.segmentSize;
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Bytes held for the client: pending plus the segment served last. */
  get bufferedBytes(): number {
    return this.pending.length + (this.served?.data.length ?? 0);
  }

  /** Long-polls and writes waiting right now. */
  get waiters(): number {
    return this.listeners.size;
  }

  /** True while the target socket is paused because the client is behind. */
  get targetPaused(): boolean {
    return this.socket.isPaused();
  }

  /**
   * Upstream segment `sequence`: written to the target exactly once, in
   * order, then FIN if `close`. Resolves once the socket accepted the bytes
   * (after 'drain' if its buffer was full), with the upstream bytes so far.
   */
  async send(sequence: number, data: Buffer, close: boolean): Promise<number> {
    this.assertOpen();
    if (sequence < this.nextUp) {
      // A retry whose first attempt got here: answered, never written again.
      if (this.lastWrite?.sequence === sequence) await this.lastWrite.written;
      return this.receivedBytes;
    }
    if (sequence > this.nextUp) {
      throw conflict(
        `Tunnel ${this.id}: segment ${sequence} came before segment ${this.nextUp}: send segments in order, one at a time.`,
      );
    }
    if (this.upstreamEnded) {
      throw conflict(
        `Tunnel ${this.id}: segment ${sequence} came after the one marked X-Tunnel-Close: the application already finished sending.`,
      );
    }
    if (this.failure) throw this.failure;
    this.nextUp += 1;
    this.receivedBytes += data.length;
    if (data.length > 0) this.lastActivity = this.options.clock.now();
    if (close) this.upstreamEnded = true;
    const written = this.write(data, close);
    this.lastWrite = { sequence, written };
    await written;
    return this.receivedBytes;
  }

  /**
   * Downstream segment `sequence`, or `undefined` when nothing came within
   * `waitMs` (or the caller hung up). Answers at once when bytes are
   * pending, else as soon as the first ones arrive.
   */
  async receive(
    sequence: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Segment | undefined> {
    const deadline = performance.now() + waitMs;
    let woken = false;
    for (;;) {
      this.assertOpen();
      if (this.served?.sequence === sequence) return this.served;
      const expected = this.served ? this.served.sequence + 1 : 0;
      if (this.served?.closed) {
        throw conflict(
          `Tunnel ${this.id}: the target finished sending with segment ${this.served.sequence}; there is no segment ${sequence}.`,
        );
      }
      if (sequence !== expected) {
        throw conflict(
          `Tunnel ${this.id}: asked for segment ${sequence}, but the next one is ${expected} (earlier ones are freed once the next is asked for).`,
        );
      }
      if (this.pending.length > 0) {
        if (!woken) return this.cut(sequence);
        // Woken by the first bytes: let the ones right behind them join.
        await this.coalesce();
        woken = false;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.targetEnded) return this.cut(sequence);
      const remaining = deadline - performance.now();
      if (remaining <= 0 || signal.aborted) return undefined;
      await this.changed(remaining, signal);
      woken = true;
    }
  }

  /** Closes the target connection and frees everything; calls waiting end with 404. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.socket.destroy();
    this.pending.clear();
    this.served = undefined;
    this.notify();
  }

  private onData(data: Buffer): void {
    this.pending.push(data);
    this.lastActivity = this.options.clock.now();
    // Backpressure: the target waits until the client caught up.
    if (this.pending.length >= this.options.segmentSize) this.socket.pause();
    this.notify();
  }

  private onError(error: Error): void {
    this.failure ??= tunnelFailure(
      error,
      this.target,
      this.options.connectTimeoutMs,
      'after the tunnel opened',
    );
    this.notify();
  }

  private onClose(): void {
    // Closed without FIN or error (destroyed): no more bytes will come.
    this.targetEnded = true;
    this.notify();
  }

  private assertOpen(): void {
    if (this.released) throw tunnelNotFound(this.id);
  }

  /** Takes up to one segment of pending bytes and remembers it for retries. */
  private cut(sequence: number): Segment {
    const data = this.pending.take(this.options.segmentSize);
    const size = data.length;
    this.sentBytes += size;
    const closed =
      this.targetEnded && this.pending.length === 0 && !this.failure;
    this.served = { sequence, data, closed };
    if (
      this.socket.isPaused() &&
      this.pending.length < this.options.segmentSize
    ) {
      this.socket.resume();
    }
    return this.served;
  }

  /** Yields to I/O while bytes keep arriving, for at most COALESCE_MS. */
  private async coalesce(): Promise<void> {
    const until = performance.now() + COALESCE_MS;
    let seen = -1;
    while (
      this.pending.length !== seen &&
      this.pending.length < this.options.segmentSize &&
      !this.targetEnded &&
      !this.failure &&
      !this.released &&
      performance.now() < until
    ) {
      seen = this.pending.length;
      await nextIoTurn();
    }
  }

  /** Writes upstream bytes (then FIN), resolving once the socket took them. */
  private write(data: Buffer, close: boolean): Promise<void> {
    const socket = this.socket;
    if (this.failure) return Promise.reject(this.failure);
    if (!socket.writable) {
      return Promise.reject(
        new ProtocolError(
          502,
          ErrorCode.TargetUnreachable,
          `Target ${this.target.display} closed the tunnel's connection: the application's bytes cannot be delivered.`,
        ),
      );
    }
    const accepted = data.length === 0 || socket.write(data);
    if (close) socket.end();
    if (accepted) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const finish = () => {
        socket.off('drain', onDrain);
        socket.off('close', onClose);
      };
      const onDrain = () => {
        finish();
        resolve();
      };
      const onClose = () => {
        finish();
        reject(
          this.released
            ? tunnelNotFound(this.id)
            : (this.failure ??
                new ProtocolError(
                  502,
                  ErrorCode.TargetUnreachable,
                  `Target ${this.target.display} closed the tunnel's connection before it took the application's bytes.`,
                )),
        );
      };
      socket.on('drain', onDrain);
      socket.on('close', onClose);
    });
  }

  /** Resolves on the next change (bytes, FIN, error, release), after `ms`, or when `signal` aborts. */
  private changed(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.listeners.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
