import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type LoggerService, type LogLevel } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule, type AppModuleOptions } from './app.module.js';
import { serverConfig } from './config/server.config.js';

/**
 * How long an idle keep-alive connection from the gateway stays open. Above
 * every caller's own idle timeout (undici 4 s by default, the local gateway
 * 30 s, AWS load balancers 60 s), so that the caller always closes first and
 * never sends a call into a socket this server is just closing (which would
 * surface as a reset). Node's default is 5 s.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Must exceed the keep-alive timeout, or Node cuts idle sockets at this bound instead. */
export const HEADERS_TIMEOUT_MS = 66_000;

export interface ServerAppOptions extends AppModuleOptions {
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * Creates proxy-server, configured but not listening: main.ts listens on the
 * configured address, specs on port 0. Nest's body parser is off: the
 * connection route parses its own JSON and the chunk route reads raw bytes
 * of any Content-Type.
 */
export async function createServerApp(
  options: ServerAppOptions = {},
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.register(options),
    {
      bodyParser: false,
      abortOnError: false,
      forceCloseConnections: true,
      logger: options.logger,
    },
  );
  app.disable('x-powered-by');
  app.enableShutdownHooks();
  const server = app.getHttpServer() as Server;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  return app;
}

/** The server's settings, as validated at start-up. */
export function serverSettings(
  app: NestExpressApplication,
): ConfigType<typeof serverConfig> {
  return app.get<ConfigType<typeof serverConfig>>(serverConfig.KEY);
}

/** Listens on `port`/`host` and returns the URL with the port actually bound. */
export async function listen(
  app: NestExpressApplication,
  port: number,
  host: string,
): Promise<string> {
  await app.listen(port, host);
  const address = app.getHttpServer().address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${host}]` : host;
  return `http://${shown}:${address.port}`;
}
