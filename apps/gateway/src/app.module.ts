import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { gatewayConfig } from './config/gateway.config.js';
import { ProxyModule } from './proxy/proxy.module.js';
import { StatsModule } from './stats/stats.module.js';

@Module({
  imports: [
    ConfigModule.forRoot({
      isGlobal: true,
      load: [gatewayConfig],
      ignoreEnvFile: true,
    }),
    StatsModule,
    ProxyModule,
  ],
})
export class AppModule {}
