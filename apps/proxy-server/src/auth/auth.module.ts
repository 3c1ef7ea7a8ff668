import {
  Global,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  RequestMethod,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { serverConfig } from '../config/server.config.js';
import { SigV4AuthMiddleware } from './sigv4-auth.middleware.js';

/**
 * SERVER_AUTH=sigv4: {@link SigV4AuthMiddleware} on every route. Global on
 * purpose: Nest mounts the middleware of global modules before that of any
 * other module, so the signature is checked before a feature's own body
 * parser (the connection JSON's) runs. With SERVER_AUTH=none (the default,
 * behind API Gateway) nothing is mounted.
 */
@Global()
@Module({})
export class AuthModule implements NestModule {
  constructor(
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  configure(consumer: MiddlewareConsumer): void {
    if (this.config.auth.kind !== 'sigv4') return;
    consumer
      .apply(SigV4AuthMiddleware)
      .forRoutes({ path: '{*path}', method: RequestMethod.ALL });
  }
}
