// The core every binary decoder here shares: big-endian fields read from a buffer
// window, each length checked against the window's end before the read. What a fault
// becomes (ProtocolError on the peer link, HaPacketError on heartbeats) is the
// subclass's: `fault` names the kind, the field and the buffer index at fault.

const twoTo32 = 2 ** 32;
/** The high word of a u64 that still fits a JavaScript safe integer (2^53 - 1). */
const safeHighMax = 0x1fffff;

/** `short`: the field runs past the window; `field`: a value out of its range. */
export type ReadFault = 'short' | 'field';

export abstract class BoundedReader {
  protected readonly buf: Buffer;
  protected pos: number;
  protected readonly end: number;

  constructor(buf: Buffer, start: number, end: number) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** The buffer index of the next field. */
  get position(): number {
    return this.pos;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** The error for a fault at buffer index `at`. */
  protected abstract fault(kind: ReadFault, field: string, message: string, at: number): Error;

  /** Takes `bytes` bytes; a field that runs past the end is reported at `at`. */
  protected need(bytes: number, field: string, at = this.pos): number {
    if (this.end - this.pos < bytes) {
      throw this.fault('short', field, `needs ${bytes} bytes, ${this.end - this.pos} left`, at);
    }
    const start = this.pos;
    this.pos += bytes;
    return start;
  }

  u8(field: string): number {
    return this.buf[this.need(1, field)]!;
  }

  u16(field: string): number {
    return this.buf.readUInt16BE(this.need(2, field));
  }

  u32(field: string): number {
    return this.buf.readUInt32BE(this.need(4, field));
  }

  i32(field: string): number {
    return this.buf.readInt32BE(this.need(4, field));
  }

  /** A u64 that must fit a safe integer (offsets, sequence numbers, generations do). */
  protected safeU64(field: string): number {
    const at = this.need(8, field);
    const high = this.buf.readUInt32BE(at);
    if (high > safeHighMax) throw this.fault('field', field, 'exceeds 2^53 - 1', at);
    return high * twoTo32 + this.buf.readUInt32BE(at + 4);
  }

  /** A u8 code from a table: its name, or a `field` fault for a number the table lacks. */
  code<N extends string>(field: string, names: ReadonlyMap<number, N>): N {
    const at = this.pos;
    const v = this.u8(field);
    const name = names.get(v);
    if (name === undefined) throw this.fault('field', field, `unknown value ${v}`, at);
    return name;
  }

  /** `bytes` bytes as a view of the buffer (no copy); a short one is reported at `lengthAt`. */
  bytes(bytes: number, field: string, lengthAt = this.pos): Buffer {
    const at = this.need(bytes, field, lengthAt);
    return this.buf.subarray(at, at + bytes);
  }
}
