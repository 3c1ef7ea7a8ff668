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
import { targetRequestFrom } from '../target/target-request.js';
import { Connection } from './connection.js';
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
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  async create(dto: CreateConnectionDto): Promise<ConnectionCreated> {
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
    const bodySize = dto.body_size ?? undefined;
    if (bodySize !== undefined && bodySize > this.config.maxBodySize) {
      throw new ProtocolError(
        413,
        ErrorCode.BodyTooLarge,
        `body_size ${bodySize} is larger than MAX_BODY_SIZE (${this.config.maxBodySize} bytes) of this server.`,
      );
    }
    const connection = new Connection(
      dto.connection_id.toLowerCase(),
      targetRequestFrom(dto),
      {
        bodySize,
        maxBodySize: this.config.maxBodySize,
        responseChunkSize: dto.response_chunk_size ?? this.config.chunkSize,
        downloadWindow: dto.download_window ?? 1,
        now: this.clock.now(),
      },
    );
    if (!(await this.store.add(connection))) {
      throw new ProtocolError(
        409,
        ErrorCode.ConnectionExists,
        `Connection ${connection.id} already exists: choose a new UUID for a new request.`,
      );
    }
    this.logger.debug(
      `${connection.id} opened for ${connection.target.method} ${connection.target.display}`,
    );
    return {
      connection_id: connection.id,
      ttl_ms: this.config.connectionTtlMs,
    };
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

  /** Releases every connection idle longer than CONNECTION_TTL_MS; returns how many. */
  async releaseIdle(): Promise<number> {
    const cutoff = this.clock.now() - this.config.connectionTtlMs;
    const idle = await this.store.idleSince(cutoff);
    for (const connection of idle) {
      await this.store.remove(connection.id);
      connection.release();
    }
    if (idle.length > 0) {
      this.logger.debug(
        `released ${idle.length} connection(s) idle for more than ${this.config.connectionTtlMs} ms`,
      );
    }
    return idle.length;
  }

  /** On shutdown: abort target requests and end long-polls so the server can close. */
  async onModuleDestroy(): Promise<void> {
    for (const connection of await this.store.all()) {
      await this.store.remove(connection.id);
      connection.release();
    }
  }
}

function notFound(id: string): ProtocolError {
  return new ProtocolError(
    404,
    ErrorCode.ConnectionNotFound,
    `Connection ${id} is unknown, released or expired: open a new one with POST /proxy/connection.`,
  );
}
