import {
  Catch,
  HttpException,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import type { Response } from 'express';
import { GatewayResponses } from './gateway-responses.js';
import { sendGatewayResponse } from './send-gateway-response.js';

/**
 * The one exception filter: errors answer in API Gateway's `{"message"}`
 * shape; anything unexpected is a 500 and logged as the bug it is. Never
 * writes after the head was sent (the response is cut off instead).
 */
@Catch()
export class GatewayExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Gateway');

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (!(exception instanceof HttpException)) {
      this.logger.error(
        `Unexpected error: ${exception instanceof Error ? (exception.stack ?? exception.message) : String(exception)}`,
      );
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendGatewayResponse(
      res,
      exception instanceof HttpException
        ? { status: exception.getStatus(), message: exception.message }
        : GatewayResponses.internalError(),
    );
  }
}
