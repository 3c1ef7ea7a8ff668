import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { clientConfig, type ClientSettings } from '../config/client.config.js';
import { GatewayClient, type CredentialsSource } from './gateway-client.js';
import { ProxyServerApi } from './proxy-server-api.js';

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
  exports: [ProxyServerApi],
})
export class GatewayModule implements OnApplicationShutdown {
  constructor(@Inject(GatewayClient) private readonly gateway: GatewayClient) {}

  /** Lets calls in flight (a last release) finish, then closes the pool. */
  async onApplicationShutdown(): Promise<void> {
    await this.gateway.close();
  }
}
