import { ErrorCode } from '@app/protocol';
import { RequestBody } from './request-body.js';

const b = (s: string) => Buffer.from(s);

describe('RequestBody', () => {
  it('completes exactly once, when the final chunk and all before it are in', () => {
    const body = new RequestBody(undefined, 100);
    expect(body.accept(2, b('c'), true)).toMatchObject({
      complete: false,
      completedNow: false,
    });
    expect(body.accept(0, b('a'), false)).toMatchObject({ complete: false });
    expect(body.accept(1, b('b'), false)).toMatchObject({
      complete: true,
      completedNow: true,
    });
    expect(body.accept(1, b('b'), false)).toMatchObject({
      complete: true,
      completedNow: false,
    });
    expect(body.accept(2, b('c'), true)).toMatchObject({
      complete: true,
      completedNow: false,
    });
    expect(Buffer.concat([...body.drain()]).toString()).toBe('abc');
    expect(body.bufferedBytes).toBe(0);
    // Sizes are remembered after the bytes left: a late re-send is still harmless.
    expect(body.accept(0, b('a'), false)).toMatchObject({
      index: 0,
      complete: true,
    });
  });

  it('numbers chunks without index after the highest index seen', () => {
    const body = new RequestBody(undefined, 100);
    expect(body.accept(undefined, b('a'), false).index).toBe(0);
    expect(body.accept(3, b('d'), false).index).toBe(3);
    expect(body.accept(undefined, b('e'), false).index).toBe(4);
  });

  it('accepts an empty final chunk', () => {
    const body = new RequestBody(3, 100);
    body.accept(0, b('abc'), false);
    expect(body.accept(1, b(''), true)).toMatchObject({
      completedNow: true,
      receivedBytes: 3,
    });
  });

  it.each([
    [
      'an index after the final one',
      (x: RequestBody) => (
        x.accept(0, b('a'), true),
        x.accept(1, b('b'), false)
      ),
    ],
    [
      'a second, different final index',
      (x: RequestBody) => (
        x.accept(1, b('a'), true),
        x.accept(0, b('b'), true)
      ),
    ],
    [
      'a final index below one already received',
      (x: RequestBody) => (
        x.accept(3, b('a'), false),
        x.accept(1, b('b'), true)
      ),
    ],
    [
      'a re-sent index with another size',
      (x: RequestBody) => (
        x.accept(0, b('a'), false),
        x.accept(0, b('bb'), false)
      ),
    ],
  ])('refuses %s with 409 chunk_conflict, and keeps going', (_what, act) => {
    const body = new RequestBody(undefined, 100);
    expect(() => act(body)).toThrow(
      expect.objectContaining({ status: 409, code: ErrorCode.ChunkConflict }),
    );
    expect(body.failed).toBeUndefined();
  });

  it('fails for good on a body larger than the maximum, freeing its bytes', () => {
    const body = new RequestBody(undefined, 5);
    body.accept(0, b('abc'), false);
    expect(() => body.accept(1, b('def'), false)).toThrow(
      expect.objectContaining({ status: 413, code: ErrorCode.BodyTooLarge }),
    );
    expect(body.bufferedBytes).toBe(0);
    expect(() => body.accept(1, b('d'), true)).toThrow(
      expect.objectContaining({ status: 413 }),
    );
  });

  it('fails for good when the complete body is not body_size long', () => {
    const body = new RequestBody(5, 100);
    expect(() => body.accept(0, b('abc'), true)).toThrow(
      expect.objectContaining({ status: 400, code: ErrorCode.SizeMismatch }),
    );
    expect(body.failed?.code).toBe(ErrorCode.SizeMismatch);
    expect(body.complete).toBe(false);
  });
});
