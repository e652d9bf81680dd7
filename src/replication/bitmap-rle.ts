// The Bitmap frame: the out-of-sync bitmap exchanged after the sync handshake (DRBD's
// P_COMPRESSED_BITMAP), in chunks that each fit a frame. A chunk is run-length encoded
// (alternating clean/dirty runs as varints) or, where that would be larger, plain bits;
// so the transfer is never bigger than the bitmap itself. Bit n is byte n/8, bit n%8,
// as src/meta/bitmap.ts holds it. Pure: no I/O.
import assert from 'node:assert/strict';
import { ProtocolError } from './errors.js';
import { frameHeaderBytes } from './header.js';
import type { BodyCodec, WireReader } from './wire.js';

/** Largest Bitmap payload (DRBD keeps them to 4 KiB; larger chunks mean fewer frames). */
export const bitmapPayloadBytesMax = 64 * 1024;
/** One chunk covers at most this many bits (16 TiB of data at 4 KiB per bit), so counts fit a u32. */
export const bitmapChunkBitsMax = 2 ** 31;
export const bitmapFixedBytes = 14;
/** A run length is a LEB128 varint of at most 5 bytes (35 bits >= bitmapChunkBitsMax). */
const varintBytesMax = 5;

// Layout:
//   0  u64    startBit   first bit this chunk covers
//   8  u32    bitCount   bits covered, 1..bitmapChunkBitsMax
//  12  u8     encoding   (plain 0, rle 1)
//  13  u8     flags      bit 0: the first run is dirty (rle only, else 0)
//  14  bytes  data       plain: ceil(bitCount/8) bytes, unused high bits of the last byte 0;
//                        rle: varint run lengths (each >= 1, shortest form), alternating
//                        polarity from the first, summing to exactly bitCount

export type BitmapEncoding = 'plain' | 'rle';

export interface BitmapChunk {
  /** First bit covered; chunks arrive in order, each starting where the previous ended. */
  readonly startBit: number;
  /** Bits covered by this chunk. */
  readonly bitCount: number;
  /** How `data` encodes the bits. */
  readonly encoding: BitmapEncoding;
  /** rle: the first run is of set (dirty) bits; always false for plain. */
  readonly firstDirty: boolean;
  /** The encoded bits (a view of the received frame when decoded). */
  readonly data: Buffer;
}

const encodingNumbers: Readonly<Record<BitmapEncoding, number>> = { plain: 0, rle: 1 };

export const bitmapCodec: BodyCodec<BitmapChunk> = {
  payloadBytesMin: bitmapFixedBytes + 1,
  payloadBytesMax: bitmapPayloadBytesMax,
  size: (c) => bitmapFixedBytes + c.data.length,
  write(c, w) {
    w.u64(c.startBit);
    w.u32(c.bitCount);
    w.u8(encodingNumbers[c.encoding]);
    w.u8(c.firstDirty ? 1 : 0);
    w.bytes(c.data);
  },
  read(r) {
    const startBit = r.u64('startBit');
    const countAt = r.position;
    const bitCount = r.u32('bitCount');
    if (bitCount === 0 || bitCount > bitmapChunkBitsMax) {
      throw r.fail('REPL_BAD_FIELD', 'bitCount', `${bitCount} not in 1..${bitmapChunkBitsMax}`, countAt);
    }
    if (startBit + bitCount > Number.MAX_SAFE_INTEGER) {
      throw r.fail('REPL_BAD_FIELD', 'bitCount', 'chunk ends beyond 2^53 - 1', countAt);
    }
    const encAt = r.position;
    const enc = r.u8('encoding');
    const flags = r.flags8('flags', 1);
    const dataAt = r.position;
    const data = r.rest();
    if (enc === encodingNumbers.plain) {
      if (flags !== 0) throw r.fail('REPL_BAD_FIELD', 'flags', 'firstDirty on a plain chunk', encAt + 1);
      checkPlain(r, data, bitCount, dataAt);
      return { startBit, bitCount, encoding: 'plain', firstDirty: false, data };
    }
    if (enc !== encodingNumbers.rle)
      throw r.fail('REPL_BAD_FIELD', 'encoding', `unknown encoding ${enc}`, encAt);
    checkRle(r, data, bitCount, dataAt);
    return { startBit, bitCount, encoding: 'rle', firstDirty: flags === 1, data };
  },
};

