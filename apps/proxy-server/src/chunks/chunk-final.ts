import {
  ErrorCode,
  Header,
  type IncomingHeaders,
  ProtocolError,
} from '@app/protocol';

/**
 * Reads `X-Chunk-Final`: absent means false; otherwise `true` or `false`
 * (any case). Anything else is a 400 rather than a silent "not final", which
 * would leave the request waiting for a chunk that never comes.
 */
export function readChunkFinal(headers: IncomingHeaders): boolean {
  const value = headers[Header.ChunkFinal];
  const raw = (Array.isArray(value) ? value[0] : value)?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new ProtocolError(
    400,
    ErrorCode.InvalidRequest,
    `X-Chunk-Final must be "true" or "false", got ${JSON.stringify(raw.slice(0, 40))}.`,
  );
}
