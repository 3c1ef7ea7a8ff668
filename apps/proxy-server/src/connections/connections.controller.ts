import {
  Body,
  Controller,
  Delete,
  Headers,
  HttpCode,
  Post,
} from '@nestjs/common';
import {
  type ConnectionCreated,
  CreateConnectionDto,
  type IncomingHeaders,
  ProxyPath,
  readConnectionId,
} from '@app/protocol';
import { ConnectionsService } from './connections.service.js';

@Controller()
export class ConnectionsController {
  constructor(private readonly connections: ConnectionsService) {}

  /** Opens a connection; the body was parsed by JsonBodyMiddleware and validated by the global ValidationPipe. */
  @Post(ProxyPath.Connection)
  @HttpCode(201)
  create(@Body() dto: CreateConnectionDto): Promise<ConnectionCreated> {
    return this.connections.create(dto);
  }

  @Delete(ProxyPath.Connection)
  @HttpCode(204)
  async release(@Headers() headers: IncomingHeaders): Promise<void> {
    await this.connections.release(readConnectionId(headers));
  }
}
