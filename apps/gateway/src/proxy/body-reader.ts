import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { MiB, type BufferPool } from '@app/protocol';

/**
 * How many bytes past the limit the gateway reads and throws away so that
 * the client, still busy sending, gets its 413 instead of a reset: closing
 * a socket with unread input makes the kernel send RST, which can destroy
 * the answer before the client reads it. Past this the connection is closed
 * anyway (an attacker must not keep the gateway reading forever).
 */
export const DISCARD_LIMIT_BYTES = 64 * MiB;

export type BodyRead =
  /**
   * The whole body, at most the limit, and its SHA-256 in hex (computed as
   * it arrived: the one hash SigV4 verification needs). `release` gives its
   * buffer back to the pool once the body was forwarded.
   */
  | { kind: 'complete'; body: Buffer; sha256: string; release: () => void }
  /**
   * Over the limit. `drained` tells whether the rest of the body was read
   * (the connection can be reused) or not (answer, then close it).
   */
  | { kind: 'too_large'; receivedBytes: number; drained: boolean }
  /** The client went away before sending everything. */
  | { kind: 'aborted'; receivedBytes: number };

/**
 * Smallest body read into a pooled buffer. Below it, joining the pieces
 * costs less than tying up a buffer of the gateway's whole limit (a JSON
 * head of a few hundred bytes must not take a 2 MiB buffer).
 */
export const POOLED_MIN_BYTES = 64 * 1024;

/** Requests whose client was not sent `100 Continue`, so no body will come. */
const withheld = new WeakSet<IncomingMessage>();

/** Marks a request whose `Expect: 100-continue` was declined: its body never comes. */
export function markBodyWithheld(req: IncomingMessage): void {
  withheld.add(req);
}

/** The Content-Length the client declared, if any and well-formed. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined || !/^\s*\d+\s*$/.test(raw)) return undefined;
  return Number(raw);
}

/**
 * Reads a request body of at most `maxBytes`. A Content-Length over the
 * limit is refused up front (nothing buffered); a chunked body is refused
 * as soon as it crosses the limit. Either way the remaining bytes are read
 * and dropped, up to {@link DISCARD_LIMIT_BYTES}, so the answer reaches the
 * client. Memory held is never more than `maxBytes`.
 *
 * The body is hashed (node:crypto) piece by piece as it arrives. A body
 * whose Content-Length is at least {@link POOLED_MIN_BYTES} and fits a
 * buffer of `pool` is copied into one as it arrives (reused memory, no
 * garbage, one write to the upstream); any other is joined once at its end.
 */
export function readBoundedBody(
  req: IncomingMessage,
  maxBytes: number,
  discardLimitBytes = DISCARD_LIMIT_BYTES,
  pool?: BufferPool,
): Promise<BodyRead> {
  const declared = declaredLength(req);
  if (
    withheld.has(req) ||
    (declared !== undefined && declared > maxBytes + discardLimitBytes)
  ) {
    return Promise.resolve({
      kind: 'too_large',
      receivedBytes: 0,
      drained: false,
    });
  }
  return new Promise((resolve) => {
    let tooLarge = declared !== undefined && declared > maxBytes;
    let received = 0;
    let chunks: Buffer[] = [];
    const hash = createHash('sha256');
    // Lent only for a large body that will fit it (a small one is joined
    // cheaply); given back unless the body is handed out.
    let lease =
      pool &&
      !tooLarge &&
      declared !== undefined &&
      declared >= POOLED_MIN_BYTES &&
      declared <= pool.size
        ? pool.take()
        : undefined;
    let done = false;

    const finish = (result: BodyRead): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      chunks = [];
      if (result.kind !== 'complete') lease?.release();
      lease = undefined;
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (!tooLarge && received > maxBytes) {
        tooLarge = true;
        chunks = [];
      }
      if (!tooLarge) {
        hash.update(chunk);
        if (lease && received > lease.buffer.length) {
          // More than its Content-Length (Node's parser never lets that
          // happen): carry on as pieces.
          chunks.push(
            Buffer.from(lease.buffer.subarray(0, received - chunk.length)),
          );
          lease.release();
          lease = undefined;
        }
        if (lease) chunk.copy(lease.buffer, received - chunk.length);
        else chunks.push(chunk);
      } else if (received > maxBytes + discardLimitBytes) {
        req.pause();
        finish({ kind: 'too_large', receivedBytes: received, drained: false });
      }
    };
    const onEnd = (): void => {
      if (tooLarge) {
        finish({ kind: 'too_large', receivedBytes: received, drained: true });
        return;
      }
      const sha256 = hash.digest('hex');
      if (lease) {
        const { buffer, release } = lease;
        finish({
          kind: 'complete',
          body: buffer.subarray(0, received),
          sha256,
          release,
        });
      } else {
        finish({
          kind: 'complete',
          body: Buffer.concat(chunks, received),
          sha256,
          release: () => {},
        });
      }
    };
    const onGone = (): void => {
      finish({ kind: 'aborted', receivedBytes: received });
    };

    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}
