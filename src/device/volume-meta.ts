// What a replicated volume needs from its metadata, and nothing more: flags,
// generation UUIDs, the activity log around writes, and the out-of-sync
// bitmap. src/meta implements it on disk; tests may use a fake.

export interface MetaFlags {
  readonly consistent: boolean;
  readonly wasUpToDate: boolean;
  readonly peerOutdated: boolean;
  readonly primary: boolean;
  /** Not shut down cleanly while Primary (DRBD's MDF_CRASHED_PRIMARY); cleared by the next sync handshake. */
  readonly crashedPrimary: boolean;
}

/** DRBD's generation UUIDs: UI_CURRENT, UI_BITMAP, UI_HISTORY_START/END. */
export interface Uuids {
  readonly current: bigint;
  readonly bitmap: bigint;
  readonly history: readonly [bigint, bigint];
}

/** A run of out-of-sync blocks, in bits and in data bytes (clipped to the data size). */
export interface OutOfSyncRun {
  readonly firstBit: number;
  readonly bitCount: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

export interface VolumeMeta {
  /** Bytes the application may use (the backing disk less internal metadata). */
  readonly dataBytes: number;
  flags(): MetaFlags;
  /** What opening found: an orderly shutdown, or a crash whose activity log was replayed. */
  recovery(): { readonly cleanShutdown: boolean; readonly alExtents: number; readonly alComplete: boolean };
  /** Writes the superblock crash-safely (alternate copies, flushed) with these flags changed. */
  setFlags(patch: Partial<MetaFlags>): Promise<void>;
  /** DRBD's new current UUID: a new data generation starts (on promotion with --force, on writes while alone). */
  newCurrentUuid(): Promise<void>;
  /**
   * Makes the activity log cover [offset, offset+length) before the data is written.
   * Returns undefined when it already does (the common case: no await on the hot path).
   */
  beginWrite(offset: number, length: number): Promise<void> | undefined;
  /**
   * beginWrite when the activity log covers the range already: true; false, with
   * nothing changed, when a transaction or a wait would be needed. Throws when the
   * metadata has failed.
   */
  beginWriteActive(offset: number, length: number): boolean;
  endWrite(offset: number, length: number): void;
  /** `f` runs when a write waits because every activity-log slot is in use (MetaStore.onAlStarved). */
  onAlStarved(f: () => void): void;
  markOutOfSync(offset: number, length: number): void;
  /** Everything out of sync, crash-safely (a crash half-way redoes it on open). */
  requestFullSync(): Promise<void>;
  outOfSyncBytes(): number;
  uuids(): Uuids;
  /** Writes the superblock crash-safely with these UUIDs changed. */
  setUuids(patch: Partial<Uuids>): Promise<void>;
  /** Bits in the out-of-sync bitmap (one per 4 KiB of data). */
  readonly bitCount: number;
  /** The bitmap's bytes (bit n at byte n/8, bit n%8); a live view: do not modify. */
  bitmapBytes(): Uint8Array;
  /** Sets bits [first, first+count) (the peer's bitmap is ORed in). */
  setBits(first: number, count: number): void;
  /** Marks whole 4 KiB blocks inside the range in sync; returns how many bits were cleared. */
  markInSync(offset: number, length: number): number;
  /** Bits set. */
  dirtyBits(): number;
  /** The first run of set bits at or after `startBit`. */
  nextDirtyRun(startBit: number, bitCountMax: number): OutOfSyncRun | undefined;
  /** Persists dirty bitmap pages. */
  flush(): Promise<void>;
  /** Metadata updates since the disk was attached: activity-log transactions and bitmap pages written. */
  metaWrites(): { readonly activityLog: number; readonly bitmapPages: number };
  /** Persists everything; `clean` records an orderly shutdown (no AL replay needed). */
  close(clean: boolean): Promise<void>;
}
