// The dirty (out-of-sync) bitmap: one bit per 4 KiB of data, held in memory as whole
// 4 KiB pages, the same bytes as on disk (bit n = byte n/8, bit n%8, like DRBD's
// little-endian words). Tracks which pages changed so only those are written back.
import assert from 'node:assert/strict';
import { MetaError } from './errors.js';
import { bitmapBytesPerBit } from './layout.js';

export const bitmapPageBytes = 4096;
export const bitsPerPage = bitmapPageBytes * 8;

const popcount8 = (() => {
  const t = new Uint8Array(256);
  for (let i = 1; i < 256; i++) t[i] = (i & 1) + t[i >> 1]!;
  return t;
})();

function popcount32(v: number): number {
  let x = v - ((v >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

export interface DirtyRun {
  readonly firstBit: number;
  readonly bitCount: number;
  /** The same run in data bytes, clipped to the data size. */
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

export class Bitmap {
  readonly dataBytes: number;
  readonly bits: number;
  readonly pageCount: number;
  private readonly bytes: Uint8Array;
  /** The same memory as 32-bit words, to skip all-clear or all-set words when scanning. */
  private readonly words: Uint32Array;
  private readonly dirtyPageFlags: Uint8Array;
  private setCount = 0;

  constructor(dataBytes: number) {
    assert.ok(Number.isSafeInteger(dataBytes) && dataBytes >= 0);
    this.dataBytes = dataBytes;
    this.bits = Math.ceil(dataBytes / bitmapBytesPerBit);
    this.pageCount = Math.ceil(this.bits / bitsPerPage);
    this.bytes = new Uint8Array(this.pageCount * bitmapPageBytes);
    this.words = new Uint32Array(this.bytes.buffer, 0, this.bytes.length / 4);
    this.dirtyPageFlags = new Uint8Array(this.pageCount);
  }

  /** Loads the on-disk area (at least pageCount pages). Bits past the data end are ignored. */
  static decode(dataBytes: number, area: Uint8Array): Bitmap {
    const bm = new Bitmap(dataBytes);
    if (area.length < bm.bytes.length) {
      throw new MetaError(
        'META_SHORT',
        `bitmap area is ${area.length} bytes, need ${bm.bytes.length}`,
        area.length,
      );
    }
    bm.bytes.set(area.subarray(0, bm.bytes.length));
    // Padding bits would count as out of sync yet name no data; a stray one is dropped.
    const lastBits = bm.bits % 8;
    const lastByte = Math.floor(bm.bits / 8);
    if (lastBits !== 0) bm.bytes[lastByte]! &= (1 << lastBits) - 1;
    bm.bytes.fill(0, lastByte + (lastBits !== 0 ? 1 : 0));
    for (const v of bm.bytes) bm.setCount += popcount8[v]!;
    return bm;
  }

  /** The whole in-memory bitmap (pageCount pages), as it goes to disk. Do not modify. */
  encode(): Uint8Array {
    return this.bytes;
  }

  /** Page `index` as a 4 KiB view, for writing back. */
  page(index: number): Uint8Array {
    assert.ok(index >= 0 && index < this.pageCount);
    return this.bytes.subarray(index * bitmapPageBytes, (index + 1) * bitmapPageBytes);
  }

  /** Pages changed since the last `takeDirtyPages`, ascending; they are marked clean. */
  takeDirtyPages(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.pageCount; i++) if (this.dirtyPageFlags[i]) out.push(i);
    this.dirtyPageFlags.fill(0);
    return out;
  }

  /** Marks pages for write-back again (after a failed write). */
  markPagesDirty(pages: readonly number[]): void {
    for (const p of pages) this.dirtyPageFlags[p] = 1;
  }

  get dirtyPageCount(): number {
    let n = 0;
    for (const f of this.dirtyPageFlags) n += f;
    return n;
  }

  test(bit: number): boolean {
    assert.ok(bit >= 0 && bit < this.bits);
    return (this.bytes[bit >>> 3]! & (1 << (bit & 7))) !== 0;
  }

  countSet(): number {
    return this.setCount;
  }

  /** Bytes of data out of sync (the last block may be short). */
  outOfSyncBytes(): number {
    const full = this.setCount * bitmapBytesPerBit;
    const tail = this.bits * bitmapBytesPerBit - this.dataBytes;
    return this.bits > 0 && this.test(this.bits - 1) ? full - tail : full;
  }

  /** Sets bits [first, first+count); returns how many were clear. */
  setBits(first: number, count: number): number {
    return this.apply(first, count, true);
  }

  /** Clears bits [first, first+count); returns how many were set. */
  clearBits(first: number, count: number): number {
    return this.apply(first, count, false);
  }

  /** Marks data bytes out of sync, rounding out: a partly written block is out of sync. */
  setRange(offsetBytes: number, lengthBytes: number): number {
    this.checkRange(offsetBytes, lengthBytes);
    if (lengthBytes === 0) return 0;
    const first = Math.floor(offsetBytes / bitmapBytesPerBit);
    const end = Math.ceil((offsetBytes + lengthBytes) / bitmapBytesPerBit);
    return this.setBits(first, end - first);
  }

  /**
   * Marks data bytes in sync, rounding in: only blocks wholly inside the range are
   * cleared (DRBD's drbd_set_in_sync), since half a block synced is not in sync. The
   * data's short last block counts as whole when the range reaches the data end.
   */
  clearRange(offsetBytes: number, lengthBytes: number): number {
    this.checkRange(offsetBytes, lengthBytes);
    const first = Math.ceil(offsetBytes / bitmapBytesPerBit);
    const endBytes = offsetBytes + lengthBytes;
    const end = endBytes === this.dataBytes ? this.bits : Math.floor(endBytes / bitmapBytesPerBit);
    return end > first ? this.clearBits(first, end - first) : 0;
  }

  setAll(): number {
    return this.setBits(0, this.bits);
  }

  clearAll(): number {
    return this.clearBits(0, this.bits);
  }

  /** Runs of set bits from `startBit` on, in order: what a resync has to copy. */
  *dirtyRuns(startBit = 0): Generator<DirtyRun> {
    let bit = startBit;
    while (bit < this.bits) {
      const first = this.find(bit, true);
      if (first >= this.bits) return;
      const end = this.find(first, false);
      const offsetBytes = first * bitmapBytesPerBit;
      const lengthBytes = Math.min(end * bitmapBytesPerBit, this.dataBytes) - offsetBytes;
      yield { firstBit: first, bitCount: end - first, offsetBytes, lengthBytes };
      bit = end;
    }
  }

  /** The first bit at or after `from` whose value is `set`, or `bits`. */
  private find(from: number, set: boolean): number {
    const skip = set ? 0 : 0xffffffff;
    let bit = from;
    while (bit < this.bits) {
      if ((bit & 31) === 0 && this.words[bit >>> 5] === skip) {
        bit += 32;
        continue;
      }
      if (this.test(bit) === set) return bit;
      bit++;
    }
    return this.bits;
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    assert.ok(Number.isSafeInteger(offsetBytes) && Number.isSafeInteger(lengthBytes));
    assert.ok(offsetBytes >= 0 && lengthBytes >= 0 && offsetBytes + lengthBytes <= this.dataBytes, 'range');
  }

  private apply(first: number, count: number, set: boolean): number {
    assert.ok(Number.isSafeInteger(first) && Number.isSafeInteger(count) && first >= 0 && count >= 0);
    assert.ok(first + count <= this.bits, 'bits out of range');
    let changed = 0;
    let bit = first;
    const end = first + count;
    while (bit < end) {
      // Whole 32-bit words at once: all their bits change together, so byte order does not matter.
      if ((bit & 31) === 0 && end - bit >= 32) {
        const w = bit >>> 5;
        const old = this.words[w]!;
        const next = set ? 0xffffffff : 0;
        if (old !== next) {
          this.words[w] = next;
          changed += set ? 32 - popcount32(old) : popcount32(old);
          this.dirtyPageFlags[Math.floor(bit / bitsPerPage)] = 1;
        }
        bit += 32;
        continue;
      }
      const index = bit >>> 3;
      const lo = bit & 7;
      const hi = Math.min(8, lo + end - bit);
      const mask = ((1 << hi) - 1) & ~((1 << lo) - 1) & 0xff;
      const old = this.bytes[index]!;
      const next = set ? old | mask : old & ~mask;
      if (next !== old) {
        this.bytes[index] = next;
        changed += Math.abs(popcount8[next]! - popcount8[old]!);
        this.dirtyPageFlags[Math.floor(index / bitmapPageBytes)] = 1;
      }
      bit += hi - lo;
    }
    this.setCount += set ? changed : -changed;
    return changed;
  }
}
