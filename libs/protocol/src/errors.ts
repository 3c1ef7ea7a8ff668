/**
 * Stable error codes. Every error chunkgate answers is JSON
 * `{ "error": <code>, "message": <what was wrong and what to do> }`;
 * the code never changes meaning, the message is for people.
 */
export const ErrorCode = {
  /** Malformed input: bad JSON, a missing or invalid field or header. */
  InvalidRequest: 'invalid_request',
  /** The connection id is unknown, was released, or expired. */
  ConnectionNotFound: 'connection_not_found',
  /** A connection with this id already exists. */
  ConnectionExists: 'connection_exists',
  /** The body is larger than MAX_BODY_SIZE. */
  BodyTooLarge: 'body_too_large',
  /** A single chunk is larger than the largest chunk allowed. */
  ChunkTooLarge: 'chunk_too_large',
  /** A chunk contradicts what was already received (after final, outside the body, different size). */
  ChunkConflict: 'chunk_conflict',
  /** The assembled body's size differs from the declared body_size. */
  SizeMismatch: 'size_mismatch',
  /** The request is already complete and forwarded; no more chunks accepted. */
  RequestComplete: 'request_complete',
  /** The target could not be reached (refused, DNS, reset, TLS). */
  TargetUnreachable: 'target_unreachable',
  /** The target did not answer in time. */
  TargetTimeout: 'target_timeout',
  /** The client's request to the proxy was not a valid proxy request. */
  BadProxyRequest: 'bad_proxy_request',
  /** The method is not supported yet (CONNECT). */
  NotImplemented: 'not_implemented',
  /** The gateway refused the client's call (signature, credentials, permissions). */
  GatewayAuthFailed: 'gateway_auth_failed',
  /** The gateway or server could not be reached or failed. */
  UpstreamUnavailable: 'upstream_unavailable',
  /** The gateway timed out. */
  GatewayTimeout: 'gateway_timeout',
  /** The server could not store a request body (disk full or unwritable spool): 507. */
  InsufficientStorage: 'insufficient_storage',
  /** CONNECT to a port the server does not allow (CONNECT_ALLOWED_PORTS): 403. */
  ConnectPortForbidden: 'connect_port_forbidden',
  /** The target's address or name is refused by the server (TARGET_DENY_CIDRS, TARGET_ALLOW_CIDRS, TARGET_ALLOW_HOSTS): 403. */
  TargetForbidden: 'target_forbidden',
  /** The server holds MAX_CONNECTIONS connections and tunnels already: 503 with Retry-After. */
  TooManyConnections: 'too_many_connections',
  /** The call's SigV4 signature is missing or wrong (the server checks it itself: SERVER_AUTH=sigv4): 403. */
  SignatureInvalid: 'signature_invalid',
  /** The application's request to proxy-client lacks valid `Proxy-Authorization` (CLIENT_PROXY_AUTH is set): 407. */
  ProxyAuthRequired: 'proxy_auth_required',
  /** An unexpected failure inside chunkgate: a bug, reported as such. */
  Internal: 'internal_error',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The JSON body of every error response. */
export interface ErrorBody {
  error: ErrorCode;
  message: string;
}

/**
 * An error that knows its HTTP status and stable code. Services throw it;
 * the one exception filter per app turns it into an {@link ErrorBody}.
 */
export class ProtocolError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProtocolError';
  }

  toBody(): ErrorBody {
    return { error: this.code, message: this.message };
  }
}

/** Reads an {@link ErrorBody} out of a parsed JSON value, if it is one. */
export function asErrorBody(value: unknown): ErrorBody | undefined {
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ErrorBody).error === 'string' &&
    typeof (value as ErrorBody).message === 'string'
  ) {
    return value as ErrorBody;
  }
  return undefined;
}
