// MetaStore: tandem's metadata on a device, kept crash-safe. Superblock updates go to
// the older of two copies and are flushed; the activity log is written one transaction
// at a time, after the bitmap pages of evicted extents; bitmap pages go back when dirty.
import assert from 'node:assert/strict';
import { ActivityLog, type AlWrite } from './activity-log.js';
import { type Bitmap, bitmapPageBytes } from './bitmap.js';
import {
  checkAlSlots,
  createMeta,
  type MetaDevice,
  type MetaStoreOptions,
  metaWriteBytesMax,
} from './create.js';
import { MetaError } from './errors.js';
import { alExtentBytes, alTransactionBytes, type MetaLayout } from './layout.js';
import { readMeta } from './read.js';
import {
  copyForSeq,
  decodeSuperblock,
  encodeSuperblock,
  flagsFromBits,
  flagsToBits,
  type Superblock,
  type SuperblockFlags,
} from './superblock.js';

export { createMeta, type MetaDevice, type MetaStoreOptions, newUuid, uuidJustCreated } from './create.js';
export { detectExisting, type ExistingMeta, readMeta } from './read.js';
export { hasFilesystemSignature, signatureScanBytes } from './signatures.js';

export type SuperblockPatch = Partial<Omit<Superblock, 'seq' | 'flags' | 'metaId'>> & {
  readonly flags?: Partial<SuperblockFlags>;
};

export interface Recovery {
  /** The metadata was closed cleanly last time. */
  readonly cleanShutdown: boolean;
  /** Extents of the activity log marked out of sync (writes may have been in flight there). */
  readonly alExtents: readonly number[];
  /** False when the log could not be read whole, and the whole bitmap was set instead. */
  readonly alComplete: boolean;
  /** A full sync had been requested and was finished here. */
  readonly fullSyncRedone: boolean;
}

export class MetaStore {
  readonly layout: MetaLayout;
  readonly bitmap: Bitmap;
  readonly recovery: Recovery;
  private readonly device: MetaDevice;
  private sb: Superblock;
  private readonly al: ActivityLog;
  /** Serializes superblock writes: each must know the sequence of the last. */
  private sbChain: Promise<unknown> = Promise.resolve();
  /** Serializes bitmap write-backs: a flush must not return while an earlier one is still writing. */
  private bitmapChain: Promise<unknown> = Promise.resolve();
  private alInFlight: Promise<void> | undefined;
  private alWaiters: (() => void)[] = [];
  /**
   * Called when a write finds every activity-log slot held by writes in flight
   * and must wait for one to end. With a peer, extents are held until the peer
   * confirms an epoch, so the replicator closes the epoch at once (DRBD likewise
   * sends its barrier early when the log starves).
   */
  onAlStarved: (() => void) | undefined;
  /** After a failed metadata write nothing more is written: the caller must detach. */
  private failed: Error | undefined;
  private closed = false;
  private readonly flushData: (() => Promise<void>) | undefined;

  private constructor(
    device: MetaDevice,
    layout: MetaLayout,
    sb: Superblock,
    bitmap: Bitmap,
    al: ActivityLog,
    recovery: Recovery,
    flushData: (() => Promise<void>) | undefined,
  ) {
    this.flushData = flushData;
    this.device = device;
    this.layout = layout;
    this.sb = sb;
    this.bitmap = bitmap;
    this.al = al;
    this.recovery = recovery;
  }

  /** `create-md`; see createMeta. */
  static create(device: MetaDevice, layout: MetaLayout, options: MetaStoreOptions = {}): Promise<Superblock> {
    return createMeta(device, layout, options);
  }

