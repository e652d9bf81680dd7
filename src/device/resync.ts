// Resync, as DRBD runs it: the SyncTarget walks its out-of-sync bitmap and asks for
// blocks (ResyncRequest, or with `csums-alg` a ResyncChecksumRequest carrying the
// digest of its own copy); the SyncSource answers with the data, or "in sync" when
// the digests match. The target clears a block's bit when the data is on its disk and
// acknowledges it so the source clears its bit too.
//
// Rate: the target paces its requests with a token bucket at `resync-rate` when
// `c-plan-ahead` is 0, else at `c-max-rate` (tandem's default: no cap). The source
// yields to application I/O: while the application has requests in flight it serves
// one resync request at a time and only into a short send queue, so an application
// write never waits behind megabytes of resync data on the link.
import type { LinkClock } from '../replication/clock.js';
import { realClock, type TimerHandle } from '../replication/clock.js';
import { digestOf } from '../replication/digest.js';
import type { FrameOf } from '../replication/frames.js';
import type { PeerLink } from '../replication/link.js';
import { resyncDataFlagBits } from '../replication/messages-sync.js';
import type { Logger } from '../util/log.js';
import type { ReplicationSettings } from './replication-settings.js';
import type { NetCounters, ReplicaVolume } from './replicator.js';

/** Largest resync request: 1 MiB (256 bitmap bits). */
export const resyncRequestBytesMax = 1024 * 1024;
const requestBitsMax = resyncRequestBytesMax / 4096;
/** Resync bytes the target keeps requested and unanswered. */
export const resyncWindowBytes = 16 * 1024 * 1024;
/** While the application is busy, the source queues no more than this on the link. */
const busySendQueueBytes = 256 * 1024;
const zeroes = Buffer.alloc(resyncRequestBytesMax);
/** Resync sends remembered for their acks (the window holds far fewer). */
const sentMax = 1024;
/** How often a SyncTarget makes its progress durable. */
const checkpointMs = 1000;

/** Bytes per second over the last few seconds. */
class Speedometer {
  private readonly samples: { t: number; bytes: number }[] = [];
  private total = 0;
  constructor(private readonly clock: LinkClock) {}
  add(bytes: number): void {
    this.total += bytes;
    const t = this.clock.now();
    this.samples.push({ t, bytes: this.total });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 3000) this.samples.shift();
  }
  get bytesPerSecond(): number {
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    if (!a || !b || b.t - a.t < 1) return 0;
    return ((b.bytes - a.bytes) * 1000) / (b.t - a.t);
  }
  get bytes(): number {
    return this.total;
  }
}

export interface SyncProgress {
  readonly totalBytes: number;
  readonly doneBytes: number;
  readonly speedBytes: number;
}

// ---------------------------------------------------------------- target

export interface ResyncTargetOptions {
  readonly volume: ReplicaVolume;
  readonly link: PeerLink;
  readonly counters: NetCounters;
  readonly settings: ReplicationSettings;
  readonly log: Logger;
  readonly clock?: LinkClock;
  readonly done: () => void;
  readonly failed: (message: string) => void;
}

export class ResyncTarget {
  private readonly o: ResyncTargetOptions;
  private readonly clock: LinkClock;
  private readonly rateBytes: number;
  private cursorBit = 0;
  private readonly outstanding = new Map<number, number>();
  private outstandingBytes = 0;
  private totalBytes = 0;
  private readonly speed: Speedometer;
  private tokens = 0;
  private lastRefill = 0;
  private timer: TimerHandle | undefined;
  private checkpointTimer: TimerHandle | undefined;
  private stopped = false;
  private finished = false;
  /** Blocks being checksummed locally before their request goes out. */
  private preparing = 0;
  /** Resynced and acknowledged, not yet flushed: their bits are cleared at the next checkpoint. */
  private written: { offset: number; length: number }[] = [];
  private checkpointChain: Promise<void> = Promise.resolve();

  constructor(o: ResyncTargetOptions) {
    this.o = o;
    this.clock = o.clock ?? realClock;
    const s = o.settings;
    this.rateBytes = s.cPlanAhead === 0 ? s.resyncRateBytes : s.cMaxRateBytes;
    this.speed = new Speedometer(this.clock);
  }

