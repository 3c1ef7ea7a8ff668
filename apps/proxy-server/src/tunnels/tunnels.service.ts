import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  ErrorCode,
  ProtocolError,
  type OpenTunnelDto,
  type SegmentAccepted,
  type TunnelOpened,
} from '@app/protocol';
import { CLOCK, type Clock } from '../common/clock.js';
import { serverConfig } from '../config/server.config.js';
import { ConnectionCleanupJob } from '../connections/connection-cleanup.job.js';
import {
  ConnectionSlots,
  type ReleaseSlot,
} from '../connections/connection-slots.js';
import { TargetGuard } from '../target/target-guard.js';
import {
  connectTarget,
  tunnelTarget,
  type TunnelTarget,
} from './target-socket.js';
import { Tunnel, tunnelNotFound, type Segment } from './tunnel.js';

/** A tunnel whose TCP connection is being opened: a retry of its POST waits for the same attempt. */
interface Opening {
  target: TunnelTarget;
  segmentSize: number;
  tunnel: Promise<Tunnel>;
}

/**
 * Opens, serves and closes CONNECT tunnels. The server is the security
 * boundary: only ports in CONNECT_ALLOWED_PORTS can be reached.
 *
 * Tunnels live beside the connections of plain requests and are swept by
 * the same scheduled job ({@link ConnectionCleanupJob}): a tunnel through
 * which no byte moved for TUNNEL_IDLE_TIMEOUT_MS is closed.
 */
