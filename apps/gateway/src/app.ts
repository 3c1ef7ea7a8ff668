import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { enabledLogLevels } from '@app/protocol';
import { AppModule } from './app.module.js';
import { GatewayExceptionFilter } from './common/gateway-exception.filter.js';
import { gatewayConfig, type GatewayConfig } from './config/gateway.config.js';
import { declaredLength, markBodyWithheld } from './proxy/body-reader.js';
import { ProxyService } from './proxy/proxy.service.js';

/** The gateway's own endpoints live under this prefix; every other path is proxied. */
const GATEWAY_ENDPOINTS_PREFIX = '/_gateway/';

/** Every answer carries a request id, as every API Gateway answer does. */
function assignRequestId(
  _req: Request,
  res: Response,
  next: NextFunction,
): void {
  res.setHeader('x-amzn-RequestId', randomUUID());
  next();
}

/**
 * Answers `Expect: 100-continue` itself: a body declared over the limit is
 * never asked for (the client gets its 413 without uploading anything);
 * any other request is told to continue and handled as usual.
 */
function handleExpectContinue(server: Server, maxBodyBytes: number): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const declared = declaredLength(req);
    if (declared !== undefined && declared > maxBodyBytes)
      markBodyWithheld(req);
    else res.writeContinue();
    server.emit('request', req, res);
  });
}

/**
 * Creates the gateway application, configured but not listening: main.ts
 * listens on the configured address, tests on port 0. Nest's body parser is
 * off because the raw body is what SigV4 signs and what is forwarded.
 */
export async function createGatewayApp(
  options: { logger?: LoggerService | LogLevel[] | false } = {},
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    bodyParser: false,
    // Start-up errors (bad configuration) reach the caller instead of exiting the process.
    abortOnError: false,
    // On shutdown, cut calls still in flight (a long-poll lasts up to 25 s):
    // the stand-in holds no state worth draining, and tests stop it often.
    forceCloseConnections: true,
    logger: options.logger ?? enabledLogLevels(process.env.LOG_LEVEL),
  });
  app.disable('x-powered-by');
  app.use(assignRequestId);
  const proxy = app.get(ProxyService);
  app.use((req: Request, res: Response, next: NextFunction): void => {
    if ((req.url ?? '/').startsWith(GATEWAY_ENDPOINTS_PREFIX)) {
      next();
      return;
    }
    void proxy.handle(req, res);
  });
  app.useGlobalFilters(new GatewayExceptionFilter());
  const config = app.get<GatewayConfig>(gatewayConfig.KEY);
  handleExpectContinue(app.getHttpServer() as Server, config.maxBodyBytes);
  return app;
}
