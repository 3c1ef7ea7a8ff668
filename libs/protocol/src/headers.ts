/**
 * Header names of the wire protocol between proxy-client and proxy-server.
 *
 * Node lower-cases incoming header names, so these are lower-case too and can
 * be used directly as keys of `req.headers`. HTTP header names are
 * case-insensitive; API Gateway may change their case on the way.
 */
export const Header = {
  /** Which proxied connection a call is about (a UUID). */
  ConnectionId: 'x-connection-id',
  /** 0-based index of a request chunk (upload) or response chunk (download). */
  ChunkIndex: 'x-chunk-index',
  /** `true` on the last request chunk: the request is complete after it. */
  ChunkFinal: 'x-chunk-final',
  /** On a response chunk: `true` when more response chunks follow. */
  MoreChunks: 'x-more-chunks',
  /** On a "not ready yet" answer (202): `false`. */
  ChunkReady: 'x-chunk-ready',
  /** On response chunk 0: the target's status code. */
  TargetStatus: 'x-target-status',
  /** On response chunk 0: the target's reason phrase, URI-encoded. */
  TargetReason: 'x-target-reason',
  /**
   * On response chunk 0: the target's headers as base64 of a JSON array of
   * `[name, value]` pairs. Pairs (not an object) keep repeated headers such
   * as two `Set-Cookie` apart; base64 keeps API Gateway from merging,
   * renaming or dropping them on the way.
   */
  TargetHeaders: 'x-target-headers',
  /** On `POST /proxy/exchange`: byte length of the connection JSON that starts the body. */
  HeadLength: 'x-head-length',
  /** Which CONNECT tunnel a call is about (a UUID). */
  TunnelId: 'x-tunnel-id',
  /** 0-based number of a tunnel segment: upstream on send, downstream on receive. */
  Sequence: 'x-sequence',
  /** On `POST /proxy/tunnel/send`: `true` when the application finished sending (FIN after this data). */
  TunnelClose: 'x-tunnel-close',
  /** On a downstream segment: `true` when the target finished sending and this segment holds its last bytes. */
  TunnelClosed: 'x-tunnel-closed',
} as const;

/** Parses a protocol boolean header (`true`/`false`, case-insensitive). */
export function parseBooleanHeader(
  value: string | string[] | undefined,
): boolean {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' && v.trim().toLowerCase() === 'true';
}

import { ErrorCode, ProtocolError } from './errors.js';

/** Request headers as Node and Nest's `@Headers()` give them: lower-case names. */
export type IncomingHeaders = Record<string, string | string[] | undefined>;

function single(headers: IncomingHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Reads and checks `X-Connection-ID`; a missing or malformed id is a 400. */
export function readConnectionId(headers: IncomingHeaders): string {
  const id = single(headers, Header.ConnectionId)?.trim();
  if (!id) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'Missing X-Connection-ID header: send the connection_id returned by POST /proxy/connection.',
    );
  }
  if (!UUID.test(id)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'X-Connection-ID must be a UUID.',
    );
  }
  return id.toLowerCase();
}

/**
 * Reads `X-Chunk-Index`: a non-negative decimal integer, or `undefined` when
 * absent (allowed only where `required` is false). Anything else is a 400.
 */
export function readChunkIndex(
  headers: IncomingHeaders,
  required: boolean,
): number | undefined {
  const raw = single(headers, Header.ChunkIndex)?.trim();
  if (raw === undefined || raw === '') {
    if (required) {
      throw new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        'Missing X-Chunk-Index header: send the 0-based index of the chunk.',
      );
    }
    return undefined;
  }
  if (!/^\d{1,9}$/.test(raw)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      `X-Chunk-Index must be a non-negative integer below 1000000000, got ${JSON.stringify(raw.slice(0, 40))}.`,
    );
  }
  return Number(raw);
}
