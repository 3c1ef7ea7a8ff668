import { Module } from '@nestjs/common';
import { GatewayClient } from '../gateway/gateway-client.js';
import { GatewayModule } from '../gateway/gateway.module.js';
import { TunnelApi } from './tunnel-api.js';

/** The tunnel calls, over the one gateway client (signing, pool, retries) of GatewayModule. */
@Module({
  imports: [GatewayModule],
  providers: [
    {
      provide: TunnelApi,
      inject: [GatewayClient],
      useFactory: (gateway: GatewayClient) => new TunnelApi(gateway),
    },
  ],
  exports: [TunnelApi],
})
export class TunnelModule {}
