import { createHash } from 'node:crypto';
import {
  Inject,
  Injectable,
  Logger,
  type NestMiddleware,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, pairsFromRawHeaders, ProtocolError } from '@app/protocol';
import {
  EMPTY_PAYLOAD_SHA256,
  signedPayloadHash,
  type SigV4Request,
  verifySigV4,
} from '@app/sigv4';
import { CLOCK, type Clock } from '../common/clock.js';
import {
  expectBodySha256,
  provideBody,
  readBodyPieces,
} from '../common/read-body.js';
import { serverConfig } from '../config/server.config.js';
import { MAX_CONNECTION_JSON_BYTES } from '../connections/connection-json.js';

/** The 403 of a call whose signature does not verify. */
function signatureInvalid(detail: string): ProtocolError {
  return new ProtocolError(
    403,
    ErrorCode.SignatureInvalid,
    `SigV4 authentication failed: ${detail} This server verifies signatures itself (SERVER_AUTH=sigv4): sign every call with credentials it knows (SERVER_AUTH_CREDENTIALS), for its AWS_REGION and SERVICE.`,
  );
}

/** Whether a request carries a body (Content-Length above 0, or chunked). */
function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return (
    req.headers['transfer-encoding'] !== undefined ||
    (length !== undefined && length.trim() !== '0')
  );
}

/**
 * SERVER_AUTH=sigv4: every call must carry a valid SigV4 signature, checked
 * by the gateway's own verifier (`@app/sigv4`) before any route runs and
 * before any body is parsed. For deployments where proxy-server can be
 * reached without API Gateway in front (which otherwise does this check).
 *
 * The signature covers the body's SHA-256, so the body must be known, yet
 * each body is read only once:
 *
 * ```
 * no body                        ──▶ verified now, with the empty body's hash
 * signed X-Amz-Content-Sha256    ──▶ verified now, with that hash; the route's
 *   (proxy-client sends it)           read hashes the body as it streams in and
 *                                     refuses it (403) unless it matches
 * body, no signed hash           ──▶ read here (bounded), hashed, verified; the
 *                                     route's read takes the bytes read here
 * ```
 *
 * So a caller without the secret is refused before a byte of its body is
 * read whenever it vouches for a hash, and the bytes a route acts on are
 * always the signed ones. Refusals are 403 `signature_invalid` with AWS's
 * reason in the message.
 */
@Injectable()
export class SigV4AuthMiddleware implements NestMiddleware {
  private readonly logger = new Logger('SigV4Auth');

  constructor(
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async use(req: Request, _res: Response, next: NextFunction): Promise<void> {
    const headers = pairsFromRawHeaders(req.rawHeaders);
    const line = {
      method: req.method,
      // Node's raw request target, as signed (the router may rewrite req.url).
      target: req.originalUrl,
      headers,
      now: new Date(this.clock.now()),
    };
    if (!hasBody(req)) {
      this.verify({ ...line, payloadHash: EMPTY_PAYLOAD_SHA256 });
      next();
      return;
    }
    const claimed = signedPayloadHash(headers);
    if (claimed !== undefined) {
      this.verify({ ...line, payloadHash: claimed });
      expectBodySha256(req, claimed, () =>
        signatureInvalid(
          'the body differs from the signed X-Amz-Content-Sha256 (it was changed after signing).',
        ),
      );
      next();
      return;
    }
    // The largest body any route reads: an exchange's head and chunk.
    const limit = MAX_CONNECTION_JSON_BYTES + this.config.maxChunkSize;
    const body = await readBodyPieces(
      req,
      limit,
      (bytes) =>
        new ProtocolError(
          413,
          ErrorCode.BodyTooLarge,
          `The call's body is ${bytes} bytes; no call to this server takes more than ${limit}.`,
        ),
    );
    const hash = createHash('sha256');
    for (const part of body.parts) hash.update(part);
    this.verify({ ...line, payloadHash: hash.digest('hex') });
    provideBody(req, body);
    next();
  }

  /** Throws the 403 unless the signature verifies. */
  private verify(request: SigV4Request): void {
    const { auth } = this.config;
    if (auth.kind !== 'sigv4') return;
    const verdict = verifySigV4(request, auth);
    if (verdict.ok) return;
    this.logger.debug(
      `${request.method} ${request.target} refused: ${verdict.reason}`,
    );
    const { message, errorType } = verdict.refusal;
    throw signatureInvalid(
      `${message}${message.endsWith('.') ? '' : '.'}${errorType ? ` (${errorType})` : ''}`,
    );
  }
}
