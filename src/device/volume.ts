// One volume of a replicated resource on this node: its backing disk and
// metadata, its disk state, and its block device as an NBD export. Only a
// Primary serves I/O. Replication to the peer hooks in here (later issue).
import type { ResolvedVolume } from '../config/drbd-model.js';
import { MetaError } from '../meta/errors.js';
import type { NbdExport } from '../nbd/export.js';
import { type BlockStorage, StorageError } from '../storage/storage.js';
import type { Logger } from '../util/log.js';
import { RangeLock } from '../util/range-lock.js';
import { type DiskState, diskStateOnAttach, type Role } from './state.js';
import type { VolumeMeta } from './volume-meta.js';

export interface VolumeHost {
  readonly resourceName: string;
  role(): Role;
  /** Primary and not being demoted: only then are requests served. */
  serving(): boolean;
  /**
   * Counts forced demotions (`secondary --force`): an application request that began
   * before one must not complete as if served (it fails with EIO).
   */
  forcedDemotions(): number;
  /** `disk { on-io-error }`: what a failed disk I/O does. */
  onIoError(): 'pass_on' | 'call-local-io-error' | 'detach';
  fencing(): string;
  log: Logger;
  /** The replication engine, when the resource has one (tandemd; not in one-node unit tests). */
  peer(): VolumePeer | undefined;
  /** The disk state changed by itself (an I/O error): the peer's view must follow. */
  diskChanged?(): void;
  /** An application write completed after `seconds` (when someone measures). */
  writeDone?(seconds: number): void;
}

/** What an application request needs of the replication engine (src/device/replicator.ts). */
export interface VolumePeer {
  writeGate(volume: number): Promise<void> | undefined;
  /** `forget` is called when the peer has confirmed the write (or it was marked out of sync). */
  replicateWrite(
    volume: number,
    buf: Buffer,
    offset: number,
    fua: boolean,
    forget?: () => void,
  ): Promise<boolean> | undefined;
  writeCompleted(): void;
  /** Closes the current epoch now: the activity log waits for extents the peer has not confirmed. */
  closeEpochNow(): void;
  /** While fencing holds writes: settles when they may go on. */
  whenResumed(): Promise<void> | undefined;
  replicateFlush(): Promise<boolean> | undefined;
}

/** The volume's /proc/drbd counters that are local (bytes; tandemadm shows KiB). */
export interface LocalCounters {
  diskWrittenBytes: number;
  diskReadBytes: number;
}

/** Opens the backing disk and its metadata; injected so tests can use memory or faulty storage. */
export type VolumeOpener = (cfg: ResolvedVolume) => Promise<{ data: BlockStorage; meta: VolumeMeta }>;

const zeroChunkBytes = 1024 * 1024;

const nbdEPERM = 1;
const nbdEIO = 5;

/** A request refused before it reaches the disk; the NBD session answers with `nbdErrno`. */
function requestRefused(message: string, nbdErrno: number): Error {
  return Object.assign(new Error(message), { nbdErrno });
}

export class Volume implements NbdExport {
  readonly cfg: ResolvedVolume;
  readonly name: string;
  private readonly host: VolumeHost;
  private readonly opener: VolumeOpener;
  private data: BlockStorage | undefined;
  meta: VolumeMeta | undefined;
  disk: DiskState = 'Diskless';
  diskReason: string | undefined;
  clients = 0;
  private zeroes: Buffer | undefined;
  /** Orders overlapping writes (application, peer, resync) on this volume. */
  readonly ranges = new RangeLock();
  readonly localCounters: LocalCounters = { diskWrittenBytes: 0, diskReadBytes: 0 };
  /** Application requests under way. */
  private appRequests = 0;

  constructor(host: VolumeHost, cfg: ResolvedVolume, opener: VolumeOpener) {
    this.host = host;
    this.cfg = cfg;
    this.opener = opener;
    // proto.md export names: the resource, and RES/N for volumes after the first.
    this.name = cfg.number === 0 ? host.resourceName : `${host.resourceName}/${cfg.number}`;
  }

  get description(): string {
    return `tandem ${this.name} (${this.cfg.device.path})`;
  }

  get number(): number {
    return this.cfg.number;
  }

  appInFlight(): number {
    return this.appRequests;
  }

  get sizeBytes(): number {
    return this.meta?.dataBytes ?? 0;
  }

