// Frames of resync and online verify. The SyncTarget asks for what its bitmap marks
// (ResyncRequest, or ResyncChecksumRequest with `csums-alg`), the SyncSource answers
// with ResyncData or ResyncInSync, the target confirms with ResyncAck so both bitmaps
// clear. Verify: VerifyS asks, VerifyT answers with a digest, VerifyS sends the result.
import { type ByteRange, ioBytesMax, readRange, writeRange } from './messages-io.js';
import { type BodyCodec, maskOf, type WireReader } from './wire.js';

/** Digests are 4 (crc32c) to 64 (sha512) bytes. */
export const digestBytesMin = 4;
export const digestBytesMax = 64;

// ---------------------------------------------------------------- range + digest
// ResyncChecksumRequest and VerifyReply.
//   0  u64    offset
//   8  u32    length
//  12  u8     digest length (4..64), then the digest

export interface DigestOfRange extends ByteRange {
  /** `csums-alg` (resync) or `verify-alg` (verify) digest of the range as the sender has it. */
  readonly digest: Buffer;
}

export const digestOfRangeCodec: BodyCodec<DigestOfRange> = {
  payloadBytesMin: 12 + 1 + digestBytesMin,
  payloadBytesMax: 12 + 1 + digestBytesMax,
  size: (m) => 13 + m.digest.length,
  write(m, w) {
    writeRange(m, w);
    w.prefixedBytes(m.digest);
  },
  read(r) {
    const m = { ...readRange(r), digest: r.prefixedBytes('digest', digestBytesMin, digestBytesMax) };
    r.finish();
    return m;
  },
};

// ---------------------------------------------------------------- ResyncData
// The SyncSource's answer to a request: the blocks as it has them (DRBD: P_RS_DATA_REPLY).
//   0  u64    offset
//   8  u32    length
//  12  u32    flags (resyncDataFlagBits)
//  16  bytes  payload: `length` bytes, none when `allZeroes`

export const resyncDataFlagBits = {
  /** The range reads as zeroes on the source; the target writes zeroes (DRBD's P_RS_DEALLOCATED). */
  allZeroes: 1 << 0,
} as const;
const resyncDataFlagsKnown = maskOf(resyncDataFlagBits);
export const resyncDataFixedBytes = 16;

export interface ResyncData extends ByteRange {
  /** resyncDataFlagBits. */
  readonly flags: number;
  /** The data, `length` bytes (empty with allZeroes). A view of the received frame when decoded. */
  readonly payload: Uint8Array;
}

export const resyncDataCodec: BodyCodec<ResyncData> = {
  payloadBytesMin: resyncDataFixedBytes,
  payloadBytesMax: resyncDataFixedBytes + ioBytesMax,
  size: (m) => resyncDataFixedBytes + m.payload.length,
  write(m, w) {
    writeRange(m, w);
    w.u32(m.flags);
  },
  bulk: (m) => m.payload,
  read(r) {
    const { offset, length } = readRange(r);
    const flags = r.flags32('flags', resyncDataFlagsKnown);
    const payloadBytes = (flags & resyncDataFlagBits.allZeroes) !== 0 ? 0 : length;
    if (r.remaining !== payloadBytes) {
      throw r.fail('REPL_BAD_LENGTH', 'payload', `is ${r.remaining} bytes, expected ${payloadBytes}`);
    }
    return { offset, length, flags, payload: r.rest() };
  },
};

// ---------------------------------------------------------------- range + error, range + verdict

export interface ResyncFailed extends ByteRange {
  /** A positive errno from the side that failed (source: read, target: write), for the log. */
  readonly error: number;
}

/** ResyncFailed: the range could not be read (source) or written (target); it stays out of sync. */
export const resyncFailedCodec: BodyCodec<ResyncFailed> = {
  payloadBytesMin: 16,
  payloadBytesMax: 16,
  size: () => 16,
  write(m, w) {
    writeRange(m, w);
    w.u32(m.error);
  },
  read(r: WireReader) {
    const m = { ...readRange(r), error: r.u32('error') };
    r.finish();
    return m;
  },
};

export interface VerifyResult extends ByteRange {
  /** The digests matched; when false both sides mark the range out of sync (DRBD's P_OV_RESULT). */
  readonly inSync: boolean;
}

export const verifyResultCodec: BodyCodec<VerifyResult> = {
  payloadBytesMin: 13,
  payloadBytesMax: 13,
  size: () => 13,
  write(m, w) {
    writeRange(m, w);
    w.bool(m.inSync);
  },
  read(r) {
    const m = { ...readRange(r), inSync: r.bool('inSync') };
    r.finish();
    return m;
  },
};
