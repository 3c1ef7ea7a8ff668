import { ErrorCode, ProtocolError } from '@app/protocol';

/** Failures to talk to the target that mean it did not answer in time. */
const TIMEOUT_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);

/** What these codes mean, in words, for the message. */
const EXPLAINED: Record<string, string> = {
  ECONNREFUSED: 'the target refused the connection (nothing listens there?)',
  ENOTFOUND: 'the target host name was not found in DNS',
  EAI_AGAIN: 'DNS lookup of the target host failed temporarily',
  ECONNRESET: 'the target reset the connection',
  EHOSTUNREACH: 'the target host is unreachable',
  ENETUNREACH: 'the target network is unreachable',
  EPIPE: 'the target closed the connection while the request was being sent',
  UND_ERR_SOCKET: 'the target closed the connection',
  UND_ERR_HEADERS_TIMEOUT: 'the target sent no response head in time',
  UND_ERR_BODY_TIMEOUT: 'the target stopped sending its body',
  UND_ERR_CONNECT_TIMEOUT: 'connecting to the target timed out',
  ETIMEDOUT: 'the connection to the target timed out',
};

interface CodedError {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/**
 * The error code of a failed target request: its own `code`, or that of its
 * cause, or of the first of several (Node's happy-eyeballs connect throws an
 * AggregateError whose attempts carry the codes).
 */
export function errorCodeOf(error: unknown, depth = 0): string | undefined {
  if (typeof error !== 'object' || error === null || depth > 4)
    return undefined;
  const e = error as CodedError;
  if (typeof e.code === 'string' && e.code !== 'ERR_AGGREGATE') return e.code;
  if (Array.isArray(e.errors) && e.errors.length > 0) {
    const inner = errorCodeOf(e.errors[0], depth + 1);
    if (inner) return inner;
  }
  return errorCodeOf(e.cause, depth + 1);
}

/**
 * undici codes that mean we built a request undici refuses: a gap in our own
 * validation, reported as the bug it is rather than blamed on the target.
 */
const OUR_FAULT = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_INVALID_RETURN_VALUE',
]);

/**
 * Whether a code comes from talking to the target: a system error of the
 * socket or DNS (`ECONNREFUSED`, `EAI_AGAIN`; not Node's own `ERR_*`),
 * undici, the HTTP parser (`HPE_*`) or TLS.
 */
function isTargetCode(code: string): boolean {
  if (OUR_FAULT.has(code)) return false;
  return (
    /^E(?!RR_)[A-Z0-9_]+$/.test(code) ||
    code.startsWith('UND_ERR_') ||
    code.startsWith('HPE_') ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    /CERT|SELF_SIGNED|UNABLE_TO_/.test(code)
  );
}

/**
 * Maps a failed target request to the protocol's answer: 504
 * `target_timeout` when the target was too slow, 502 `target_unreachable`
 * naming the cause otherwise. `responseBytes` is set once the response head
 * arrived: the response then broke off, and the message says after how much.
 * Anything that is not a failure of the target (a bug) is returned as is.
 */
export function targetFailure(
  error: unknown,
  target: string,
  timeoutMs: number,
  responseBytes?: number,
): ProtocolError | unknown {
  const code = errorCodeOf(error);
  if (code === undefined || !isTargetCode(code)) return error;
  const detail = error instanceof Error && error.message ? error.message : code;
  const cause = `${EXPLAINED[code] ?? 'the exchange with the target failed'} (${code}: ${detail})`;
  const timeout = TIMEOUT_CODES.has(code);
  const where =
    responseBytes === undefined
      ? `Target ${target} failed: ${cause}`
      : `Target ${target}: response broke off after ${responseBytes} bytes: ${cause}`;
  return timeout
    ? new ProtocolError(
        504,
        ErrorCode.TargetTimeout,
        `${where}. TARGET_TIMEOUT_MS is ${timeoutMs} ms.`,
        { cause: error },
      )
    : new ProtocolError(502, ErrorCode.TargetUnreachable, `${where}.`, {
        cause: error,
      });
}
