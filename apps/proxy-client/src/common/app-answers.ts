import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '@app/protocol';

/**
 * How long an answer sent before the request body was read waits for the
 * rest of that body to be read and thrown away (see {@link sendErrorAnswer}).
 */
const LINGER_MS = 10_000;

/** Responses on which `100 Continue` was sent. */
const continued = new WeakSet<ServerResponse>();

/** Tells an application that sent `Expect: 100-continue` to send its body. */
export function sendContinue(res: ServerResponse): void {
  continued.add(res);
  res.writeContinue();
}

/**
 * The application sent `Expect: 100-continue` and was not told to continue:
 * its body is not coming (curl stops when a final answer arrives first).
 */
function awaitingContinue(req: IncomingMessage, res: ServerResponse): boolean {
  return /100-continue/i.test(req.headers.expect ?? '') && !continued.has(res);
}

/**
 * Answers the application with a chunkgate error: the status and a JSON
 * `{error, message}` body, one clear line. If the head was already sent the
 * response can no longer say anything truthful, so it is cut off instead
 * ({@link cutOff}): a truncated body must never look complete.
 *
 * An answer can come before the application finished sending its body (a
 * 413 while a chunked upload streams in). Closing a socket with unread data
 * makes the kernel reset it, and the application may lose the answer. So
 * the rest of the body is read and thrown away (for at most LINGER_MS):
 * after the answer on a keep-alive connection, before it on one that closes
 * after the answer.
 */
export async function sendErrorAnswer(
  req: IncomingMessage,
  res: ServerResponse,
  error: ProtocolError,
): Promise<void> {
  if (res.headersSent || res.destroyed) {
    cutOff(res);
    return;
  }
  const unread =
    !req.complete &&
    !req.destroyed &&
    req.method !== 'CONNECT' &&
    !awaitingContinue(req, res);
  if (unread && !res.shouldKeepAlive) await discard(req);
  if (res.destroyed) return;
  const body = JSON.stringify(error.toBody());
  res.writeHead(error.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  if (unread && res.shouldKeepAlive) void discard(req);
}

/**
 * Ends an answer that cannot be completed: destroys the socket, so the
 * application sees a broken response (reset, short Content-Length or a
 * missing last chunk) rather than one that looks whole.
 */
export function cutOff(res: ServerResponse): void {
  res.destroy();
}

/**
 * Reads the rest of the request body and throws it away. Resolves when it
 * ended, or after LINGER_MS, when the socket is destroyed: an application
 * that keeps sending is not waited for forever.
 *
 * It drains through a `'data'` listener rather than `resume()` alone: while
 * the chunk reader's iterator still holds a `'readable'` listener (it lets
 * go asynchronously), `resume()` has no effect, but Node switches the stream
 * to flowing as soon as the last `'readable'` listener goes if a `'data'`
 * listener is there.
 */
function discard(req: IncomingMessage): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      finish();
      req.socket?.destroy();
    }, LINGER_MS);
    timer.unref();
    const drop = () => undefined;
    const finish = () => {
      clearTimeout(timer);
      req.off('data', drop);
      req.off('end', finish);
      req.off('close', finish);
      resolve();
    };
    req.once('end', finish);
    req.once('close', finish);
    req.on('data', drop);
    req.resume();
  });
}
