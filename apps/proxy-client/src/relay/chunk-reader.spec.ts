import { Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { readChunks, type BodyChunk } from './chunk-reader.js';

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
});
