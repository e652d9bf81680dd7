// Storage for crash tests: forwards to a MemoryStorage until the chosen write, of which
// only the first bytes land before the "power fails"; afterwards every call fails.
// Reopening the inner MemoryStorage is the reboot.

import type { MemoryStorage } from '../../src/storage/memory.js';
import { type BlockStorage, StorageError } from '../../src/storage/storage.js';

export interface WriteRecord {
  readonly offset: number;
  readonly length: number;
}

export class CrashingStorage implements BlockStorage {
  readonly inner: MemoryStorage;
  readonly name = 'crashing';
  /** Every write that reached the inner storage (whole or torn), in order. */
  readonly writes: WriteRecord[] = [];
  /** The index of the write that tears; undefined never crashes. */
  crashAtWrite: number | undefined;
  /** How much of the tearing write lands. */
  tornBytes = 2048;
  /** Makes the next write fail with EIO, without a crash (a bad sector). */
  failNextWrite = false;
  crashed = false;

  constructor(inner: MemoryStorage) {
    this.inner = inner;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }

  private check(offset: number, length: number): void {
    if (this.crashed) throw new StorageError('EIO', 'crashed', offset, length);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.check(offset, buf.length);
    await this.inner.read(buf, offset);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.check(offset, buf.length);
    if (this.failNextWrite) {
      this.failNextWrite = false;
      throw new StorageError('EIO', 'injected write error', offset, buf.length);
    }
    if (this.writes.length === this.crashAtWrite) {
      this.writes.push({ offset, length: buf.length });
      await this.inner.write(buf.subarray(0, Math.min(this.tornBytes, buf.length)), offset);
      this.crashed = true;
      throw new StorageError('EIO', 'crashed mid-write', offset, buf.length);
    }
    this.writes.push({ offset, length: buf.length });
    await this.inner.write(buf, offset);
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    await this.inner.flush();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    await this.inner.discard(offset, length);
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}

/** Deterministic "random" bytes, so metadata ids and golden dumps are stable. */
export function counterRandom(start = 1): (bytes: number) => Buffer {
  let n = start;
  return (bytes) => {
    const b = Buffer.alloc(bytes);
    for (let i = 0; i < bytes; i++) b[i] = (n * 37 + i * 11) & 0xff;
    n++;
    return b;
  };
}
