// dump-md: tandem's metadata as text a person reads and as a JSON-able object for
// scripts. Pure: renders a snapshot that read.ts produced.
import { formatBytes } from './errors.js';
import type { MetaSnapshot } from './read.js';
import { type SuperblockFlag, superblockFlagBits, superblockVersion } from './superblock.js';

/** UUIDs as DRBD prints them: 16 upper-case hex digits. */
export function formatUuid(uuid: bigint): string {
  return uuid.toString(16).toUpperCase().padStart(16, '0');
}

export interface MetaDumpJson {
  readonly version: number;
  readonly kind: string;
  readonly sequence: number;
  readonly superblockCopy: 'A' | 'B';
  readonly sizes: {
    readonly dataBytes: number;
    readonly metaOffsetBytes: number;
    readonly metaBytes: number;
    readonly bitmapBytesPerBit: number;
    readonly alExtentBytes: number;
    readonly alSlots: number;
  };
  readonly metaId: string;
  readonly uuids: {
    readonly current: string;
    readonly bitmap: string;
    readonly history: readonly [string, string];
  };
  readonly flags: readonly SuperblockFlag[];
  readonly nodeId: number;
  readonly activityLog: {
    readonly extents: readonly number[];
    readonly complete: boolean;
    readonly transactions: number;
    readonly lastSeq: number;
  };
  readonly bitmap: {
    readonly bits: number;
    readonly outOfSyncBits: number;
    readonly outOfSyncBytes: number;
  };
}

export function dumpMetaJson(snap: MetaSnapshot): MetaDumpJson {
  const sb = snap.superblock;
  return {
    version: superblockVersion,
    kind: snap.layout.kind,
    sequence: sb.seq,
    superblockCopy: snap.copy === 0 ? 'A' : 'B',
    sizes: {
      dataBytes: sb.dataBytes,
      metaOffsetBytes: snap.layout.metaOffsetBytes,
      metaBytes: snap.layout.metaBytes,
      bitmapBytesPerBit: sb.bitmapBytesPerBit,
      alExtentBytes: sb.alExtentBytes,
      alSlots: sb.alSlots,
    },
    metaId: formatUuid(sb.metaId),
    uuids: {
      current: formatUuid(sb.currentUuid),
      bitmap: formatUuid(sb.bitmapUuid),
      history: [formatUuid(sb.historyUuids[0]), formatUuid(sb.historyUuids[1])],
    },
    flags: (Object.keys(superblockFlagBits) as SuperblockFlag[]).filter((f) => sb.flags[f]),
    nodeId: sb.nodeId,
    activityLog: {
      extents: snap.al.extents,
      complete: snap.al.complete,
      transactions: snap.al.transactions,
      lastSeq: snap.al.lastSeq,
    },
    bitmap: {
      bits: snap.bitmap.bits,
      outOfSyncBits: snap.bitmap.countSet(),
      outOfSyncBytes: snap.bitmap.outOfSyncBytes(),
    },
  };
}

/** Extents as ranges: `0-3,17,40-41`, so a busy log stays one line. */
function formatExtents(extents: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < extents.length; ) {
    let j = i;
    while (j + 1 < extents.length && extents[j + 1] === extents[j]! + 1) j++;
    parts.push(i === j ? `${extents[i]}` : `${extents[i]}-${extents[j]}`);
    i = j + 1;
  }
  return parts.length > 0 ? parts.join(',') : '(none)';
}

export function dumpMetaText(snap: MetaSnapshot): string {
  const j = dumpMetaJson(snap);
  const lines = [
    `# tandem metadata, format version ${j.version}`,
    `meta-disk ${j.kind}; superblock copy ${j.superblockCopy}, sequence ${j.sequence}`,
    `data-size ${formatBytes(j.sizes.dataBytes)}`,
    `meta-area ${formatBytes(j.sizes.metaBytes)} at offset ${j.sizes.metaOffsetBytes}`,
    `bitmap ${j.sizes.bitmapBytesPerBit} bytes per bit; al-extent ${j.sizes.alExtentBytes} bytes; al-extents ${j.sizes.alSlots}`,
    `node-id ${j.nodeId}`,
    `meta-id ${j.metaId}`,
    `uuid current ${j.uuids.current} bitmap ${j.uuids.bitmap} history ${j.uuids.history.join(' ')}`,
    `flags ${j.flags.length > 0 ? j.flags.join(' ') : '(none)'}`,
    `activity-log ${j.activityLog.extents.length} extents${j.activityLog.complete ? '' : ' (INCOMPLETE: full resync needed)'}: ` +
      formatExtents(j.activityLog.extents),
    `out-of-sync ${j.bitmap.outOfSyncBits} of ${j.bitmap.bits} blocks: ${formatBytes(j.bitmap.outOfSyncBytes)}`,
  ];
  return `${lines.join('\n')}\n`;
}
