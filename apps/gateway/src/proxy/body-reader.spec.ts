import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { markBodyWithheld, readBoundedBody } from './body-reader.js';

/** A request stream with the given headers; the test writes its body. */
function fakeRequest(
  headers: Record<string, string> = {},
): PassThrough & IncomingMessage {
  return Object.assign(new PassThrough(), {
    headers,
  }) as unknown as PassThrough & IncomingMessage;
}

describe('readBoundedBody', () => {
  it('returns a body at the limit', async () => {
    const req = fakeRequest();
    const read = readBoundedBody(req, 10);
    req.end(Buffer.alloc(10, 1));
    expect(await read).toEqual({ kind: 'complete', body: Buffer.alloc(10, 1) });
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
