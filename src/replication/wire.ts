// Bounded big-endian reading and writing of payload fields. The reader checks every
// length against the payload's end before it reads and throws ProtocolError naming
// the field and its offset in the frame; the writer asserts (a bad value is our bug).
import assert from 'node:assert/strict';
import { BoundedReader, type ReadFault } from '../util/bounded-reader.js';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

/** Strings on the wire are a u8 byte count and that many bytes of UTF-8. */
export const stringBytesMax = 255;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const twoTo32 = 2 ** 32;

export class WireReader extends BoundedReader {
  /** Added to a buffer index to get the offset in the frame (the header counts). */
  private readonly bias: number;
  private readonly frameType: number;
  /** Frame name for messages, e.g. `Data`. */
  private readonly what: string;

  /** Reads `buf[start, end)`, a payload that starts `payloadOffset` bytes into its frame. */
  constructor(
    buf: Buffer,
    start: number,
    end: number,
    payloadOffset: number,
    frameType: number,
    what: string,
  ) {
    super(buf, start, end);
    this.bias = payloadOffset - start;
    this.frameType = frameType;
    this.what = what;
  }

  protected fault(kind: ReadFault, field: string, message: string, at: number): ProtocolError {
    if (kind === 'short') return this.fail('REPL_BAD_LENGTH', field, `${message} in the payload`, at);
    return this.fail('REPL_BAD_FIELD', field, message, at);
  }

  /** An error at the current position (or `at`, a buffer index). */
  fail(code: ProtocolErrorCode, field: string, message: string, at = this.pos): ProtocolError {
    return new ProtocolError(code, `${this.what} ${field}: ${message}`, at + this.bias, this.frameType);
  }

  /** A u64 that must fit a safe integer (byte offsets, sequence and epoch numbers do, up to 8 PiB). */
  u64(field: string): number {
    return this.safeU64(field);
  }

  /** A u64 kept whole (UUIDs are bit patterns, not quantities). */
  u64n(field: string): bigint {
    return this.buf.readBigUInt64BE(this.need(8, field));
  }

  /** A u8 that must be 0 or 1. */
  bool(field: string): boolean {
    const at = this.pos;
    const v = this.u8(field);
    if (v > 1) throw this.fail('REPL_BAD_FIELD', field, `boolean is ${v}, not 0 or 1`, at);
    return v === 1;
  }

  /** A bit set whose bits outside `knownMask` must be clear (a newer peer must not send them unasked). */
  flags32(field: string, knownMask: number): number {
    const at = this.pos;
    const v = this.u32(field);
    if ((v & ~knownMask) !== 0)
      throw this.fail('REPL_BAD_FIELD', field, `unknown bits 0x${hex(v & ~knownMask)}`, at);
    return v;
  }

  flags8(field: string, knownMask: number): number {
    const at = this.pos;
    const v = this.u8(field);
    if ((v & ~knownMask) !== 0)
      throw this.fail('REPL_BAD_FIELD', field, `unknown bits 0x${hex(v & ~knownMask)}`, at);
    return v;
  }

  /** Reserved bytes: zero now, so that a later version can give them a meaning. */
  zeros(bytes: number, field: string): void {
    const at = this.need(bytes, field);
    for (let i = at; i < at + bytes; i++) {
      if (this.buf[i] !== 0) throw this.fail('REPL_BAD_FIELD', field, 'reserved bytes are not zero', i);
    }
  }

  /** A u8 length and that many bytes, the length within [min, max]. */
  prefixedBytes(field: string, min: number, max: number): Buffer {
    const at = this.pos;
    const n = this.u8(field);
    if (n < min || n > max) throw this.fail('REPL_BAD_FIELD', field, `length ${n} not in ${min}..${max}`, at);
    return this.bytes(n, field);
  }

  /** A u8 length and that much UTF-8 (at most `max` bytes), strictly valid. */
  str(field: string, max: number = stringBytesMax): string {
    const at = this.pos;
    const b = this.prefixedBytes(field, 0, max);
    try {
      return utf8.decode(b);
    } catch {
      throw this.fail('REPL_BAD_FIELD', field, 'not valid UTF-8', at + 1);
    }
  }

