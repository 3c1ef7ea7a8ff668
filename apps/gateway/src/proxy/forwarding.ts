import type { IncomingHttpHeaders } from 'node:http';
import {
  pairsFromRawHeaders,
  pairsFromRecord,
  stripHopByHop,
  type HeaderPairs,
} from '@app/protocol';

/**
 * Headers of the gateway hop that never reach the upstream: the signature
 * and its inputs (consumed by the gateway, as AWS does), the session token
 * (a credential), and the ones the HTTP client recomputes for the new
 * connection (Host becomes the upstream's, the length is the buffered body's).
 */
const NOT_FORWARDED_TO_UPSTREAM = [
  'authorization',
  'x-amz-security-token',
  'x-amz-date',
  'x-amz-content-sha256',
  'host',
  'content-length',
  'expect',
];

/** The client's headers as they go to the upstream, order and repeats kept. */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
): string[] {
  return stripHopByHop(
    pairsFromRawHeaders(rawHeaders),
    NOT_FORWARDED_TO_UPSTREAM,
  ).flat();
}

/**
 * The upstream's response headers as they go back to the client: minus
 * hop-by-hop ones, and minus its own request id (the gateway's wins, as in AWS).
 */
export function clientResponseHeaders(
  headers: IncomingHttpHeaders,
): HeaderPairs {
  return stripHopByHop(pairsFromRecord(headers), ['x-amzn-requestid']);
}

/**
 * The path the upstream sees. With a stage (`prod`), only `/prod` and
 * `/prod/...` exist and lose that prefix, as API Gateway does for a
 * `{proxy+}` resource; anything else is `undefined` (an unknown path).
 */
export function stripStage(path: string, stage: string): string | undefined {
  if (stage === '') return path;
  const prefix = `/${stage}`;
  if (path === prefix) return '/';
  if (path.startsWith(`${prefix}/`)) return path.slice(prefix.length);
  return undefined;
}
