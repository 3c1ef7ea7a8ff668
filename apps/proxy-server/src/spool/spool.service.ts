import { mkdir, readdir, rmdir, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { serverConfig } from '../config/server.config.js';
import { SpoolFile } from './spool-file.js';

/** Folders of this server in SPOOL_DIR: `proxy-server.<host>.<pid>.<instance>`. */
const FOLDER = /^proxy-server\.([^.]+)\.(\d+)\.\d+$/;
/** Spool files: `<connection id>.body`. Nothing else is ever deleted. */
const FILE =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.body$/;

/**
 * Folders of the servers running in this process (specs start several):
 * never leftovers, whatever their pid says.
 */
const inUse = new Set<string>();
let instances = 0;

/** The host name as it appears in folder names (no dots, no separators). */
function hostTag(): string {
  return hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'host';
}

/** Whether process `pid` runs on this machine (EPERM: it does, as someone else). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Where request bodies too big for memory go, as nginx's client_body_temp.
 *
 * Each server spools into a folder of its own, `SPOOL_DIR/proxy-server.<host>.<pid>.<n>`,
 * so that several servers may share SPOOL_DIR. At start-up it deletes what
 * runs of this server on this host left behind — folders whose process is
 * gone, or whose pid is its own (containers reuse pid 1) — and only the
 * `<uuid>.body` files in them: SPOOL_DIR may be a shared directory, nothing
 * else in it is touched. At shutdown it deletes its files and its folder.
 */
@Injectable()
export class SpoolService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Spool');
  private readonly host = hostTag();
  /** This process's folder. */
  readonly folder: string;
  private readonly files = new Set<SpoolFile>();

  constructor(
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
  ) {
    instances += 1;
    this.folder = join(
      config.spoolDir,
      `proxy-server.${this.host}.${process.pid}.${instances}`,
    );
  }

  /** Prepares the folder; a SPOOL_DIR that cannot be created stops the server with a message naming it. */
  async onModuleInit(): Promise<void> {
    try {
      await mkdir(this.config.spoolDir, { recursive: true, mode: 0o700 });
      inUse.add(this.folder);
      await this.removeLeftovers();
      await mkdir(this.folder, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new Error(
        `SPOOL_DIR=${JSON.stringify(this.config.spoolDir)} cannot be used for spool files (${error instanceof Error ? error.message : String(error)}): point it at a writable directory.`,
        { cause: error },
      );
    }
  }

  /** A spool file for the body of connection `id` (no file exists until the first write). */
  create(id: string): SpoolFile {
    const file = new SpoolFile(join(this.folder, `${id}.body`), (gone) =>
      this.files.delete(gone),
    );
    this.files.add(file);
    return file;
  }

  /** Spool files not yet discarded (for tests and shutdown). */
  get openFiles(): number {
    return this.files.size;
  }

  /** Runs after every module's onModuleDestroy, i.e. after connections were released. */
  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.files].map((file) => file.discard()));
    inUse.delete(this.folder);
    await rmdir(this.folder).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') {
        this.logger.warn(`could not remove ${this.folder}: ${error.message}`);
      }
    });
  }

  /** Deletes the spool files of dead runs of this server on this host; returns how many. */
  async removeLeftovers(): Promise<number> {
    let removed = 0;
    for (const entry of await readdir(this.config.spoolDir, {
      withFileTypes: true,
    })) {
      const match = FOLDER.exec(entry.name);
      if (!entry.isDirectory() || !match || match[1] !== this.host) continue;
      const pid = Number(match[2]);
      if (pid !== process.pid && isAlive(pid)) continue;
      const folder = join(this.config.spoolDir, entry.name);
      if (inUse.has(folder)) continue;
      for (const name of await readdir(folder)) {
        if (!FILE.test(name)) continue;
        await unlink(join(folder, name));
        removed += 1;
      }
      await rmdir(folder).catch((error: NodeJS.ErrnoException) =>
        this.logger.warn(
          `left ${folder} in place: ${error.code === 'ENOTEMPTY' ? 'it holds files that are not spool files' : error.message}`,
        ),
      );
    }
    if (removed > 0) {
      this.logger.log(
        `removed ${removed} spool file(s) left by an earlier run in ${this.config.spoolDir}`,
      );
    }
    return removed;
  }
}
