import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { BufferPool } from '@app/protocol';
import {
  markBodyWithheld,
  POOLED_MIN_BYTES,
  readBoundedBody,
} from './body-reader.js';

/** A request stream with the given headers; the test writes its body. */
function fakeRequest(
  headers: Record<string, string> = {},
): PassThrough & IncomingMessage {
  return Object.assign(new PassThrough(), {
    headers,
  }) as unknown as PassThrough & IncomingMessage;
}

describe('readBoundedBody', () => {
  it('returns a body at the limit, with its SHA-256', async () => {
    const req = fakeRequest();
    const read = readBoundedBody(req, 10);
    req.write(Buffer.alloc(4, 1));
    req.end(Buffer.alloc(6, 2));
    const whole = Buffer.concat([Buffer.alloc(4, 1), Buffer.alloc(6, 2)]);
    expect(await read).toMatchObject({
      kind: 'complete',
      body: whole,
      sha256: createHash('sha256').update(whole).digest('hex'),
    });
  });

  it('hashes an empty body as the empty string', async () => {
    const req = fakeRequest();
    const read = readBoundedBody(req, 10);
    req.end();
    expect(await read).toMatchObject({
      kind: 'complete',
      body: Buffer.alloc(0),
      sha256: createHash('sha256').digest('hex'),
    });
  });

  it('reads a large body of known length into a pooled buffer, given back by release()', async () => {
    const size = POOLED_MIN_BYTES + 10;
    const pool = new BufferPool(2 * POOLED_MIN_BYTES, 2);
    const req = fakeRequest({ 'content-length': String(size) });
    const read = readBoundedBody(req, 4 * POOLED_MIN_BYTES, undefined, pool);
    req.write(Buffer.alloc(POOLED_MIN_BYTES, 1));
    req.end(Buffer.alloc(10, 2));
    const result = await read;
    if (result.kind !== 'complete') throw new Error(result.kind);
    const whole = Buffer.concat([
      Buffer.alloc(POOLED_MIN_BYTES, 1),
      Buffer.alloc(10, 2),
    ]);
    expect(result.body.equals(whole)).toBe(true);
    expect(result.sha256).toBe(
      createHash('sha256').update(whole).digest('hex'),
    );
    // a view into the pool's buffer
    expect(result.body.buffer.byteLength).toBe(2 * POOLED_MIN_BYTES);
    expect(pool.idle).toBe(0);
    result.release();
    expect(pool.idle).toBe(1);
  });

  it('joins a small body instead of taking a pooled buffer for it', async () => {
    const pool = new BufferPool(2 * POOLED_MIN_BYTES, 2);
    const req = fakeRequest({ 'content-length': '10' });
    const read = readBoundedBody(req, 100, undefined, pool);
    req.end(Buffer.alloc(10, 3));
    const result = await read;
    if (result.kind !== 'complete') throw new Error(result.kind);
    expect(result.body).toEqual(Buffer.alloc(10, 3));
    expect(result.body.buffer.byteLength).not.toBe(2 * POOLED_MIN_BYTES);
    expect(pool.idle).toBe(0); // never lent
  });

  it('gives the pooled buffer back at once when the client leaves mid-body', async () => {
    const pool = new BufferPool(2 * POOLED_MIN_BYTES, 2);
    const req = fakeRequest({ 'content-length': String(POOLED_MIN_BYTES) });
    const read = readBoundedBody(req, 4 * POOLED_MIN_BYTES, undefined, pool);
    req.write(Buffer.alloc(4, 1));
    req.destroy();
    expect((await read).kind).toBe('aborted');
    expect(pool.idle).toBe(1);
  });

  it('drains a chunked body past the limit, then reports it', async () => {
    const req = fakeRequest();
    const read = readBoundedBody(req, 10, 100);
    req.write(Buffer.alloc(8));
    req.write(Buffer.alloc(8));
    req.end(Buffer.alloc(8));
    expect(await read).toEqual({
      kind: 'too_large',
      receivedBytes: 24,
      drained: true,
    });
  });

  it('stops reading past the discard limit (the connection must then close)', async () => {
    const req = fakeRequest();
    const read = readBoundedBody(req, 10, 20);
    req.write(Buffer.alloc(16));
    req.write(Buffer.alloc(16));
    expect(await read).toEqual({
      kind: 'too_large',
      receivedBytes: 32,
      drained: false,
    });
    expect(req.isPaused()).toBe(true);
  });

  it('refuses a declared length over limit plus discard limit without reading', async () => {
    const req = fakeRequest({ 'content-length': '1000' });
    expect(await readBoundedBody(req, 10, 20)).toEqual({
      kind: 'too_large',
      receivedBytes: 0,
      drained: false,
    });
  });

  it('does not wait for a body the client was never asked for', async () => {
    const req = fakeRequest({ 'content-length': '11' });
    markBodyWithheld(req);
    expect((await readBoundedBody(req, 10)).kind).toBe('too_large');
  });

  it('reports a client that leaves mid-body', async () => {
    const req = fakeRequest({ 'content-length': '100' });
    const read = readBoundedBody(req, 1000);
    req.write(Buffer.alloc(5));
    req.destroy();
    expect(await read).toEqual({ kind: 'aborted', receivedBytes: 5 });
  });
});
