import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Logger } from '@nestjs/common';
import { ErrorCode, MiB, ProtocolError } from '@app/protocol';

const logger = new Logger('Spool');

/** Spooled bytes are read back in pieces of at most this size, not a chunk at once. */
const READ_PIECE_BYTES = MiB;

/** An open file on disk that spool files write into. */
export interface SpoolHandle {
  handle: FileHandle;
  path: string;
}

/**
 * Where spool files get their file on disk, and where it goes when they are
 * discarded ({@link SpoolService}: a new file, or one an earlier body left).
 */
export interface SpoolStorage {
  /** A file for a new body; `path` is where to create one if none is spare. */
  acquire(path: string): Promise<SpoolHandle>;
  /** Takes back a file no read or write uses any more. Never rejects. */
  retire(file: SpoolHandle): Promise<void>;
}

/** Storage without reuse: every file is new, and deleted when discarded. */
export const FRESH_FILES: SpoolStorage = {
  acquire: async (path) => ({ handle: await openCreating(path), path }),
  retire: (file) => removeFile(file),
};

/**
 * The spool file of one request body: the chunks that did not fit in memory,
 * written at offsets handed out in arrival order (chunks arrive in any order
 * and in parallel, so each one gets its own region and they never wait for
 * each other), read back in index order when the body goes to the target.
 *
 * Opened on the first write, so a body that never spills makes no file; the
 * file comes from `storage`, which may hand out an emptied one an earlier
 * body left (see {@link SpoolService}). {@link discard} waits for the reads
 * and writes still running, then gives the file back to `storage` (which
 * deletes it, or empties it and keeps it for another body); from the moment
 * it is called every write and read fails, so no byte of another body can
 * reach this one's reader. Disk errors are 507
 * `insufficient_storage`, never a 500: a full or read-only disk is the
 * server's trouble, not a bug, and the client can try again later.
 */
export class SpoolFile {
  private handle: Promise<SpoolHandle> | undefined;
  private opened: SpoolHandle | undefined;
  private end = 0;
  private discarding: Promise<void> | undefined;
  /** Reads and writes running on the file, and who waits for them to end. */
  private busy = 0;
  private whenIdle: (() => void) | undefined;

  constructor(
    private readonly wanted: string,
    private readonly onDiscarded: (file: SpoolFile) => void = () => {},
    private readonly storage: SpoolStorage = FRESH_FILES,
  ) {}

  /** Where the file is (once opened: a spare file has its own name). */
  get path(): string {
    return this.opened?.path ?? this.wanted;
  }

  /** Bytes of the file handed out so far. */
  get size(): number {
    return this.end;
  }

  get discarded(): boolean {
    return this.discarding !== undefined;
  }

  /** Reserves `length` bytes at the end of the file; returns their offset. */
  reserve(length: number): number {
    const offset = this.end;
    this.end += length;
    return offset;
  }

  /** Writes `parts` one after the other at `offset` (a region from {@link reserve}). */
  async write(parts: readonly Buffer[], offset: number): Promise<void> {
    this.busy += 1;
    try {
      const handle = this.ready() ?? (await this.open());
      let position = offset;
      let rest = parts.filter((part) => part.length > 0);
      try {
        while (rest.length > 0) {
          const { bytesWritten } = await handle.writev(rest, position);
          if (bytesWritten === 0) throw new Error('the disk accepted no bytes');
          position += bytesWritten;
          rest = skip(rest, bytesWritten);
        }
      } catch (error) {
        throw spoolFailure('write to', error);
      }
    } finally {
      this.done();
    }
  }

