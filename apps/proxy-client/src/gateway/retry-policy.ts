import { asErrorBody } from '@app/protocol';

/**
 * When and how long to wait before retrying a gateway call.
 *
 * Every call of the protocol is safe to repeat (the connection id is chosen
 * by the client, chunk uploads and response reads are idempotent, a release
 * is final), so transient failures are retried: lost connections and the
 * answers API Gateway gives when it is throttling or its integration
 * stumbled. What the server says about the target (a chunkgate JSON error
 * such as 502 target_unreachable) is an answer, never retried.
 */
export interface RetryPolicyOptions {
  /** Retries after the first attempt (GATEWAY_MAX_RETRIES). */
  maxRetries: number;
  /** Base of the exponential backoff (GATEWAY_RETRY_BASE_MS). */
  baseMs: number;
  /** No single wait is longer than this, whatever the attempt or Retry-After. */
  maxDelayMs?: number;
  /** Uniform [0, 1): injectable so tests can pin the jitter. */
  random?: () => number;
}

export const DEFAULT_MAX_RETRY_DELAY_MS = 10_000;

/** Statuses API Gateway answers for throttling and integration hiccups. */
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

/**
 * Error codes of a connection that failed or broke: Node's system errors and
 * undici's socket and timeout errors. `ENOTFOUND` is missing on purpose: a
 * host that does not exist is a configuration error, better reported at once.
 */
const RETRYABLE_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  // the answer broke off before its declared end
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** The first `code` found on an error or its causes (undici wraps system errors). */
export function errorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (typeof e !== 'object') return undefined;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True for network failures worth another attempt. */
export function isRetryableError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && RETRYABLE_ERROR_CODES.has(code);
}

/**
 * True for answers worth another attempt: 429/502/503/504 from the gateway
 * itself. The same statuses with a chunkgate error body are the server's
 * verdict on the target and final. `body` may be a function, called only
 * for those statuses (a response chunk's body is never joined for this).
 */
export function isRetryableStatus(
  status: number,
  body: Buffer | (() => Buffer),
): boolean {
  if (!RETRYABLE_STATUSES.has(status)) return false;
  return (
    parseErrorCode(typeof body === 'function' ? body() : body) === undefined
  );
}

function parseErrorCode(body: Buffer): string | undefined {
  if (body.length === 0 || body.length > 64 * 1024) return undefined;
  try {
    return asErrorBody(JSON.parse(body.toString('utf8')))?.error;
  } catch {
    return undefined; // not JSON: the gateway's own answer
  }
}

/**
 * Wait before retry number `retry` (1-based): exponential backoff with full
 * jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"), so
 * clients that failed together do not retry together. A `Retry-After` the
 * gateway sent is honoured as a lower bound. Never above `maxDelayMs`.
 */
export function backoffDelay(
  retry: number,
  options: RetryPolicyOptions,
  retryAfterMs?: number,
): number {
  const cap = options.maxDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS;
  const ceiling = Math.min(cap, options.baseMs * 2 ** (retry - 1));
  const jittered = Math.floor((options.random ?? Math.random)() * ceiling);
  return Math.min(cap, Math.max(jittered, retryAfterMs ?? 0));
}

/** `Retry-After` in milliseconds (delta-seconds or HTTP date), if present and sane. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  now = Date.now(),
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
