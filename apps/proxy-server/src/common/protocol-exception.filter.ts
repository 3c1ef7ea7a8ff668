import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  Logger,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { type ErrorBody, ErrorCode, ProtocolError } from '@app/protocol';
import { RetryLaterError } from './retry-later.error.js';

/** Our error code for a Nest/Express HttpException of this status. */
function codeForStatus(status: number): ErrorCode {
  if (status === 413) return ErrorCode.BodyTooLarge;
  if (status >= 500) return ErrorCode.Internal;
  return ErrorCode.InvalidRequest;
}

/** The text of an HttpException, whether its response is a string or Nest's `{ message }` object. */
function httpExceptionMessage(exception: HttpException): string {
  const response = exception.getResponse();
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : exception.message;
}

/**
 * The one exception filter of proxy-server: every error leaves as the
 * protocol's JSON `{ error, message }`.
 *
 * - {@link ProtocolError}: its own status and code ({@link RetryLaterError}
 *   adds `Retry-After`).
 * - Nest's HttpException (unknown route, a parser error): its status with
 *   our code, so that a client never has to understand a second format.
 * - Anything else is a bug: 500 `internal_error`, the stack goes to the log,
 *   never to the client.
 *
 * When the headers already left (an error while a chunk was being written)
 * nothing more is written: the socket is destroyed so that the client sees a
 * broken answer rather than a complete-looking one.
 */
@Catch()
export class ProtocolExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('ProtocolExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<Response>();
    const req = http.getRequest<Request>();
    const { status, body } = this.describe(exception, req);

    if (res.headersSent) {
      this.logger.warn(
        `${req.method} ${req.path}: ${body.message} (after the answer had started; connection closed)`,
      );
      res.destroy();
      return;
    }
    if (res.destroyed) return;
    if (exception instanceof RetryLaterError) {
      res.setHeader('Retry-After', String(exception.retryAfterSeconds));
    }
    res.status(status).json(body);
  }

  private describe(
    exception: unknown,
    req: Request,
  ): { status: number; body: ErrorBody } {
    if (exception instanceof ProtocolError) {
      return { status: exception.status, body: exception.toBody() };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status === 404) {
        return {
          status,
          body: {
            error: ErrorCode.InvalidRequest,
            message: `No such endpoint: ${req.method} ${req.path}. proxy-server serves POST and DELETE /proxy/connection, POST /proxy/chunk, GET /proxy/response and POST /proxy/exchange.`,
          },
        };
      }
      if (status >= 500) this.logger.error(exception.stack ?? exception);
      return {
        status,
        body: {
          error: codeForStatus(status),
          message: httpExceptionMessage(exception),
        },
      };
    }
    this.logger.error(
      `${req.method} ${req.path} failed: ${exception instanceof Error ? (exception.stack ?? exception.message) : String(exception)}`,
    );
    return {
      status: 500,
      body: {
        error: ErrorCode.Internal,
        message:
          'proxy-server failed unexpectedly (a bug, not your input); the details are in its log. Try again or report it.',
      },
    };
  }
}
