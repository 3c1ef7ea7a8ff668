import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { clientConfig } from './config/client.config.js';
import { RelayModule } from './relay/relay.module.js';

@Module({
  imports: [
    ConfigModule.forRoot({
      isGlobal: true,
      load: [clientConfig],
      ignoreEnvFile: true,
    }),
    RelayModule,
  ],
})
export class AppModule {}
