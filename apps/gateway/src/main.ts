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
  const { faults } = config;
  // Said on the one start-up line, so nobody mistakes injected faults for bugs.
  const faulty =
    faults.rate > 0
      ? `; injecting faults into ${Number((faults.rate * 100).toPrecision(6))}% of calls (${faults.kinds.join(', ')}${faults.seed === undefined ? '' : `, seed ${faults.seed}`})`
      : '';
  Logger.log(
    `Listening on http://${host}:${port} (SigV4 ${config.region}/${config.service}${stage}, forwarding to ${config.upstreamOrigin}${config.upstreamBasePath}${faulty})`,
    'Gateway',
  );
}

bootstrap().catch((error: unknown) => {
  // Invalid configuration lands here: one readable message, non-zero exit.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
