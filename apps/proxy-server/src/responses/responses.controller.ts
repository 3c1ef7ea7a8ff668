import { Controller, Get, Headers, HttpCode, Res } from '@nestjs/common';
import type { Response } from 'express';
import {
  encodeHeaderPairs,
  Header,
  type IncomingHeaders,
  ProxyPath,
  readChunkIndex,
  readConnectionId,
} from '@app/protocol';
import type { ChunkRead } from './response-chunks.js';
import { ResponsesService } from './responses.service.js';

@Controller()
export class ResponsesController {
  constructor(private readonly responses: ResponsesService) {}

  /**
   * One response chunk (200, raw bytes) or "not ready yet" (202). The answer
   * is written by hand because it is bytes plus protocol headers; errors
   * still go through the exception filter.
   */
  @Get(ProxyPath.Response)
  @HttpCode(200)
  async fetch(
    @Headers() headers: IncomingHeaders,
    @Res() res: Response,
  ): Promise<void> {
    const id = readConnectionId(headers);
    const index = readChunkIndex(headers, true) as number;
    const hungUp = new AbortController();
    const onClose = () => hungUp.abort();
    res.once('close', onClose);
    try {
      const chunk = await this.responses.fetch(id, index, hungUp.signal);
      if (!res.destroyed) writeChunk(res, chunk);
    } finally {
      res.off('close', onClose);
    }
  }
}

function writeChunk(res: Response, chunk: ChunkRead): void {
  if (!chunk.ready) {
    const body = JSON.stringify({
      status: 'pending',
      message:
        'The response chunk is not ready yet (the target is still working or sending): ask again.',
    });
    res.writeHead(202, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      [Header.ChunkReady]: 'false',
    });
    res.end(body);
    return;
  }
  const head: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': chunk.size,
    [Header.ChunkIndex]: String(chunk.index),
    [Header.MoreChunks]: String(chunk.more),
  };
  if (chunk.head) {
    head[Header.TargetStatus] = String(chunk.head.status);
    head[Header.TargetReason] = encodeURIComponent(chunk.head.reason);
    head[Header.TargetHeaders] = encodeHeaderPairs(chunk.head.headers);
  }
  res.writeHead(200, head);
  for (const part of chunk.parts) res.write(part);
  res.end();
}