  readonly readOnly = false;

  refusal(): string | undefined {
    if (!this.host.serving()) {
      return `resource '${this.host.resourceName}' is ${this.host.role()}: only the Primary serves I/O (tandemadm primary ${this.host.resourceName})`;
    }
    if (!this.data)
      return `resource '${this.host.resourceName}' volume ${this.cfg.number} has no disk (${this.disk})`;
    return undefined;
  }

  clientOpened(): void {
    this.clients++;
  }

  clientClosed(): void {
    this.clients--;
  }

  async attach(): Promise<void> {
    if (this.data) return;
    this.disk = 'Attaching';
    try {
      const { data, meta } = await this.opener(this.cfg);
      this.data = data;
      this.meta = meta;
      meta.onAlStarved(() => this.host.peer()?.closeEpochNow());
      this.disk = diskStateOnAttach(meta.flags(), this.host.fencing());
      this.diskReason = undefined;
      this.host.log.log('info', `attached ${this.cfg.disk}: ${this.disk}, ${meta.dataBytes} bytes`, {
        volume: this.cfg.number,
      });
      const r = meta.recovery();
      if (!r.cleanShutdown) {
        this.host.log.log(
          'warn',
          r.alComplete
            ? `not shut down cleanly: ${r.alExtents} activity-log extent(s) of 4 MiB marked out of sync`
            : 'not shut down cleanly and the activity log was unreadable: everything marked out of sync',
          { volume: this.cfg.number },
        );
      }
    } catch (e) {
      this.disk = 'Diskless';
      this.diskReason = (e as Error).message;
      // drbdadm's advice for a disk without metadata.
      if (e instanceof MetaError && e.code === 'META_NOT_FOUND') {
        this.diskReason = `${this.cfg.disk}: no valid tandem metadata found (${e.message}); run 'tandemadm create-md ${this.host.resourceName}' first`;
        throw new Error(this.diskReason);
      }
      throw e;
    }
  }

  async detach(clean: boolean): Promise<void> {
    // New requests fail from here on; those under way finish on the disk first.
    this.detaching = true;
    try {
      await this.drained();
    } finally {
      this.detaching = false;
    }
    const data = this.data;
    const meta = this.meta;
    this.data = undefined;
    this.meta = undefined;
    this.disk = 'Diskless';
    try {
      await meta?.close(clean);
    } finally {
      await data?.close();
    }
  }

  /** The seed's `primary --force`: this copy becomes the reference, the peer's is to be overwritten. */
  async forcePrimary(): Promise<void> {
    const meta = this.meta as VolumeMeta;
    await meta.newCurrentUuid();
    await meta.requestFullSync();
    await meta.setFlags({ consistent: true, wasUpToDate: true, primary: true });
    this.disk = 'UpToDate';
  }

  /** A disk state change the replication engine decided (sync start/end, in sync with the peer). */
  async setDisk(state: DiskState, reason?: string): Promise<void> {
    const meta = this.meta;
    if (meta === undefined || this.disk === 'Diskless' || this.disk === 'Failed') return;
    if (state === 'UpToDate') await meta.setFlags({ consistent: true, wasUpToDate: true });
    else if (state === 'Inconsistent') await meta.setFlags({ consistent: false });
    else if (state === 'Outdated') await meta.setFlags({ consistent: true, wasUpToDate: false });
    if (this.disk !== state) {
      this.host.log.log('info', `disk ${this.disk} -> ${state}${reason ? ` (${reason})` : ''}`, {
        volume: this.cfg.number,
      });
    }
    this.disk = state;
    this.diskReason = reason;
  }

  /** The disk for tandem's own I/O (peer writes, resync, verify): no role check. */
  private localDisk(): BlockStorage {
    const d = this.data;
    if (!d || this.disk === 'Failed' || this.detaching)
      throw requestRefused(`volume ${this.name} has no disk (${this.disk})`, nbdEIO);
    return d;
  }

  readLocal(buf: Buffer, offset: number): Promise<void> {
    return this.tracked(async () => {
      try {
        await this.localDisk().read(buf, offset);
        this.localCounters.diskReadBytes += buf.length;
      } catch (e) {
        this.ioFailed(e);
      }
    });
  }

