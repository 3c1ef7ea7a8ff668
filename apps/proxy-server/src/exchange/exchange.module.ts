import { Module } from '@nestjs/common';
import { ChunksModule } from '../chunks/chunks.module.js';
import { ConnectionsModule } from '../connections/connections.module.js';
import { ResponsesModule } from '../responses/responses.module.js';
import { ExchangeController } from './exchange.controller.js';
import { ExchangeService } from './exchange.service.js';

/** `POST /proxy/exchange`: open, first chunk and first response chunk in one call. */
@Module({
  imports: [ConnectionsModule, ChunksModule, ResponsesModule],
  controllers: [ExchangeController],
  providers: [ExchangeService],
})
export class ExchangeModule {}
