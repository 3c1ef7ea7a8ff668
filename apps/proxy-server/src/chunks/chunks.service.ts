import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { type ChunkAccepted, ErrorCode, ProtocolError } from '@app/protocol';
import { readBody } from '../common/read-body.js';
import { serverConfig } from '../config/server.config.js';
import { ConnectionsService } from '../connections/connections.service.js';
import { TargetService } from '../target/target.service.js';

/**
 * Receives request chunks: checks the connection and the size before
 * reading, reads at most MAX_CHUNK_SIZE bytes, adds the chunk to the body
 * and, when that completes the body, starts the target request (once).
 */
@Injectable()
export class ChunksService {
  private readonly logger = new Logger('Chunks');

  constructor(
    private readonly connections: ConnectionsService,
    private readonly target: TargetService,
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  async accept(
    id: string,
    index: number | undefined,
    final: boolean,
    body: IncomingMessage,
  ): Promise<ChunkAccepted> {
    const before = await this.connections.require(id);
    if (before.failure) throw before.failure;

    const data = await readBody(
      body,
      this.config.maxChunkSize,
      (bytes) =>
        new ProtocolError(
          413,
          ErrorCode.ChunkTooLarge,
          `Chunk of ${bytes} bytes is larger than MAX_CHUNK_SIZE (${this.config.maxChunkSize} bytes): send smaller chunks.`,
        ),
    );

    // Reading took time: the connection may have been released meanwhile.
    const connection = await this.connections.require(id);
    const receipt = connection.request.accept(index, data, final);
    if (receipt.completedNow && connection.claimDispatch()) {
      this.logger.debug(
        `${id}: body complete (${receipt.receivedBytes} bytes), forwarding to ${connection.target.display}`,
      );
      void this.target.forward(connection);
    }
    return {
      connection_id: id,
      chunk_index: receipt.index,
      received_bytes: receipt.receivedBytes,
      complete: receipt.complete,
    };
  }
}
