import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { ErrorCode } from '@app/protocol';
import { RetryLaterError } from '../common/retry-later.error.js';
import { serverConfig } from '../config/server.config.js';

/** Gives a slot back; only the first call counts. */
export type ReleaseSlot = () => void;

/**
 * MAX_CONNECTIONS: how many connections and CONNECT tunnels the server
 * holds at once, counted together, since each holds memory, a target
 * socket or a spool file. One more is refused with 503
 * `too_many_connections` and `Retry-After: 1`: connections finish and
 * expire all the time, so the same call a moment later usually succeeds.
 *
 * A slot is taken before anything is stored or connected, and given back
 * when the connection or tunnel is forgotten (released, expired, failed).
 */
@Injectable()
export class ConnectionSlots {
  private used = 0;

  constructor(
    @Inject(serverConfig.KEY)
    private readonly config: Pick<
      ConfigType<typeof serverConfig>,
      'maxConnections'
    >,
  ) {}

  /** Slots held right now. */
  get inUse(): number {
    return this.used;
  }

  /** Takes a slot for `what` (for the message), or throws the 503. */
  take(what: string): ReleaseSlot {
    const max = this.config.maxConnections;
    if (this.used >= max) {
      throw new RetryLaterError(
        503,
        ErrorCode.TooManyConnections,
        `proxy-server holds ${max} connections and tunnels already (MAX_CONNECTIONS), so ${what} was not opened: try again in a moment.`,
        1,
      );
    }
    this.used += 1;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.used -= 1;
    };
  }
}
