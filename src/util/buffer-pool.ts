// Reusable I/O buffers in power-of-two size classes, so that the data path
// does not allocate (and page-fault in) a fresh buffer for every request.
// Bounded: at most `bytesMax` are kept free; the rest go to the GC.

const classMinBytes = 4096;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  private readonly bytesMax: number;

  constructor(bytesMax = 64 * 1024 * 1024) {
    this.bytesMax = bytesMax;
  }

  private static classOf(n: number): number {
    let c = classMinBytes;
    while (c < n) c *= 2;
    return c;
  }

  /** A buffer of exactly `n` bytes (uninitialized). Give it back with release() when no one uses it any more. */
  acquire(n: number): Buffer {
    const size = BufferPool.classOf(n);
    const list = this.free.get(size);
    const whole = list?.pop();
    if (whole) {
      this.freeBytes -= size;
      return whole.subarray(0, n);
    }
    return Buffer.allocUnsafeSlow(size).subarray(0, n);
  }

  /** Returns a buffer that acquire() gave out; anything else is ignored. */
  release(b: Buffer): void {
    const size = b.buffer.byteLength;
    if (b.byteOffset !== 0 || size < classMinBytes || (size & (size - 1)) !== 0) return;
    if (this.freeBytes + size > this.bytesMax) return;
    let list = this.free.get(size);
    if (!list) {
      list = [];
      this.free.set(size, list);
    }
    list.push(Buffer.from(b.buffer, 0, size));
    this.freeBytes += size;
  }
}

/** The process-wide pool of the NBD data path. */
export const ioBuffers = new BufferPool();
