import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { type ChunkAccepted, ErrorCode, ProtocolError } from '@app/protocol';
import { readBodyPieces } from '../common/read-body.js';
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

  /** `POST /proxy/chunk`: reads the chunk from `body`, then {@link add}s it. */
  async accept(
    id: string,
    index: number | undefined,
    final: boolean,
    body: IncomingMessage,
  ): Promise<ChunkAccepted> {
    const before = await this.connections.require(id);
    if (before.failure) throw before.failure;

    const data = await readBodyPieces(body, this.config.maxChunkSize, (bytes) =>
      this.tooLarge(bytes),
    );
    return this.add(id, index, final, data.parts);
  }

  /** The largest request chunk accepted (MAX_CHUNK_SIZE). */
  get maxChunkSize(): number {
    return this.config.maxChunkSize;
  }

  /** The 413 for a chunk over MAX_CHUNK_SIZE. */
  tooLarge(bytes: number): ProtocolError {
    return new ProtocolError(
      413,
      ErrorCode.ChunkTooLarge,
      `Chunk of ${bytes} bytes is larger than MAX_CHUNK_SIZE (${this.config.maxChunkSize} bytes): send smaller chunks.`,
    );
  }

  /**
   * Adds a chunk already read (as the pieces it arrived in) to the body of
   * connection `id`; when that completes the body, starts the target
   * request. Shared by `POST /proxy/chunk` and `POST /proxy/exchange`.
   */
  async add(
    id: string,
    index: number | undefined,
    final: boolean,
    parts: readonly Buffer[],
  ): Promise<ChunkAccepted> {
    // Reading took time: the connection may have been released meanwhile.
    const connection = await this.connections.require(id);
    const receipt = await connection.request.accept(index, parts, final);
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