  writeLocal(buf: Uint8Array, offset: number, fua: boolean): Promise<void> {
    return this.tracked(async () => {
      const d = this.localDisk();
      try {
        await d.write(buf, offset);
        if (fua) await d.flush();
        this.localCounters.diskWrittenBytes += buf.length;
      } catch (e) {
        this.ioFailed(e);
      }
    });
  }

  /**
   * writeLocal without FUA, done before it returns where the disk takes the write at
   * once (see writeFast): true. False, with nothing done, where it does not. Throws
   * what writeLocal would reject with.
   */
  writeLocalAtOnce(buf: Uint8Array, offset: number): boolean {
    const d = this.data;
    if (d?.writeSync === undefined || d.writesSync?.(buf.length) !== true) return false;
    this.localDisk();
    try {
      d.writeSync(buf, offset);
      this.localCounters.diskWrittenBytes += buf.length;
    } catch (e) {
      this.ioFailed(e);
    }
    return true;
  }

  flushLocal(): Promise<void> {
    return this.tracked(async () => {
      try {
        await this.localDisk().flush();
      } catch (e) {
        this.ioFailed(e);
      }
    });
  }

  async setPrimaryFlag(primary: boolean): Promise<void> {
    await this.meta?.setFlags({ primary });
  }

  /** The disk for a client request; refuses when not serving or without a disk. */
  private storage(): BlockStorage {
    // A connection opened while Primary must not write once the node is (being made) Secondary.
    if (!this.host.serving()) throw requestRefused(`resource is ${this.host.role()}`, nbdEPERM);
    const d = this.data;
    // DRBD with no local disk and no peer: the request fails with EIO. Not a
    // StorageError: it is no fault of the disk, and on-io-error must not act on it.
    if (!d || this.disk === 'Failed' || this.detaching)
      throw requestRefused(`volume ${this.name} has no disk (${this.disk})`, nbdEIO);
    return d;
  }

  /**
   * on-io-error: `detach` gives up the disk (DRBD goes Diskless); `pass_on` only fails the request.
   * A metadata error detaches whatever the policy: DRBD's __drbd_chk_io_error_ lets
   * DRBD_META_IO_ERROR fall through from EP_PASS_ON to EP_DETACH.
   */
  private ioFailed(e: unknown, onMeta = false): never {
    if (e instanceof StorageError && e.code !== 'ECLOSED' && e.code !== 'EINVAL') {
      const policy = onMeta ? 'detach' : this.host.onIoError();
      const kind = onMeta ? 'metadata I/O error' : 'I/O error';
      this.host.log.log('error', `${kind} on ${this.cfg.disk}: ${e.message} (on-io-error ${policy})`, {
        volume: this.cfg.number,
      });
      if (policy === 'pass_on' && this.data && this.disk === 'UpToDate') {
        // DRBD 8.4 __drbd_chk_io_error_: with pass_on the error goes up and the
        // disk can no longer be trusted to hold what was acknowledged: Inconsistent.
        this.disk = 'Inconsistent';
        this.host.diskChanged?.();
        this.diskReason = `${kind}: ${e.message}`;
        this.meta?.setFlags({ consistent: false }).catch((err: unknown) =>
          this.host.log.log('error', `cannot record Inconsistent: ${(err as Error).message}`, {
            volume: this.cfg.number,
          }),
        );
      }
      if (policy !== 'pass_on' && this.data && this.disk !== 'Failed') {
        this.disk = 'Failed';
        this.diskReason = `${kind}: ${e.message}`;
        // Not awaited by the failed request: a rejection here must not become an unhandled one (a crash).
        this.host.diskChanged?.();
        this.detach(false).then(
          () => {
            if (this.disk === 'Diskless') this.diskReason = `detached after the ${kind}: ${e.message}`;
            this.host.diskChanged?.();
          },
          (err: unknown) =>
            this.host.log.log('error', `detach after the ${kind}: ${(err as Error).message}`, {
              volume: this.cfg.number,
            }),
        );
      }
    }
    throw e;
  }

  private detaching = false;
  /** Disk requests under way; a detach waits for them before it closes the disk (DRBD stays Failed until then). */
  private inflight = 0;
  private drainedWaiters: (() => void)[] = [];

