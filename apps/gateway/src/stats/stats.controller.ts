import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { StatsService, type GatewayStats } from './stats.service.js';

/**
 * The gateway's own endpoints, outside any stage, never signed and never
 * forwarded (AWS has no such thing: benchmarks read them locally).
 */
@Controller('_gateway/stats')
export class StatsController {
  constructor(private readonly stats: StatsService) {}

  @Get()
  read(): GatewayStats {
    return this.stats.snapshot();
  }

  @Post('reset')
  @HttpCode(200)
  reset(): GatewayStats {
    return this.stats.reset();
  }
}
