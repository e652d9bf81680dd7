// A window [offset, offset+size) of another storage, seen from 0: the data
// area of a disk whose end holds internal metadata.
import { type BlockStorage, checkRange } from './storage.js';

export class StorageView implements BlockStorage {
  readonly sizeBytes: number;
  readonly name: string;
  private readonly base: BlockStorage;
  private readonly offset: number;

  constructor(base: BlockStorage, offset: number, sizeBytes: number, ownsBase = false) {
    checkRange(base, offset, sizeBytes);
    this.base = base;
    this.offset = offset;
    this.sizeBytes = sizeBytes;
    this.name = base.name;
    this.ownsBase = ownsBase;
  }

  private readonly ownsBase: boolean;

  read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    return this.base.read(buf, this.offset + offset);
  }

  write(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    return this.base.write(buf, this.offset + offset);
  }

  writesSync(length: number): boolean {
    return this.base.writesSync?.(length) ?? false;
  }

  writeSync(buf: Uint8Array, offset: number): void {
    checkRange(this, offset, buf.length);
    if (this.base.writeSync === undefined) throw new TypeError(`${this.name}: no synchronous writes`);
    this.base.writeSync(buf, this.offset + offset);
  }

  flush(): Promise<void> {
    return this.base.flush();
  }

  discard(offset: number, length: number): Promise<void> {
    checkRange(this, offset, length);
    return this.base.discard(this.offset + offset, length);
  }

  async close(): Promise<void> {
    if (this.ownsBase) await this.base.close();
  }
}
