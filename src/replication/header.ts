// The 16-byte header in front of every peer-link frame, and the protocol versions.
// Big-endian (network order) like DRBD's p_header100. The header is read and checked
// on its own, so a length can be refused before anyone allocates or waits for it.
import { ProtocolError } from './errors.js';

/** "TNDP": tandem peer link. A stream that does not start frames with it is not ours. */
export const frameMagic = 0x544e4450;
/**
 * The frame format (this header's layout and the meaning of type numbers). A peer with
 * another format cannot even be framed, so a different value ends the connection. Message
 * additions within a format are minor versions, negotiated by Hello.
 */
export const wireFormatVersion = 1;
/** Minor protocol versions of this wire format that this tandem speaks (Hello: min, max). */
export const protocolVersionMin = 1;
export const protocolVersionMax = 1;

export const frameHeaderBytes = 16;

/** Byte offsets of the header fields; one table, its extent asserted in the tests. */
export const headerFields = {
  /** u32 frameMagic. */
  magic: 0,
  /** u8 wireFormatVersion. */
  version: 4,
  /** u8 frame flags (frameFlagBits). */
  flags: 5,
  /** u16 frame type number (the frame table in frames.ts). */
  type: 6,
  /** u16 volume number within the resource; 0 for connection-wide frames. */
  volume: 8,
  /** u16 reserved, zero. */
  reserved: 10,
  /** u32 payload bytes after the header. */
  length: 12,
  end: 16,
} as const;

export const frameFlagBits = {
  /**
   * A receiver that does not know this frame type skips it instead of failing (DRBD's
   * P_MAY_IGNORE). Set only on frames that add information a peer can do without.
   */
  optional: 1 << 0,
} as const;
const knownFrameFlags = frameFlagBits.optional;

export interface FrameHeader {
  /** Frame type number; may be one this tandem does not know (then `optional` decides). */
  readonly type: number;
  /** The sender may be ignored if the type is unknown to the receiver. */
  readonly optional: boolean;
  /** Volume number within the resource (DRBD's `volume N`); 0 on connection-wide frames. */
  readonly volume: number;
  /** Payload bytes following the header. */
  readonly length: number;
}

/**
 * Reads and checks the parts of a header that do not depend on the frame type: magic,
 * format version, flag bits, reserved bytes. `buf` holds at least 16 bytes from `at`.
 */
export function readHeader(buf: Uint8Array, at = 0): FrameHeader {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length - at < frameHeaderBytes) {
    throw new ProtocolError('REPL_BAD_LENGTH', `frame header needs ${frameHeaderBytes} bytes`, b.length - at);
  }
  const f = headerFields;
  const magic = b.readUInt32BE(at + f.magic);
  if (magic !== frameMagic) {
    throw new ProtocolError('REPL_BAD_MAGIC', `frame magic 0x${magic.toString(16)} is not tandem's`, f.magic);
  }
  const version = b[at + f.version]!;
  if (version !== wireFormatVersion) {
    throw new ProtocolError(
      'REPL_BAD_VERSION',
      `peer speaks frame format ${version}, this tandem speaks ${wireFormatVersion}`,
      f.version,
    );
  }
  const type = b.readUInt16BE(at + f.type);
  const flags = b[at + f.flags]!;
  if ((flags & ~knownFrameFlags) !== 0) {
    throw new ProtocolError(
      'REPL_BAD_FIELD',
      `frame flags 0x${flags.toString(16)} has unknown bits`,
      f.flags,
      type,
    );
  }
  if (b.readUInt16BE(at + f.reserved) !== 0) {
    throw new ProtocolError('REPL_BAD_FIELD', 'reserved header bytes are not zero', f.reserved, type);
  }
  return {
    type,
    optional: (flags & frameFlagBits.optional) !== 0,
    volume: b.readUInt16BE(at + f.volume),
    length: b.readUInt32BE(at + f.length),
  };
}

/** Writes a header at `buf[at]`. */
export function writeHeader(buf: Buffer, at: number, h: FrameHeader): void {
  const f = headerFields;
  buf.writeUInt32BE(frameMagic, at + f.magic);
  buf[at + f.version] = wireFormatVersion;
  buf[at + f.flags] = h.optional ? frameFlagBits.optional : 0;
  buf.writeUInt16BE(h.type, at + f.type);
  buf.writeUInt16BE(h.volume, at + f.volume);
  buf.writeUInt16BE(0, at + f.reserved);
  buf.writeUInt32BE(h.length, at + f.length);
}

/** A range of protocol versions, as Hello carries it. */
export interface VersionRange {
  /** Lowest version spoken. */
  readonly min: number;
  /** Highest version spoken, not below min. */
  readonly max: number;
}

/**
 * The version both sides speak: the highest one in both ranges (DRBD's drbd_do_features),
 * or undefined when the ranges do not meet ("incompatible dialects").
 */
export function negotiateVersion(ours: VersionRange, theirs: VersionRange): number | undefined {
  if (theirs.max < ours.min || theirs.min > ours.max) return undefined;
  return Math.min(ours.max, theirs.max);
}
