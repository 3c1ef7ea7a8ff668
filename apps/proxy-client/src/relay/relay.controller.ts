import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import {
  PROXY_HTTP_PATTERN,
  ProxyContext,
  type ProxyExchange,
} from '../listener/proxy-context.js';
import { RelayService } from './relay.service.js';

/** Receives each proxied exchange from the listener transport. */
@Controller()
export class RelayController {
  constructor(private readonly relay: RelayService) {}

  @MessagePattern(PROXY_HTTP_PATTERN)
  handle(
    @Payload() exchange: ProxyExchange,
    @Ctx() ctx: ProxyContext,
  ): Promise<void> {
    return this.relay.relay(exchange, ctx.getRequest(), ctx.getResponse());
  }
}
