import { Module } from '@nestjs/common';
import { ConnectionsModule } from '../connections/connections.module.js';
import { TargetModule } from '../target/target.module.js';
import { ChunksController } from './chunks.controller.js';
import { ChunksService } from './chunks.service.js';

/** `POST /proxy/chunk`: assembling request bodies and dispatching them to the target. */
@Module({
  imports: [ConnectionsModule, TargetModule],
  controllers: [ChunksController],
  providers: [ChunksService],
  exports: [ChunksService],
})
export class ChunksModule {}
