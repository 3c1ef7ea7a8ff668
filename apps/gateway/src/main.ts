import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { createGatewayApp } from './app.js';
import { gatewayConfig, type GatewayConfig } from './config/gateway.config.js';

async function bootstrap(): Promise<void> {
  // Validate the environment before Nest starts, so a bad value stops the
  // gateway with just the message naming it (not a Nest stack trace).
  gatewayConfig();
  const app = await createGatewayApp();
  app.enableShutdownHooks();
  const config = app.get<GatewayConfig>(gatewayConfig.KEY);
  await app.listen(config.listenPort, config.listenHost);
  const { port } = app.getHttpServer().address() as AddressInfo;
  const host = config.listenHost.includes(':')
    ? `[${config.listenHost}]`
    : config.listenHost;
  const stage = config.stage ? `, stage /${config.stage}` : '';
  Logger.log(
    `Listening on http://${host}:${port} (SigV4 ${config.region}/${config.service}${stage}, forwarding to ${config.upstreamOrigin}${config.upstreamBasePath})`,
    'Gateway',
  );
}

bootstrap().catch((error: unknown) => {
  // Invalid configuration lands here: one readable message, non-zero exit.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
