// The activity log's on-disk transaction: one 4 KiB block in a ring of eight.
// Like DRBD's al_transaction_on_disk it carries the slot updates of this change and
// a rotating "context" window of the whole slot table, so the newest few valid
// blocks rebuild the active set. Big-endian, CRC32C-checked. Pure codec, no I/O.
import assert from 'node:assert/strict';
import { crc32c } from './crc32c.js';
import { MetaError } from './errors.js';
import { alRingBlocks, alTransactionBytes } from './layout.js';

/** "TDAL" */
export const alMagic = 0x5444414c;
export const alVersion = 1;
/** An empty slot in the on-disk tables. */
export const alEmpty = 0xffffffff;
/** Slot changes one transaction can carry (DRBD: AL_UPDATES_PER_TRANSACTION = 64). */
export const alUpdatesPerTransaction = 64;

export const alFields = {
  magic: 0, // u32
  version: 4, // u16
  type: 6, // u16: 0 update, 1 reset
  seq: 8, // u64
  metaId: 16, // u64, the superblock's
  slots: 24, // u32, al-extents when written
  contextStart: 28, // u32, first slot of the context window
  updateCount: 32, // u16
  contextCount: 34, // u16
  crc: 36, // u32 CRC32C of the block with this field zero
  updates: 40, // alUpdatesPerTransaction x (slot u32, extent u32, evicted u32)
  context: 40 + alUpdatesPerTransaction * 12, // contextPerTransaction x extent u32
} as const;

const updateEntryBytes = 12;
/** Slots of the table one transaction also records, so old transactions can be overwritten. */
export const alContextPerTransaction = (alTransactionBytes - alFields.context) / 4;
assert.ok(Number.isInteger(alContextPerTransaction));

/** DRBD's minimum and default `al-extents`. */
export const alSlotsMin = 7;
export const alSlotsDefault = 1237;
/**
 * The newest block may be torn, so the other seven must between them hold every slot
 * in their context windows: at most 7 x 822 = 5754 slots.
 */
export const alSlotsMax = (alRingBlocks - 1) * alContextPerTransaction;

export type AlTransactionType = 'update' | 'reset';

export interface AlUpdate {
  readonly slot: number;
  /** The extent now in the slot (alEmpty to free it). */
  readonly extent: number;
  /** The extent it replaced (alEmpty if the slot was free); for dumps and checks. */
  readonly evicted: number;
}

export interface AlTransaction {
  /** `reset`: every slot empty before this transaction's own updates (after create-md, clean close, recovery). */
  readonly type: AlTransactionType;
  readonly seq: number;
  readonly metaId: bigint;
  readonly slots: number;
  readonly updates: readonly AlUpdate[];
  readonly contextStart: number;
  /** The extents of slots contextStart, contextStart+1, ... (wrapping), after the updates. */
  readonly context: readonly number[];
}

export function encodeAlTransaction(t: AlTransaction): Buffer {
  const f = alFields;
  assert.ok(t.slots >= alSlotsMin && t.slots <= alSlotsMax);
  assert.ok(Number.isSafeInteger(t.seq) && t.seq >= 1);
  assert.ok(t.updates.length <= alUpdatesPerTransaction && t.context.length <= alContextPerTransaction);
  assert.ok(t.context.length <= t.slots && t.contextStart < t.slots);
  const b = Buffer.alloc(alTransactionBytes);
  b.writeUInt32BE(alMagic, f.magic);
  b.writeUInt16BE(alVersion, f.version);
  b.writeUInt16BE(t.type === 'reset' ? 1 : 0, f.type);
  b.writeBigUInt64BE(BigInt(t.seq), f.seq);
  b.writeBigUInt64BE(t.metaId, f.metaId);
  b.writeUInt32BE(t.slots, f.slots);
  b.writeUInt32BE(t.contextStart, f.contextStart);
  b.writeUInt16BE(t.updates.length, f.updateCount);
  b.writeUInt16BE(t.context.length, f.contextCount);
  t.updates.forEach((u, i) => {
    assert.ok(u.slot < t.slots);
    const at = f.updates + i * updateEntryBytes;
    b.writeUInt32BE(u.slot, at);
    b.writeUInt32BE(u.extent, at + 4);
    b.writeUInt32BE(u.evicted, at + 8);
  });
  t.context.forEach((extent, i) => {
    b.writeUInt32BE(extent, f.context + i * 4);
  });
  b.writeUInt32BE(crc32c(b), f.crc);
  return b;
}