  private async tracked<T>(op: () => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await op();
    } finally {
      if (--this.inflight === 0) {
        const w = this.drainedWaiters;
        this.drainedWaiters = [];
        for (const f of w) f();
      }
    }
  }

  private drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((r) => this.drainedWaiters.push(r));
  }

  read(buf: Buffer, offset: number): Promise<void> {
    return this.tracked(async () => {
      this.appRequests++;
      try {
        await this.storage().read(buf, offset);
        this.localCounters.diskReadBytes += buf.length;
      } catch (e) {
        this.ioFailed(e);
      } finally {
        this.appRequests--;
      }
    });
  }

  /** A request that began before a forced demotion is not acknowledged: EIO. */
  private notForcedOut(since: number, what: string): void {
    if (this.host.forcedDemotions() !== since)
      throw requestRefused(
        `${what} not acknowledged: ${this.host.resourceName} was forced to Secondary while it was in flight`,
        nbdEIO,
      );
  }

  write(buf: Buffer, offset: number, fua: boolean): Promise<void> {
    return this.tracked(async () => {
      this.appRequests++;
      const since = this.host.forcedDemotions();
      const started = this.host.writeDone ? performance.now() : 0;
      try {
        await this.writeNow(buf, offset, fua);
        this.notForcedOut(since, 'write');
        this.host.writeDone?.((performance.now() - started) / 1000);
      } finally {
        this.appRequests--;
        this.host.peer()?.writeCompleted();
      }
    });
  }

  /**
   * NbdExport.writeFast. A write with nothing to wait for before the disk is done now,
   * with no promise: not FUA, its activity-log extents active, no handshake holding
   * writes, no overlapping write under way, and a disk that takes it on this thread
   * (a small buffered write: a copy into the page cache). It is writeNow's path with
   * every wait found empty; anything else goes that way.
   */
  writeFast(buf: Buffer, offset: number, fua: boolean): Promise<void> | undefined {
    const d = this.data;
    const meta = this.meta;
    const length = buf.length;
    const n = this.cfg.number;
    const peer = this.host.peer();
    if (
      fua ||
      d === undefined ||
      meta === undefined ||
      d.writeSync === undefined ||
      d.writesSync?.(length) !== true ||
      this.disk === 'Failed' ||
      this.detaching ||
      !this.host.serving() ||
      this.ranges.overlaps(offset, length) ||
      peer?.writeGate(n) !== undefined
    )
      return this.write(buf, offset, fua);
    let began: boolean;
    try {
      began = meta.beginWriteActive(offset, length);
    } catch {
      began = false; // a failed metadata store: write() reports it
    }
    if (!began) return this.write(buf, offset, fua);
    const started = this.host.writeDone ? performance.now() : 0;
    this.appRequests++;
    let remote: Promise<boolean> | undefined;
    try {
      // As in writeNow: the peer's copy leaves first, the extent then stays in the
      // activity log until the peer has it.
      remote = peer?.replicateWrite(n, buf, offset, false, () => meta.endWrite(offset, length));
      if (remote === undefined) meta.markOutOfSync(offset, length);
      try {
        d.writeSync(buf, offset);
        this.localCounters.diskWrittenBytes += length;
      } catch (e) {
        this.ioFailed(e);
      }
    } catch (e) {
      if (remote === undefined) meta.endWrite(offset, length);
      this.appRequests--;
      peer?.writeCompleted();
      // As in writeNow: the caller reuses `buf` once this fails, and the Data frame
      // may still be reading it.
      return remote === undefined ? Promise.reject(e) : remote.then(() => Promise.reject(e));
    }
    if (remote === undefined) {
      meta.endWrite(offset, length);
      this.appRequests--;
      this.host.writeDone?.((performance.now() - started) / 1000);
      peer?.writeCompleted();
      return undefined;
    }
    const since = this.host.forcedDemotions();
    return this.tracked(async () => {
      try {
        await this.peerPart(remote, meta, offset, length);
        this.notForcedOut(since, 'write');
        this.host.writeDone?.((performance.now() - started) / 1000);
      } finally {
        this.appRequests--;
        this.host.peer()?.writeCompleted();
      }
    });
  }

  /** The peer's part of a write settled: when it failed, the range is out of sync, and fencing may hold the write. */
  private async peerPart(
    remote: Promise<boolean>,
    meta: VolumeMeta,
    offset: number,
    length: number,
  ): Promise<void> {
    if (await remote) return;
    // The peer part failed (connection lost, the peer's disk failed): out of sync.
    meta.markOutOfSync(offset, length);
    // Fencing: the write is not acknowledged before the peer is known not to take
    // over with a copy that lacks it (DRBD freezes the same requests).
    const held = this.host.peer()?.whenResumed();
    if (held) await held;
  }

  private async writeNow(buf: Buffer, offset: number, fua: boolean): Promise<void> {
    const s = this.storage();
    const meta = this.meta as VolumeMeta;
    const length = buf.length;
    let al: Promise<void> | undefined;
    try {
      al = meta.beginWrite(offset, length);
    } catch (e) {
      this.ioFailed(e, true);
    }
    // The activity log covers this write until it is on our disk and the peer has
    // confirmed it: a Primary that crashes with the write in its send queue, or still
    // in the thread pool's queue, then resyncs its extent. Two holds, given back by
    // whichever part finishes last.
    let holds = 1;
    const release = (): void => {
      if (--holds === 0) meta.endWrite(offset, length);
    };
    try {
      if (al) {
        // A failed activity-log write leaves the store failed: every later write would fail too.
        await al.catch((e: unknown) => this.ioFailed(e, true));
      }
      const peer = this.host.peer();
      const n = this.cfg.number;
      let lock: ReturnType<RangeLock['acquire']>;
      for (;;) {
        const gate = peer?.writeGate(n);
        if (gate) await gate;
        // Registered now, in submission order: overlapping writes reach both disks in this order.
        lock = this.ranges.acquire(offset, length);
        if (lock.ready) await lock.ready;
        // A handshake that began while this write waited for the lock holds it again
        // (the bitmap being exchanged must not miss it), without the lock held.
        if (peer?.writeGate(n) === undefined) break;
        lock.release();
      }
      let remote: Promise<boolean> | undefined;
      let localError: unknown;
      try {
        holds++; // the peer's part: `forget` gives it back once the peer has confirmed
        remote = peer?.replicateWrite(n, buf, offset, fua, release);
        if (remote === undefined) {
          holds--;
          // The peer does not get this write: it is out of sync until a resync carries it.
          meta.markOutOfSync(offset, length);
        }
        try {
          await s.write(buf, offset);
          if (fua) await s.flush();
          this.localCounters.diskWrittenBytes += length;
        } catch (e) {
          localError = e ?? new Error('write failed');
        }
      } finally {
        lock.release();
      }
      if (localError !== undefined) {
        // The Data frame may still be reading `buf` (it is sent without a copy), and the
        // caller reuses `buf` once this fails: fail only once the frame has left.
        if (remote !== undefined) await remote;
        this.ioFailed(localError);
      }
      if (remote !== undefined) await this.peerPart(remote, meta, offset, length);
    } finally {
      release(); // our disk's part: written, failed, or never begun
    }
  }

  /** Flushes the disk for tandem itself (demotion, shutdown): no role check. */
  async flushDisk(): Promise<void> {
    await this.data?.flush();
  }

  flush(): Promise<void> {
    return this.tracked(async () => {
      this.appRequests++;
      const since = this.host.forcedDemotions();
      try {
        // Both disks at once; the peer's part is given up (and its writes marked out of
        // sync by the engine) if the connection fails.
        const remote = this.host.peer()?.replicateFlush();
        try {
          await this.storage().flush();
        } catch (e) {
          this.ioFailed(e);
        }
        // A FLUSH whose peer part failed (the link dropped) completes like a write whose
        // peer part failed: the unconfirmed writes are out of sync, and fencing holds it.
        if (remote !== undefined && !(await remote)) {
          const held = this.host.peer()?.whenResumed();
          if (held) await held;
        }
        this.notForcedOut(since, 'flush');
      } finally {
        this.appRequests--;
      }
    });
  }

  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    await this.writeZeroes(offset, length, fua);
  }

  async writeZeroes(offset: number, length: number, fua: boolean): Promise<void> {
    this.zeroes ??= Buffer.alloc(zeroChunkBytes);
    for (let done = 0; done < length; done += zeroChunkBytes) {
      const n = Math.min(zeroChunkBytes, length - done);
      await this.write(this.zeroes.subarray(0, n), offset + done, false);
    }
    if (fua) await this.flush();
  }

  outOfSyncBytes(): number {
    return this.meta?.outOfSyncBytes() ?? 0;
  }
}
