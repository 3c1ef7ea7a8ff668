import { Injectable } from '@nestjs/common';
import type { Connection } from './connection.js';
import type { ConnectionStore } from './connection-store.js';

/** The connections of this process, by id. */
@Injectable()
export class InMemoryConnectionStore implements ConnectionStore {
  private readonly connections = new Map<string, Connection>();

  async add(connection: Connection): Promise<boolean> {
    if (this.connections.has(connection.id)) return false;
    this.connections.set(connection.id, connection);
    return true;
  }

  async get(id: string): Promise<Connection | undefined> {
    return this.connections.get(id);
  }

  async remove(id: string): Promise<Connection | undefined> {
    const connection = this.connections.get(id);
    this.connections.delete(id);
    return connection;
  }

  async idleSince(cutoff: number): Promise<Connection[]> {
    return [...this.connections.values()].filter(
      (c) => c.lastActivity < cutoff,
    );
  }

  async finishedSince(cutoff: number): Promise<Connection[]> {
    return [...this.connections.values()].filter(
      (c) => c.finishedAt !== undefined && c.finishedAt < cutoff,
    );
  }

  async all(): Promise<Connection[]> {
    return [...this.connections.values()];
  }
}