@Injectable()
export class TunnelsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Tunnels');
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly opening = new Map<string, Opening>();
  /** The MAX_CONNECTIONS slot of each tunnel, opening or open (counted with connections). */
  private readonly slotOf = new Map<string, ReleaseSlot>();
  /** Fired on shutdown: connects still running give up. */
  private readonly shutdown = new AbortController();

  constructor(
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
    private readonly cleanup: ConnectionCleanupJob,
    private readonly guard: TargetGuard,
    private readonly slots: ConnectionSlots,
  ) {}

  onModuleInit(): void {
    this.cleanup.include(async () => this.releaseIdle());
  }

  /**
   * Opens the TCP connection to the target and resolves once it is
   * established. The same id again (a retry whose answer was lost) gets the
   * same tunnel, or waits for the same attempt; a different target under a
   * known id is a 409.
   */
  async open(dto: OpenTunnelDto): Promise<TunnelOpened> {
    const id = dto.tunnel_id.toLowerCase();
    const target = tunnelTarget(dto.target_host, dto.port);
    const segmentSize = dto.segment_size ?? this.config.chunkSize;
    if (!this.config.connectAllowedPorts.includes(dto.port)) {
      throw new ProtocolError(
        403,
        ErrorCode.ConnectPortForbidden,
        `CONNECT to ${target.display} refused: port ${dto.port} is not allowed; this server tunnels only to port${this.config.connectAllowedPorts.length === 1 ? '' : 's'} ${this.config.connectAllowedPorts.join(', ')} (CONNECT_ALLOWED_PORTS).`,
      );
    }
    // The SSRF guard: the name or IP literal now, resolved addresses in the
    // lookup, the connected peer once connected (403 target_forbidden).
    this.guard.checkHost(target.host);
    const existing = this.tunnels.get(id) ?? this.opening.get(id);
    if (existing) {
      if (
        existing.target.display !== target.display ||
        existing.segmentSize !== segmentSize
      ) {
        throw new ProtocolError(
          409,
          ErrorCode.ConnectionExists,
          `Tunnel ${id} already exists for ${existing.target.display}: choose a new UUID for a new tunnel.`,
        );
      }
      if (existing instanceof Tunnel) {
        if (existing.isReleased) throw tunnelNotFound(id);
        return this.opened(id);
      }
      await existing.tunnel;
      return this.opened(id);
    }

    const started = Date.now();
    this.slotOf.set(id, this.slots.take(`tunnel ${id} to ${target.display}`));
    const attempt: Opening = {
      target,
      segmentSize,
      tunnel: connectTarget(target, {
        timeoutMs: this.config.tunnelConnectTimeoutMs,
        signal: this.shutdown.signal,
        lookup: this.guard.lookup,
      }).then((socket) => {
        this.guard.checkConnected(socket, target.host);
        return new Tunnel(id, target, socket, {
          segmentSize,
          connectTimeoutMs: this.config.tunnelConnectTimeoutMs,
          clock: this.clock,
        });
      }),
    };
    this.opening.set(id, attempt);
    try {
      const tunnel = await attempt.tunnel;
      this.tunnels.set(id, tunnel);
      this.logger.log(
        `tunnel ${id} to ${target.display} opened in ${Date.now() - started} ms`,
      );
    } catch (error) {
      this.releaseSlot(id);
      if (error instanceof ProtocolError) {
        this.logger.warn(`CONNECT ${target.display}: ${error.message}`);
      }
      throw error;
    } finally {
      this.opening.delete(id);
    }
    return this.opened(id);
  }

  /** Upstream segment `sequence` of tunnel `id`, written once however often it is sent. */
  async send(
    id: string,
    sequence: number,
    data: Buffer,
    close: boolean,
  ): Promise<SegmentAccepted> {
    const received = await this.require(id).send(sequence, data, close);
    return { tunnel_id: id, sequence, received_bytes: received };
  }

  /** Downstream segment `sequence`, or `undefined` after TUNNEL_WAIT_MS without bytes. */
  receive(
    id: string,
    sequence: number,
    signal: AbortSignal,
  ): Promise<Segment | undefined> {
    return this.require(id).receive(sequence, this.config.tunnelWaitMs, signal);
  }

  /** Closes tunnel `id` at the client's request: the target connection is destroyed. */
  close(id: string): void {
    const tunnel = this.tunnels.get(id);
    if (!tunnel) throw tunnelNotFound(id);
    this.forget(tunnel, 'closed by the client');
  }

  /** Closes every tunnel through which no byte moved for TUNNEL_IDLE_TIMEOUT_MS; returns how many. */
  releaseIdle(): number {
    const cutoff = this.clock.now() - this.config.tunnelIdleTimeoutMs;
    let released = 0;
    for (const tunnel of this.tunnels.values()) {
      if (tunnel.lastActivity >= cutoff) continue;
      this.forget(
        tunnel,
        `idle for more than ${this.config.tunnelIdleTimeoutMs} ms (TUNNEL_IDLE_TIMEOUT_MS)`,
      );
      released += 1;
    }
    return released;
  }

  /** The tunnel with this id, for specs that check what it holds. */
  find(id: string): Tunnel | undefined {
    return this.tunnels.get(id.toLowerCase());
  }

  /** On shutdown: close every target connection and end every long-poll. */
  onModuleDestroy(): void {
    this.shutdown.abort();
    for (const tunnel of this.tunnels.values()) {
      this.forget(tunnel, 'server shutting down');
    }
  }

  private require(id: string): Tunnel {
    const tunnel = this.tunnels.get(id);
    if (!tunnel) throw tunnelNotFound(id);
    return tunnel;
  }

  private forget(tunnel: Tunnel, why: string): void {
    this.tunnels.delete(tunnel.id);
    tunnel.release();
    this.releaseSlot(tunnel.id);
    this.logger.log(
      `tunnel ${tunnel.id} to ${tunnel.target.display} ${why}: ${tunnel.receivedBytes} bytes up, ${tunnel.sentBytes} bytes down`,
    );
  }

  private releaseSlot(id: string): void {
    this.slotOf.get(id)?.();
    this.slotOf.delete(id);
  }

  private opened(id: string): TunnelOpened {
    return {
      tunnel_id: id,
      idle_timeout_ms: this.config.tunnelIdleTimeoutMs,
      wait_ms: this.config.tunnelWaitMs,
    };
  }
}
