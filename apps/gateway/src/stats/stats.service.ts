import { Injectable } from '@nestjs/common';
import type { FaultKind } from '../faults/fault-plan.js';

/** What `GET /_gateway/stats` answers. */
export interface GatewayStats {
  /** Calls handled (signed or not, forwarded or refused); stats calls excluded. */
  total: number;
  /** Calls per path as forwarded (stage removed; the raw path when outside the stage). */
  by_path: Record<string, number>;
  /**
   * Calls per answered status; 499 when the client left before any answer,
   * {@link DROPPED_BY_GATEWAY} (0) when an injected reset dropped the connection.
   */
  by_status: Record<string, number>;
  /** Request body bytes received, response body bytes sent. */
  request_bytes: number;
  response_bytes: number;
  /** Faults injected (GATEWAY_FAULT_RATE): how many, of which kind, on which path. */
  faults: {
    total: number;
    by_kind: Partial<Record<FaultKind, number>>;
    by_path: Record<string, number>;
  };
  /** When counting started (start-up or the last reset). */
  since: string;
}

/** Distinct paths counted one by one; beyond, calls go under {@link OTHER_PATHS} so memory stays bounded. */
export const MAX_DISTINCT_PATHS = 1000;
export const OTHER_PATHS = '(other paths)';

/** Status recorded for a call whose connection the gateway dropped on purpose (a reset fault): no answer was sent. */
export const DROPPED_BY_GATEWAY = 0;

/** Adds one to `path`'s count, or to {@link OTHER_PATHS} once too many paths are known. */
function countPath(byPath: Record<string, number>, path: string): void {
  const known =
    Object.hasOwn(byPath, path) ||
    Object.keys(byPath).length < MAX_DISTINCT_PATHS;
  const key = known ? path : OTHER_PATHS;
  byPath[key] = (byPath[key] ?? 0) + 1;
}

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
      faults: { total: 0, by_kind: {}, by_path: {} },
      since: new Date().toISOString(),
    };
  }

  record(call: {
    path: string;
    status: number;
    requestBytes: number;
    responseBytes: number;
    /** The fault injected into this call, if any. */
    fault?: FaultKind;
  }): void {
    const s = this.stats;
    s.total += 1;
    countPath(s.by_path, call.path);
    s.by_status[call.status] = (s.by_status[call.status] ?? 0) + 1;
    s.request_bytes += call.requestBytes;
    s.response_bytes += call.responseBytes;
    if (call.fault) {
      s.faults.total += 1;
      s.faults.by_kind[call.fault] = (s.faults.by_kind[call.fault] ?? 0) + 1;
      countPath(s.faults.by_path, call.path);
    }
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
