// What a replicated volume needs from its metadata, and nothing more: flags,
// generation UUIDs, the activity log around writes, and the out-of-sync
// bitmap. src/meta implements it on disk; tests may use a fake.

export interface MetaFlags {
  readonly consistent: boolean;
  readonly wasUpToDate: boolean;
  readonly peerOutdated: boolean;
  readonly primary: boolean;
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
  endWrite(offset: number, length: number): void;
  markOutOfSync(offset: number, length: number): void;
  /** Everything out of sync, crash-safely (a crash half-way redoes it on open). */
  requestFullSync(): Promise<void>;
  outOfSyncBytes(): number;
  /** Persists dirty bitmap pages. */
  flush(): Promise<void>;
  /** Persists everything; `clean` records an orderly shutdown (no AL replay needed). */
  close(clean: boolean): Promise<void>;
}
