import { Controller, Headers, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { type IncomingHeaders, ProxyPath } from '@app/protocol';
import { readChunkFinal } from '../chunks/chunk-final.js';
import { writeChunk } from '../responses/chunk-writer.js';
import { ExchangeService } from './exchange.service.js';
import { readHeadLength } from './head-length.js';

@Controller()
export class ExchangeController {
  constructor(private readonly exchanges: ExchangeService) {}

  /**
   * Connection JSON plus first request chunk in one call. Not final: 201
   * with the chunk receipt. Final: exactly what `GET /proxy/response`
   * answers for chunk 0 (200, 202, 502/504), so it is written by the same
   * writer. Errors go through the exception filter.
   */
  @Post(ProxyPath.Exchange)
  async exchange(
    @Headers() headers: IncomingHeaders,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const headLength = readHeadLength(headers);
    const final = readChunkFinal(headers);
    const hungUp = new AbortController();
    const onClose = () => hungUp.abort();
    res.once('close', onClose);
    try {
      const outcome = await this.exchanges.exchange(
        headLength,
        final,
        req,
        hungUp.signal,
      );
      if (res.destroyed) return;
      if (outcome.kind === 'response') writeChunk(res, outcome.chunk);
      else res.status(201).json(outcome.receipt);
    } finally {
      res.off('close', onClose);
    }
  }
}
