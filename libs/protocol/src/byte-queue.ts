/**
 * Bytes waiting to be sent, as the buffers they arrived in: a tunnel's
 * upstream writes on the client and its downstream reads on the server.
 * `take` cuts at most `max` bytes off the front as one buffer, slicing the
 * buffer at the boundary instead of copying what stays behind.
 */
export class ByteQueue {
  private readonly parts: Buffer[] = [];
  private bytes = 0;

  /** Bytes held. */
  get length(): number {
    return this.bytes;
  }

  push(data: Buffer): void {
    this.parts.push(data);
    this.bytes += data.length;
  }

  /** Removes and returns up to `max` bytes from the front. */
  take(max: number): Buffer {
    const size = Math.min(max, this.bytes);
    const taken: Buffer[] = [];
    let count = 0;
    while (count < size) {
      const head = this.parts[0];
      const want = size - count;
      if (head.length <= want) {
        taken.push(head);
        this.parts.shift();
        count += head.length;
      } else {
        taken.push(head.subarray(0, want));
        this.parts[0] = head.subarray(want);
        count += want;
      }
    }
    this.bytes -= size;
    return taken.length === 1 ? taken[0] : Buffer.concat(taken, size);
  }

  clear(): void {
    this.parts.length = 0;
    this.bytes = 0;
  }
}
