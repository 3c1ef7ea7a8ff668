import { Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { gatewayConfig } from '../config/gateway.config.js';
import { FaultPlan } from './fault-plan.js';

/**
 * Provides the one {@link FaultPlan} of the process, built from the
 * GATEWAY_FAULT_* settings: a single generator, so that a seeded run
 * draws the same sequence however many calls share it.
 */
@Module({
  providers: [
    {
      provide: FaultPlan,
      useFactory: (config: ConfigType<typeof gatewayConfig>) =>
        new FaultPlan(config.faults),
      inject: [gatewayConfig.KEY],
    },
  ],
  exports: [FaultPlan],
})
export class FaultsModule {}
