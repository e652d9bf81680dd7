// The superblock: one 4 KiB block, big-endian like DRBD's, versioned at the front and
// CRC32C-checked at the end. Two copies (A/B) are written alternately by sequence
// number; on load the valid copy with the highest sequence wins. Pure codec, no I/O.
import assert from 'node:assert/strict';
import { alSlotsMax, alSlotsMin } from './al-transaction.js';
import { crc32c } from './crc32c.js';
import { MetaError } from './errors.js';
import { alExtentBytes, alRingBlocks, bitmapBytesPerBit, superblockBytes } from './layout.js';

/** "TNDM" */
export const superblockMagic = 0x544e444d;
export const superblockVersion = 1;
export const nodeIdMax = 31;

/** Flag bits; the positions follow DRBD's MDF_* where DRBD has the flag. */
export const superblockFlagBits = {
  /** The data is Consistent (MDF_CONSISTENT); clear = Inconsistent, as after create-md. */
  consistent: 1 << 0,
  /** This node was Primary when the flag was written (MDF_PRIMARY_IND). */
  primaryIndicator: 1 << 1,
  /** A full sync was requested and has not finished setting the bitmap (MDF_FULL_SYNC). */
  fullSync: 1 << 3,
  /** The data was UpToDate (MDF_WAS_UP_TO_DATE). */
  wasUpToDate: 1 << 4,
  /** The peer's data is known to be Outdated (MDF_PEER_OUT_DATED). */
  peerOutdated: 1 << 5,
  /** The node crashed while Primary (MDF_CRASHED_PRIMARY). */
  crashedPrimary: 1 << 6,
  /** The metadata was closed cleanly; clear while in use, so a crash shows (like MDF_AL_CLEAN). */
  cleanShutdown: 1 << 7,
} as const;

export type SuperblockFlag = keyof typeof superblockFlagBits;
export type SuperblockFlags = Readonly<Record<SuperblockFlag, boolean>>;
const knownFlagMask = Object.values(superblockFlagBits).reduce((a, b) => a | b, 0);

export interface Superblock {
  /** Incremented on every write; the copy with the higher valid sequence is current. */
  readonly seq: number;
  readonly dataBytes: number;
  readonly bitmapBytesPerBit: number;
  readonly alExtentBytes: number;
  /** `al-extents`: how many extents the activity log may hold. */
  readonly alSlots: number;
  readonly alRingBlocks: number;
  /** Random at create-md; activity-log blocks carry it so stale blocks of an older create-md are ignored. */
  readonly metaId: bigint;
  /** Generation UUIDs (DRBD: UI_CURRENT, UI_BITMAP, UI_HISTORY_START/END). */
  readonly currentUuid: bigint;
  readonly bitmapUuid: bigint;
  readonly historyUuids: readonly [bigint, bigint];
  readonly flags: SuperblockFlags;
  readonly nodeId: number;
}

/** Byte offsets of the fields; one table, its extent asserted below. */
export const superblockFields = {
  magic: 0, // u32
  version: 4, // u16
  reserved0: 6, // u16, zero
  seq: 8, // u64
  dataBytes: 16, // u64
  bitmapBytesPerBit: 24, // u32
  alExtentBytes: 28, // u32
  alSlots: 32, // u32
  alRingBlocks: 36, // u32
  metaId: 40, // u64
  currentUuid: 48, // u64
  bitmapUuid: 56, // u64
  history0: 64, // u64
  history1: 72, // u64
  flags: 80, // u32
  nodeId: 84, // u32
  end: 88, // zero-filled up to the checksum
  crc: superblockBytes - 4, // u32 CRC32C of bytes [0, crc)
} as const;

export function flagsFromBits(bits: number): SuperblockFlags {
  const out = {} as Record<SuperblockFlag, boolean>;
  for (const [name, bit] of Object.entries(superblockFlagBits))
    out[name as SuperblockFlag] = (bits & bit) !== 0;
  return out;
}