  start(): void {
    this.scheduleCheckpoint();
    this.totalBytes = this.o.volume.meta?.outOfSyncBytes() ?? 0;
    this.lastRefill = this.clock.now();
    // A burst of a little over one request, so a slow fixed rate still starts at once.
    this.tokens = Math.min(this.rateBytes, resyncRequestBytesMax);
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.checkpointTimer !== undefined) this.clock.clearTimeout(this.checkpointTimer);
    this.checkpointTimer = undefined;
  }

  /**
   * Every second: the data written so far to stable storage, then the bitmap, so a
   * SyncTarget that dies resumes where it was (DRBD's lazy bitmap writeout) and never
   * records a block as in sync before its data is durable.
   */
  private scheduleCheckpoint(): void {
    this.checkpointTimer = this.clock.setTimeout(() => {
      this.checkpointTimer = undefined;
      if (this.stopped || this.finished) return;
      void this.checkpoint().then(() => {
        if (!this.stopped && !this.finished) this.scheduleCheckpoint();
      });
    }, checkpointMs);
  }

  progress(): SyncProgress {
    const written = this.written.reduce((n, r) => n + r.length, 0);
    const left = Math.max(0, (this.o.volume.meta?.outOfSyncBytes() ?? 0) - written);
    const total = Math.max(this.totalBytes, left);
    return { totalBytes: total, doneBytes: total - left, speedBytes: this.speed.bytesPerSecond };
  }

  /**
   * Makes what was written durable, then clears its bits and persists the bitmap: the
   * bitmap on disk never says "in sync" for data that a power loss could still take.
   * Only blocks written before the flush began are cleared.
   */
  private checkpoint(): Promise<void> {
    const run = async (): Promise<void> => {
      const v = this.o.volume;
      const batch = this.written;
      this.written = [];
      try {
        await v.flushLocal();
        for (const r of batch) v.meta?.markInSync(r.offset, r.length);
        await v.meta?.flush();
      } catch (e) {
        // Not cleared: those blocks are resynced again later, which is safe.
        this.o.log.log('warn', `resync checkpoint: ${(e as Error).message}`, { volume: v.number });
      }
    };
    const next = this.checkpointChain.then(run, run);
    this.checkpointChain = next;
    return next;
  }

  private refill(): void {
    const now = this.clock.now();
    if (Number.isFinite(this.rateBytes)) {
      // At most a quarter second of burst.
      this.tokens = Math.min(
        this.tokens + ((now - this.lastRefill) * this.rateBytes) / 1000,
        Math.max(this.rateBytes / 4, resyncRequestBytesMax),
      );
    }
    this.lastRefill = now;
  }

  private pump(): void {
    if (this.stopped || this.finished || this.timer !== undefined) return;
    const meta = this.o.volume.meta;
    if (meta === undefined) {
      this.o.failed('the SyncTarget lost its disk');
      return;
    }
    this.refill();
    while (this.outstandingBytes < resyncWindowBytes) {
      const run = meta.nextDirtyRun(this.cursorBit, requestBitsMax);
      if (run === undefined) {
        if (this.outstanding.size > 0 || this.preparing > 0) return;
        if (this.written.length > 0) {
          // Bits of written blocks are still set: make them durable and cleared first.
          void this.checkpoint().then(() => this.pump());
          return;
        }
        if (meta.dirtyBits() === 0) {
          this.finished = true;
          this.o.done();
          return;
        }
        // Bits behind the cursor (set again by the peer's OutOfSync): another pass.
        this.cursorBit = 0;
        continue;
      }
      if (Number.isFinite(this.rateBytes) && this.tokens < run.lengthBytes) {
        const waitMs = Math.max(1, ((run.lengthBytes - this.tokens) * 1000) / this.rateBytes);
        this.timer = this.clock.setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, waitMs);
        return;
      }
      if (Number.isFinite(this.rateBytes)) this.tokens -= run.lengthBytes;
      this.cursorBit = run.firstBit + run.bitCount;
      this.outstanding.set(run.offsetBytes, run.lengthBytes);
      this.outstandingBytes += run.lengthBytes;
      this.o.counters.pending++;
      if (this.o.settings.csumsAlg === '') {
        this.o.link.send({
          kind: 'ResyncRequest',
          volume: this.o.volume.number,
          body: { offset: run.offsetBytes, length: run.lengthBytes },
        });
      } else {
        void this.checksumRequest(run.offsetBytes, run.lengthBytes);
      }
    }
  }

  private async checksumRequest(offset: number, length: number): Promise<void> {
    this.preparing++;
    const v = this.o.volume;
    const lock = v.ranges.acquire(offset, length);
    try {
      if (lock.ready) await lock.ready;
      const buf = Buffer.allocUnsafe(length);
      await v.readLocal(buf, offset);
      this.o.link.send({
        kind: 'ResyncChecksumRequest',
        volume: v.number,
        body: { offset, length, digest: digestOf(this.o.settings.csumsAlg, buf) },
      });
    } catch (e) {
      // Our copy is unreadable: ask for the data instead.
      this.o.log.log('warn', `resync checksum read at ${offset}: ${(e as Error).message}`, {
        volume: v.number,
      });
      this.o.link.send({ kind: 'ResyncRequest', volume: v.number, body: { offset, length } });
    } finally {
      lock.release();
      this.preparing--;
    }
  }

  onFrame(frame: FrameOf<'ResyncData'> | FrameOf<'ResyncInSync'> | FrameOf<'ResyncFailed'>): void {
    const { offset, length } = frame.body;
    if (this.outstanding.get(offset) !== length) {
      this.o.failed(`${frame.kind} for ${offset}+${length}, which was not requested`);
      return;
    }
    if (frame.kind === 'ResyncFailed') {
      this.o.failed(`the SyncSource could not read ${offset}+${length} (errno ${frame.body.error})`);
      return;
    }
    if (frame.kind === 'ResyncInSync') {
      // Our copy already matched: nothing to make durable.
      this.o.volume.meta?.markInSync(offset, length);
      this.answered(offset, length);
      return;
    }
    this.o.counters.receivedBytes += length;
    void this.write(frame.body.flags, frame.body.payload, offset, length);
  }

  private async write(flags: number, payload: Uint8Array, offset: number, length: number): Promise<void> {
    const v = this.o.volume;
    const lock = v.ranges.acquire(offset, length);
    try {
      if (lock.ready) await lock.ready;
      const data = (flags & resyncDataFlagBits.allZeroes) !== 0 ? zeroes.subarray(0, length) : payload;
      await v.writeLocal(data, offset, false);
      // In sync only once the data is durable: the next checkpoint flushes, then clears.
      this.written.push({ offset, length });
      // A resync stopped by a lost connection acks nothing on the next one: the source
      // may have written these blocks since, and its bits must stay set.
      if (!this.stopped) this.o.link.send({ kind: 'ResyncAck', volume: v.number, body: { offset, length } });
    } catch (e) {
      lock.release();
      this.o.failed(`resync write at ${offset}+${length}: ${(e as Error).message}`);
      return;
    }
    lock.release();
    this.answered(offset, length);
  }

  private answered(offset: number, length: number): void {
    this.outstanding.delete(offset);
    this.outstandingBytes -= length;
    this.o.counters.pending = Math.max(0, this.o.counters.pending - 1);
    this.speed.add(length);
    this.pump();
  }
}

