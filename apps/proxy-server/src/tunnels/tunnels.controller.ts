import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Post,
  Req,
  Res,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Request, Response } from 'express';
import {
  ErrorCode,
  Header,
  type IncomingHeaders,
  OpenTunnelDto,
  parseBooleanHeader,
  ProtocolError,
  ProxyPath,
  readSequence,
  readTunnelId,
  type SegmentAccepted,
  type TunnelOpened,
} from '@app/protocol';
import { readBody } from '../common/read-body.js';
import { serverConfig } from '../config/server.config.js';
import type { Segment } from './tunnel.js';
import { TunnelsService } from './tunnels.service.js';

/** The four tunnel calls of docs/PROTOCOL.md, "Tunnels (CONNECT)". */
@Controller()
export class TunnelsController {
  constructor(
    private readonly tunnels: TunnelsService,
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  /** Opens the TCP connection; 201 only once it is established. */
  @Post(ProxyPath.Tunnel)
  @HttpCode(201)
  open(@Body() dto: OpenTunnelDto): Promise<TunnelOpened> {
    return this.tunnels.open(dto);
  }

  /** One upstream segment: raw bytes of any Content-Type, at most MAX_CHUNK_SIZE. */
  @Post(ProxyPath.TunnelSend)
  @HttpCode(200)
  async send(
    @Headers() headers: IncomingHeaders,
    @Req() req: Request,
  ): Promise<SegmentAccepted> {
    const id = readTunnelId(headers);
    const sequence = readSequence(headers);
    const close = parseBooleanHeader(headers[Header.TunnelClose]);
    const limit = this.config.maxChunkSize;
    const data = await readBody(
      req,
      limit,
      (bytes) =>
        new ProtocolError(
          413,
          ErrorCode.ChunkTooLarge,
          `Tunnel segment of ${bytes} bytes is larger than MAX_CHUNK_SIZE (${limit} bytes): send smaller segments.`,
        ),
    );
    return this.tunnels.send(id, sequence, data, close);
  }

  /**
   * The next downstream segment (200, raw bytes), or 204 when nothing came
   * within TUNNEL_WAIT_MS. Written by hand: bytes plus protocol headers.
   */
  @Get(ProxyPath.TunnelReceive)
  async receive(
    @Headers() headers: IncomingHeaders,
    @Res() res: Response,
  ): Promise<void> {
    const id = readTunnelId(headers);
    const sequence = readSequence(headers);
    const hungUp = new AbortController();
    const onClose = () => hungUp.abort();
    res.once('close', onClose);
    try {
      const segment = await this.tunnels.receive(id, sequence, hungUp.signal);
      if (!res.destroyed) writeSegment(res, sequence, segment);
    } finally {
      res.off('close', onClose);
    }
  }

  @Delete(ProxyPath.Tunnel)
  @HttpCode(204)
  close(@Headers() headers: IncomingHeaders): void {
    this.tunnels.close(readTunnelId(headers));
  }
}

function writeSegment(
  res: Response,
  sequence: number,
  segment: Segment | undefined,
): void {
  if (!segment) {
    res.writeHead(204, { [Header.Sequence]: String(sequence) });
    res.end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': segment.data.length,
    [Header.Sequence]: String(segment.sequence),
    [Header.TunnelClosed]: String(segment.closed),
  });
  res.end(segment.data);
}