  /**
   * Reads `length` bytes from `offset`, yielding pieces of at most
   * {@link READ_PIECE_BYTES} so that a 10 MiB chunk never needs 10 MiB at once.
   */
  async *read(offset: number, length: number): AsyncGenerator<Buffer> {
    for (let done = 0; done < length;) {
      const want = Math.min(READ_PIECE_BYTES, length - done);
      let bytesRead: number;
      const piece = Buffer.allocUnsafe(want);
      this.busy += 1;
      try {
        // Checked before every read: once discarded, the file may already
        // hold another body's bytes.
        const handle = this.ready() ?? (await this.open());
        ({ bytesRead } = await handle.read(piece, 0, want, offset + done));
      } catch (error) {
        throw spoolFailure('read from', error);
      } finally {
        this.done();
      }
      if (bytesRead === 0) {
        throw spoolFailure(
          'read from',
          new Error(
            `the file ends at ${offset + done} bytes, ${length - done} bytes short`,
          ),
        );
      }
      done += bytesRead;
      yield bytesRead === want ? piece : piece.subarray(0, bytesRead);
    }
  }

  /**
   * Ends the file's use by this body (once; later calls get the same
   * promise): new reads and writes fail at once, and when those still
   * running are over the file goes back to its storage. Never rejects.
   */
  discard(): Promise<void> {
    this.discarding ??= this.giveBack().finally(() => this.onDiscarded(this));
    return this.discarding;
  }

  private async giveBack(): Promise<void> {
    // Never opened, or could not be: there is no file.
    const file = await this.handle?.catch(() => undefined);
    if (!file) return;
    while (this.busy > 0) {
      await new Promise<void>((resolve) => (this.whenIdle = resolve));
    }
    await this.storage.retire(file);
  }

  /**
   * The file for a read or write counted in `busy`, when it is open: then
   * the call starts its I/O at once, so one made before {@link discard}
   * is waited for, never cut. Throws once discarded.
   */
  private ready(): FileHandle | undefined {
    if (this.discarding) throw discarded();
    return this.opened?.handle;
  }

  /** Opens the file (once) for the first read or write; fails once discarded. */
  private async open(): Promise<FileHandle> {
    this.handle ??= this.storage.acquire(this.wanted).then(
      (file) => (this.opened = file),
      (error: unknown) => {
        throw spoolFailure('create', error);
      },
    );
    const { handle } = await this.handle;
    if (this.discarding) throw discarded();
    return handle;
  }

  private done(): void {
    this.busy -= 1;
    if (this.busy === 0) this.whenIdle?.();
  }
}

function discarded(): unknown {
  return spoolFailure('use', new Error('the spool file was already discarded'));
}

/** Closes and deletes a spool file. Never rejects: a failure is logged. */
export async function removeFile({ handle, path }: SpoolHandle): Promise<void> {
  try {
    await handle.close();
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  } catch (error) {
    logger.warn(
      `could not delete spool file ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/**
 * Opens `path` for reading and writing, new and private to this user. When
 * its folder is gone (a tmp cleaner removed it), makes it again once.
 */
export async function openCreating(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'wx+', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    return open(path, 'wx+', 0o600);
  }
}

/** `parts` without their first `bytes` bytes (after a partial write). */
function skip(parts: Buffer[], bytes: number): Buffer[] {
  const rest: Buffer[] = [];
  let left = bytes;
  for (const part of parts) {
    if (left >= part.length) {
      left -= part.length;
      continue;
    }
    rest.push(left > 0 ? part.subarray(left) : part);
    left = 0;
  }
  return rest;
}

/**
 * The 507 for a spool file the server could not use. The message names the
 * errno code (ENOSPC, EACCES, EROFS…) but not the path, which is the
 * server's business. Node's own `ERR_*` errors are bugs, not the disk's
 * fault: they stay as they are (500).
 */
export function spoolFailure(what: string, error: unknown): unknown {
  if (error instanceof ProtocolError) return error;
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (code?.startsWith('ERR_')) return error;
  const detail = code
    ? `${code}${syscall ? ` from ${syscall}` : ''}`
    : error instanceof Error
      ? error.message
      : String(error);
  return new ProtocolError(
    507,
    ErrorCode.InsufficientStorage,
    `proxy-server could not ${what} the spool file of this request body in SPOOL_DIR (${detail}); the connection is closed. Try again later, or with a body small enough to stay in memory.`,
    { cause: error },
  );
}
