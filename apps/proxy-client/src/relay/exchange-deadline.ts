import { ErrorCode, ProtocolError } from '@app/protocol';

/**
 * The abort signal of one exchange, fired when the application goes away or
 * when the exchange makes no progress for `timeoutMs` (REQUEST_TIMEOUT_MS).
 *
 * Progress, not total time, is bounded: a 5 GiB upload that keeps moving
 * may take longer than any fixed bound, but an exchange that waits on a
 * silent target, a stuck gateway or an application that stopped reading
 * ends after `timeoutMs` with a 504 instead of hanging.
 */
export class ExchangeDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly timeoutMs: number) {
    this.progress();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Something moved: restart the clock. */
  progress(): void {
    if (this.controller.signal.aborted) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.expire(), this.timeoutMs);
    this.timer.unref();
  }

  /** Ends the exchange now with `reason` (the first reason wins). */
  abort(reason: Error): void {
    clearTimeout(this.timer);
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** What happens when the clock runs out; public so tests need no timers. */
  expire(): void {
    this.abort(
      new ProtocolError(
        504,
        ErrorCode.GatewayTimeout,
        `No progress for ${this.timeoutMs} ms (REQUEST_TIMEOUT_MS): the target, the gateway or proxy-server did not answer in time.`,
      ),
    );
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}

/** Resolves like `promise`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}
