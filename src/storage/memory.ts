// Storage in memory, for unit tests and simulations. Sparse: 64 KiB chunks are
// allocated on first write, so a large simulated disk costs only what is written.
import { type BlockStorage, checkRange, StorageError } from './storage.js';

const chunkBytes = 64 * 1024;

export class MemoryStorage implements BlockStorage {
  readonly sizeBytes: number;
  readonly name: string;
  private readonly chunks = new Map<number, Buffer>();
  private closed = false;
  /** Counters that tests read. */
  flushes = 0;

  constructor(sizeBytes: number, name = 'memory') {
    this.sizeBytes = sizeBytes;
    this.name = name;
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new StorageError('ECLOSED', `${this.name}: closed`, offset, length);
    checkRange(this, offset, length);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.check(offset, buf.length);
    this.copy(buf, offset, false);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.writeSync(buf, offset);
  }

  writesSync(): boolean {
    return true;
  }

  writeSync(buf: Uint8Array, offset: number): void {
    this.check(offset, buf.length);
    this.copy(buf, offset, true);
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    this.flushes++;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    this.copy(new Uint8Array(length), offset, true);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private copy(buf: Uint8Array, offset: number, toStorage: boolean): void {
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const index = Math.floor(pos / chunkBytes);
      const within = pos % chunkBytes;
      const n = Math.min(chunkBytes - within, buf.length - done);
      let chunk = this.chunks.get(index);
      if (toStorage) {
        if (!chunk) {
          chunk = Buffer.alloc(chunkBytes);
          this.chunks.set(index, chunk);
        }
        chunk.set(buf.subarray(done, done + n), within);
      } else if (chunk) {
        buf.set(chunk.subarray(within, within + n), done);
      } else {
        buf.fill(0, done, done + n);
      }
      done += n;
    }
  }
}
