import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { Pool } from 'undici';
import {
  BufferPool,
  MAX_CHUNK_SIZE,
  MiB,
  type PooledBuffer,
} from '@app/protocol';
import { countGatewayCall } from './call-tally.js';
import { NodeSha256 } from './node-sha256.js';
import {
  backoffDelay,
  errorCode,
  isRetryableError,
  isRetryableStatus,
  parseRetryAfter,
  type RetryPolicyOptions,
} from './retry-policy.js';

export interface GatewayClientOptions extends RetryPolicyOptions {
  /** API_GATEWAY_URL: origin plus optional stage path; every call goes under it. */
  gatewayUrl: string;
  region: string;
  service: string;
  /** Bound of one attempt (GATEWAY_CALL_TIMEOUT_MS). */
  callTimeoutMs: number;
  /** Most keep-alive connections to the gateway at once; calls beyond wait for one. */
  connections: number;
  /**
   * Size of the pooled buffers large answers are read into (CHUNK_SIZE: the
   * largest response chunk asked for); without it every answer stays as
   * the pieces it arrived in.
   */
  answerBufferBytes?: number;
}

/** Smallest answer read into a pooled buffer: smaller ones (JSON, short chunks) stay as they arrived. */
const POOLED_ANSWER_MIN_BYTES = 64 * 1024;
/** Answer buffers kept for reuse: two downloads' worth at the default window of 8. */
const POOLED_ANSWERS = 16;

/** Static credentials or a provider of them, as `SignatureV4` takes them. */
export type CredentialsSource = ConstructorParameters<
  typeof SignatureV4
>[0]['credentials'];

export type GatewayMethod = 'GET' | 'POST' | 'DELETE';

export interface GatewayCall {
  method: GatewayMethod;
  /** Path relative to API_GATEWAY_URL, e.g. `/proxy/chunk`. */
  path: string;
  /** Extra headers (lower-case names); signed with the rest. */
  headers?: Record<string, string>;
  body?: Buffer;
  /** Aborts the call and its retries (the application went away, the exchange timed out). */
  signal?: AbortSignal;
}

/** The final answer of a call, after any retries. */
export interface GatewayAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as the pieces it arrived in, never copied: a response chunk is passed on as these. */
  parts: readonly Buffer[];
  /** Bytes in `parts`. */
  size: number;
  /** The body in one buffer, joined on first use (JSON, error messages). */
  readonly body: Buffer;
  /** 1 if the first attempt answered; more if retries were needed. */
  attempts: number;
  /**
   * Gives a pooled body buffer back (a large answer is read into one): call
   * it once nothing reads `parts` or `body` any more, e.g. once the bytes
   * were written out. Idempotent; an answer never released only costs the
   * pool a reuse.
   */
  release(): void;
}

/** An answer whose body is joined only if someone asks for it whole. */
class Answer implements GatewayAnswer {
  attempts = 1;
  private joined: Buffer | undefined;

  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    readonly parts: readonly Buffer[],
    readonly size: number,
    readonly release: () => void = () => {},
  ) {}

  get body(): Buffer {
    this.joined ??= joinParts(this.parts, this.size);
    return this.joined;
  }
}

/** The pieces in one buffer: the piece itself when there is one, one copy otherwise. */
function joinParts(parts: readonly Buffer[], size: number): Buffer {
  if (parts.length === 1) return parts[0];
  return Buffer.concat(parts as Buffer[], size);
}

/** The gateway could not be reached, or the connection kept breaking, through every attempt. */
export class GatewayUnreachableError extends Error {
  readonly code = 'GATEWAY_UNREACHABLE';
  constructor(
    readonly url: string,
    readonly attempts: number,
    cause: unknown,
  ) {
    super(
      `${describeCause(cause)} calling ${url} (${attempts} attempt${attempts === 1 ? '' : 's'})`,
      { cause },
    );
    this.name = 'GatewayUnreachableError';
  }
}

/** No AWS credentials could be found to sign with. */
export class GatewayCredentialsError extends Error {
  readonly code = 'GATEWAY_CREDENTIALS';
  constructor(cause: unknown) {
    super(
      `Could not load AWS credentials to sign with (${cause instanceof Error ? cause.message : String(cause)})`,
      { cause },
    );
    this.name = 'GatewayCredentialsError';
  }
}