function checkPlain(r: WireReader, data: Buffer, bitCount: number, dataAt: number): void {
  const want = Math.ceil(bitCount / 8);
  if (data.length !== want) {
    throw r.fail(
      'REPL_BAD_LENGTH',
      'data',
      `plain chunk of ${bitCount} bits has ${data.length} bytes, not ${want}`,
    );
  }
  const tail = bitCount % 8;
  if (tail !== 0 && data[want - 1]! >> tail !== 0) {
    throw r.fail('REPL_BAD_FIELD', 'data', 'bits past bitCount are set', dataAt + want - 1);
  }
}

function checkRle(r: WireReader, data: Buffer, bitCount: number, dataAt: number): void {
  let sum = 0;
  let at = 0;
  while (at < data.length) {
    const runAt = at;
    const run = readVarint(data, at);
    if (run === undefined) throw r.fail('REPL_BAD_FIELD', 'data', 'malformed run length', dataAt + runAt);
    at = run.next;
    if (run.value === 0) throw r.fail('REPL_BAD_FIELD', 'data', 'run of length 0', dataAt + runAt);
    sum += run.value;
    if (sum > bitCount)
      throw r.fail('REPL_BAD_FIELD', 'data', `runs exceed bitCount ${bitCount}`, dataAt + runAt);
  }
  if (sum !== bitCount) throw r.fail('REPL_BAD_LENGTH', 'data', `runs cover ${sum} of ${bitCount} bits`);
}

/** A LEB128 varint in its shortest form, at most 5 bytes; undefined when malformed. */
function readVarint(b: Uint8Array, at: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < varintBytesMax && at + i < b.length; i++) {
    const byte = b[at + i]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) {
      // A last byte of 0 after others would be a longer form of a shorter number.
      if (byte === 0 && i > 0) return undefined;
      return { value, next: at + i + 1 };
    }
  }
  return undefined;
}

function varintBytes(v: number): number {
  let n = 1;
  for (let x = v; x >= 128; x = Math.floor(x / 128)) n++;
  return n;
}

function writeVarint(b: Buffer, at: number, v: number): number {
  let x = v;
  let pos = at;
  while (x >= 128) {
    b[pos++] = (x % 128) | 0x80;
    x = Math.floor(x / 128);
  }
  b[pos++] = x;
  return pos;
}

function testBit(bytes: Uint8Array, bit: number): boolean {
  return ((bytes[Math.floor(bit / 8)]! >> (bit % 8)) & 1) === 1;
}

/** The first bit in [from, end) whose value is `set`, or `end`. Skips whole bytes that cannot hold it. */
function findBit(bytes: Uint8Array, from: number, end: number, set: boolean): number {
  const skip = set ? 0x00 : 0xff;
  let bit = from;
  while (bit < end) {
    if (bit % 8 === 0) {
      let i = bit / 8;
      const wholeEnd = Math.floor(end / 8);
      while (i < wholeEnd && bytes[i] === skip) i++;
      bit = i * 8;
      if (bit >= end) return end;
    }
    if (testBit(bytes, bit) === set) return bit;
    bit++;
  }
  return end;
}

/**
 * Cuts the first `bitCount` bits of `bits` into chunks of at most `payloadBytesMax` payload
 * bytes each, run-length encoded where that covers more bits than plain bits would.
 */
export function* encodeBitmapChunks(
  bits: Uint8Array,
  bitCount: number,
  payloadBytesMax: number = bitmapPayloadBytesMax,
): Generator<BitmapChunk> {
  assert.ok(Number.isSafeInteger(bitCount) && bitCount >= 0 && bits.length * 8 >= bitCount, 'bitCount');
  assert.ok(payloadBytesMax > bitmapFixedBytes + varintBytesMax && payloadBytesMax <= bitmapPayloadBytesMax);
  const budget = payloadBytesMax - bitmapFixedBytes;
  let start = 0;
  while (start < bitCount) {
    const limit = Math.min(bitCount - start, bitmapChunkBitsMax);
    const rle = rleChunk(bits, start, limit, budget);
    const plainBits = Math.min(limit, budget * 8);
    // Run lengths where they cover more, or as much in fewer bytes (the last chunk).
    const rleWins =
      rle.bitCount > plainBits || (rle.bitCount === plainBits && rle.data.length <= Math.ceil(plainBits / 8));
    const chunk = rleWins ? rle : plainChunk(bits, start, plainBits);
    yield chunk;
    start += chunk.bitCount;
  }
}

