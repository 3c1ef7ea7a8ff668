import { type ErrorCode, ProtocolError } from '@app/protocol';

/**
 * A refusal that will pass: the exception filter adds `Retry-After` with
 * {@link retryAfterSeconds}, so that clients (and their retry policies)
 * know when to ask again.
 */
export class RetryLaterError extends ProtocolError {
  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(status, code, message);
    this.name = 'RetryLaterError';
  }
}