// ---------------------------------------------------------------- source

export interface ResyncSourceOptions {
  readonly link: () => PeerLink;
  readonly volume: (n: number) => ReplicaVolume | undefined;
  readonly counters: (n: number) => NetCounters;
  readonly csumsAlg: string;
  readonly log: Logger;
  readonly clock?: LinkClock;
}

type SourceRequest = FrameOf<'ResyncRequest'> | FrameOf<'ResyncChecksumRequest'>;

/** Serves the target's requests for all volumes of a resource. */
export class ResyncSource {
  private readonly o: ResyncSourceOptions;
  private readonly clock: LinkClock;
  private queue: SourceRequest[] = [];
  private active = 0;
  private waitingForDrain = false;
  private generation = 0;
  private readonly stats = new Map<number, { totalBytes: number; speed: Speedometer }>();
  /**
   * Resync data sent and not yet acknowledged, oldest first; `stale` once dirtied again.
   * Bounded by the target's window (at most a few dozen requests in flight).
   */
  private sent: { volume: number; offset: number; length: number; stale: boolean }[] = [];

  constructor(o: ResyncSourceOptions) {
    this.o = o;
    this.clock = o.clock ?? realClock;
  }

  begin(n: number, totalBytes: number): void {
    this.stats.set(n, { totalBytes, speed: new Speedometer(this.clock) });
  }

  end(n: number): void {
    this.stats.delete(n);
  }

  progress(n: number, leftBytes: number): SyncProgress | undefined {
    const s = this.stats.get(n);
    if (!s) return undefined;
    const total = Math.max(s.totalBytes, leftBytes);
    return { totalBytes: total, doneBytes: total - leftBytes, speedBytes: s.speed.bytesPerSecond };
  }

