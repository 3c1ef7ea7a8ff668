import {
  Inject,
  Injectable,
  Logger,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  type ConnectionCreated,
  type CreateConnectionDto,
  ErrorCode,
  ProtocolError,
} from '@app/protocol';
import { CLOCK, type Clock } from '../common/clock.js';
import { serverConfig } from '../config/server.config.js';
import { SpoolService } from '../spool/spool.service.js';
import { TargetGuard } from '../target/target-guard.js';
import { targetRequestFrom } from '../target/target-request.js';
import { Connection } from './connection.js';
import { ConnectionSlots } from './connection-slots.js';
import { CONNECTION_STORE, type ConnectionStore } from './connection-store.js';

/**
 * Opens, finds and releases connections. Every lookup counts as activity:
 * a connection expires only after CONNECTION_TTL_MS without any call.
 */
@Injectable()
export class ConnectionsService implements OnModuleDestroy {
  private readonly logger = new Logger('Connections');

  constructor(
    @Inject(CONNECTION_STORE) private readonly store: ConnectionStore,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly spool: SpoolService,
    private readonly guard: TargetGuard,
    private readonly slots: ConnectionSlots,
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  /** `POST /proxy/connection`: opens a connection; an id in use is 409, whatever the head. */
  async create(dto: CreateConnectionDto): Promise<ConnectionCreated> {
    const connection = this.build(dto);
    // A retry at the limit hears 409 ("created"), not 503.
    if (await this.store.get(connection.id)) throw exists(connection.id);
    if (!(await this.admit(connection))) throw exists(connection.id);
    this.opened(connection);
    return this.created(connection);
  }

  /**
   * `POST /proxy/exchange`: opens a connection, or finds the one a lost
   * answer left behind. The same id with the same head is that retry and
   * gets the existing connection (no second connection, no second target
   * request); the same id with another head is 409.
   */
  async open(dto: CreateConnectionDto): Promise<Connection> {
    const connection = this.build(dto);
    for (;;) {
      // The existing one first: a retry at MAX_CONNECTIONS is no new connection.
      const existing = await this.store.get(connection.id);
      if (!existing) {
        if (await this.admit(connection)) {
          this.opened(connection);
          return connection;
        }
        // Added by a parallel call between get and add: look again.
        continue;
      }
      if (existing.fingerprint !== connection.fingerprint) {
        throw exists(
          connection.id,
          ' with another head (a retry must send the same connection JSON)',
        );
      }
      existing.lastActivity = this.clock.now();
      return existing;
    }
  }

  /**
   * Stores a new connection under a MAX_CONNECTIONS slot (503 when none is
   * free); false when the id was taken meanwhile (the slot is given back).
   */
  private async admit(connection: Connection): Promise<boolean> {
    const release = this.slots.take(`connection ${connection.id}`);
    if (!(await this.store.add(connection))) {
      release();
      return false;
    }
    connection.holdSlot(release);
    return true;
  }

  /** The answer of POST /proxy/connection. */
  created(connection: Connection): ConnectionCreated {
    return {
      connection_id: connection.id,
      ttl_ms: this.config.connectionTtlMs,
    };
  }

  /** Checks what the DTO cannot and builds the connection (not stored yet). */
  private build(dto: CreateConnectionDto): Connection {
    if (dto.method.toUpperCase() === 'CONNECT') {
      throw new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        'method CONNECT cannot be forwarded as a request: tunnels are not supported yet.',
      );
    }
    if (/[^\u0021-\u00ff]/.test(dto.path)) {
      // What undici (and HTTP) refuse in a request-target; caught here so it
      // is a 400 for the client instead of a failure at dispatch.
      throw new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        'path must not contain control characters or characters beyond U+00FF: percent-encode them.',
      );
    }
    // Names and IP literals now (403 before anything is stored); the
    // addresses a name resolves to when the target is connected to.
    this.guard.checkHost(dto.target_host);
    const bodySize = dto.body_size ?? undefined;
    if (bodySize !== undefined && bodySize > this.config.maxBodySize) {
      throw new ProtocolError(
        413,
        ErrorCode.BodyTooLarge,
        `body_size ${bodySize} is larger than MAX_BODY_SIZE (${this.config.maxBodySize} bytes) of this server.`,
      );
    }
    const id = dto.connection_id.toLowerCase();
    return new Connection(id, targetRequestFrom(dto), {
      bodySize,
      maxBodySize: this.config.maxBodySize,
      memoryLimit: this.config.spoolThresholdBytes,
      spool: () => this.spool.create(id),
      responseChunkSize: dto.response_chunk_size ?? this.config.chunkSize,
      downloadWindow: dto.download_window ?? 1,
      now: this.clock.now(),
      fingerprint: fingerprintOf(dto),
    });
  }

  private opened(connection: Connection): void {
    this.logger.debug(
      `${connection.id} opened for ${connection.target.method} ${connection.target.display}`,
    );
  }

  /** The connection with this id, its idle time reset; 404 when unknown. */
  async require(id: string): Promise<Connection> {
    const connection = await this.store.get(id);
    if (!connection) throw notFound(id);
    connection.lastActivity = this.clock.now();
    return connection;
  }

  /** Releases a connection at the client's request; 404 when unknown. */
  async release(id: string): Promise<void> {
    const connection = await this.store.remove(id);
    if (!connection) throw notFound(id);
    connection.release();
    this.logger.debug(`${id} released`);
  }

  /**
   * The sweep: forgets every connection idle longer than CONNECTION_TTL_MS,
   * and every one whose last response chunk was served more than
   * FINISHED_LINGER_MS ago (its client sends no DELETE). Returns how many.
   */
  async releaseExpired(): Promise<number> {
    const now = this.clock.now();
    const idle = await this.store.idleSince(now - this.config.connectionTtlMs);
    const finished = await this.store.finishedSince(
      now - this.config.finishedLingerMs,
    );
    let released = 0;
    for (const connection of new Set([...idle, ...finished])) {
      // Only what this sweep removes is released: a DELETE may have come first.
      if (!(await this.store.remove(connection.id))) continue;
      connection.release();
      released += 1;
    }
    if (released > 0) {
      this.logger.debug(
        `released ${released} connection(s): idle for more than ${this.config.connectionTtlMs} ms or finished more than ${this.config.finishedLingerMs} ms ago`,
      );
    }
    return released;
  }

  /** On shutdown: abort target requests and end long-polls so the server can close. */
  async onModuleDestroy(): Promise<void> {
    for (const connection of await this.store.all()) {
      await this.store.remove(connection.id);
      connection.release();
    }
  }
}

/** 409 for an id in use; `how` says what differs, if known. */
function exists(id: string, how = ''): ProtocolError {
  return new ProtocolError(
    409,
    ErrorCode.ConnectionExists,
    `Connection ${id} already exists${how}: choose a new UUID for a new request.`,
  );
}

/**
 * The connection JSON as validated, keys sorted at every level, id in lower
 * case and a null body_size as absent: two heads that ask for the same
 * request give the same string.
 */
export function fingerprintOf(dto: CreateConnectionDto): string {
  const sorted = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sorted);
    if (typeof value !== 'object' || value === null) return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined && v !== null)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sorted(v)]),
    );
  };
  return JSON.stringify(
    sorted({ ...dto, connection_id: dto.connection_id.toLowerCase() }),
  );
}

function notFound(id: string): ProtocolError {
  return new ProtocolError(
    404,
    ErrorCode.ConnectionNotFound,
    `Connection ${id} is unknown, released or expired: open a new one with POST /proxy/connection.`,
  );
}