  /**
   * Loads and verifies the metadata, then recovers: the activity log's extents (or,
   * if the log is unreadable, everything) are marked out of sync and written back, an
   * interrupted full sync is finished, the log is emptied and the clean flag cleared.
   */
  static async open(
    device: MetaDevice,
    layout: MetaLayout,
    options: MetaStoreOptions = {},
  ): Promise<MetaStore> {
    const snap = await readMeta(device, layout);
    const alSlots = options.alSlots ?? snap.superblock.alSlots;
    checkAlSlots(alSlots);
    const bitmap = snap.bitmap;
    if (snap.al.complete) {
      for (const extent of snap.al.extents) {
        const offset = extent * alExtentBytes;
        if (offset < layout.dataBytes)
          bitmap.setRange(offset, Math.min(alExtentBytes, layout.dataBytes - offset));
      }
    } else {
      bitmap.setAll();
    }
    const fullSync = snap.superblock.flags.fullSync;
    if (fullSync) bitmap.setAll();
    const recovery: Recovery = {
      cleanShutdown: snap.superblock.flags.cleanShutdown,
      alExtents: snap.al.extents,
      alComplete: snap.al.complete,
      fullSyncRedone: fullSync,
    };
    const al = new ActivityLog(alSlots, snap.superblock.metaId, snap.al.lastSeq);
    const store = new MetaStore(device, layout, snap.superblock, bitmap, al, recovery, options.flushData);
    // The bits must be durable before the log that justified them is emptied.
    await store.flushBitmap();
    await store.writeAl(al.reset());
    // DRBD's MDF_CRASHED_PRIMARY: a Primary that did not shut down cleanly; kept until a
    // sync handshake with the peer has dealt with it.
    const crashedPrimary =
      snap.superblock.flags.crashedPrimary ||
      (!snap.superblock.flags.cleanShutdown && snap.superblock.flags.primaryIndicator);
    await store.updateSuperblock({
      alSlots,
      flags: { cleanShutdown: false, fullSync: false, crashedPrimary },
    });
    return store;
  }

  get superblock(): Superblock {
    return this.sb;
  }

  /** Active AL extents, least recently used first. */
  alActive(): number[] {
    return this.al.active();
  }

  /** Writes a new superblock (sequence + 1) to the other copy and flushes. */
  updateSuperblock(patch: SuperblockPatch): Promise<Superblock> {
    const next = this.sbChain.then(async () => {
      this.check();
      const sb: Superblock = {
        ...this.sb,
        ...patch,
        // Through the bit encoding, so the flags in memory are exactly what is on disk.
        flags: flagsFromBits(flagsToBits({ ...this.sb.flags, ...patch.flags })),
        seq: this.sb.seq + 1,
      };
      const block = encodeSuperblock(sb);
      // Validate right before the write: what we write must read back as what we meant.
      assert.deepEqual(decodeSuperblock(block), sb);
      await this.guard(async () => {
        await this.device.write(block, this.layout.superblockOffsets[copyForSeq(sb.seq)]);
        await this.device.flush();
      });
      this.sb = sb;
      return sb;
    });
    this.sbChain = next.catch(() => undefined);
    return next;
  }

  /** Marks data out of sync in memory (rounding out to 4 KiB); flushBitmap() persists it. */
  markOutOfSync(offsetBytes: number, lengthBytes: number): number {
    return this.bitmap.setRange(offsetBytes, lengthBytes);
  }

  /** Marks data in sync in memory (only whole 4 KiB blocks). */
  markInSync(offsetBytes: number, lengthBytes: number): number {
    return this.bitmap.clearRange(offsetBytes, lengthBytes);
  }

  /**
   * Writes the changed bitmap pages, consecutive ones together, then flushes. When it
   * returns, every bit set before the call is durable, also those an overlapping
   * call took.
   */
  flushBitmap(): Promise<void> {
    const next = this.bitmapChain.then(() => this.writeDirtyPages());
    this.bitmapChain = next.catch(() => undefined);
    return next;
  }

  /** Activity-log transactions written since open (/proc/drbd `al:`). */
  alWrites = 0;
  /** Bitmap pages written since open (/proc/drbd `bm:`). */
  bitmapPageWrites = 0;

  private async writeDirtyPages(): Promise<void> {
    this.check();
    const pages = this.bitmap.takeDirtyPages();
    const runMax = metaWriteBytesMax / bitmapPageBytes;
    try {
      for (let i = 0; i < pages.length; ) {
        let n = 1;
        while (i + n < pages.length && n < runMax && pages[i + n] === pages[i]! + n) n++;
        const first = pages[i]!;
        // A copy: the pages may change while the thread pool writes them.
        const piece = Buffer.from(
          this.bitmap.encode().subarray(first * bitmapPageBytes, (first + n) * bitmapPageBytes),
        );
        await this.guard(() =>
          this.device.write(piece, this.layout.bitmapOffsetBytes + first * bitmapPageBytes),
        );
        this.bitmapPageWrites += n;
        i += n;
      }
      if (pages.length > 0) await this.guard(() => this.device.flush());
    } catch (e) {
      this.bitmap.markPagesDirty(pages);
      throw e;
    }
  }

