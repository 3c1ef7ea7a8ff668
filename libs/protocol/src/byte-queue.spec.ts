import { ByteQueue } from './byte-queue.js';

describe('ByteQueue', () => {
  it('takes across and within the buffers it holds, keeping order', () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from('abc'));
    queue.push(Buffer.from('defgh'));
    expect(queue.length).toBe(8);
    expect(queue.take(4).toString()).toBe('abcd');
    expect(queue.length).toBe(4);
    expect(queue.take(100).toString()).toBe('efgh');
    expect(queue.length).toBe(0);
    expect(queue.take(5).length).toBe(0);
  });

  it('clears', () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from('xyz'));
    queue.clear();
    expect(queue.length).toBe(0);
    expect(queue.take(3).length).toBe(0);
  });
});
