// What an NBD server serves: an export is a named block device with I/O
// operations. tandem's replicated device implements it; tests use a plain
// storage-backed one (storageExport).
import type { BlockStorage } from '../storage/storage.js';

export interface NbdExport {
  readonly name: string;
  readonly description: string;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Why a client may not open the export now (a Secondary), or undefined. */
  refusal(): string | undefined;
  read(buf: Buffer, offset: number): Promise<void>;
  /**
   * With `fua`, the data is on stable storage when the promise resolves. `buf`
   * belongs to the caller again once the promise settles (it is reused): keep a
   * copy to use it later.
   */
  write(buf: Buffer, offset: number, fua: boolean): Promise<void>;
  /**
   * write(), done at once where it can be: undefined when the write is complete
   * (`buf` is the caller's again), else the promise write() would give. A failure
   * of a write done at once is a rejected promise, as from write().
   */
  writeFast?(buf: Buffer, offset: number, fua: boolean): Promise<void> | undefined;
  flush(): Promise<void>;
  trim(offset: number, length: number, fua: boolean): Promise<void>;
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void>;
  /** Called when a client enters / leaves the transmission phase. */
  clientOpened(): void;
  clientClosed(): void;
}

/** An export straight onto a storage: no replication (tests, benchmarks of the NBD layer). */
export function storageExport(name: string, storage: BlockStorage): NbdExport & { clients: number } {
  let zeroes: Buffer | undefined;
  return {
    name,
    description: `${storage.name}`,
    sizeBytes: storage.sizeBytes,
    readOnly: false,
    clients: 0,
    refusal: () => undefined,
    read: (buf, offset) => storage.read(buf, offset),
    async write(buf, offset, fua) {
      await storage.write(buf, offset);
      if (fua) await storage.flush();
    },
    flush: () => storage.flush(),
    async trim(offset, length, fua) {
      await storage.discard(offset, length);
      if (fua) await storage.flush();
    },
    async writeZeroes(offset, length, fua) {
      zeroes ??= Buffer.alloc(1024 * 1024);
      for (let done = 0; done < length; done += zeroes.length) {
        await storage.write(zeroes.subarray(0, Math.min(zeroes.length, length - done)), offset + done);
      }
      if (fua) await storage.flush();
    },
    clientOpened() {
      this.clients++;
    },
    clientClosed() {
      this.clients--;
    },
  };
}
