import type {
  INestMicroservice,
  LoggerService,
  LogLevel,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AsyncMicroserviceOptions } from '@nestjs/microservices';
import { AppModule } from './app.module.js';
import {
  clientConfig,
  loadClientSettings,
  type ClientSettings,
} from './config/client.config.js';
import { ProxyListener } from './listener/proxy-listener.js';

export interface ClientApp {
  app: INestMicroservice;
  /** The transport: its `address()` tells where it listens once `app.listen()` resolved. */
  listener: ProxyListener;
}

/**
 * Creates proxy-client: a Nest microservice whose transport is the HTTP
 * forward-proxy listener.
 *
 * The listener needs the validated `client` config, so the microservice is
 * created with an async options factory: Nest first builds the module graph
 * (loading and validating the config once) and then asks the factory for
 * the transport with the config injected.
 *
 * The environment is checked once before Nest starts, only so that a bad
 * value stops the app with one message naming each bad variable rather than
 * that message inside Nest's stack trace of a failed provider.
 */
export async function createClientApp(
  options: { logger?: LoggerService | LogLevel[] | false } = {},
): Promise<ClientApp> {
  loadClientSettings(process.env);
  let listener: ProxyListener | undefined;
  const app = await NestFactory.createMicroservice<AsyncMicroserviceOptions>(
    AppModule,
    {
      logger: options.logger,
      abortOnError: false,
      inject: [clientConfig.KEY],
      useFactory: (settings: ClientSettings) => {
        listener = new ProxyListener({
          host: settings.listenHost,
          port: settings.listenPort,
          proxyAuth: settings.proxyAuth,
        });
        return { strategy: listener };
      },
    },
  );
  if (!listener) {
    throw new Error('Nest did not create the proxy listener transport');
  }
  return { app, listener };
}
