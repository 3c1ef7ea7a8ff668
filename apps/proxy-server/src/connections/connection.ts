import type { ProtocolError } from '@app/protocol';
import { RequestBody } from '../chunks/request-body.js';
import { ResponseChunks } from '../responses/response-chunks.js';
import type { SpoolFile } from '../spool/spool-file.js';
import type { TargetRequest } from '../target/target-request.js';
import type { ReleaseSlot } from './connection-slots.js';

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
  /**
   * When the last response chunk was first served (clock milliseconds): the
   * connection is forgotten FINISHED_LINGER_MS later, without a DELETE.
   */
  finishedAt: number | undefined;
  /** What the connection was opened with, to tell a retry from a different request. */
  readonly fingerprint: string;
  private readonly abortController = new AbortController();
  private dispatched = false;
  /** Its MAX_CONNECTIONS slot, given back on release. */
  private slot: ReleaseSlot | undefined;

  constructor(
    readonly id: string,
    readonly target: TargetRequest,
    options: {
      bodySize: number | undefined;
      maxBodySize: number;
      /** Request body bytes held in memory before the rest is spooled. */
      memoryLimit: number;
      spool: () => SpoolFile;
      responseChunkSize: number;
      downloadWindow: number;
      now: number;
      /** The connection JSON, canonical: a retried exchange must match it. */
      fingerprint: string;
    },
  ) {
    this.lastActivity = options.now;
    this.fingerprint = options.fingerprint;
    this.request = new RequestBody({
      declaredSize: options.bodySize,
      maxBodySize: options.maxBodySize,
      memoryLimit: options.memoryLimit,
      spool: options.spool,
    });
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

  /** Holds a MAX_CONNECTIONS slot until the connection is released. */
  holdSlot(release: ReleaseSlot): void {
    this.slot = release;
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

  /**
   * The client got the last response chunk: the request body goes now (the
   * response keeps only its last window), the connection itself at the next
   * sweep after FINISHED_LINGER_MS. Its MAX_CONNECTIONS slot goes now too:
   * a lingering connection holds no target socket, no spool file and at most
   * one window of chunks, and counting it would let a steady stream of small
   * requests fill the limit with connections that are already done.
   */
  markFinished(now: number): void {
    if (this.finishedAt !== undefined) return;
    this.finishedAt = now;
    this.request.free();
    this.slot?.();
  }

  /** Aborts the target request, frees every buffer and ends every long-poll (404). */
  release(): void {
    if (this.isReleased) return;
    this.abortController.abort(new Error(`connection ${this.id} was released`));
    this.request.free();
    this.response.release();
    this.slot?.();
  }
}
