import {
  type CreateConnectionDto,
  ErrorCode,
  type HeaderPairs,
  pairsFromRecord,
  ProtocolError,
  stripHopByHop,
} from '@app/protocol';

/** The request to send to the target, worked out once when the connection opens. */
export interface TargetRequest {
  /** `scheme://host:port`. */
  origin: string;
  method: string;
  /** Origin-form path with query. */
  path: string;
  /** The application's end-to-end headers plus `Host`; no hop-by-hop, no framing. */
  headers: HeaderPairs;
  /** Origin and path without the query, for logs (queries may carry secrets). */
  display: string;
}

/**
 * Headers never copied from the application's request: `Host` and
 * `Content-Length` are rebuilt for the target, and `Expect: 100-continue`
 * makes no sense once the whole body is here (undici refuses it anyway).
 */
const REBUILT = ['host', 'content-length', 'expect'];

/** Methods whose requests carry content even when it is empty (RFC 9110 8.6). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Most header lines (a list value counts each of its values) and bytes
 * (names plus values) the connection JSON's `headers` may carry. Generous
 * for any real request (browsers send a few dozen lines, a few KiB), yet they
 * bound what one connection makes the server hold and send: the outer HTTP
 * headers are bounded by Node (16 KiB), these travel in the body.
 */
export const MAX_TARGET_HEADERS = 200;
export const MAX_TARGET_HEADER_BYTES = 64 * 1024;

/** Refuses `headers` beyond {@link MAX_TARGET_HEADERS} lines or {@link MAX_TARGET_HEADER_BYTES} bytes with a 400. */
export function checkHeaderBounds(pairs: HeaderPairs): void {
  if (pairs.length > MAX_TARGET_HEADERS) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      `headers has ${pairs.length} header lines (a list counts each value); at most ${MAX_TARGET_HEADERS} are accepted: send fewer headers.`,
    );
  }
  let bytes = 0;
  for (const [name, value] of pairs) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  if (bytes > MAX_TARGET_HEADER_BYTES) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      `headers hold ${bytes} bytes of names and values; at most ${MAX_TARGET_HEADER_BYTES} are accepted: send smaller headers.`,
    );
  }
}

/** The target request of a connection; throws a 400 for headers beyond the bounds ({@link checkHeaderBounds}). */
export function targetRequestFrom(dto: CreateConnectionDto): TargetRequest {
  const scheme = dto.scheme ?? 'http';
  const defaultPort = scheme === 'https' ? 443 : 80;
  const port = dto.port ?? defaultPort;
  const host =
    port === defaultPort ? dto.target_host : `${dto.target_host}:${port}`;
  const origin = `${scheme}://${dto.target_host}:${port}`;
  const sent = pairsFromRecord(dto.headers ?? {});
  checkHeaderBounds(sent);
  const headers = stripHopByHop(sent, REBUILT);
  return {
    origin,
    method: dto.method,
    path: dto.path,
    headers: [['Host', host], ...headers],
    display: `${origin}${dto.path.split('?')[0]}`,
  };
}

/**
 * Whether to send a body (and `Content-Length`) for `bodyBytes` bytes: always
 * when there are bytes; for an empty body only with methods that expect
 * content, so a GET or HEAD leaves without `Content-Length: 0`.
 */
export function sendsBody(method: string, bodyBytes: number): boolean {
  return bodyBytes > 0 || BODY_METHODS.has(method.toUpperCase());
}

/** Undici's flat header list (`[name, value, name, value, …]`), repetitions kept. */
export function flatHeaders(
  target: TargetRequest,
  bodyBytes: number,
): string[] {
  const flat = target.headers.flat();
  if (sendsBody(target.method, bodyBytes)) {
    flat.push('Content-Length', String(bodyBytes));
  }
  return flat;
}
