import {
  ErrorCode,
  Header,
  type IncomingHeaders,
  ProtocolError,
} from '@app/protocol';

/**
 * Reads `X-Head-Length`, the byte length of the connection JSON at the
 * start of a `POST /proxy/exchange` body: a decimal integer. Missing or
 * anything else is a 400; whether it fits the body is checked once the body
 * is read.
 */
export function readHeadLength(headers: IncomingHeaders): number {
  const value = headers[Header.HeadLength];
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (raw === undefined || raw === '') {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'Missing X-Head-Length header: send the byte length of the connection JSON that starts the body.',
    );
  }
  if (!/^\d{1,10}$/.test(raw)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      `X-Head-Length must be the byte length of the connection JSON, a whole number, got ${JSON.stringify(raw.slice(0, 40))}.`,
    );
  }
  return Number(raw);
}