/** The gateway answered something larger than any protocol answer can be. */
export class GatewayAnswerTooLargeError extends Error {
  readonly code = 'GATEWAY_ANSWER_TOO_LARGE';
}

/** Largest answer read: one response chunk plus generous room for JSON. */
const MAX_ANSWER_BYTES = MAX_CHUNK_SIZE + MiB;

/** The header SigV4 takes the payload hash from when present (smithy's `SHA256_HEADER`). */
const CONTENT_SHA256 = 'x-amz-content-sha256';
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * The call with its payload hash in `x-amz-content-sha256`, computed once
 * with Node's native SHA-256. smithy's signer uses a present header as the
 * payload hash instead of hashing the body itself (its `getPayloadHash`),
 * so a chunk is hashed once for all its attempts, not once per attempt in
 * JavaScript. The header is signed, and a gateway checks it against the
 * body it receives.
 */
function withPayloadHash(call: GatewayCall): GatewayCall {
  const hash =
    call.body && call.body.length > 0
      ? createHash('sha256').update(call.body).digest('hex')
      : EMPTY_SHA256;
  return { ...call, headers: { ...call.headers, [CONTENT_SHA256]: hash } };
}

function describeCause(cause: unknown): string {
  const code = errorCode(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/**
 * The one way proxy-client talks to the gateway: SigV4-signs each call
 * and sends it over a keep-alive pool, retrying transient failures.
 *
 * What is signed is exactly what is sent: method, the full path including
 * the stage (`/prod/proxy/chunk`), the query, the `host` header and a hash
 * of the body bytes. Each attempt is signed anew, so a retry after a long
 * backoff never carries a stale `X-Amz-Date`.
 *
 * Credentials come from the provider given (in the app: the AWS SDK's
 * `defaultProvider()`, which caches them and refreshes them five minutes
 * before they expire, so nothing here needs to memoize).
 */
export class GatewayClient {
  private readonly logger = new Logger('GatewayClient');
  private readonly base: URL;
  private readonly basePath: string;
  private readonly pool: Pool;
  private readonly signer: SignatureV4;
  private readonly answers: BufferPool | undefined;

  constructor(
    private readonly options: GatewayClientOptions,
    credentials: CredentialsSource,
  ) {
    this.base = new URL(options.gatewayUrl);
    this.basePath = this.base.pathname.replace(/\/+$/, '');
    this.pool = new Pool(this.base.origin, {
      connections: options.connections,
      keepAliveTimeout: 30_000,
      headersTimeout: options.callTimeoutMs,
      bodyTimeout: options.callTimeoutMs,
    });
    this.answers = options.answerBufferBytes
      ? new BufferPool(options.answerBufferBytes, POOLED_ANSWERS)
      : undefined;
    this.signer = new SignatureV4({
      credentials,
      region: options.region,
      service: options.service,
      sha256: NodeSha256,
    });
  }

  /** The full URL of a call, for messages. */
  urlOf(path: string): string {
    return `${this.base.origin}${this.basePath}${path}`;
  }

  /**
   * Sends a call, retrying network failures and 429/502/503/504 from the
   * gateway up to `maxRetries` times. Resolves with the final answer whatever
   * its status; rejects with {@link GatewayUnreachableError} when no attempt
   * got an answer, {@link GatewayCredentialsError} when there is nothing to
   * sign with, or the signal's reason when aborted.
   */
  async call(unhashed: GatewayCall): Promise<GatewayAnswer> {
    const call = withPayloadHash(unhashed);
    const attempts = this.options.maxRetries + 1;
    for (let attempt = 1; ; attempt++) {
      call.signal?.throwIfAborted();
      const started = Date.now();
      let retryAfter: number | undefined;
      try {
        const answer = await this.attempt(call);
        this.logger.debug(
          `${call.method} ${this.basePath}${call.path} ${answer.status} ${Date.now() - started}ms attempt ${attempt}/${attempts}`,
        );
        // The body only matters (and is only joined) for a retryable status.
        if (
          attempt === attempts ||
          !isRetryableStatus(answer.status, () => answer.body)
        ) {
          answer.attempts = attempt;
          return answer;
        }
        retryAfter = parseRetryAfter(answer.headers['retry-after']);
        answer.release(); // dropped for a new attempt
      } catch (error) {
        if (call.signal?.aborted) throw call.signal.reason;
        this.logger.debug(
          `${call.method} ${this.basePath}${call.path} failed (${errorCode(error) ?? (error as Error).message}) ${Date.now() - started}ms attempt ${attempt}/${attempts}`,
        );
        if (!isRetryableError(error)) {
          if (error instanceof GatewayCredentialsError) throw error;
          if (error instanceof GatewayAnswerTooLargeError) throw error;
          throw new GatewayUnreachableError(
            this.urlOf(call.path),
            attempt,
            error,
          );
        }
        if (attempt === attempts) {
          throw new GatewayUnreachableError(
            this.urlOf(call.path),
            attempt,
            error,
          );
        }
      }
      await sleep(backoffDelay(attempt, this.options, retryAfter), undefined, {
        signal: call.signal,
      }).catch(() => {
        throw call.signal?.reason;
      });
    }
  }

  /** Closes the pool once the calls in flight are done. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /** One signed attempt; the answer body is read whole (it is at most one chunk). */
  private async attempt(call: GatewayCall): Promise<Answer> {
    const signed = await this.sign(call);
    countGatewayCall();
    const res = await this.pool.request({
      method: call.method,
      path: signed.path,
      headers: signed.headers,
      body: call.body,
      signal: call.signal,
    });
    const lease = this.lendFor(res.headers['content-length']);
    const parts: Buffer[] = [];
    let size = 0;
    try {
      for await (const part of res.body) {
        const buf = part as Buffer;
        size += buf.length;
        if (size > MAX_ANSWER_BYTES) {
          res.body.destroy();
          throw new GatewayAnswerTooLargeError(
            `The answer to ${call.method} ${this.urlOf(call.path)} is larger than ${MAX_ANSWER_BYTES} bytes: API_GATEWAY_URL does not seem to lead to proxy-server`,
          );
        }
        if (!lease) {
          parts.push(buf);
        } else if (size <= lease.buffer.length) {
          buf.copy(lease.buffer, size - buf.length);
        } else {
          // Longer than its Content-Length: undici does not let that happen.
          res.body.destroy();
          throw new Error("The answer's body overran its Content-Length");
        }
      }
    } catch (error) {
      lease?.release();
      throw error;
    }
    return new Answer(
      res.statusCode,
      res.headers as IncomingHttpHeaders,
      lease ? [lease.buffer.subarray(0, size)] : parts,
      size,
      lease?.release,
    );
  }

  /**
   * A pooled buffer for an answer whose Content-Length is large and fits
   * one: the pieces from the socket are copied into it as they arrive and
   * die young, instead of living on (for the whole prefetch window) until
   * a costly full garbage collection.
   */
  private lendFor(
    contentLength: string | string[] | undefined,
  ): PooledBuffer | undefined {
    if (!this.answers || typeof contentLength !== 'string') return undefined;
    const length = Number(contentLength);
    if (
      !Number.isInteger(length) ||
      length < POOLED_ANSWER_MIN_BYTES ||
      length > this.answers.size
    )
      return undefined;
    return this.answers.take();
  }

  /** Signs the request exactly as it will be sent. */
  async sign(
    call: GatewayCall,
    signingDate?: Date,
  ): Promise<{ path: string; headers: Record<string, string> }> {
    const request = new HttpRequest({
      method: call.method,
      protocol: this.base.protocol,
      hostname: this.base.hostname,
      port: this.base.port ? Number(this.base.port) : undefined,
      path: `${this.basePath}${call.path}`,
      headers: { ...call.headers, host: this.base.host },
      body: call.body,
    });
    let signed: HttpRequest;
    try {
      signed = (await this.signer.sign(request, {
        signingDate,
      })) as HttpRequest;
    } catch (error) {
      throw new GatewayCredentialsError(error);
    }
    return { path: signed.path, headers: signed.headers };
  }
}
