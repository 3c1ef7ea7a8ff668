import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  BufferPool,
  MiB,
  pairsFromRawHeaders,
  recordFromPairs,
} from '@app/protocol';
import { splitTarget, verifySigV4 } from '@app/sigv4';
import {
  GatewayResponses,
  type GatewayResponse,
} from '../common/gateway-responses.js';
import { sendGatewayResponse } from '../common/send-gateway-response.js';
import { gatewayConfig } from '../config/gateway.config.js';
import { FaultPlan, type Fault, type FaultKind } from '../faults/fault-plan.js';
import { DROPPED_BY_GATEWAY, StatsService } from '../stats/stats.service.js';
import { DISCARD_LIMIT_BYTES, readBoundedBody } from './body-reader.js';
import {
  clientResponseHeaders,
  stripStage,
  upstreamRequestHeaders,
} from './forwarding.js';
import { UpstreamService, type UpstreamOutcome } from './upstream.service.js';

/** Largest body buffer the gateway keeps for reuse; larger bodies get one of their own. */
const POOLED_BODY_BYTES = 16 * MiB;
/** Body buffers kept for reuse: the chunk calls of two uploads at the client's default window. */
const POOLED_BODIES = 16;

/** Status recorded for a call whose client left before any answer (nginx's convention). */
const CLIENT_CLOSED = 499;

/** The answers of the status faults: API Gateway's own, as a real one gives them. */
const FAULT_ANSWERS: Partial<Record<FaultKind, () => GatewayResponse>> = {
  '429': GatewayResponses.tooManyRequests,
  '502': GatewayResponses.integrationFailure,
  '503': GatewayResponses.serviceUnavailable,
  '504': GatewayResponses.endpointTimeout,
};

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
  /** The fault injected into this call, if any. */
  fault?: FaultKind;
}

/**
 * One API Gateway call, in the order AWS handles it:
 *
 * ```
 * read body (≤ limit) ──413──▶ client
 *   │ path in stage? ──404──▶ client
 *   │ SigV4 valid?   ──403──▶ client
 *   │ fault drawn?   ──reset-before──▶ connection dropped
 *   │                ──429/502/503/504──▶ client
 *   │ (added latency, plus a latency fault's)
 *   ▼ forward ──no head in time──▶ 504 / unreachable ──▶ 502
 *   │ reset-after? ──upstream's answer read, then connection dropped
 *   ▼ stream upstream status, headers, body ──▶ client
 * ```
 *
 * Faults (GATEWAY_FAULT_RATE) hit only calls that passed the gateway's own
 * checks, the calls a real gateway would forward.
 */
@Injectable()
export class ProxyService {
  private readonly logger = new Logger('Gateway');
  /** Buffers request bodies are read into, reused from call to call. */
  private readonly bodies: BufferPool;

  constructor(
    @Inject(gatewayConfig.KEY)
    private readonly config: ConfigType<typeof gatewayConfig>,
    private readonly upstream: UpstreamService,
    private readonly stats: StatsService,
    private readonly faults: FaultPlan,
  ) {
    this.bodies = new BufferPool(
      Math.min(config.maxBodyBytes, POOLED_BODY_BYTES),
      POOLED_BODIES,
    );
  }

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
    const read = await readBoundedBody(
      req,
      this.config.maxBodyBytes,
      DISCARD_LIMIT_BYTES,
      this.bodies,
    );
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
    call.requestBytes = read.body.length;
    try {
      await this.forward(req, res, call, clientGone, read, now);
    } finally {
      // The upstream has the body (or never will): its buffer is free again.
      read.release();
    }
  }

  /** The rest of {@link exchange}, once the body is read: verify, inject faults, forward. */
  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    call: CallRecord,
    clientGone: AbortSignal,
    read: { body: Buffer; sha256: string },
    now: Date,
  ): Promise<void> {
    const target = req.url ?? '/';
    const { path, query } = splitTarget(target);

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
        // Hashed once, as it arrived: the body is not hashed again.
        payloadHash: read.sha256,
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

    const fault = this.faults.draw();
    if (fault) {
      call.fault = fault.kind;
      if (this.injectBeforeForwarding(fault, res, call)) return;
    }

    const latencyMs =
      this.config.latencyMs + (fault?.kind === 'latency' ? fault.latencyMs : 0);
    if (latencyMs > 0) {
      try {
        await delay(latencyMs, undefined, {
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
        body: read.body,
      },
      clientGone,
    );
    if (outcome.kind === 'cancelled') return;
    if (fault?.kind === 'reset-after') {
      await this.dropAnswer(outcome, res, call);
      return;
    }
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

  /**
   * Applies a fault that strikes before the upstream sees the call; true
   * when the call is thereby over (`latency` and `reset-after` act later).
   */
  private injectBeforeForwarding(
    fault: Fault,
    res: ServerResponse,
    call: CallRecord,
  ): boolean {
    if (fault.kind === 'reset-before') {
      call.status = DROPPED_BY_GATEWAY;
      call.note = 'fault reset-before: connection dropped, not forwarded';
      res.destroy();
      return true;
    }
    const answer = FAULT_ANSWERS[fault.kind];
    if (!answer) return false;
    call.note = `fault ${fault.kind}: answered by the gateway, not forwarded`;
    this.answer(res, call, answer());
    return true;
  }

  /**
   * The `reset-after` fault: the upstream handled the call and answered in
   * full, but the client never gets that answer; its connection is dropped
   * as if the network lost the answer on the way back.
   */
  private async dropAnswer(
    outcome: Exclude<UpstreamOutcome, { kind: 'cancelled' }>,
    res: ServerResponse,
    call: CallRecord,
  ): Promise<void> {
    let what: string;
    if (outcome.kind === 'failed') {
      what = `upstream failed (${outcome.reason})`;
    } else {
      let bytes = 0;
      try {
        for await (const piece of outcome.response.body) {
          bytes += (piece as Buffer).length;
        }
        what = `upstream answered ${outcome.response.statusCode} with ${bytes} bytes`;
      } catch (error) {
        what = `upstream answer broke off after ${bytes} bytes (${error instanceof Error ? error.message : String(error)})`;
      }
    }
    call.status = DROPPED_BY_GATEWAY;
    call.note = `fault reset-after: ${what}, answer dropped`;
    res.destroy();
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
      fault: call.fault,
    });
    const ms = (performance.now() - started).toFixed(1);
    this.logger.debug(
      `${call.method} ${call.path} ${status} in=${call.requestBytes}B out=${call.responseBytes}B ${ms}ms${call.note ? ` (${call.note})` : ''}`,
    );
  }
}
