import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { CLOCK, type Clock } from '../common/clock.js';
import { serverConfig } from '../config/server.config.js';
import { ConnectionsService } from '../connections/connections.service.js';
import type { ChunkRead } from './response-chunks.js';

/**
 * Serves response chunks, waiting up to RESPONSE_WAIT_MS for one that is not
 * there yet. Serving the last chunk finishes the connection: the sweep
 * forgets it FINISHED_LINGER_MS later, no DELETE needed.
 */
@Injectable()
export class ResponsesService {
  constructor(
    private readonly connections: ConnectionsService,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  /** `signal` aborts the wait when the caller hung up. */
  async fetch(
    id: string,
    index: number,
    signal: AbortSignal,
  ): Promise<ChunkRead> {
    const connection = await this.connections.require(id);
    if (connection.failure) throw connection.failure;
    const chunk = await connection.response.read(
      index,
      this.config.responseWaitMs,
      signal,
    );
    if (chunk.ready && !chunk.more) connection.markFinished(this.clock.now());
    // A long-poll is activity too: the idle time starts when it ends.
    if (!connection.isReleased) await this.connections.require(id);
    return chunk;
  }
}
