import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import {
  ErrorCode,
  ProtocolError,
  stripHopByHop,
  type TargetHead,
} from '@app/protocol';

/**
 * Writes the target's status line and headers to the application.
 *
 * The headers go as one flat `[name, value, …]` list so repeated names stay
 * apart (two `Set-Cookie` stay two) and in order. Hop-by-hop headers are
 * dropped again (the server already did; this hop owns its own). A
 * `Content-Length` of the target is kept; without one Node chunks the body.
 * Node itself sends no body for HEAD, 204 and 304.
 */
export function writeTargetHead(res: ServerResponse, head: TargetHead): void {
  const flat = stripHopByHop(head.headers).flat();
  try {
    res.writeHead(head.status, head.reason, flat);
  } catch (error) {
    // Node refuses header values it could not put on the wire.
    throw new ProtocolError(
      502,
      ErrorCode.UpstreamUnavailable,
      `The target's response head cannot be passed on (${(error as Error).message}).`,
      { cause: error },
    );
  }
}

/** The target's Content-Length, if its head has exactly one valid one. */
export function contentLength(head: TargetHead): number | undefined {
  const values = head.headers.filter(
    ([name]) => name.toLowerCase() === 'content-length',
  );
  if (values.length !== 1 || !/^\d+$/.test(values[0][1].trim()))
    return undefined;
  return Number(values[0][1].trim());
}

/**
 * Writes one chunk of body, given as the pieces it arrived in, respecting
 * backpressure: when the application reads slower than the gateway
 * delivers, wait for `drain` before asking for the next chunk. The pieces
 * go out corked, in one system call, not one each. `flushed` is called
 * once the socket is done with every piece (written, or the connection
 * gone), which is when a pooled buffer may be reused: not when this
 * resolves, since a small write can still sit in the socket's buffer.
 * Rejects if the exchange is aborted meanwhile.
 */
export async function writeBody(
  res: ServerResponse,
  parts: readonly Buffer[],
  signal: AbortSignal,
  flushed: () => void = () => {},
): Promise<void> {
  let room = true;
  let pending = 1;
  const settle = () => {
    pending -= 1;
    if (pending === 0) flushed();
  };
  res.cork();
  try {
    for (const part of parts) {
      if (part.length === 0) continue;
      pending += 1;
      room = res.write(part, settle);
    }
  } finally {
    res.uncork();
    settle();
  }
  if (room) return;
  await once(res, 'drain', { signal });
}