  /**
   * The target's ResyncAck for a range: true when its bits may be cleared here — not when
   * the range was marked out of sync again after its data was sent (a failed peer write
   * in between, whose data the acknowledged resync data predates), nor for a range that
   * was never sent.
   */
  acked(n: number, offset: number, length: number): boolean {
    this.stats.get(n)?.speed.add(length);
    // Only what was sent on this connection, and not dirtied since: a peer cannot clear
    // bits for data it never received.
    const i = this.sent.findIndex((e) => e.volume === n && e.offset === offset && e.length === length);
    if (i < 0) return false;
    const [e] = this.sent.splice(i, 1);
    return !e!.stale;
  }

  /** A range of volume n was marked out of sync: resync data already sent for it is stale. */
  dirtied(n: number, offset: number, length: number): void {
    for (const e of this.sent) {
      if (e.volume === n && e.offset < offset + length && offset < e.offset + e.length) e.stale = true;
    }
  }

  /** Drops what is queued (the connection is gone). */
  reset(): void {
    this.queue = [];
    this.sent = [];
    this.generation++;
    this.stats.clear();
  }

  request(frame: SourceRequest): void {
    this.queue.push(frame);
    this.kick();
  }

  private appBusy(): boolean {
    for (const n of this.stats.keys()) if ((this.o.volume(n)?.appInFlight() ?? 0) > 0) return true;
    return false;
  }

  /** Serves queued requests as far as the application and the link allow. */
  kick(): void {
    while (this.queue.length > 0) {
      const busy = this.appBusy();
      const link = this.o.link();
      if (busy && (this.active >= 1 || link.queuedBytes > busySendQueueBytes)) {
        if (!this.waitingForDrain && link.queuedBytes > busySendQueueBytes) {
          this.waitingForDrain = true;
          void link.whenDrained().then(() => {
            this.waitingForDrain = false;
            this.kick();
          });
        }
        // Otherwise the end of the application's write (writeCompleted) or of this
        // request kicks again.
        return;
      }
      if (this.active >= 8) return;
      const next = this.queue.shift()!;
      void this.serve(next, this.generation);
    }
  }

  private async serve(req: SourceRequest, generation: number): Promise<void> {
    const n = req.volume;
    const v = this.o.volume(n);
    const link = this.o.link();
    const { offset, length } = req.body;
    this.active++;
    try {
      if (v === undefined || v.meta === undefined || offset + length > v.sizeBytes) {
        link.send({ kind: 'ResyncFailed', volume: n, body: { offset, length, error: 5 } });
        return;
      }
      // Under the range lock: no application write to these blocks is between its
      // Data frame and its disk write while we read, and none starts until we have sent.
      const lock = v.ranges.acquire(offset, length);
      try {
        if (lock.ready) await lock.ready;
        const buf = Buffer.allocUnsafe(length);
        await v.readLocal(buf, offset);
        if (generation !== this.generation) return;
        if (req.kind === 'ResyncChecksumRequest' && digestOf(this.o.csumsAlg, buf).equals(req.body.digest)) {
          v.meta.markInSync(offset, length);
          this.stats.get(n)?.speed.add(length);
          link.send({ kind: 'ResyncInSync', volume: n, body: { offset, length } });
          return;
        }
        const allZero = isZero(buf);
        const sent = link.sendZeroCopy({
          kind: 'ResyncData',
          volume: n,
          body: {
            offset,
            length,
            flags: allZero ? resyncDataFlagBits.allZeroes : 0,
            payload: allZero ? Buffer.alloc(0) : buf,
          },
        });
        if (sent) {
          this.o.counters(n).sentBytes += allZero ? 0 : length;
          this.sent.push({ volume: n, offset, length, stale: false });
          // A target that never acks cannot grow this: forgetting the oldest only means
          // its bits are not cleared here, and the range is resynced again.
          if (this.sent.length > sentMax) this.sent.shift();
        }
      } finally {
        lock.release();
      }
    } catch (e) {
      this.o.log.log('error', `resync read at ${offset}+${length}: ${(e as Error).message}`, { volume: n });
      link.send({ kind: 'ResyncFailed', volume: n, body: { offset, length, error: 5 } });
    } finally {
      this.active--;
      this.kick();
    }
  }
}

function isZero(buf: Buffer): boolean {
  // Compare 64 KiB at a time against a shared zero buffer (native memcmp).
  for (let at = 0; at < buf.length; at += 65536) {
    const end = Math.min(at + 65536, buf.length);
    if (buf.compare(zeroes, 0, end - at, at, end) !== 0) return false;
  }
  return true;
}