export function flagsToBits(flags: SuperblockFlags): number {
  let bits = 0;
  for (const [name, bit] of Object.entries(superblockFlagBits))
    if (flags[name as SuperblockFlag]) bits |= bit;
  return bits >>> 0;
}

export const noFlags: SuperblockFlags = flagsFromBits(0);

/** Encodes into a fresh 4 KiB block; asserts the fields are in range (our bug otherwise). */
export function encodeSuperblock(sb: Superblock): Buffer {
  assert.ok(Number.isSafeInteger(sb.seq) && sb.seq >= 0, 'seq');
  assert.ok(Number.isSafeInteger(sb.dataBytes) && sb.dataBytes >= 0, 'dataBytes');
  assert.ok(sb.alSlots >= alSlotsMin && sb.alSlots <= alSlotsMax, 'alSlots');
  assert.ok(Number.isInteger(sb.nodeId) && sb.nodeId >= 0 && sb.nodeId <= nodeIdMax, 'nodeId');
  const f = superblockFields;
  const b = Buffer.alloc(superblockBytes);
  b.writeUInt32BE(superblockMagic, f.magic);
  b.writeUInt16BE(superblockVersion, f.version);
  b.writeBigUInt64BE(BigInt(sb.seq), f.seq);
  b.writeBigUInt64BE(BigInt(sb.dataBytes), f.dataBytes);
  b.writeUInt32BE(sb.bitmapBytesPerBit, f.bitmapBytesPerBit);
  b.writeUInt32BE(sb.alExtentBytes, f.alExtentBytes);
  b.writeUInt32BE(sb.alSlots, f.alSlots);
  b.writeUInt32BE(sb.alRingBlocks, f.alRingBlocks);
  b.writeBigUInt64BE(sb.metaId, f.metaId);
  b.writeBigUInt64BE(sb.currentUuid, f.currentUuid);
  b.writeBigUInt64BE(sb.bitmapUuid, f.bitmapUuid);
  b.writeBigUInt64BE(sb.historyUuids[0], f.history0);
  b.writeBigUInt64BE(sb.historyUuids[1], f.history1);
  b.writeUInt32BE(flagsToBits(sb.flags), f.flags);
  b.writeUInt32BE(sb.nodeId, f.nodeId);
  b.writeUInt32BE(crc32c(b.subarray(0, f.crc)), f.crc);
  return b;
}

function bad(field: keyof typeof superblockFields, message: string): MetaError {
  return new MetaError('META_BAD_FIELD', `superblock ${field}: ${message}`, superblockFields[field]);
}

function expectEqual(b: Buffer, field: 'bitmapBytesPerBit' | 'alExtentBytes' | 'alRingBlocks', want: number) {
  const got = b.readUInt32BE(superblockFields[field]);
  if (got !== want) throw bad(field, `${got}, tandem uses ${want}`);
  return got;
}

/** Reads a u64 that must fit a JavaScript number (sizes and sequence numbers do, up to 8 PiB). */
function safeU64(b: Buffer, field: 'seq' | 'dataBytes'): number {
  const v = b.readBigUInt64BE(superblockFields[field]);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(field, `${v} is too large`);
  return Number(v);
}

