import type { IncomingMessage, ServerResponse } from 'node:http';

/** The application's side of one exchange. */
export interface ExchangeIo {
  req: IncomingMessage;
  res: ServerResponse;
  /** The application waits for `100 Continue` before sending its body. */
  expectsContinue: boolean;
}

/** What the access log says about an exchange. */
export interface ExchangeStats {
  /**
   * The status the application got; `cut` if its response was cut off
   * after the head, `gone` if it went away first.
   */
  status: number | 'cut' | 'gone';
  bytesUp: number;
  bytesDown: number;
  chunksUp: number;
  chunksDown: number;
}

export function newStats(status: ExchangeStats['status'] = 0): ExchangeStats {
  return { status, bytesUp: 0, bytesDown: 0, chunksUp: 0, chunksDown: 0 };
}

/** The application closed its connection before its response was complete. */
export class ApplicationGoneError extends Error {
  readonly code = 'APPLICATION_GONE';
  constructor(cause?: unknown) {
    super('The application closed the connection', { cause });
    this.name = 'ApplicationGoneError';
  }
}
