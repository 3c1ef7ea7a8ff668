import type { Socket } from 'node:net';
import { ByteQueue } from '@app/protocol';
import { ApplicationGoneError } from '../relay/exchange.js';
import { NOTHING_YET, type TunnelApi } from './tunnel-api.js';

/** What moved through a tunnel, for the access log. */
export interface TunnelTraffic {
  bytesUp: number;
  bytesDown: number;
  /** `POST /proxy/tunnel/send` calls made. */
  segmentsUp: number;
  /** Downstream segments that carried bytes. */
  segmentsDown: number;
}

export interface TunnelSessionOptions {
  api: TunnelApi;
  /** CHUNK_SIZE: the most one upstream call carries. */
  chunkSize: number;
}

/**
 * Carries the bytes of one established tunnel between the application's
 * socket and proxy-server, both ways at once, until both sides finished.
 *
 * ```
 * app ──data──▶ buffer (≤ CHUNK_SIZE, then the socket pauses) ──▶ send #n ──▶ … #n+1
 *               one call in flight; what arrives meanwhile leaves in the next call,
 *               the moment the previous one returns
 * app ◀──write (await drain)── receive #m (long-poll: back as soon as the target sent)
 * app FIN ──▶ the last send carries X-Tunnel-Close   (TCP half-close: keep reading)
 * target FIN ──▶ X-Tunnel-Closed ──▶ socket.end()     (keep sending)
 * error either side ──▶ abort: socket destroyed, both loops stop
 * ```
 *
 * A byte the application writes is on its way within one gateway round
 * trip: when no call is in flight it leaves at once, else with the next
 * call. Downstream, a long-poll is always waiting on the server, which
 * answers it as soon as the target sends.
 */
export class TunnelSession {
  readonly traffic: TunnelTraffic = {
    bytesUp: 0,
    bytesDown: 0,
    segmentsUp: 0,
    segmentsDown: 0,
  };
  private readonly controller = new AbortController();
  private readonly pending = new ByteQueue();
  private appEnded = false;
  private downstreamDone = false;
  /** Wakes the upstream loop when bytes, the application's FIN or an abort arrive. */
  private wake: (() => void) | undefined;

  constructor(
    private readonly tunnelId: string,
    private readonly socket: Socket,
    private readonly options: TunnelSessionOptions,
  ) {}

  /** Ends the tunnel now (the first reason wins): both loops stop, the application's socket is destroyed. */
  abort(reason: Error): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
    this.socket.destroy();
    this.wake?.();
  }

  /**
   * Runs both directions. Resolves when both finished cleanly (FIN each
   * way); rejects with the reason of the first failure (a
   * {@link ProtocolError} from the server or gateway, an
   * {@link ApplicationGoneError}, or the reason given to {@link abort}).
   */
  async run(): Promise<void> {
    const { socket } = this;
    const onData = (data: Buffer) => {
      this.pending.push(data);
      // Backpressure: the application waits while a chunk is buffered.
      if (this.pending.length >= this.options.chunkSize) socket.pause();
      this.wake?.();
    };
    const onEnd = () => {
      this.appEnded = true;
      this.wake?.();
    };
    const onClose = () => {
      // Closed before both directions finished: reset, or destroyed.
      if (!(this.appEnded && this.downstreamDone)) {
        this.abort(new ApplicationGoneError());
      }
    };
    const onError = (error: Error) =>
      this.abort(new ApplicationGoneError(error));
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    // Stays attached: a late error must never go unhandled.
    socket.on('error', onError);
    socket.resume();
    if (socket.destroyed) onClose();
    try {
      await Promise.all(
        [this.upstream(), this.downstream()].map((direction) =>
          direction.catch((error: unknown) => {
            this.abort(error as Error);
            throw error;
          }),
        ),
      );
    } catch {
      throw this.controller.signal.reason;
    } finally {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
    }
  }

  /** Application → server: one call in flight, the bytes that arrive meanwhile coalesced into the next. */
  private async upstream(): Promise<void> {
    const signal = this.controller.signal;
    for (let sequence = 0; ; sequence++) {
      while (this.pending.length === 0 && !this.appEnded && !signal.aborted) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
      signal.throwIfAborted();
      const data = this.pending.take(this.options.chunkSize);
      const close = this.appEnded && this.pending.length === 0;
      await this.options.api.sendSegment(
        this.tunnelId,
        sequence,
        data,
        close,
        signal,
      );
      this.traffic.bytesUp += data.length;
      this.traffic.segmentsUp += 1;
      if (close) return;
      if (this.pending.length < this.options.chunkSize) this.socket.resume();
    }
  }

  /** Server → application: long-polls segment after segment, writing each before asking for the next. */
  private async downstream(): Promise<void> {
    const signal = this.controller.signal;
    for (let sequence = 0; ;) {
      const segment = await this.options.api.receiveSegment(
        this.tunnelId,
        sequence,
        signal,
      );
      if (segment === NOTHING_YET) continue;
      sequence += 1;
      if (segment.data.length > 0) {
        this.traffic.bytesDown += segment.data.length;
        this.traffic.segmentsDown += 1;
        await this.write(segment.data);
      }
      if (segment.closed) {
        this.downstreamDone = true;
        this.socket.end();
        return;
      }
    }
  }

  /** Writes to the application, waiting for 'drain' when its socket buffer is full. */
  private async write(data: Buffer): Promise<void> {
    const { socket } = this;
    const signal = this.controller.signal;
    if (socket.destroyed || !socket.writable) throw new ApplicationGoneError();
    if (socket.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const finish = () => {
        socket.off('drain', onDrain);
        socket.off('close', onClose);
        signal.removeEventListener('abort', onAbort);
      };
      const onDrain = () => {
        finish();
        resolve();
      };
      const onClose = () => {
        finish();
        reject(new ApplicationGoneError());
      };
      const onAbort = () => {
        finish();
        reject(signal.reason as Error);
      };
      socket.on('drain', onDrain);
      socket.on('close', onClose);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
