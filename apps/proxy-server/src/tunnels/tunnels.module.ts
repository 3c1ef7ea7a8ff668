import {
  type MiddlewareConsumer,
  Module,
  type NestModule,
  RequestMethod,
} from '@nestjs/common';
import { ProxyPath } from '@app/protocol';
import { ConnectionsModule } from '../connections/connections.module.js';
import { JsonBodyMiddleware } from '../connections/json-body.middleware.js';
import { TargetModule } from '../target/target.module.js';
import { TunnelsController } from './tunnels.controller.js';
import { TunnelsService } from './tunnels.service.js';

/**
 * CONNECT tunnels: `POST`/`DELETE /proxy/tunnel`, `POST /proxy/tunnel/send`
 * and `GET /proxy/tunnel/receive`. Imports ConnectionsModule for its
 * cleanup job, which sweeps idle tunnels with idle connections.
 */
@Module({
  imports: [ConnectionsModule, TargetModule],
  controllers: [TunnelsController],
  providers: [TunnelsService],
})
export class TunnelsModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(JsonBodyMiddleware)
      .forRoutes({ path: ProxyPath.Tunnel, method: RequestMethod.POST });
  }
}