  /** A name of an algorithm: printable ASCII without spaces, at most `max` bytes; empty means none. */
  algName(field: string, max: number): string {
    const at = this.pos;
    const b = this.prefixedBytes(field, 0, max);
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c <= 0x20 || c >= 0x7f)
        throw this.fail('REPL_BAD_FIELD', field, `byte 0x${hex(c)} in a name`, at + 1 + i);
    }
    return b.toString('latin1');
  }

  /** Everything left, as a view. */
  rest(): Buffer {
    return this.bytes(this.end - this.pos, 'rest');
  }

  /** The payload must end here: a longer payload is as malformed as a shorter one. */
  finish(): void {
    if (this.pos !== this.end) {
      throw this.fail('REPL_BAD_LENGTH', 'end', `${this.end - this.pos} bytes after the last field`);
    }
  }
}

export class WireWriter {
  private readonly buf: Buffer;
  private pos: number;

  constructor(buf: Buffer, start: number) {
    this.buf = buf;
    this.pos = start;
  }

  get position(): number {
    return this.pos;
  }

  u8(v: number): void {
    assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xff, 'u8');
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.pos = this.buf.writeUInt16BE(v, this.pos);
  }

  u32(v: number): void {
    this.pos = this.buf.writeUInt32BE(v, this.pos);
  }

  i32(v: number): void {
    this.pos = this.buf.writeInt32BE(v, this.pos);
  }

  u64(v: number): void {
    assert.ok(Number.isSafeInteger(v) && v >= 0, 'u64');
    this.buf.writeUInt32BE(Math.floor(v / twoTo32), this.pos);
    this.buf.writeUInt32BE(v % twoTo32, this.pos + 4);
    this.pos += 8;
  }

  u64n(v: bigint): void {
    this.pos = this.buf.writeBigUInt64BE(v, this.pos);
  }

  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  zeros(bytes: number): void {
    this.buf.fill(0, this.pos, this.pos + bytes);
    this.pos += bytes;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  prefixedBytes(b: Uint8Array): void {
    this.u8(b.length);
    this.bytes(b);
  }

  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u8(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }
}

/** Payload bytes of a string field (u8 length + UTF-8). */
export function strBytes(s: string): number {
  return 1 + Buffer.byteLength(s, 'utf8');
}

function hex(v: number): string {
  return (v >>> 0).toString(16);
}

/** How one frame type's payload is encoded: size first, then write into a buffer allocated once. */
export interface BodyCodec<T> {
  /** Smallest and largest payload, in bytes; the header's length is checked against them before anything else. */
  readonly payloadBytesMin: number;
  readonly payloadBytesMax: number;
  /** Payload bytes of `body`, bulk data included. */
  size(body: T): number;
  /** Writes every field except the bulk data. */
  write(body: T, w: WireWriter): void;
  /** Reads and validates a whole payload (all of it: leftover bytes are an error). */
  read(r: WireReader): T;
  /** Bulk data, the payload's last field, sent as its own buffer without copying (writes, resync data). */
  bulk?(body: T): Uint8Array;
}

/** A small enumeration on the wire: names in the code, fixed numbers on the wire, one table for both ways. */
export interface WireCodes<N extends string> {
  /** Name to wire number, for encoding. */
  readonly numbers: Readonly<Record<N, number>>;
  /** Wire number to name, for decoding; a number not in it is REPL_BAD_FIELD. */
  readonly names: ReadonlyMap<number, N>;
  /** The names, in wire-number order (for tests and arbitraries). */
  readonly all: readonly N[];
}

export function wireCodes<N extends string>(numbers: Readonly<Record<N, number>>): WireCodes<N> {
  const names = new Map<number, N>();
  for (const [name, n] of Object.entries(numbers) as [N, number][]) {
    assert.ok(Number.isInteger(n) && n >= 0 && n <= 0xff, `code ${name}`);
    assert.ok(!names.has(n), `code ${n} used twice`);
    names.set(n, name);
  }
  const all = [...names.entries()].sort((a, b) => a[0] - b[0]).map(([, name]) => name);
  return { numbers, names, all };
}

/** The OR of a table of flag bits. */
export function maskOf(bits: Readonly<Record<string, number>>): number {
  return Object.values(bits).reduce((a, b) => a | b, 0) >>> 0;
}
