// create-md: writes fresh tandem metadata in an order a crash cannot turn into a
// mix of old and new. Also the small things create and open share: options, the
// device interface, the just-created UUID.
import { randomBytes } from 'node:crypto';
import { ActivityLog } from './activity-log.js';
import { alSlotsDefault, alSlotsMax, alSlotsMin } from './al-transaction.js';
import { bitmapPageBytes, bitsPerPage } from './bitmap.js';
import { MetaError } from './errors.js';
import {
  alExtentBytes,
  alRingBlocks,
  alTransactionBytes,
  bitmapBytesPerBit,
  type MetaLayout,
  superblockBytes,
} from './layout.js';
import { copyForSeq, encodeSuperblock, noFlags, type Superblock } from './superblock.js';

/** DRBD's current UUID after create-md (UUID_JUST_CREATED): "no data yet", so two fresh disks need no sync. */
export const uuidJustCreated = 4n;
/** Large areas are written in pieces of at most this size. */
export const metaWriteBytesMax = 1024 * 1024;

/** The subset of BlockStorage the metadata needs. */
export interface MetaDevice {
  read(buf: Uint8Array, offset: number): Promise<void>;
  write(buf: Uint8Array, offset: number): Promise<void>;
  flush(): Promise<void>;
}

export interface MetaStoreOptions {
  /** `al-extents`; default 1237 (create) or the stored value (open). */
  readonly alSlots?: number;
  readonly nodeId?: number;
  /** Random bytes for the metadata id and UUIDs; crypto.randomBytes unless a test injects its own. */
  readonly random?: (bytes: number) => Buffer;
  /**
   * Makes the completed writes of the data device durable (fdatasync). The store calls
   * it before an activity-log transaction that evicts extents: a crash may lose data
   * still in the page cache, and once the log forgets an extent nothing would resync
   * it (DRBD writes its log transactions with REQ_PREFLUSH for the same reason).
   */
  readonly flushData?: () => Promise<void>;
}

export function checkAlSlots(alSlots: number): void {
  if (!Number.isInteger(alSlots) || alSlots < alSlotsMin || alSlots > alSlotsMax) {
    throw new MetaError('META_BAD_FIELD', `al-extents ${alSlots} not in ${alSlotsMin}..${alSlotsMax}`);
  }
}

/** A random 64-bit generation UUID (for `primary --force`, new-current-uuid). */
export function newUuid(random: (bytes: number) => Buffer = randomBytes): bigint {
  return random(8).readBigUInt64BE(0);
}

/**
 * Fresh metadata like `drbdmeta create-md`: Inconsistent (all flags clear), bitmap
 * clear, current UUID "just created", no history. The first `primary --force` then
 * calls MetaStore.requestFullSync(). Leaves the metadata closed and clean.
 */
export async function createMeta(
  device: MetaDevice,
  layout: MetaLayout,
  options: MetaStoreOptions = {},
): Promise<Superblock> {
  const alSlots = options.alSlots ?? alSlotsDefault;
  checkAlSlots(alSlots);
  const sb: Superblock = {
    seq: 1,
    dataBytes: layout.dataBytes,
    bitmapBytesPerBit,
    alExtentBytes,
    alSlots,
    alRingBlocks,
    metaId: newUuid(options.random),
    currentUuid: uuidJustCreated,
    bitmapUuid: 0n,
    historyUuids: [0n, 0n],
    flags: { ...noFlags, cleanShutdown: true },
    nodeId: options.nodeId ?? 0,
  };
  const zero = Buffer.alloc(metaWriteBytesMax);
  // Old superblocks go first, so an interrupted create-md leaves no metadata rather than a mix.
  for (const offset of layout.superblockOffsets)
    await device.write(zero.subarray(0, superblockBytes), offset);
  await device.flush();
  const ring = Buffer.alloc(layout.alBlocks * alTransactionBytes);
  const reset = new ActivityLog(alSlots, sb.metaId, 0).reset();
  reset.block.copy(ring, reset.ringIndex * alTransactionBytes);
  await device.write(ring, layout.alOffsetBytes);
  const bitmapBytes = Math.ceil(layout.bitmapBits / bitsPerPage) * bitmapPageBytes;
  for (let done = 0; done < bitmapBytes; done += zero.length) {
    await device.write(
      zero.subarray(0, Math.min(zero.length, bitmapBytes - done)),
      layout.bitmapOffsetBytes + done,
    );
  }
  await device.flush();
  // Both copies, so neither can keep an older create-md's superblock with a higher sequence.
  const second = { ...sb, seq: 2 };
  await device.write(encodeSuperblock(sb), layout.superblockOffsets[copyForSeq(sb.seq)]);
  await device.write(encodeSuperblock(second), layout.superblockOffsets[copyForSeq(second.seq)]);
  await device.flush();
  return second;
}
