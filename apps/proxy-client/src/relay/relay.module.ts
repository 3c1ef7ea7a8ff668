import { Module } from '@nestjs/common';
import { GatewayModule } from '../gateway/gateway.module.js';
import { TunnelModule } from '../tunnel/tunnel.module.js';
import { RelayController } from './relay.controller.js';
import { RelayService } from './relay.service.js';

@Module({
  imports: [GatewayModule, TunnelModule],
  controllers: [RelayController],
  providers: [RelayService],
})
export class RelayModule {}
