import { BufferPool } from './buffer-pool.js';

describe('BufferPool', () => {
  it('lends a buffer of its size and lends the same memory again once it is given back', () => {
    const pool = new BufferPool(1024, 2);
    const first = pool.take();
    expect(first.buffer.length).toBe(1024);
    first.release();
    expect(pool.idle).toBe(1);
    const again = pool.take();
    expect(again.buffer).toBe(first.buffer);
    expect(pool.idle).toBe(0);
  });

  it('never lends one buffer twice at a time, even when it is released twice', () => {
    const pool = new BufferPool(16, 4);
    const lease = pool.take();
    lease.release();
    lease.release();
    expect(pool.idle).toBe(1);
    const a = pool.take();
    const b = pool.take();
    expect(a.buffer).not.toBe(b.buffer);
  });

  it('keeps at most maxFree buffers for reuse', () => {
    const pool = new BufferPool(16, 2);
    const leases = [pool.take(), pool.take(), pool.take()];
    for (const lease of leases) lease.release();
    expect(pool.idle).toBe(2);
  });
});
