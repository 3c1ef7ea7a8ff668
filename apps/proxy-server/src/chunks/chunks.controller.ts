import { Controller, Headers, HttpCode, Post, Req } from '@nestjs/common';
import type { Request } from 'express';
import {
  type ChunkAccepted,
  type IncomingHeaders,
  ProxyPath,
  readChunkIndex,
  readConnectionId,
} from '@app/protocol';
import { readChunkFinal } from './chunk-final.js';
import { ChunksService } from './chunks.service.js';

@Controller()
export class ChunksController {
  constructor(private readonly chunks: ChunksService) {}

  /** One piece of the request body; its raw bytes (any Content-Type) are read by the service. */
  @Post(ProxyPath.Chunk)
  @HttpCode(200)
  accept(
    @Headers() headers: IncomingHeaders,
    @Req() req: Request,
  ): Promise<ChunkAccepted> {
    return this.chunks.accept(
      readConnectionId(headers),
      readChunkIndex(headers, false),
      readChunkFinal(headers),
      req,
    );
  }
}
