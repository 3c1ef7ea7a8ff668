import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Pool, type Dispatcher } from 'undici';
import {
  GatewayResponses,
  type GatewayResponse,
} from '../common/gateway-responses.js';
import { gatewayConfig } from '../config/gateway.config.js';

export interface UpstreamRequest {
  method: string;
  /** Path (stage removed) and query, as the client sent them. */
  pathAndQuery: string;
  /** Flat `[name, value, ...]` list. */
  headers: string[];
  body: Buffer;
}

export type UpstreamOutcome =
  | { kind: 'response'; response: Dispatcher.ResponseData }
  /** No answer head: 502 or 504, as API Gateway would say it. */
  | { kind: 'failed'; refusal: GatewayResponse; reason: string }
  /** The caller's signal fired (the client went away): nothing to answer. */
  | { kind: 'cancelled' };

/** The socket error code behind an undici/net failure (`ECONNREFUSED`, `UND_ERR_SOCKET`...). */
function errorCode(error: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    if (current instanceof AggregateError && current.errors.length > 0) {
      current = current.errors[0];
    } else {
      current = current.cause;
    }
  }
  return error instanceof Error ? error.name : 'UNKNOWN';
}

/**
 * The HTTP integration: one keep-alive pool to GATEWAY_UPSTREAM_URL. The
 * integration timeout covers the wait for the answer's head, as in API
 * Gateway; the body then streams for as long as it takes.
 */
@Injectable()
export class UpstreamService implements OnApplicationShutdown {
  private readonly pool: Pool;

  constructor(
    @Inject(gatewayConfig.KEY)
    private readonly config: ConfigType<typeof gatewayConfig>,
  ) {
    this.pool = new Pool(config.upstreamOrigin, {
      keepAliveTimeout: 30_000,
      // The gateway's own timer below is the integration timeout.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /**
   * Sends the request and resolves once the upstream's status and headers
   * arrived, or with why not. `signal` cancels it (client gone); the
   * response body keeps honouring it.
   */
  async send(
    request: UpstreamRequest,
    signal: AbortSignal,
  ): Promise<UpstreamOutcome> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.config.timeoutMs);
    try {
      const response = await this.pool.request({
        method: request.method,
        path: `${this.config.upstreamBasePath}${request.pathAndQuery}`,
        headers: request.headers,
        body: request.body.length > 0 ? request.body : null,
        signal: AbortSignal.any([signal, timeout.signal]),
      });
      return { kind: 'response', response };
    } catch (error) {
      if (signal.aborted) return { kind: 'cancelled' };
      if (timeout.signal.aborted) {
        return {
          kind: 'failed',
          refusal: GatewayResponses.endpointTimeout(),
          reason: `no answer within ${this.config.timeoutMs} ms`,
        };
      }
      const code = errorCode(error);
      return {
        kind: 'failed',
        refusal: GatewayResponses.upstreamUnreachable(code),
        reason: `${code}: ${error instanceof Error ? error.message : String(error)}`,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.destroy();
  }
}