  /** Before writes to `extents` (distinct AL extents): records them in the activity log if needed. */
  async alBegin(extents: readonly number[]): Promise<void> {
    for (;;) {
      this.check();
      const r = this.al.begin(extents);
      if (r.kind === 'active') return;
      if (r.kind === 'transaction') return this.writeAl(r.write);
      // 'wait': a transaction is in flight; 'full': every slot has writes in flight.
      const inFlight = r.kind === 'wait' ? this.alInFlight : undefined;
      if (r.kind === 'full') this.onAlStarved?.();
      await (inFlight ?? new Promise<void>((resolve) => this.alWaiters.push(resolve)));
    }
  }

  /**
   * alBegin for the write path: undefined, with no promise to await, when the
   * extents are already active (nearly every write); else the transaction or wait.
   * Throws at once when the store has failed or is closed.
   */
  tryAlBegin(extents: readonly number[]): Promise<void> | undefined {
    this.check();
    const r = this.al.begin(extents);
    if (r.kind === 'active') return undefined;
    if (r.kind === 'transaction') return this.writeAl(r.write);
    // 'wait' and 'full' changed nothing: alBegin's loop waits and retries.
    return this.alBegin(extents);
  }

  /** alBegin when the extents are already active: true, or false having changed nothing. Throws when the store has failed. */
  alBeginActive(extents: readonly number[]): boolean {
    this.check();
    return this.al.beginActive(extents);
  }

  /** A write in `extent` finished (after alBegin). */
  alComplete(extent: number): void {
    this.al.complete(extent);
    this.wakeAlWaiters();
  }

  /**
   * Marks everything out of sync, crash-safely: the fullSync flag first, so a crash
   * half-way through writing the bitmap redoes it on open. DRBD's MDF_FULL_SYNC.
   */
  async requestFullSync(): Promise<void> {
    await this.updateSuperblock({ flags: { fullSync: true } });
    this.bitmap.setAll();
    await this.flushBitmap();
    await this.updateSuperblock({ flags: { fullSync: false } });
  }

  /** Clean shutdown: bitmap written, log emptied, clean flag set. Every alBegin must have its alComplete. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.alInFlight;
    await this.flushBitmap();
    await this.writeAl(this.al.reset());
    await this.updateSuperblock({ flags: { cleanShutdown: true } });
    this.closed = true;
    this.wakeAlWaiters();
  }

  private async writeAl(w: AlWrite): Promise<void> {
    const done = (async () => {
      // Before the log forgets an extent: its data must be on stable storage (a crash
      // would otherwise lose writes there that the peer has, and nothing would resync
      // them), and, as DRBD does, its bitmap written (the only record left of blocks the
      // peer may not have).
      if (w.evicted.length > 0) {
        // Part of the log write, as DRBD's REQ_PREFLUSH is part of its metadata write: a
        // failure is a metadata I/O error (the disk is detached whatever on-io-error
        // says), and the log, which cannot go on without it, is failed.
        if (this.flushData) await this.guard(this.flushData);
        await this.flushBitmap();
      }
      await this.guard(async () => {
        await this.device.write(w.block, this.layout.alOffsetBytes + w.ringIndex * alTransactionBytes);
        await this.device.flush();
      });
      this.alWrites++;
      this.al.committed(w.seq);
    })();
    this.alInFlight = done.catch(() => undefined);
    try {
      await done;
    } finally {
      this.alInFlight = undefined;
      this.wakeAlWaiters();
    }
  }

  private wakeAlWaiters(): void {
    const waiters = this.alWaiters;
    this.alWaiters = [];
    for (const w of waiters) w();
  }

  private check(): void {
    if (this.failed) throw this.failed;
    if (this.closed) throw new MetaError('META_CLOSED', 'metadata store is closed');
  }

  private async guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      this.failed ??= e instanceof Error ? e : new Error(String(e));
      throw e;
    }
  }
}
