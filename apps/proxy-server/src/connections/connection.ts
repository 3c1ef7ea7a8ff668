import type { ProtocolError } from '@app/protocol';
import { RequestBody } from '../chunks/request-body.js';
import { ResponseChunks } from '../responses/response-chunks.js';
import type { TargetRequest } from '../target/target-request.js';

/**
 * Everything the server holds for one proxied exchange: what to send to the
 * target, the request body being assembled, the response being cut into
 * chunks, and the means to abort the target request.
 */
export class Connection {
  readonly request: RequestBody;
  readonly response: ResponseChunks;
  /** When a call last touched this connection (clock milliseconds). */
  lastActivity: number;
  private readonly abortController = new AbortController();
  private dispatched = false;

  constructor(
    readonly id: string,
    readonly target: TargetRequest,
    options: {
      bodySize: number | undefined;
      maxBodySize: number;
      responseChunkSize: number;
      downloadWindow: number;
      now: number;
    },
  ) {
    this.lastActivity = options.now;
    this.request = new RequestBody(options.bodySize, options.maxBodySize);
    this.response = new ResponseChunks(
      options.responseChunkSize,
      options.downloadWindow,
    );
  }

  /** Aborted when the connection is released: the target request stops. */
  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  get isReleased(): boolean {
    return this.abortController.signal.aborted;
  }

  /** Why this connection can no longer succeed (its body was refused). */
  get failure(): ProtocolError | undefined {
    return this.request.failed;
  }

  /**
   * True exactly once: for the caller that gets to send the request to the
   * target. Guards against a final chunk re-sent while the first is running.
   */
  claimDispatch(): boolean {
    if (this.dispatched || this.isReleased) return false;
    this.dispatched = true;
    return true;
  }

  /** Aborts the target request, frees every buffer and ends every long-poll (404). */
  release(): void {
    if (this.isReleased) return;
    this.abortController.abort(new Error(`connection ${this.id} was released`));
    this.request.free();
    this.response.release();
  }
}
