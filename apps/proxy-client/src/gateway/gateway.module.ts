import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { clientConfig, type ClientSettings } from '../config/client.config.js';
import { GatewayClient, type CredentialsSource } from './gateway-client.js';
import { ProxyServerApi } from './proxy-server-api.js';

/** Exchanges that may run every chunk call in flight at once before calls queue for a connection. */
const FULL_SPEED_EXCHANGES = 16;

/**
 * Size of the keep-alive pool to the gateway: each exchange keeps up to
 * UPLOAD_CONCURRENCY or DOWNLOAD_CONCURRENCY calls in flight (response
 * chunks long-poll, so a connection may be held for up to 20 s), and
 * FULL_SPEED_EXCHANGES of them get all they ask for; never fewer than 128.
 */
export function poolConnections(settings: ClientSettings): number {
  const perExchange = Math.max(
    settings.uploadConcurrency,
    settings.downloadConcurrency,
  );
  return Math.max(128, FULL_SPEED_EXCHANGES * perExchange);
}

/** Where the gateway client gets AWS credentials. Overridable in tests. */
export const AWS_CREDENTIALS = Symbol('AWS_CREDENTIALS');

/** Talks to proxy-server through API Gateway: signing, pooling, retries, the protocol's four calls. */
@Module({
  providers: [
    {
      provide: AWS_CREDENTIALS,
      // The SDK's default chain (environment, profiles, SSO, container and
      // instance roles). It memoizes and refreshes credentials five minutes
      // before they expire, so it is used as is.
      useFactory: (): CredentialsSource => defaultProvider(),
    },
    {
      provide: GatewayClient,
      inject: [clientConfig.KEY, AWS_CREDENTIALS],
      useFactory: (settings: ClientSettings, credentials: CredentialsSource) =>
        new GatewayClient(
          {
            gatewayUrl: settings.gatewayUrl,
            region: settings.region,
            service: settings.service,
            callTimeoutMs: settings.gatewayCallTimeoutMs,
            connections: poolConnections(settings),
            // Response chunks are at most CHUNK_SIZE (response_chunk_size).
            answerBufferBytes: settings.chunkSize,
            maxRetries: settings.gatewayMaxRetries,
            baseMs: settings.gatewayRetryBaseMs,
          },
          credentials,
        ),
    },
    {
      provide: ProxyServerApi,
      inject: [GatewayClient],
      useFactory: (gateway: GatewayClient) => new ProxyServerApi(gateway),
    },
  ],
  exports: [ProxyServerApi, GatewayClient],
})
export class GatewayModule implements OnApplicationShutdown {
  constructor(@Inject(GatewayClient) private readonly gateway: GatewayClient) {}

  /** Lets calls in flight (a last release) finish, then closes the pool. */
  async onApplicationShutdown(): Promise<void> {
    await this.gateway.close();
  }
}
