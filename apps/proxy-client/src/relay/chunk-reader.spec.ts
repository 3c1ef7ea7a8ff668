import { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { BufferPool } from '@app/protocol';
import {
  BodyEndedEarlyError,
  readChunks,
  type BodyChunk,
} from './chunk-reader.js';

async function all(
  source: Readable,
  chunkSize: number,
  maxBytes?: number,
): Promise<BodyChunk[]> {
  const chunks: BodyChunk[] = [];
  for await (const chunk of readChunks(source, { chunkSize, maxBytes }))
    chunks.push(chunk);
  return chunks;
}

function sizes(chunks: BodyChunk[]): Array<[number, number, boolean]> {
  return chunks.map((c) => [c.index, c.data.length, c.final]);
}

/** `total` bytes (byte i = i mod 251) in pieces of `piece` bytes. */
function bytes(total: number, piece: number): Readable {
  const pieces: Buffer[] = [];
  for (let off = 0; off < total; off += piece) {
    const len = Math.min(piece, total - off);
    pieces.push(
      Buffer.from(Array.from({ length: len }, (_, i) => (off + i) % 251)),
    );
  }
  return Readable.from(pieces, { objectMode: false });
}

describe('readChunks', () => {
  it('cuts a stream into CHUNK_SIZE pieces and marks the last one final', async () => {
    const chunks = await all(bytes(10_000, 700), 4096);
    expect(sizes(chunks)).toEqual([
      [0, 4096, false],
      [1, 4096, false],
      [2, 1808, true],
    ]);
    const joined = Buffer.concat(chunks.map((c) => c.data));
    expect(
      joined.equals(Buffer.concat(await bytes(10_000, 700).toArray())),
    ).toBe(true);
  });

  it('marks a full last chunk final without an extra empty chunk', async () => {
    expect(sizes(await all(bytes(8192, 1000), 4096))).toEqual([
      [0, 4096, false],
      [1, 4096, true],
    ]);
  });

  it('splits pieces larger than a chunk', async () => {
    expect(sizes(await all(bytes(5000, 5000), 2048))).toEqual([
      [0, 2048, false],
      [1, 2048, false],
      [2, 904, true],
    ]);
  });

  it('yields one empty final chunk for an empty body', async () => {
    expect(sizes(await all(Readable.from([]), 4096))).toEqual([[0, 0, true]]);
  });

  it('refuses a body over maxBytes as soon as it passes it', async () => {
    let pulled = 0;
    const source = new Readable({
      read() {
        pulled += 1000;
        this.push(Buffer.alloc(1000));
      },
    });
    await expect(all(source, 1024 * 1024, 5000)).rejects.toThrow(
      'larger than 5000 bytes',
    );
    expect(pulled).toBeLessThan(5000 + 20_000); // nowhere near a whole chunk
  });

  it('pauses the stream while a chunk is in flight (backpressure)', async () => {
    let pulled = 0;
    const source = new Readable({
      highWaterMark: 1024,
      read() {
        pulled += 1024;
        this.push(pulled > 1024 * 1024 ? null : Buffer.alloc(1024, 1));
      },
    });
    const reader = readChunks(source, { chunkSize: 8192 });
    const first = await reader.next();
    expect(first.value?.data.length).toBe(8192);
    // The consumer holds the chunk (as while it is uploaded): the stream
    // fills its own small buffer, then nothing more is read.
    for (let i = 0; i < 5; i++) await tick();
    const pulledThen = pulled;
    for (let i = 0; i < 50; i++) await tick();
    expect(pulled).toBe(pulledThen);
    // the chunk + the one-read peek + the stream's highWaterMark
    expect(pulled).toBeLessThanOrEqual(8192 + 1024 + 1024);
    expect(source.readableFlowing).not.toBe(true);
    // Reading on continues where it stopped.
    const second = await reader.next();
    expect(second.value?.index).toBe(1);
    await reader.return(undefined);
    expect(source.destroyed).toBe(false); // the caller decides what happens to the rest
  });

  it('makes chunk 0 smaller and puts the prefix in front of it, in one buffer', async () => {
    const prefix = Buffer.from('{"head":1}');
    const source = bytes(10_000, 700);
    const chunks: BodyChunk[] = [];
    for await (const chunk of readChunks(source, {
      chunkSize: 4096,
      firstChunkSize: 4096 - prefix.length,
      firstChunkPrefix: prefix,
    }))
      chunks.push(chunk);
    expect(sizes(chunks)).toEqual([
      [0, 4086, false],
      [1, 4096, false],
      [2, 1818, true],
    ]);
    const first = chunks[0];
    expect(first.framed?.subarray(0, prefix.length).equals(prefix)).toBe(true);
    // data is a view into framed, not a copy
    expect(first.data.buffer).toBe(first.framed?.buffer);
    expect(first.data.byteOffset).toBe(
      first.framed!.byteOffset + prefix.length,
    );
    expect(chunks[1].framed).toBeUndefined();
    expect(
      Buffer.concat(chunks.map((c) => c.data)).equals(
        Buffer.concat(await bytes(10_000, 700).toArray()),
      ),
    ).toBe(true);
  });

  it('hands out a chunk of one read as that read, without a copy', async () => {
    const pieces = [Buffer.alloc(4096, 1), Buffer.alloc(6000, 2)];
    const chunks: BodyChunk[] = [];
    for await (const chunk of readChunks(Readable.from(pieces), {
      chunkSize: 4096,
    }))
      chunks.push(chunk);
    expect(sizes(chunks)).toEqual([
      [0, 4096, false],
      [1, 4096, false],
      [2, 1904, true],
    ]);
    expect(chunks[0].data).toBe(pieces[0]);
    // a slice of one read is a view into it
    expect(chunks[1].data.buffer).toBe(pieces[1].buffer);
    expect(chunks[2].data.buffer).toBe(pieces[1].buffer);
  });

  it('assembles chunks of several reads in buffers lent by the pool, which come back on release', async () => {
    const pool = new BufferPool(4096, 4);
    const source = bytes(10_000, 700);
    const seen: ArrayBufferLike[] = [];
    const joined: Buffer[] = [];
    for await (const chunk of readChunks(source, { chunkSize: 4096, pool })) {
      seen.push(chunk.data.buffer);
      joined.push(Buffer.from(chunk.data)); // a copy, kept past the release
      chunk.release();
      chunk.release(); // harmless
    }
    // Each chunk was released before the next was read: one buffer did it all.
    expect(new Set(seen).size).toBe(1);
    expect(pool.idle).toBe(1);
    expect(
      Buffer.concat(joined).equals(
        Buffer.concat(await bytes(10_000, 700).toArray()),
      ),
    ).toBe(true);
  });

  it('lends a new buffer while the previous chunk is still held', async () => {
    const pool = new BufferPool(4096, 4);
    const chunks: BodyChunk[] = [];
    for await (const chunk of readChunks(bytes(8192, 1000), {
      chunkSize: 4096,
      pool,
    }))
      chunks.push(chunk);
    expect(chunks[0].data.buffer).not.toBe(chunks[1].data.buffer);
    expect(chunks[0].data.equals(chunks[1].data)).toBe(false);
    for (const chunk of chunks) chunk.release();
    expect(pool.idle).toBe(2);
  });

  it('knows the last chunk of a Content-Length body without waiting for the end of the stream', async () => {
    // A stream that delivers the 8192 declared bytes, then never ends.
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(8192, 7));
    const reader = readChunks(source, { chunkSize: 4096, expectedBytes: 8192 });
    const first = await reader.next();
    const second = await reader.next();
    expect([first.value?.final, second.value?.final]).toEqual([false, true]);
    expect((await reader.next()).done).toBe(true);
    source.destroy();
  });

  it('yields the empty final chunk of a zero-length body without reading', async () => {
    const source = new Readable({ read() {} }); // would never end
    const reader = readChunks(source, { chunkSize: 4096, expectedBytes: 0 });
    expect(sizes([(await reader.next()).value as BodyChunk])).toEqual([
      [0, 0, true],
    ]);
    source.destroy();
  });

  it('throws when a Content-Length body ends short', async () => {
    const reader = readChunks(bytes(5000, 1000), {
      chunkSize: 4096,
      expectedBytes: 9000,
    });
    expect((await reader.next()).value?.data.length).toBe(4096);
    await expect(reader.next()).rejects.toThrow(BodyEndedEarlyError);
  });
});
