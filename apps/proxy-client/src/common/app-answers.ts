import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '@app/protocol';

/**
 * How long a connection whose request body was not read (the proxy answered
 * early, e.g. 413) may keep sending it before it is cut: the rest is read and
 * discarded so the application gets the answer instead of a reset.
 */
const LINGER_MS = 10_000;

/**
 * Answers the application with a chunkgate error: the status and a JSON
 * `{error, message}` body, one clear line. If the head was already sent the
 * response can no longer say anything truthful, so it is cut off instead
 * ({@link cutOff}): a truncated body must never look complete.
 */
export function sendErrorAnswer(
  req: IncomingMessage,
  res: ServerResponse,
  error: ProtocolError,
): void {
  if (res.headersSent || res.destroyed) {
    cutOff(res);
    return;
  }
  const body = JSON.stringify(error.toBody());
  res.writeHead(error.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  discardUnreadBody(req);
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
 * When the proxy answers before reading the whole body, Node neither reads
 * nor closes: a paused request would hold the connection forever and closing
 * at once would reset it before the application read the answer. So the
 * rest is read and thrown away, for at most {@link LINGER_MS}.
 */
function discardUnreadBody(req: IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  const timer = setTimeout(() => req.socket?.destroy(), LINGER_MS);
  timer.unref();
  const done = () => clearTimeout(timer);
  req.once('end', done);
  req.once('close', done);
  req.resume();
}
