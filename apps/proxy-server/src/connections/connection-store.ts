import type { Connection } from './connection.js';

/**
 * Where connections live between calls. In memory for one server instance
 * now; a shared store (Redis) later, so that any instance behind the gateway
 * can serve any connection. Methods are async for that reason.
 */
export interface ConnectionStore {
  /** Adds a connection; false (and nothing changes) when the id is taken. */
  add(connection: Connection): Promise<boolean>;
  get(id: string): Promise<Connection | undefined>;
  /** Removes and returns the connection, if it was there. */
  remove(id: string): Promise<Connection | undefined>;
  /** Connections whose last activity is before `cutoff` (clock milliseconds). */
  idleSince(cutoff: number): Promise<Connection[]>;
  /** Connections whose last response chunk was served before `cutoff`. */
  finishedSince(cutoff: number): Promise<Connection[]>;
  /** Every connection (for shutdown). */
  all(): Promise<Connection[]>;
}

export const CONNECTION_STORE = Symbol('ConnectionStore');
