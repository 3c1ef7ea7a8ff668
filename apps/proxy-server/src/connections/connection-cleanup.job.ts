import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { SchedulerRegistry } from '@nestjs/schedule';
import { serverConfig } from '../config/server.config.js';
import { ConnectionsService } from './connections.service.js';

/**
 * The scheduled sweep that releases connections nobody released: clients
 * that crashed, lost their network or gave up, and connections whose whole
 * response was served FINISHED_LINGER_MS ago (clients send no DELETE then).
 * Registered as the named interval {@link ConnectionCleanupJob.NAME} every
 * CLEANUP_INTERVAL_MS (a runtime setting, hence SchedulerRegistry rather
 * than `@Interval`).
 */
@Injectable()
export class ConnectionCleanupJob
  implements OnApplicationBootstrap, OnModuleDestroy
{
  static readonly NAME = 'connection-cleanup';
  private readonly logger = new Logger('ConnectionCleanup');
  /** Sweeps of other features (idle tunnels), run with every sweep of connections. */
  private readonly included: Array<() => Promise<number>> = [];

  constructor(
    private readonly connections: ConnectionsService,
    private readonly scheduler: SchedulerRegistry,
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {}

  onApplicationBootstrap(): void {
    const timer = setInterval(() => {
      this.sweep().catch((error: unknown) =>
        this.logger.error(
          `sweep failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        ),
      );
    }, this.config.cleanupIntervalMs);
    this.scheduler.addInterval(ConnectionCleanupJob.NAME, timer);
  }

  /** One sweep: releases expired and finished connections, returns how many. */
  async sweep(): Promise<number> {
    let released = await this.connections.releaseExpired();
    for (const more of this.included) released += await more();
    return released;
  }

  /**
   * Adds another feature's sweep (tunnels) to this job, so that one
   * schedule frees everything left behind. `sweep` returns how many it freed.
   */
  include(sweep: () => Promise<number>): void {
    this.included.push(sweep);
  }

  onModuleDestroy(): void {
    if (this.scheduler.getIntervals().includes(ConnectionCleanupJob.NAME)) {
      this.scheduler.deleteInterval(ConnectionCleanupJob.NAME);
    }
  }
}
