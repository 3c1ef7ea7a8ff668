import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { readBody } from '../common/read-body.js';
import {
  connectionJsonTooLarge,
  MAX_CONNECTION_JSON_BYTES,
  parseConnectionJson,
} from './connection-json.js';

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
      connectionJsonTooLarge,
    );
    req.body = parseConnectionJson(raw);
    next();
  }
}
