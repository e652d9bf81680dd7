// Reusable I/O buffers in power-of-two size classes, so that the data path
// does not allocate (and page-fault in) a fresh buffer for every request.
// Bounded: at most `bytesMax` are kept free; the rest go to the GC.

const classMinBytes = 4096;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /**
   * The memory handed out by acquire() and not yet returned. release() takes back
   * only these: a socket chunk also starts at offset 0 of a power-of-two
   * ArrayBuffer, and pooling one while other requests still use its bytes
   * corrupted acknowledged writes (found in review, test/nbd/session.test.ts).
   */
  private readonly given = new WeakSet<ArrayBufferLike>();
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
      this.given.add(whole.buffer);
      return whole.subarray(0, n);
    }
    const fresh = Buffer.allocUnsafeSlow(size);
    this.given.add(fresh.buffer);
    return fresh.subarray(0, n);
  }

  /** Returns a buffer that acquire() gave out; anything else is ignored. */
  release(b: Buffer): void {
    if (!this.given.has(b.buffer)) return;
    this.given.delete(b.buffer);
    const size = b.buffer.byteLength;
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