/** Decodes and verifies one copy; throws MetaError (never anything else) for bad bytes. */
export function decodeSuperblock(bytes: Uint8Array): Superblock {
  const f = superblockFields;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < superblockBytes) {
    throw new MetaError(
      'META_SHORT',
      `superblock is ${b.length} bytes, expected ${superblockBytes}`,
      b.length,
    );
  }
  const magic = b.readUInt32BE(f.magic);
  if (magic !== superblockMagic) {
    throw new MetaError('META_BAD_MAGIC', `no tandem superblock (magic 0x${magic.toString(16)})`, f.magic);
  }
  // The version comes before the checksum: a newer format may checksum differently.
  const version = b.readUInt16BE(f.version);
  if (version > superblockVersion) {
    throw new MetaError(
      'META_NEWER_VERSION',
      `superblock format ${version} is newer than this tandem's (${superblockVersion}); upgrade tandem`,
      f.version,
    );
  }
  if (version < 1) throw new MetaError('META_BAD_VERSION', `superblock format ${version}`, f.version);
  const stored = b.readUInt32BE(f.crc);
  const computed = crc32c(b.subarray(0, f.crc));
  if (stored !== computed) {
    throw new MetaError(
      'META_BAD_CHECKSUM',
      `superblock checksum 0x${stored.toString(16)} != 0x${computed.toString(16)} (torn or corrupted)`,
      f.crc,
    );
  }
  const alSlots = b.readUInt32BE(f.alSlots);
  if (alSlots < alSlotsMin || alSlots > alSlotsMax)
    throw bad('alSlots', `${alSlots} not in ${alSlotsMin}..${alSlotsMax}`);
  const flagBits = b.readUInt32BE(f.flags);
  if ((flagBits & ~knownFlagMask) !== 0) throw bad('flags', `unknown bits 0x${flagBits.toString(16)}`);
  const nodeId = b.readUInt32BE(f.nodeId);
  if (nodeId > nodeIdMax) throw bad('nodeId', `${nodeId} > ${nodeIdMax}`);
  return {
    seq: safeU64(b, 'seq'),
    dataBytes: safeU64(b, 'dataBytes'),
    bitmapBytesPerBit: expectEqual(b, 'bitmapBytesPerBit', bitmapBytesPerBit),
    alExtentBytes: expectEqual(b, 'alExtentBytes', alExtentBytes),
    alSlots,
    alRingBlocks: expectEqual(b, 'alRingBlocks', alRingBlocks),
    metaId: b.readBigUInt64BE(f.metaId),
    currentUuid: b.readBigUInt64BE(f.currentUuid),
    bitmapUuid: b.readBigUInt64BE(f.bitmapUuid),
    historyUuids: [b.readBigUInt64BE(f.history0), b.readBigUInt64BE(f.history1)],
    flags: flagsFromBits(flagBits),
    nodeId,
  };
}

export type CopyResult =
  | { readonly ok: true; readonly sb: Superblock }
  | { readonly ok: false; readonly error: MetaError };

function tryDecode(bytes: Uint8Array): CopyResult {
  try {
    return { ok: true, sb: decodeSuperblock(bytes) };
  } catch (e) {
    if (e instanceof MetaError) return { ok: false, error: e };
    throw e;
  }
}

export interface PickResult {
  readonly sb: Superblock;
  /** 0 = copy A, 1 = copy B. */
  readonly copy: 0 | 1;
  readonly copies: readonly [CopyResult, CopyResult];
}

/**
 * Chooses the current superblock from copies A and B: the valid one with the higher
 * sequence. A newer format in either copy is refused outright, since the valid older
 * copy would roll the metadata back. Throws META_NOT_FOUND when neither is valid.
 */
export function pickSuperblock(a: Uint8Array, b: Uint8Array): PickResult {
  const copies = [tryDecode(a), tryDecode(b)] as const;
  for (const c of copies) if (!c.ok && c.error.code === 'META_NEWER_VERSION') throw c.error;
  const [ca, cb] = copies;
  if (ca.ok && (!cb.ok || ca.sb.seq >= cb.sb.seq)) return { sb: ca.sb, copy: 0, copies };
  if (cb.ok) return { sb: cb.sb, copy: 1, copies };
  const why = copies.map((c, i) => `copy ${'AB'[i]}: ${c.ok ? 'ok' : c.error.message}`).join('; ');
  throw new MetaError('META_NOT_FOUND', `no valid tandem superblock (${why})`);
}

/** Which copy (0 = A, 1 = B) a superblock with this sequence number is written to. */
export function copyForSeq(seq: number): 0 | 1 {
  return (seq % 2) as 0 | 1;
}
