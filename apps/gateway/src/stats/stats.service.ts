import { Injectable } from '@nestjs/common';

/** What `GET /_gateway/stats` answers. */
export interface GatewayStats {
  /** Calls handled (signed or not, forwarded or refused); stats calls excluded. */
  total: number;
  /** Calls per path as forwarded (stage removed; the raw path when outside the stage). */
  by_path: Record<string, number>;
  /** Calls per answered status; 499 when the client left before any answer. */
  by_status: Record<string, number>;
  /** Request body bytes received, response body bytes sent. */
  request_bytes: number;
  response_bytes: number;
  /** When counting started (start-up or the last reset). */
  since: string;
}

/** Distinct paths counted one by one; beyond, calls go under {@link OTHER_PATHS} so memory stays bounded. */
export const MAX_DISTINCT_PATHS = 1000;
export const OTHER_PATHS = '(other paths)';

/** Call counters for benchmarks and tests. In memory, per process. */
@Injectable()
export class StatsService {
  private stats = StatsService.empty();

  private static empty(): GatewayStats {
    return {
      total: 0,
      by_path: {},
      by_status: {},
      request_bytes: 0,
      response_bytes: 0,
      since: new Date().toISOString(),
    };
  }

  record(call: {
    path: string;
    status: number;
    requestBytes: number;
    responseBytes: number;
  }): void {
    const s = this.stats;
    s.total += 1;
    const known =
      Object.hasOwn(s.by_path, call.path) ||
      Object.keys(s.by_path).length < MAX_DISTINCT_PATHS;
    const path = known ? call.path : OTHER_PATHS;
    s.by_path[path] = (s.by_path[path] ?? 0) + 1;
    s.by_status[call.status] = (s.by_status[call.status] ?? 0) + 1;
    s.request_bytes += call.requestBytes;
    s.response_bytes += call.responseBytes;
  }

  snapshot(): GatewayStats {
    return structuredClone(this.stats);
  }

  /** Starts counting afresh; returns the counts that were cleared. */
  reset(): GatewayStats {
    const cleared = this.stats;
    this.stats = StatsService.empty();
    return cleared;
  }
}
