import {
  type MiddlewareConsumer,
  Module,
  type NestModule,
  RequestMethod,
} from '@nestjs/common';
import { ProxyPath } from '@app/protocol';
import { ConnectionCleanupJob } from './connection-cleanup.job.js';
import { ConnectionSlots } from './connection-slots.js';
import { CONNECTION_STORE } from './connection-store.js';
import { ConnectionsController } from './connections.controller.js';
import { ConnectionsService } from './connections.service.js';
import { SpoolModule } from '../spool/spool.module.js';
import { TargetModule } from '../target/target.module.js';
import { InMemoryConnectionStore } from './in-memory-connection.store.js';
import { JsonBodyMiddleware } from './json-body.middleware.js';

/**
 * `POST` / `DELETE /proxy/connection`, the connection store and the
 * scheduled sweep of expired connections. Exports ConnectionsService, through
 * which the other features find connections.
 */
@Module({
  imports: [SpoolModule, TargetModule],
  controllers: [ConnectionsController],
  providers: [
    ConnectionsService,
    ConnectionCleanupJob,
    ConnectionSlots,
    { provide: CONNECTION_STORE, useClass: InMemoryConnectionStore },
  ],
  exports: [ConnectionsService, ConnectionCleanupJob, ConnectionSlots],
})
export class ConnectionsModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(JsonBodyMiddleware)
      .forRoutes({ path: ProxyPath.Connection, method: RequestMethod.POST });
  }
}
