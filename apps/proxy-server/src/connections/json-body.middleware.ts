import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, MiB, ProtocolError } from '@app/protocol';
import { readBody } from '../common/read-body.js';

/** The connection JSON carries headers, not bodies: 1 MiB is generous. */
export const MAX_CONNECTION_JSON_BYTES = MiB;

/**
 * Parses the JSON body of `POST /proxy/connection` into `req.body`, whatever
 * its Content-Type (gateways are known to change it). Malformed JSON or
 * anything but an object is a 400 that says so; more than
 * {@link MAX_CONNECTION_JSON_BYTES} is a 413. Nest's own body parser is off
 * so that `POST /proxy/chunk` gets its bytes untouched.
 */
@Injectable()
export class JsonBodyMiddleware implements NestMiddleware {
  async use(req: Request, _res: Response, next: NextFunction): Promise<void> {
    const raw = await readBody(
      req,
      MAX_CONNECTION_JSON_BYTES,
      (bytes) =>
        new ProtocolError(
          413,
          ErrorCode.BodyTooLarge,
          `The connection JSON is ${bytes} bytes; at most ${MAX_CONNECTION_JSON_BYTES} are accepted.`,
        ),
    );
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      throw new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        raw.length === 0
          ? 'The body is empty: send the connection as a JSON object.'
          : `The body is not valid JSON (${error instanceof Error ? error.message : String(error)}): send the connection as a JSON object.`,
      );
    }
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      Array.isArray(parsed)
    ) {
      throw new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        'The body must be a JSON object describing the connection.',
      );
    }
    req.body = parsed;
    next();
  }
}