function bad(field: keyof typeof alFields | number, message: string): MetaError {
  const offset = typeof field === 'number' ? field : alFields[field];
  return new MetaError('META_BAD_FIELD', `activity log block: ${message}`, offset);
}

/** Decodes and verifies one ring block; throws MetaError (never anything else) for bad bytes. */
export function decodeAlTransaction(bytes: Uint8Array): AlTransaction {
  const f = alFields;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < alTransactionBytes) {
    throw new MetaError('META_SHORT', `activity log block is ${b.length} bytes`, b.length);
  }
  const magic = b.readUInt32BE(f.magic);
  if (magic !== alMagic) throw new MetaError('META_BAD_MAGIC', `no activity log block here`, f.magic);
  const version = b.readUInt16BE(f.version);
  if (version > alVersion) {
    throw new MetaError('META_NEWER_VERSION', `activity log format ${version} > ${alVersion}`, f.version);
  }
  if (version < 1) throw new MetaError('META_BAD_VERSION', `activity log format ${version}`, f.version);
  const block = Buffer.from(b.subarray(0, alTransactionBytes));
  const stored = block.readUInt32BE(f.crc);
  block.writeUInt32BE(0, f.crc);
  if (crc32c(block) !== stored) {
    throw new MetaError(
      'META_BAD_CHECKSUM',
      'activity log block checksum mismatch (torn or corrupted)',
      f.crc,
    );
  }
  const typeCode = b.readUInt16BE(f.type);
  if (typeCode > 1) throw bad('type', `unknown type ${typeCode}`);
  const seq = b.readBigUInt64BE(f.seq);
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('seq', `sequence ${seq} out of range`);
  const slots = b.readUInt32BE(f.slots);
  if (slots < alSlotsMin || slots > alSlotsMax) throw bad('slots', `${slots} slots`);
  const contextStart = b.readUInt32BE(f.contextStart);
  if (contextStart >= slots) throw bad('contextStart', `context start ${contextStart} >= ${slots}`);
  const updateCount = b.readUInt16BE(f.updateCount);
  if (updateCount > alUpdatesPerTransaction) throw bad('updateCount', `${updateCount} updates`);
  const contextCount = b.readUInt16BE(f.contextCount);
  if (contextCount > Math.min(alContextPerTransaction, slots)) throw bad('contextCount', `${contextCount}`);
  const updates: AlUpdate[] = [];
  for (let i = 0; i < updateCount; i++) {
    const at = f.updates + i * updateEntryBytes;
    const slot = b.readUInt32BE(at);
    if (slot >= slots) throw bad(at, `update ${i} names slot ${slot} of ${slots}`);
    updates.push({ slot, extent: b.readUInt32BE(at + 4), evicted: b.readUInt32BE(at + 8) });
  }
  const context: number[] = [];
  for (let i = 0; i < contextCount; i++) context.push(b.readUInt32BE(f.context + i * 4));
  return {
    type: typeCode === 1 ? 'reset' : 'update',
    seq: Number(seq),
    metaId: b.readBigUInt64BE(f.metaId),
    slots,
    updates,
    contextStart,
    context,
  };
}

/** The ring block a transaction with this sequence number goes to. */
export function ringIndexForSeq(seq: number): number {
  return seq % alRingBlocks;
}
