import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Logger } from '@nestjs/common';
import { ErrorCode, MiB, ProtocolError } from '@app/protocol';

const logger = new Logger('Spool');

/** Spooled bytes are read back in pieces of at most this size, not a chunk at once. */
const READ_PIECE_BYTES = MiB;

/**
 * The spool file of one request body: the chunks that did not fit in memory,
 * written at offsets handed out in arrival order (chunks arrive in any order
 * and in parallel, so each one gets its own region and they never wait for
 * each other), read back in index order when the body goes to the target.
 *
 * Opened on the first write, so a body that never spills makes no file.
 * {@link discard} closes and deletes it; after that every write and read
 * fails. Disk errors are 507 `insufficient_storage`, never a 500: a full or
 * read-only disk is the server's trouble, not a bug, and the client can try
 * again later.
 */
export class SpoolFile {
  private handle: Promise<FileHandle> | undefined;
  private end = 0;
  private discarding: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly onDiscarded: (file: SpoolFile) => void = () => {},
  ) {}

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
    const handle = await this.opened();
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
  }

  /**
   * Reads `length` bytes from `offset`, yielding pieces of at most
   * {@link READ_PIECE_BYTES} so that a 10 MiB chunk never needs 10 MiB at once.
   */
  async *read(offset: number, length: number): AsyncGenerator<Buffer> {
    const handle = await this.opened();
    for (let done = 0; done < length;) {
      const want = Math.min(READ_PIECE_BYTES, length - done);
      let bytesRead: number;
      const piece = Buffer.allocUnsafe(want);
      try {
        ({ bytesRead } = await handle.read(piece, 0, want, offset + done));
      } catch (error) {
        throw spoolFailure('read from', error);
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

  /** Closes and deletes the file (once; later calls get the same promise). Never rejects. */
  discard(): Promise<void> {
    this.discarding ??= this.remove()
      .catch((error: unknown) =>
        logger.warn(
          `could not delete spool file ${this.path}: ${error instanceof Error ? error.message : String(error)}`,
        ),
      )
      .finally(() => this.onDiscarded(this));
    return this.discarding;
  }

  private async remove(): Promise<void> {
    // Never opened, or could not be: there is no file.
    const handle = await this.handle?.catch(() => undefined);
    if (!handle) return;
    // close() waits for the reads and writes still running on the handle.
    await handle.close();
    await unlink(this.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  private opened(): Promise<FileHandle> {
    if (this.discarding) {
      return Promise.reject(
        spoolFailure('use', new Error('the spool file was already discarded')),
      );
    }
    this.handle ??= openCreating(this.path).catch((error: unknown) => {
      throw spoolFailure('create', error);
    });
    return this.handle;
  }
}

/**
 * Opens `path` for reading and writing, new and private to this user. When
 * its folder is gone (a tmp cleaner removed it), makes it again once.
 */
async function openCreating(path: string): Promise<FileHandle> {
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
