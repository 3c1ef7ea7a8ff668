import { Module } from '@nestjs/common';
import { FaultsModule } from '../faults/faults.module.js';
import { StatsModule } from '../stats/stats.module.js';
import { ProxyService } from './proxy.service.js';
import { UpstreamService } from './upstream.service.js';

/**
 * The `{proxy+}` resource. It has no controller: a route parameter would make
 * express URI-decode the path (and refuse `/a%zz` with 400), while the
 * gateway must see and forward the path exactly as sent. app.ts mounts
 * {@link ProxyService} as middleware in front of Nest's router instead.
 */
@Module({
  imports: [StatsModule, FaultsModule],
  providers: [ProxyService, UpstreamService],
  exports: [ProxyService],
})
export class ProxyModule {}
