import { type DynamicModule, Module, ValidationPipe } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { ConfigModule } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import {
  describeValidationErrors,
  ErrorCode,
  ProtocolError,
} from '@app/protocol';
import { AuthModule } from './auth/auth.module.js';
import { ChunksModule } from './chunks/chunks.module.js';
import type { Clock } from './common/clock.js';
import { ClockModule } from './common/clock.module.js';
import { ProtocolExceptionFilter } from './common/protocol-exception.filter.js';
import { serverConfig, serverConfigFrom } from './config/server.config.js';
import { ConnectionsModule } from './connections/connections.module.js';
import { ExchangeModule } from './exchange/exchange.module.js';
import { ResponsesModule } from './responses/responses.module.js';
import { TunnelsModule } from './tunnels/tunnels.module.js';

export interface AppModuleOptions {
  /** Environment to read the configuration from; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Time source for connection expiry; default the system clock. */
  clock?: Clock;
}

/** proxy-server: the endpoint features plus config, schedule, SigV4 auth (optional), one pipe and one filter. */
@Module({})
export class AppModule {
  static register(options: AppModuleOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({
          isGlobal: true,
          ignoreEnvFile: true,
          load: [options.env ? serverConfigFrom(options.env) : serverConfig],
        }),
        ScheduleModule.forRoot(),
        ClockModule.register(options.clock),
        AuthModule,
        ConnectionsModule,
        ChunksModule,
        ResponsesModule,
        ExchangeModule,
        TunnelsModule,
      ],
      providers: [
        {
          provide: APP_PIPE,
          useValue: new ValidationPipe({
            whitelist: true,
            transform: true,
            // The protocol's 400: one readable line naming every bad field.
            exceptionFactory: (errors) =>
              new ProtocolError(
                400,
                ErrorCode.InvalidRequest,
                describeValidationErrors(errors),
              ),
          }),
        },
        { provide: APP_FILTER, useClass: ProtocolExceptionFilter },
      ],
    };
  }
}