function rleChunk(bits: Uint8Array, start: number, limit: number, budget: number): BitmapChunk {
  const end = start + limit;
  const firstDirty = testBit(bits, start);
  const runs: number[] = [];
  let used = 0;
  let pos = start;
  let dirty = firstDirty;
  while (pos < end && used < budget) {
    let run = findBit(bits, pos, end, !dirty) - pos;
    // Cut a run that does not fit to the largest length the remaining bytes can hold.
    const room = budget - used;
    if (varintBytes(run) > room) run = Math.min(run, 128 ** Math.min(room, varintBytesMax) - 1);
    runs.push(run);
    used += varintBytes(run);
    pos += run;
    dirty = !dirty;
  }
  const data = Buffer.allocUnsafe(used);
  let at = 0;
  for (const run of runs) at = writeVarint(data, at, run);
  return { startBit: start, bitCount: pos - start, encoding: 'rle', firstDirty, data };
}

function plainChunk(bits: Uint8Array, start: number, count: number): BitmapChunk {
  const data = Buffer.alloc(Math.ceil(count / 8));
  const base = Math.floor(start / 8);
  const shift = start % 8;
  for (let i = 0; i < data.length; i++) {
    const lo = bits[base + i] ?? 0;
    const hi = bits[base + i + 1] ?? 0;
    data[i] = shift === 0 ? lo : ((lo >> shift) | (hi << (8 - shift))) & 0xff;
  }
  const tail = count % 8;
  if (tail !== 0) data[data.length - 1]! &= (1 << tail) - 1;
  return { startBit: start, bitCount: count, encoding: 'plain', firstDirty: false, data };
}

/** A run of dirty bits, in absolute bit numbers. */
export interface BitRun {
  /** First dirty bit of the run. */
  readonly firstBit: number;
  /** Dirty bits in the run, at least 1. */
  readonly bitCount: number;
}

/** The dirty runs of a decoded (validated) chunk, in order. */
export function* chunkDirtyRuns(chunk: BitmapChunk): Generator<BitRun> {
  if (chunk.encoding === 'plain') {
    let bit = 0;
    while (bit < chunk.bitCount) {
      const first = findBit(chunk.data, bit, chunk.bitCount, true);
      if (first >= chunk.bitCount) return;
      const end = findBit(chunk.data, first, chunk.bitCount, false);
      yield { firstBit: chunk.startBit + first, bitCount: end - first };
      bit = end;
    }
    return;
  }
  let bit = chunk.startBit;
  let dirty = chunk.firstDirty;
  let at = 0;
  while (at < chunk.data.length) {
    const run = readVarint(chunk.data, at);
    assert.ok(run !== undefined, 'chunk was not validated');
    if (dirty) yield { firstBit: bit, bitCount: run.value };
    bit += run.value;
    at = run.next;
    dirty = !dirty;
  }
}

/**
 * Receives a bitmap of `totalBits` bits chunk by chunk and hands each dirty run to
 * `setBits` (DRBD ORs the peer's bitmap into its own). Chunks must arrive in order
 * and stay within the total; anything else is the peer's error.
 */
export class BitmapReceiver {
  private readonly totalBits: number;
  private readonly setBits: (firstBit: number, bitCount: number) => void;
  private nextBit = 0;

  constructor(totalBits: number, setBits: (firstBit: number, bitCount: number) => void) {
    assert.ok(Number.isSafeInteger(totalBits) && totalBits >= 0);
    this.totalBits = totalBits;
    this.setBits = setBits;
  }

  /** Every bit has arrived. */
  get done(): boolean {
    return this.nextBit === this.totalBits;
  }

  /** Bits received so far. */
  get receivedBits(): number {
    return this.nextBit;
  }

  apply(chunk: BitmapChunk): void {
    if (chunk.startBit !== this.nextBit) {
      throw new ProtocolError(
        'REPL_BAD_FIELD',
        `Bitmap startBit: chunk starts at bit ${chunk.startBit}, expected ${this.nextBit}`,
        frameHeaderBytes,
      );
    }
    if (chunk.bitCount > this.totalBits - this.nextBit) {
      throw new ProtocolError(
        'REPL_BAD_FIELD',
        `Bitmap bitCount: chunk ends at bit ${chunk.startBit + chunk.bitCount}, the bitmap has ${this.totalBits}`,
        frameHeaderBytes + 8,
      );
    }
    for (const run of chunkDirtyRuns(chunk)) this.setBits(run.firstBit, run.bitCount);
    this.nextBit += chunk.bitCount;
  }
}
