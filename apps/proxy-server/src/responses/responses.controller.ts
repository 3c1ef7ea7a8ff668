import { Controller, Get, Headers, HttpCode, Res } from '@nestjs/common';
import type { Response } from 'express';
import {
  type IncomingHeaders,
  ProxyPath,
  readChunkIndex,
  readConnectionId,
} from '@app/protocol';
import { writeChunk } from './chunk-writer.js';
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
