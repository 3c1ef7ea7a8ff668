import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ErrorCode, ProtocolError } from '@app/protocol';

/**
 * A body as the pieces it arrived in. Kept apart, they are stored and
 * written on without a copy; {@link joined} makes one buffer only where one
 * is needed (JSON).
 */
export interface BodyPieces {
  parts: Buffer[];
  size: number;
}

/** The pieces as one buffer (the piece itself when there is only one). */
export function joined(body: BodyPieces): Buffer {
  return body.parts.length === 1
    ? body.parts[0]
    : Buffer.concat(body.parts, body.size);
}

/** Bodies read before the route (by the SigV4 check), waiting for the route's read. */
const readAlready = new WeakMap<IncomingMessage, BodyPieces>();

/** Signed body hashes the route's read must confirm (SigV4 checked before the body was read). */
const expectedHashes = new WeakMap<
  IncomingMessage,
  { sha256: string; mismatch: () => ProtocolError }
>();

/**
 * Hands a body already read (by the SigV4 check, which had to hash it) to
 * the route's {@link readBodyPieces}, which then takes it instead of
 * reading the stream: every body is read once.
 */
export function provideBody(req: IncomingMessage, body: BodyPieces): void {
  readAlready.set(req, body);
}

/**
 * Makes the route's {@link readBodyPieces} hash the body as it reads it and
 * fail with `mismatch()` unless the SHA-256 (lower-case hex) is `sha256`:
 * for a signature verified against the signed X-Amz-Content-Sha256 before
 * the body arrived, so that the bytes the route uses are the signed ones.
 */
export function expectBodySha256(
  req: IncomingMessage,
  sha256: string,
  mismatch: () => ProtocolError,
): void {
  expectedHashes.set(req, { sha256, mismatch });
}

/** Reads a request body of at most `limit` bytes into one buffer; see {@link readBodyPieces}. */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  tooLarge: (bytes: number) => ProtocolError,
): Promise<Buffer> {
  return joined(await readBodyPieces(req, limit, tooLarge));
}

/**
 * Reads a request body of at most `limit` bytes into memory, as its pieces.
 *
 * A `Content-Length` over the limit is refused before a byte is read; a body
 * without one (chunked) is refused as soon as it grows past the limit. In
 * both cases the rest of the body is left to drain (Node discards it), so the
 * error answer still reaches the client and the keep-alive connection
 * survives. `tooLarge` builds the error, so each route names its own limit.
 *
 * A body the SigV4 check read already ({@link provideBody}) is taken from
 * there; one whose signed hash is expected ({@link expectBodySha256}) is
 * hashed on the way and refused when it differs.
 */
export function readBodyPieces(
  req: IncomingMessage,
  limit: number,
  tooLarge: (bytes: number) => ProtocolError,
): Promise<BodyPieces> {
  const provided = readAlready.get(req);
  if (provided) {
    readAlready.delete(req);
    return provided.size > limit
      ? Promise.reject(tooLarge(provided.size))
      : Promise.resolve(provided);
  }
  const expected = expectedHashes.get(req);
  const hash = expected ? createHash('sha256') : undefined;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(tooLarge(Number(declared)));
  }
  if (req.destroyed) {
    return Promise.reject(
      new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        'The connection closed before the request body arrived: send it again.',
      ),
    );
  }
  return new Promise<BodyPieces>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (data: Buffer) => {
      size += data.length;
      if (size > limit) {
        // Still flowing without a 'data' listener: the rest is discarded.
        finish();
        reject(tooLarge(size));
        return;
      }
      parts.push(data);
      hash?.update(data);
    };
    const onEnd = () => {
      finish();
      if (expected && hash?.digest('hex') !== expected.sha256) {
        reject(expected.mismatch());
        return;
      }
      resolve({ parts, size });
    };
    const onError = (error: Error) => {
      finish();
      reject(
        new ProtocolError(
          400,
          ErrorCode.InvalidRequest,
          `The request body could not be read (${error.message}): send it again.`,
          { cause: error },
        ),
      );
    };
    const onClose = () => {
      if (req.complete) return;
      onError(new Error('the connection closed before the body was complete'));
    };
    const finish = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
