import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode, ProtocolError } from '@app/protocol';

/**
 * Largest request head (request line and headers) the listener reads: Node's
 * `maxHeaderSize`, set explicitly rather than inherited from a command-line
 * flag, and twice Node's 16 KiB default so that big cookies still pass.
 */
export const DEFAULT_MAX_HEADER_SIZE = 32 * 1024;

/**
 * Most header lines one request may carry. Node alone only drops the lines
 * past `maxHeadersCount` (2000 by default) silently; the listener tells
 * Node to keep one more than this and refuses a request that has it.
 */
export const DEFAULT_MAX_HEADER_COUNT = 200;

/** How long a socket answered for a head Node could not parse is drained before it is destroyed. */
const LINGER_MS = 5_000;

/** The header lines Node is asked to keep (`server.maxHeadersCount`): one more than allowed, to see the excess. */
export function headersToKeep(maxHeaderCount: number): number {
  return maxHeaderCount + 1;
}

/** A 431 when the request carries more header lines than allowed, else undefined. */
export function tooManyHeaders(
  req: Pick<IncomingMessage, 'rawHeaders'>,
  maxHeaderCount: number,
): ProtocolError | undefined {
  if (req.rawHeaders.length / 2 <= maxHeaderCount) return undefined;
  return new ProtocolError(
    431,
    ErrorCode.BadProxyRequest,
    `The request carries more than ${maxHeaderCount} header lines, the most this proxy accepts: send fewer headers.`,
  );
}

/** Status and message for an error Node reports on a request head it could not read. */
export function clientErrorAnswer(
  code: string | undefined,
  context: { maxHeaderSize: number; proxyUrl: string },
): ProtocolError {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new ProtocolError(
      431,
      ErrorCode.BadProxyRequest,
      `The request head (request line and headers) is larger than ${context.maxHeaderSize} bytes, the most this proxy accepts: send fewer or shorter headers.`,
    );
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new ProtocolError(
      408,
      ErrorCode.BadProxyRequest,
      'The request head did not arrive in time: send the whole request line and headers at once.',
    );
  }
  if (code === 'HPE_INVALID_EOF_STATE') {
    return new ProtocolError(
      400,
      ErrorCode.BadProxyRequest,
      'The request ended before it was complete: the connection was closed before the whole head, or all the body bytes its Content-Length or chunked encoding announced, arrived.',
    );
  }
  return new ProtocolError(
    400,
    ErrorCode.BadProxyRequest,
    `Malformed HTTP request (${code ?? 'unparsable'}): send an HTTP/1.1 proxy request such as curl -x ${context.proxyUrl} http://target/...`,
  );
}

/**
 * Writes `error` as a complete HTTP response straight onto a socket whose
 * parser failed (Node's `clientError`: there is no response object), then
 * ends it. What the application still sends is read and thrown away rather
 * than left unread, since closing a socket with unread bytes makes the
 * kernel reset it and the application could lose the answer; a socket the
 * application keeps open is destroyed after LINGER_MS.
 */
export function answerOnSocket(socket: Duplex, error: ProtocolError): void {
  const body = JSON.stringify(error.toBody());
  socket.end(
    `HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status]}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
