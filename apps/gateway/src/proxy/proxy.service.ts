import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { pairsFromRawHeaders, recordFromPairs } from '@app/protocol';
import { GatewayResponses } from '../common/gateway-responses.js';
import { sendGatewayResponse } from '../common/send-gateway-response.js';
import { gatewayConfig } from '../config/gateway.config.js';
import { splitTarget } from '../sigv4/canonical-request.js';
import { verifySigV4 } from '../sigv4/sigv4-verifier.js';
import { StatsService } from '../stats/stats.service.js';
import { readBoundedBody } from './body-reader.js';
import {
  clientResponseHeaders,
  stripStage,
  upstreamRequestHeaders,
} from './forwarding.js';
import { UpstreamService } from './upstream.service.js';

/** Status recorded for a call whose client left before any answer (nginx's convention). */
const CLIENT_CLOSED = 499;

/** What one call did, for the stats and the log line. */
interface CallRecord {
  method: string;
  path: string;
  requestBytes: number;
  responseBytes: number;
  /** Set when a response head is written. */
  status?: number;
  /** Why the gateway answered as it did, when it answered itself. */
  note?: string;
}

/**
 * One API Gateway call, in the order AWS handles it:
 *
 * ```
 * read body (≤ limit) ──413──▶ client
 *   │ path in stage? ──404──▶ client
 *   │ SigV4 valid?   ──403──▶ client
 *   │ (added latency)
 *   ▼ forward ──no head in time──▶ 504 / unreachable ──▶ 502
 *   ▼ stream upstream status, headers, body ──▶ client
 * ```
 */
@Injectable()
export class ProxyService {
  private readonly logger = new Logger('Gateway');

  constructor(
    @Inject(gatewayConfig.KEY)
    private readonly config: ConfigType<typeof gatewayConfig>,
    private readonly upstream: UpstreamService,
    private readonly stats: StatsService,
  ) {}

  /**
   * Handles one call to completion. Never rejects: a bug becomes API
   * Gateway's 500 (or a cut-off response once the head is out) and a log line.
   */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const call: CallRecord = {
      method: req.method ?? 'GET',
      path: splitTarget(req.url ?? '/').path,
      requestBytes: 0,
      responseBytes: 0,
    };
    // Cancels the upstream request and any added latency if the client leaves.
    const clientGone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) clientGone.abort();
      this.finish(call, started);
    });
    try {
      await this.exchange(req, res, call, clientGone.signal);
    } catch (error) {
      this.logger.error(
        `Unexpected error on ${call.method} ${call.path}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      if (res.headersSent) res.destroy();
      else this.answer(res, call, GatewayResponses.internalError());
    }
  }

  private async exchange(
    req: IncomingMessage,
    res: ServerResponse,
    call: CallRecord,
    clientGone: AbortSignal,
  ): Promise<void> {
    const now = new Date();
    const target = req.url ?? '/';
    const { path, query } = splitTarget(target);

    const read = await readBoundedBody(req, this.config.maxBodyBytes);
    if (read.kind === 'aborted') {
      call.requestBytes = read.receivedBytes;
      call.note = 'client left while sending the body';
      return;
    }
    if (read.kind === 'too_large') {
      call.requestBytes = read.receivedBytes;
      call.note = `body over ${this.config.maxBodyBytes} bytes`;
      this.answer(res, call, GatewayResponses.requestTooLarge(), {
        close: !read.drained,
      });
      return;
    }
    const body = read.body;
    call.requestBytes = body.length;

    const upstreamPath = stripStage(path, this.config.stage);
    if (upstreamPath === undefined) {
      call.note = `not under stage /${this.config.stage}`;
      this.answer(res, call, GatewayResponses.unknownPath());
      return;
    }
    call.path = upstreamPath;

    const verdict = verifySigV4(
      {
        method: call.method,
        target,
        headers: pairsFromRawHeaders(req.rawHeaders),
        body,
        now,
      },
      {
        region: this.config.region,
        service: this.config.service,
        credentials: this.config.credentials,
      },
    );
    if (!verdict.ok) {
      call.note = verdict.reason;
      this.answer(res, call, verdict.refusal);
      return;
    }

    if (this.config.latencyMs > 0) {
      try {
        await delay(this.config.latencyMs, undefined, {
          signal: clientGone,
        });
      } catch {
        return; // The client left during the added latency: nothing to answer.
      }
    }

    const outcome = await this.upstream.send(
      {
        method: call.method,
        pathAndQuery: query ? `${upstreamPath}?${query}` : upstreamPath,
        headers: upstreamRequestHeaders(req.rawHeaders),
        body,
      },
      clientGone,
    );
    if (outcome.kind === 'cancelled') return;
    if (outcome.kind === 'failed') {
      call.note = outcome.reason;
      this.answer(res, call, outcome.refusal);
      return;
    }

    const { response } = outcome;
    const headers = recordFromPairs(clientResponseHeaders(response.headers));
    for (const [name, value] of Object.entries(headers)) {
      res.setHeader(name, value);
    }
    call.status = response.statusCode;
    res.writeHead(response.statusCode, response.statusText || undefined);
    response.body.on('data', (chunk: Buffer) => {
      call.responseBytes += chunk.length;
    });
    try {
      await pipeline(response.body, res);
    } catch (error) {
      // The upstream broke off or the client left: pipeline destroyed both sides,
      // so the client sees a cut response, never one that looks complete.
      call.note = `response stream ended early: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  private answer(
    res: ServerResponse,
    call: CallRecord,
    response: { status: number; message: string; errorType?: string },
    options: { close?: boolean } = {},
  ): void {
    call.status = response.status;
    call.responseBytes = Buffer.byteLength(
      JSON.stringify({ message: response.message }),
    );
    sendGatewayResponse(res, response, options);
  }

  /** Counts the call and logs its one line. Never logs headers: they carry signatures and tokens. */
  private finish(call: CallRecord, started: number): void {
    const status = call.status ?? CLIENT_CLOSED;
    this.stats.record({
      path: call.path,
      status,
      requestBytes: call.requestBytes,
      responseBytes: call.responseBytes,
    });
    const ms = (performance.now() - started).toFixed(1);
    this.logger.debug(
      `${call.method} ${call.path} ${status} in=${call.requestBytes}B out=${call.responseBytes}B ${ms}ms${call.note ? ` (${call.note})` : ''}`,
    );
  }
}
