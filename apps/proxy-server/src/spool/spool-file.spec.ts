import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProtocolError } from '@app/protocol';
import {
  FRESH_FILES,
  SpoolFile,
  type SpoolHandle,
  type SpoolStorage,
} from './spool-file.js';

describe('SpoolFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'spool-file-spec-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Fresh files, recording when each is given back. */
  function recordingStorage() {
    const retired: SpoolHandle[] = [];
    const storage: SpoolStorage = {
      acquire: (path) => FRESH_FILES.acquire(path),
      retire: async (file) => {
        retired.push(file);
        await FRESH_FILES.retire(file);
      },
    };
    return { storage, retired };
  }

  it('gives the file back only once the writes still running are over', async () => {
    const size = 4 * 1024 * 1024;
    let onDiskWhenRetired = -1;
    const storage: SpoolStorage = {
      acquire: (path) => FRESH_FILES.acquire(path),
      retire: async (file) => {
        onDiskWhenRetired = (await file.handle.stat()).size;
        await FRESH_FILES.retire(file);
      },
    };
    const file = new SpoolFile(join(dir, 'a.body'), undefined, storage);
    await file.write([Buffer.from('open')], file.reserve(4));
    const writing = file.write([Buffer.alloc(size, 7)], file.reserve(size));
    await file.discard();
    // The write was running when the discard came: it finished, then the file went.
    expect(onDiskWhenRetired).toBe(4 + size);
    await writing;
  });

  it('refuses reads and writes once discarded (the file may hold another body by then)', async () => {
    const { storage } = recordingStorage();
    const file = new SpoolFile(join(dir, 'b.body'), undefined, storage);
    await file.write([Buffer.from('first body')], file.reserve(10));
    const reading = file.read(0, 10);
    await file.discard();
    await expect(reading.next()).rejects.toBeInstanceOf(ProtocolError);
    await expect(
      file.write([Buffer.from('more')], file.reserve(4)),
    ).rejects.toMatchObject({ status: 507 });
  });

  it('stops a read between two pieces when discarded meanwhile', async () => {
    const { storage, retired } = recordingStorage();
    const file = new SpoolFile(join(dir, 'c.body'), undefined, storage);
    const size = 3 * 1024 * 1024; // three pieces of 1 MiB
    await file.write([Buffer.alloc(size, 1)], file.reserve(size));
    const reading = file.read(0, size);
    expect((await reading.next()).value?.length).toBe(1024 * 1024);
    const discarding = file.discard();
    await expect(reading.next()).rejects.toBeInstanceOf(ProtocolError);
    await discarding;
    expect(retired).toHaveLength(1);
  });

  it('makes no file and gives nothing back when nothing was written', async () => {
    const { storage, retired } = recordingStorage();
    const file = new SpoolFile(join(dir, 'd.body'), undefined, storage);
    await file.discard();
    expect(retired).toHaveLength(0);
  });
});
