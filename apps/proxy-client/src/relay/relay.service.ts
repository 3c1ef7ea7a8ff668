import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { ProtocolError } from '@app/protocol';
import { sendErrorAnswer } from '../common/app-answers.js';
import { clientConfig } from '../config/client.config.js';
import { ProxyServerApi } from '../gateway/proxy-server-api.js';
import type { ProxyExchange } from '../listener/proxy-context.js';
import { newStats, type ExchangeStats } from './exchange.js';
import { forwardHttp } from './pipeline/forward-http.js';
import {
  prepareProxyRequest,
  redactUrl,
} from './pipeline/prepare-proxy-request.js';
import { rejectConnect } from './pipeline/reject-connect.js';

/**
 * Runs the proxy pipeline for each exchange and writes its access log line.
 *
 * ```
 * request ─▶ prepareProxyRequest ─┬─ http ────▶ forwardHttp
 *                                 ├─ connect ─▶ rejectConnect (501)
 *                                 └─ invalid ─▶ 400 / 413 answer
 * ```
 */
@Injectable()
export class RelayService {
  private readonly logger = new Logger(RelayService.name);
  private readonly access = new Logger('Access');

  constructor(
    @Inject(clientConfig.KEY)
    private readonly settings: ConfigType<typeof clientConfig>,
    private readonly api: ProxyServerApi,
  ) {}

  async relay(
    exchange: ProxyExchange,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const io = { req, res, expectsContinue: exchange.expectsContinue };
    let url = redactUrl(req.url);
    let stats: ExchangeStats;
    try {
      const request = prepareProxyRequest(req, {
        proxyUrl: exchange.proxyUrl,
        maxBodySize: this.settings.maxBodySize,
      });
      url = request.displayUrl;
      stats =
        request.kind === 'connect'
          ? await rejectConnect(request, io)
          : await forwardHttp(request, io, {
              api: this.api,
              chunkSize: this.settings.chunkSize,
              maxBodySize: this.settings.maxBodySize,
              requestTimeoutMs: this.settings.requestTimeoutMs,
              logger: this.logger,
            });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      await sendErrorAnswer(req, res, error);
      stats = newStats(error.status);
    }
    this.access.log(
      `${req.method} ${url} ${stats.status} up=${stats.bytesUp}B down=${stats.bytesDown}B chunks=${stats.chunksUp}/${stats.chunksDown} ${Date.now() - exchange.startedAt}ms`,
    );
  }
}
