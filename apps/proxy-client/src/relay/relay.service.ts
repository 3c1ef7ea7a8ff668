import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { sendErrorAnswer } from '../common/app-answers.js';
import { clientConfig } from '../config/client.config.js';
import { withCallTally, type CallTally } from '../gateway/call-tally.js';
import { ProxyServerApi } from '../gateway/proxy-server-api.js';
import { TunnelApi } from '../tunnel/tunnel-api.js';
import type { ProxyExchange } from '../listener/proxy-context.js';
import { newStats, type ExchangeStats } from './exchange.js';
import { forwardHttp } from './pipeline/forward-http.js';
import {
  prepareProxyRequest,
  redactUrl,
} from './pipeline/prepare-proxy-request.js';
import { forwardConnect } from './pipeline/forward-connect.js';

/** Longest wait on shutdown for running exchanges to release their connections. */
const SHUTDOWN_GRACE_MS = 5_000;

/**
 * Runs the proxy pipeline for each exchange and writes its access log line.
 *
 * ```
 * request ─▶ prepareProxyRequest ─┬─ http ────▶ forwardHttp
 *                                 ├─ connect ─▶ forwardConnect (tunnel)
 *                                 └─ invalid ─▶ 400 / 413 answer
 * ```
 */
@Injectable()
export class RelayService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(RelayService.name);
  private readonly access = new Logger('Access');
  /** Exchanges still running, so shutdown can let them release their server connections. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Fired on shutdown: running exchanges stop, new ones are refused. */
  private readonly shutdown = new AbortController();

  constructor(
    @Inject(clientConfig.KEY)
    private readonly settings: ConfigType<typeof clientConfig>,
    private readonly api: ProxyServerApi,
    private readonly tunnels: TunnelApi,
  ) {}

  relay(
    exchange: ProxyExchange,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const running = withCallTally((tally) =>
      this.run(exchange, req, res, tally),
    );
    this.inFlight.add(running);
    const forget = () => this.inFlight.delete(running);
    running.then(forget, forget);
    return running;
  }

  /**
   * Nest runs the shutdown hooks before it closes the transport, so the
   * exchanges still running are stopped here (503 if the application has no
   * head yet, else cut off) and given a bounded time to release their
   * server connections before the gateway pool closes: that spares the
   * server its TTL.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.shutdown.abort(
      new ProtocolError(
        503,
        ErrorCode.UpstreamUnavailable,
        'proxy-client is shutting down: send the request again.',
      ),
    );
    if (this.inFlight.size === 0) return;
    const bound = new Promise<void>((resolve) =>
      setTimeout(resolve, SHUTDOWN_GRACE_MS).unref(),
    );
    await Promise.race([Promise.allSettled(this.inFlight), bound]);
  }

  private async run(
    exchange: ProxyExchange,
    req: IncomingMessage,
    res: ServerResponse,
    tally: CallTally,
  ): Promise<void> {
    const io = { req, res, expectsContinue: exchange.expectsContinue };
    let url = redactUrl(req.url);
    let stats: ExchangeStats;
    try {
      if (this.shutdown.signal.aborted) throw this.shutdown.signal.reason;
      const request = prepareProxyRequest(req, {
        proxyUrl: exchange.proxyUrl,
        maxBodySize: this.settings.maxBodySize,
      });
      url = request.displayUrl;
      stats =
        request.kind === 'connect'
          ? await forwardConnect(request, io, {
              tunnels: this.tunnels,
              chunkSize: this.settings.chunkSize,
              logger: this.logger,
              shutdown: this.shutdown.signal,
            })
          : await forwardHttp(request, io, {
              api: this.api,
              chunkSize: this.settings.chunkSize,
              maxBodySize: this.settings.maxBodySize,
              requestTimeoutMs: this.settings.requestTimeoutMs,
              uploadConcurrency: this.settings.uploadConcurrency,
              downloadConcurrency: this.settings.downloadConcurrency,
              combinedCall: this.settings.combinedCall,
              logger: this.logger,
              shutdown: this.shutdown.signal,
            });
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      await sendErrorAnswer(req, res, error);
      stats = newStats(error.status);
    }
    this.access.log(
      `${req.method} ${url} ${stats.status} up=${stats.bytesUp}B down=${stats.bytesDown}B chunks=${stats.chunksUp}/${stats.chunksDown} calls=${tally.calls} ${Date.now() - exchange.startedAt}ms`,
    );
  }
}
