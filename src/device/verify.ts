// Online verify (`tandemadm verify RES`): this node asks the peer for the digest of
// each 1 MiB of the volume (VerifyRequest → VerifyReply), compares it with the digest
// of its own copy, and where they differ asks again for each 4 KiB block of that MiB,
// so exactly the differing blocks are marked out of sync, here and (VerifyResult) on
// the peer. A following disconnect/connect on the Primary resyncs them (DRBD's way).
//
// Both sides read under their volume's range lock; a block written while verify runs
// may still be reported as differing (the write reached one copy first). That costs a
// needless resync of the block, never a missed difference of a quiet one.
import { digestOf } from '../replication/digest.js';
import type { PeerLink } from '../replication/link.js';
import type { DigestOfRange } from '../replication/messages-sync.js';
import type { Logger } from '../util/log.js';
import type { ReplicaVolume } from './replicator.js';
import type { SyncProgress } from './resync.js';

const coarseBytes = 1024 * 1024;
const fineBytes = 4096;
const windowMax = 16;

export interface VerifySourceOptions {
  readonly volume: ReplicaVolume;
  readonly link: PeerLink;
  readonly alg: string;
  readonly log: Logger;
  readonly done: (outOfSyncBytes: number) => void;
}

interface Pending {
  readonly offset: number;
  readonly length: number;
  local: Promise<Buffer | undefined>;
}

export class VerifySource {
  private readonly o: VerifySourceOptions;
  /** Ranges still to ask for: fine ones (re-checks) first. */
  private readonly fine: { offset: number; length: number }[] = [];
  private nextCoarse = 0;
  private readonly pending = new Map<string, Pending>();
  private verifiedBytes = 0;
  private oosBytes = 0;
  private stopped = false;
  private finished = false;
  private readonly startedMs = performance.now();

  constructor(o: VerifySourceOptions) {
    this.o = o;
  }

  start(): void {
    this.pump();
  }

  stop(): void {
    this.stopped = true;
  }

  progress(): SyncProgress {
    const s = (performance.now() - this.startedMs) / 1000;
    return {
      totalBytes: this.o.volume.sizeBytes,
      doneBytes: this.verifiedBytes,
      speedBytes: s > 0 ? this.verifiedBytes / s : 0,
    };
  }

  result(): { outOfSyncBytes: number; done: boolean } {
    return { outOfSyncBytes: this.oosBytes, done: this.finished };
  }

  private pump(): void {
    const size = this.o.volume.sizeBytes;
    while (!this.stopped && this.pending.size < windowMax) {
      let r = this.fine.shift();
      if (r === undefined && this.nextCoarse < size) {
        r = { offset: this.nextCoarse, length: Math.min(coarseBytes, size - this.nextCoarse) };
        this.nextCoarse += r.length;
      }
      if (r === undefined) break;
      const { offset, length } = r;
      const entry: Pending = { offset, length, local: this.readLocal(offset, length) };
      this.pending.set(`${offset}+${length}`, entry);
      this.o.link.send({ kind: 'VerifyRequest', volume: this.o.volume.number, body: { offset, length } });
    }
    if (
      !this.stopped &&
      !this.finished &&
      this.pending.size === 0 &&
      this.fine.length === 0 &&
      this.nextCoarse >= size
    ) {
      this.finished = true;
      this.o.done(this.oosBytes);
    }
  }

  private async readLocal(offset: number, length: number): Promise<Buffer | undefined> {
    const v = this.o.volume;
    const lock = v.ranges.acquire(offset, length);
    try {
      if (lock.ready) await lock.ready;
      const buf = Buffer.allocUnsafe(length);
      await v.readLocal(buf, offset);
      return digestOf(this.o.alg, buf);
    } catch (e) {
      this.o.log.log('error', `verify read at ${offset}: ${(e as Error).message}`, { volume: v.number });
      return undefined;
    } finally {
      lock.release();
    }
  }

  onReply(reply: DigestOfRange): void {
    const key = `${reply.offset}+${reply.length}`;
    const entry = this.pending.get(key);
    if (entry === undefined || this.stopped) return;
    void entry.local.then((mine) => {
      if (this.stopped) return;
      this.pending.delete(key);
      const same = mine?.equals(reply.digest);
      if (same) {
        this.verifiedBytes += reply.length;
      } else if (reply.length > fineBytes) {
        for (let at = reply.offset; at < reply.offset + reply.length; at += fineBytes) {
          this.fine.push({ offset: at, length: Math.min(fineBytes, reply.offset + reply.length - at) });
        }
      } else {
        this.verifiedBytes += reply.length;
        this.oosBytes += reply.length;
        const v = this.o.volume;
        v.meta?.markOutOfSync(reply.offset, reply.length);
        this.o.link.send({
          kind: 'VerifyResult',
          volume: v.number,
          body: { offset: reply.offset, length: reply.length, inSync: false },
        });
        this.o.log.log('warn', `out of sync: ${reply.offset}+${reply.length}`, { volume: v.number });
      }
      this.pump();
    });
  }
}
