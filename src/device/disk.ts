// Opens a volume's backing disk and metadata device as the configuration
// says (internal, external flexible, external indexed), computes the layout,
// and adapts the metadata store to what the device layer needs.
import type { ResolvedVolume } from '../config/drbd-model.js';
import { bitmapBytesPerBit, computeLayout, extentsOf, type MetaLayout } from '../meta/layout.js';
import { MetaStore, newUuid } from '../meta/store.js';
import { FileStorage } from '../storage/file.js';
import type { BlockStorage } from '../storage/storage.js';
import { StorageView } from '../storage/view.js';
import type { MetaFlags, VolumeMeta } from './volume-meta.js';

export interface OpenedDisk {
  readonly layout: MetaLayout;
  /** The device that holds the metadata (the backing disk itself when internal). */
  readonly metaDevice: BlockStorage;
  /** The application's data: [0, layout.dataBytes) of the backing disk. */
  readonly data: BlockStorage;
  close(): Promise<void>;
}

export interface OpenDiskOptions {
  readonly direct?: boolean;
}

/** Opens backing disk (and external meta disk) of `v`; nothing is read or written yet. */
export async function openDisk(v: ResolvedVolume, options: OpenDiskOptions = {}): Promise<OpenedDisk> {
  if (v.disk === 'none') throw new Error(`volume ${v.number} is diskless ('disk none')`);
  const backing = await FileStorage.open(v.disk, { direct: options.direct ?? false });
  let metaDevice: BlockStorage | undefined;
  let layout: MetaLayout;
  try {
    // Metadata through its own O_DSYNC descriptor, also when internal: a metadata
    // write is then durable by itself, without writing back the data's dirty pages.
    if (v.metaDisk.kind === 'internal') {
      layout = computeLayout({ kind: 'internal', backingBytes: backing.sizeBytes });
      metaDevice = await FileStorage.open(v.disk, { dsync: true });
    } else {
      metaDevice = await FileStorage.open(v.metaDisk.path, { dsync: true });
      layout =
        v.metaDisk.index === undefined
          ? computeLayout({
              kind: 'external-flexible',
              backingBytes: backing.sizeBytes,
              metaDeviceBytes: metaDevice.sizeBytes,
            })
          : computeLayout({
              kind: 'external-indexed',
              backingBytes: backing.sizeBytes,
              metaDeviceBytes: metaDevice.sizeBytes,
              index: v.metaDisk.index,
            });
    }
  } catch (e) {
    await backing.close();
    await metaDevice?.close();
    throw e;
  }
  const data = new StorageView(backing, 0, layout.dataBytes);
  const meta = metaDevice;
  return {
    layout,
    metaDevice: meta,
    data,
    async close() {
      await backing.close();
      await meta.close();
    },
  };
}

/** The metadata store as the device layer sees it. */
export function volumeMeta(store: MetaStore, disk: OpenedDisk): VolumeMeta {
  const flagsOf = (): MetaFlags => {
    const f = store.superblock.flags;
    return {
      consistent: f.consistent,
      wasUpToDate: f.wasUpToDate,
      peerOutdated: f.peerOutdated,
      primary: f.primaryIndicator,
      crashedPrimary: f.crashedPrimary,
    };
  };
  return {
    dataBytes: store.layout.dataBytes,
    flags: flagsOf,
    recovery: () => ({
      cleanShutdown: store.recovery.cleanShutdown,
      alExtents: store.recovery.alExtents.length,
      alComplete: store.recovery.alComplete,
    }),
    async setFlags(patch) {
      const now = flagsOf();
      const next = { ...now, ...patch };
      if (
        next.consistent === now.consistent &&
        next.wasUpToDate === now.wasUpToDate &&
        next.peerOutdated === now.peerOutdated &&
        next.primary === now.primary &&
        next.crashedPrimary === now.crashedPrimary
      ) {
        return;
      }
      await store.updateSuperblock({
        flags: {
          consistent: next.consistent,
          wasUpToDate: next.wasUpToDate,
          peerOutdated: next.peerOutdated,
          primaryIndicator: next.primary,
          crashedPrimary: next.crashedPrimary,
        },
      });
    },
    async newCurrentUuid() {
      const sb = store.superblock;
      // DRBD _drbd_uuid_new_current: the old current becomes the bitmap UUID. Called on
      // promotion only, so bit 0 says "started by a Primary" (after-sb discard-*-primary).
      await store.updateSuperblock({
        bitmapUuid: sb.bitmapUuid === 0n ? sb.currentUuid : sb.bitmapUuid,
        currentUuid: newUuid() | 1n,
      });
    },
    beginWrite(offset, length) {
      return store.tryAlBegin(extentsOf(offset, length));
    },
    beginWriteActive(offset, length) {
      return store.alBeginActive(extentsOf(offset, length));
    },
    endWrite(offset, length) {
      for (const e of extentsOf(offset, length)) store.alComplete(e);
    },
    onAlStarved(f) {
      store.onAlStarved = f;
    },
    markOutOfSync(offset, length) {
      store.markOutOfSync(offset, length);
    },
    requestFullSync: () => store.requestFullSync(),
    uuids() {
      const sb = store.superblock;
      return { current: sb.currentUuid, bitmap: sb.bitmapUuid, history: sb.historyUuids };
    },
    async setUuids(patch) {
      await store.updateSuperblock({
        ...(patch.current === undefined ? {} : { currentUuid: patch.current }),
        ...(patch.bitmap === undefined ? {} : { bitmapUuid: patch.bitmap }),
        ...(patch.history === undefined ? {} : { historyUuids: patch.history }),
      });
    },
    bitCount: store.bitmap.bits,
    bitmapBytes: () => store.bitmap.encode(),
    setBits(first, count) {
      store.bitmap.setBits(first, count);
    },
    markInSync: (offset, length) => store.markInSync(offset, length),
    dirtyBits: () => store.bitmap.countSet(),
    nextDirtyRun(startBit, bitCountMax) {
      const run = store.bitmap.dirtyRuns(startBit).next();
      if (run.done) return undefined;
      const r = run.value;
      if (r.bitCount <= bitCountMax) return r;
      const offsetBytes = r.offsetBytes;
      const lengthBytes = Math.min(bitCountMax * bitmapBytesPerBit, r.lengthBytes);
      return { firstBit: r.firstBit, bitCount: bitCountMax, offsetBytes, lengthBytes };
    },
    outOfSyncBytes: () => store.bitmap.outOfSyncBytes(),
    flush: () => store.flushBitmap(),
    metaWrites: () => ({ activityLog: store.alWrites, bitmapPages: store.bitmapPageWrites }),
    async close(clean) {
      try {
        if (clean) await store.close();
      } finally {
        await disk.close();
      }
    },
  };
}

/** The opener tandemd uses: real files, metadata opened and recovered. */
export async function openVolume(
  v: ResolvedVolume,
  alSlots: number | undefined,
): Promise<{ data: BlockStorage; meta: VolumeMeta }> {
  const disk = await openDisk(v);
  try {
    const store = await MetaStore.open(disk.metaDevice, disk.layout, {
      ...(alSlots === undefined ? {} : { alSlots }),
      flushData: () => disk.data.flush(),
    });
    return { data: disk.data, meta: volumeMeta(store, disk) };
  } catch (e) {
    await disk.close();
    throw e;
  }
}
