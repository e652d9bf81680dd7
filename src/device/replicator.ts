// The replication engine of one resource: the peer link, the sync handshake per
// volume, the write path per protocol (A, B, C) with sequence numbers, epochs and
// acknowledgements, flushes that reach both disks, and what a lost connection
// leaves behind (the unacknowledged writes marked out of sync, a new data generation
// on a Primary). Resync and online verify live in resync.ts and verify.ts; this file
// routes their frames.
//
// Ordering, as DRBD keeps it:
// - Overlapping writes: each volume's RangeLock orders them by submission on the
//   Primary (the Data frame is sent when the lock is granted) and by arrival on the
//   Secondary, so both disks apply them in the same order.
// - Completed-before-submitted: a write sent after another write completed carries a
//   higher epoch; the Secondary starts it only when every write it received with a
//   lower epoch is on its disk.
// - Resync data: the SyncSource reads a block under the same RangeLock, so a resync
//   read never races an application write, and what it sends is ordered with the Data
//   frames of overlapping writes on the one TCP stream.
import { newUuid, uuidJustCreated } from '../meta/store.js';
import { BitmapReceiver, encodeBitmapChunks } from '../replication/bitmap-rle.js';
import { type LinkClock, realClock, type TimerHandle } from '../replication/clock.js';
import { digestOf } from '../replication/digest.js';
import type { Frame, FrameOf } from '../replication/frames.js';
import { type Endpoint, type LinkReason, type LinkState, PeerLink } from '../replication/link.js';
import { dataFlagBits } from '../replication/messages-io.js';
import {
  type ReportParams,
  type ReportSizes,
  type ReportState,
  type ReportUuids,
  uuidFlagBits,
} from '../replication/messages-state.js';
import {
  decideSync,
  formatUuid,
  policiesAsSeenByPeer,
  type SideInfo,
  type SyncDecision,
  uuidNewBitmapOffset,
} from '../replication/sync-decision.js';
import type { Logger } from '../util/log.js';
import type { RangeLock } from '../util/range-lock.js';
import type { ReplicationSettings } from './replication-settings.js';
import { ResyncSource, ResyncTarget } from './resync.js';
import type { ConnState, DiskState, Role } from './state.js';
import { VerifySource } from './verify.js';
import type { VolumeMeta } from './volume-meta.js';

/** What the engine needs of a local volume. */
export interface ReplicaVolume {
  readonly number: number;
  readonly sizeBytes: number;
  readonly disk: DiskState;
  readonly meta: VolumeMeta | undefined;
  readonly ranges: RangeLock;
  /** Changes the disk state and records it in the metadata flags. */
  setDisk(state: DiskState, reason?: string): Promise<void>;
  /** Disk I/O for replication: no role check; counts in the volume's counters. */
  readLocal(buf: Buffer, offset: number): Promise<void>;
  writeLocal(buf: Uint8Array, offset: number, fua: boolean): Promise<void>;
  /** writeLocal(buf, offset, false) before it returns, where the disk can: true; else false and nothing done. Throws as writeLocal rejects. */
  writeLocalAtOnce(buf: Uint8Array, offset: number): boolean;
  flushLocal(): Promise<void>;
  /** Application requests under way (the resync controller yields to them). */
  appInFlight(): number;
}

export interface ReplicatorHost {
  readonly resource: string;
  readonly nodeName: string;
  readonly peerName: string;
  readonly listen: Endpoint;
  readonly peer: Endpoint;
  readonly settings: ReplicationSettings;
  readonly log: Logger;
  readonly volumes: readonly ReplicaVolume[];
  role(): Role;
  /** One line per state change, for `events` and the log. */
  event(text: string): void;
  /** Runs a DRBD handler (`handlers { split-brain "…"; }`) if configured. */
  runHandler(name: 'split-brain' | 'initial-split-brain' | 'pri-lost-after-sb', volume: number): void;
  /** Called first when a Connected link is lost (fencing starts here). */
  connectionLost?(reason: LinkReason): void;
  readonly clock?: LinkClock;
  /** An epoch with writes is closed at the latest this long after a write completed (barrierIntervalMs). */
  readonly barrierIntervalMs?: number;
  /** Bytes arrived on the link (the daemon's busy poll). */
  readonly activity?: () => void;
}

/** Per volume: where the volume's replication stands (DRBD 8.4 per-minor cs: names). */
export type VolumeSync =
  | 'Off'
  | 'Negotiating'
  | 'WFBitMapS'
  | 'WFBitMapT'
  | 'WFSyncUUID'
  | 'Established'
  | 'SyncSource'
  | 'SyncTarget'
  | 'VerifyS';

/** The /proc/drbd counters of one volume that the engine keeps (KiB where DRBD has KiB). */
export interface NetCounters {
  /** Bytes sent to the peer (data, resync data). */
  sentBytes: number;
  /** Bytes received from the peer (data, resync data). */
  receivedBytes: number;
  /** Requests sent to the peer and not yet answered. */
  pending: number;
  /** Requests received from the peer and not yet answered. */
  unacked: number;
  /** Epochs closed and not yet acknowledged by the peer (/proc/drbd shows this + 1 as ep:). */
  epochs: number;
}

interface TlEntry {
  readonly seq: number;
  readonly volume: number;
  readonly offset: number;
  readonly length: number;
  readonly epoch: number;
  /** When it was sent (the clock's ms), for ko-count. */
  readonly sentMs: number;
  /** Settles the peer part of the write: true when the protocol's condition holds. */
  resolve: ((ok: boolean) => void) | undefined;
  /**
   * Called once when the entry leaves the transfer log (the peer confirmed the write, or
   * it was marked out of sync): the write's activity-log extents may go only then, so a
   * crashed Primary resyncs every extent with a write the peer may not have.
   */
  readonly forget: (() => void) | undefined;
}

/** askPromote's answer when the link is lost before the peer answered. */
export const promoteLinkLost = -10;

interface PeerVolume {
  readonly v: ReplicaVolume;
  /** Lost the peer as Primary while fencing held writes: a new current UUID when they resume. */
  newUuidPending: boolean;
  /**
   * Promoted without a peer: the new data generation starts with the first write
   * (DRBD 9's NEW_CUR_UUID), not at the promotion — a node promoted and demoted again
   * without writing has changed nothing and must not look like one side of a split brain.
   */
  generationOnWrite: boolean;
  /** The first write's generation being written (later writes wait for the same one). */
  generating: Promise<void> | undefined;
  sync: VolumeSync;
  peerDisk: DiskState;
  peerUuids: ReportUuids | undefined;
  peerSizes: ReportSizes | undefined;
  /** The peer opened a handshake round (ReportSizes) and its ReportState ends it. */
  peerRoundOpen: boolean;
  /** Our Sizes/Uuids/State of the current round are sent. */
  roundSent: boolean;
  bitmapSent: boolean;
  bitmapIn: BitmapReceiver | undefined;
  direction: 'source' | 'target' | undefined;
  /** Held by application writes while the handshake or bitmap exchange runs. */
  gate: { promise: Promise<void>; open: () => void } | undefined;
  target: ResyncTarget | undefined;
  verify: VerifySource | undefined;
  counters: NetCounters;
  /** The last sync handshake that refused, for status (split brain). */
  refusal: string | undefined;
}

interface Received {
  readonly epoch: number;
  readonly done: Promise<void>;
}

const sendQueueBytesMax = 8 * 1024 * 1024;
/** An epoch with writes is closed (Barrier) at the latest this long after a write completed. */
const barrierIntervalMs = 50;
const mask64 = (1n << 64n) - 1n;

export class Replicator {
  readonly link: PeerLink;
  private readonly h: ReplicatorHost;
  private readonly vols: PeerVolume[];
  private peerRoleNow: Role = 'Unknown';
  private linkStateNow: LinkState = 'StandAlone';
  private linkReasonNow: LinkReason = { code: 'stop', message: 'not started' };
  // Primary side.
  private seq = 0;
  private epoch = 1;
  /** Receiver: the sequence number of the last Data frame on this connection. */
  private lastDataSeq = 0;
  /** Receiver: the highest Data frame acknowledged as received by ackReceivedAtOnce. */
  private recvAckedSeq = 0;
  /**
   * Writes sent in the current epoch. Earlier epochs a Barrier has not closed yet always
   * have a write after them here: nextEpoch() runs only as a write is sent.
   */
  private epochWrites = 0;
  private closeEpoch = false;
  private barrierAcked = 0;
  /** The highest sequence number a FlushAck confirmed on the peer's stable storage. */
  private flushAckedSeq = 0;
  /** Counts Connected links; work received on one answers only on that one. */
  private connection = 0;
  private readonly tl = new Map<number, TlEntry>();
  private flushId = 0;
  private readonly flushWaiters = new Map<number, { seqAtFlush: number; resolve: (ok: boolean) => void }>();
  private txId = 0;
  private readonly txWaiters = new Map<number, (result: number) => void>();
  /** A promotion the peer agreed to and has not yet seen in a ReportState. */
  private peerPromoting = false;
  private promoting = false;
  // Secondary side.
  private readonly received = new Set<Received>();
  private recvAcks: number[] = [];
  /** Receiver: barriers asked for, answered (flushed), and the flushes in order. */
  private barrierWanted = 0;
  private barrierFlushed = 0;
  private barrierChain: Promise<void> = Promise.resolve();
  private writeAcks: number[] = [];
  private acksScheduled = false;
  /** `connect --discard-my-data`: volunteer as the split brain's victim at the next handshake. */
  discardMyData = false;
  private readonly source: ResyncSource;
  private readonly clock: LinkClock;
  private koTimer: TimerHandle | undefined;
  private barrierTimer: TimerHandle | undefined;

  constructor(host: ReplicatorHost) {
    this.h = host;
    this.clock = host.clock ?? realClock;
    const s = host.settings;
    this.vols = host.volumes.map((v) => ({
      v,
      newUuidPending: false,
      generationOnWrite: false,
      generating: undefined,
      sync: 'Off',
      peerDisk: 'DUnknown',
      peerUuids: undefined,
      peerSizes: undefined,
      peerRoundOpen: false,
      roundSent: false,
      bitmapSent: false,
      bitmapIn: undefined,
      direction: undefined,
      gate: undefined,
      target: undefined,
      verify: undefined,
      counters: { sentBytes: 0, receivedBytes: 0, pending: 0, unacked: 0, epochs: 0 },
      refusal: undefined,
    }));
    this.source = new ResyncSource({
      link: () => this.link,
      volume: (n) => this.vols[n]?.v,
      counters: (n) => this.vols[n]!.counters,
      csumsAlg: s.csumsAlg,
      log: host.log,
    });
    this.link = new PeerLink({
      resource: host.resource,
      nodeName: host.nodeName,
      peerName: host.peerName,
      listen: host.listen,
      peer: host.peer,
      auth: s.auth,
      tls: s.tls,
      connectIntMs: s.connectIntMs,
      pingIntMs: s.pingIntMs,
      pingTimeoutMs: s.pingTimeoutMs,
      handshakeTimeoutMs: s.timeoutMs,
      ...(host.clock === undefined ? {} : { clock: host.clock }),
      onState: (state, reason) => this.onLinkState(state, reason),
      onFrame: (frame) => {
        // A frame that breaks an assumption must end the connection, not the daemon.
        try {
          this.onFrame(frame);
        } catch (e) {
          this.protocolError(`${frame.kind}: ${(e as Error).message}`);
        }
      },
      onFrames: (frames) => {
        try {
          this.ackReceivedAtOnce(frames);
        } catch (e) {
          this.protocolError(`RecvAck: ${(e as Error).message}`);
        }
      },
      onLog: (m) => host.log.log('info', m),
      onActivity: host.activity,
    });
  }

  // ------------------------------------------------------------ views

  get peerRole(): Role {
    return this.peerRoleNow;
  }

  get linkReason(): LinkReason {
    return this.linkReasonNow;
  }

  /** The resource's connection state: the link's, WFReportParams until every volume has shaken hands. */
  connState(): ConnState {
    if (this.linkStateNow !== 'Connected') return this.linkStateNow;
    return this.vols.some((p) => p.sync === 'Negotiating' || p.sync === 'Off')
      ? 'WFReportParams'
      : 'Connected';
  }

  /** One volume's cs: as /proc/drbd shows it. */
  volumeConnState(n: number): ConnState {
    const c = this.connState();
    if (c !== 'Connected') return c;
    const s = this.vols[n]!.sync;
    return s === 'Established' ? 'Connected' : s === 'Off' || s === 'Negotiating' ? 'WFReportParams' : s;
  }

  peerDisk(n: number): DiskState {
    return this.linkStateNow === 'Connected' ? this.vols[n]!.peerDisk : 'DUnknown';
  }

  counters(n: number): NetCounters {
    return this.vols[n]!.counters;
  }

  syncProgress(n: number): { totalBytes: number; doneBytes: number; speedBytes: number } | undefined {
    const p = this.vols[n]!;
    if (p.sync === 'SyncTarget' && p.target) return p.target.progress();
    if (p.sync === 'SyncSource') return this.source.progress(n, p.v.meta?.outOfSyncBytes() ?? 0);
    if (p.sync === 'VerifyS' && p.verify) return p.verify.progress();
    return undefined;
  }

  refusal(n: number): string | undefined {
    return this.vols[n]!.refusal;
  }

  verifyResult(n: number): { outOfSyncBytes: number; done: boolean } | undefined {
    return this.vols[n]!.verify?.result();
  }

  // ------------------------------------------------------------ lifecycle

  async connect(options: { discardMyData?: boolean } = {}): Promise<void> {
    if (options.discardMyData) this.discardMyData = true;
    for (const p of this.vols) p.refusal = undefined;
    await this.link.start();
  }

  async disconnect(): Promise<void> {
    await this.link.stop();
  }

  private onLinkState(state: LinkState, reason: LinkReason): void {
    const was = this.linkStateNow;
    this.linkStateNow = state;
    this.linkReasonNow = reason;
    if (was !== state) this.h.event(`connection:${state}${reason.message ? ` (${reason.message})` : ''}`);
    if (state === 'Connected') {
      this.onConnected();
      return;
    }
    if (was === 'Connected') this.onConnectionLost(reason);
  }

  private onConnected(): void {
    // seq and epoch keep rising across connections: an ack for a write of an earlier
    // connection (still finishing on the peer's disk) can never match a new write.
    this.connection++;
    this.lastDataSeq = 0;
    this.recvAckedSeq = 0;
    // The peer's epochs start again at 1 when its daemon restarts: barriers asked for or
    // flushed on an earlier connection must neither swallow its Barriers nor answer them
    // with a BarrierAck for epochs it never sent (it would forget writes not yet flushed).
    // Runs of the old connection's barrier chain stop at their connection check.
    this.barrierWanted = 0;
    this.barrierFlushed = 0;
    this.epochWrites = 0;
    this.closeEpoch = false;
    this.barrierAcked = this.epoch - 1;
    for (const p of this.vols) p.counters.epochs = 0;
    const s = this.h.settings;
    this.link.send({
      kind: 'ReportParams',
      volume: 0,
      body: {
        protocol: s.protocol,
        afterSb0pri: s.afterSb0pri,
        afterSb1pri: s.afterSb1pri,
        afterSb2pri: s.afterSb2pri,
        allowTwoPrimaries: s.allowTwoPrimaries,
        connFlags: this.discardMyData ? 1 : 0,
        integrityAlg: '',
        csumsAlg: s.csumsAlg,
        verifyAlg: s.verifyAlg,
      },
    });
    for (const p of this.vols) {
      p.sync = 'Negotiating';
      this.closeGate(p);
      this.sendRound(p);
    }
    this.scheduleKo();
  }

  /**
   * DRBD's ko-count: a peer that leaves a write unanswered for ko-count × timeout is
   * dropped, so a stuck peer disk (whose daemon still answers pings) cannot stall the
   * Primary for ever; its writes are then marked out of sync like any lost connection's.
   */
  private scheduleKo(): void {
    const { koCount, timeoutMs } = this.h.settings;
    if (koCount === 0 || this.koTimer !== undefined) return;
    this.koTimer = this.clock.setTimeout(() => {
      this.koTimer = undefined;
      if (this.linkStateNow !== 'Connected') return;
      const limitMs = koCount * timeoutMs;
      const now = this.clock.now();
      for (const e of this.tl.values()) {
        if (e.resolve === undefined) continue;
        if (now - e.sentMs > limitMs) {
          const message = `the peer left write ${e.seq} unanswered for ${Math.round((now - e.sentMs) / 1000)} s (ko-count ${koCount} × timeout ${timeoutMs / 1000} s)`;
          this.h.log.log('error', message);
          this.link.drop(
            { code: 'ping-timeout', message },
            { fatal: false, state: 'Timeout', tell: 'timeout' },
          );
          return;
        }
        break;
      }
      this.scheduleKo();
    }, timeoutMs);
  }

  /** Application writes wait here (fencing: until the peer is known to be outdated). */
  private suspension: { promise: Promise<void>; resume: () => void; why: string } | undefined;

  /** Holds every new application write until resume() (DRBD's suspend-io). */
  suspend(why: string): void {
    if (this.suspension !== undefined) return;
    let resume!: () => void;
    const promise = new Promise<void>((r) => {
      resume = r;
    });
    this.suspension = { promise, resume, why };
    this.h.event(`suspended:${why}`);
  }

  async resume(): Promise<void> {
    const s = this.suspension;
    if (s === undefined) return;
    this.suspension = undefined;
    // DRBD's NEW_CUR_UUID: the data generation a Primary starts when it loses its peer
    // begins only when its writes go on. A Primary forced to Secondary meanwhile wrote
    // nothing new: its UUIDs stay, and the node that took over resyncs it without a split brain.
    for (const p of this.vols) {
      if (!p.newUuidPending) continue;
      p.newUuidPending = false;
      if (this.h.role() === 'Primary') await this.afterLoss(p, 'writes resumed after fencing');
    }
    s.resume();
    this.h.event('suspended:no');
  }

  /** While suspended: settles on resume (a write whose peer part failed waits here before it completes). */
  whenResumed(): Promise<void> | undefined {
    return this.suspension?.promise;
  }

  /** Why application I/O is suspended, or undefined. */
  get suspended(): string | undefined {
    return this.suspension?.why;
  }

  private onConnectionLost(reason: LinkReason): void {
    if (this.koTimer !== undefined) this.clock.clearTimeout(this.koTimer);
    this.koTimer = undefined;
    if (this.barrierTimer !== undefined) this.clock.clearTimeout(this.barrierTimer);
    this.barrierTimer = undefined;
    // Before anything else: a fencing Primary holds new writes from here on.
    this.h.connectionLost?.(reason);
    this.peerRoleNow = 'Unknown';
    this.peerPromoting = false;
    // Every write the peer has not confirmed on its disk is out of sync (DRBD walks its
    // transfer log the same way), and the application's write completes on our disk alone.
    for (const e of this.tl.values()) {
      const p = this.vols[e.volume];
      p?.v.meta?.markOutOfSync(e.offset, e.length);
      e.resolve?.(false);
      e.resolve = undefined;
      e.forget?.();
    }
    this.tl.clear();
    for (const w of this.flushWaiters.values()) w.resolve(false);
    this.flushWaiters.clear();
    for (const w of this.txWaiters.values()) w(promoteLinkLost);
    this.txWaiters.clear();
    this.source.reset();
    // Acks gathered for the lost connection are not sent on the next one.
    this.recvAcks = [];
    this.writeAcks = [];
    for (const p of this.vols) {
      p.target?.stop();
      p.target = undefined;
      p.verify?.stop();
      p.verify = undefined;
      p.sync = 'Off';
      p.peerDisk = 'DUnknown';
      p.peerUuids = undefined;
      p.peerSizes = undefined;
      p.peerRoundOpen = false;
      p.roundSent = false;
      p.bitmapSent = false;
      p.bitmapIn = undefined;
      p.direction = undefined;
      p.counters.pending = 0;
      p.counters.unacked = 0;
      this.openGate(p);
      void this.afterLoss(p, reason.code);
    }
  }

  /** Promoted without a peer: the first write will start a new data generation (see generationOnWrite). */
  generationOnFirstWrite(n: number): void {
    const p = this.vols[n];
    if (p?.v.meta !== undefined && p.v.meta.uuids().bitmap === 0n) p.generationOnWrite = true;
  }

  private startGeneration(p: PeerVolume): Promise<void> {
    p.generating ??= (async () => {
      try {
        const meta = p.v.meta;
        if (meta !== undefined && meta.uuids().bitmap === 0n) {
          await this.newCurrentUuid(p);
          await meta.flush();
          this.h.log.log(
            'info',
            `new current UUID ${formatUuid(meta.uuids().current)} with the first write as a disconnected Primary`,
            {
              volume: p.v.number,
            },
          );
        }
        p.generationOnWrite = false;
      } finally {
        p.generating = undefined;
      }
    })();
    return p.generating;
  }

  /** DRBD: a Primary that loses its peer starts a new data generation, so the peer's copy is recognisably older. */
  private async afterLoss(p: PeerVolume, why: string): Promise<void> {
    const meta = p.v.meta;
    if (meta === undefined) return;
    try {
      if (this.h.role() === 'Primary' && p.v.disk === 'UpToDate' && meta.uuids().bitmap === 0n) {
        if (this.suspension !== undefined) {
          // Fencing holds the writes: the new generation waits for them (resume()).
          p.newUuidPending = true;
          await meta.flush();
          return;
        }
        await this.newCurrentUuid(p);
        this.h.log.log('info', `new current UUID ${formatUuid(meta.uuids().current)} after ${why}`, {
          volume: p.v.number,
        });
      }
      await meta.flush();
    } catch (e) {
      this.h.log.log('error', `after connection loss: ${(e as Error).message}`, { volume: p.v.number });
    }
  }

  private async newCurrentUuid(p: PeerVolume): Promise<void> {
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'a new data generation');
    const u = meta.uuids();
    // Bit 0 records that the generation was started by a Primary (DRBD's _drbd_uuid_set).
    const fresh = (newUuid() & ~1n) | (this.h.role() === 'Primary' ? 1n : 0n);
    await meta.setUuids({ bitmap: u.bitmap === 0n ? u.current : u.bitmap, current: fresh });
  }

  // ------------------------------------------------------------ handshake

  private sendRound(p: PeerVolume): void {
    const meta = p.v.meta;
    const n = p.v.number;
    const size = p.v.sizeBytes;
    this.link.send({
      kind: 'ReportSizes',
      volume: n,
      body: {
        backingBytes: size,
        usableBytes: size,
        requestedBytes: 0,
        currentBytes: size,
        ioBytesMax: 1024 * 1024,
        flags: 0,
      },
    });
    const u = meta?.uuids() ?? { current: 0n, bitmap: 0n, history: [0n, 0n] as const };
    const f = meta?.flags();
    let flags = 0;
    if (this.discardMyData) flags |= uuidFlagBits.discardMyData;
    if (f?.crashedPrimary) flags |= uuidFlagBits.crashedPrimary;
    if (p.v.disk === 'Inconsistent') flags |= uuidFlagBits.inconsistent;
    this.link.send({
      kind: 'ReportUuids',
      volume: n,
      body: { ...u, dirtyBits: meta?.dirtyBits() ?? 0, flags },
    });
    p.roundSent = true;
    this.sendState(p);
  }

  /** ReportState: ends a handshake round, and on its own tells the peer of a role or disk change. */
  private sendState(p: PeerVolume): void {
    this.link.send({
      kind: 'ReportState',
      volume: p.v.number,
      body: {
        role: this.h.role(),
        peerRole: this.peerRoleNow,
        disk: p.v.disk,
        peerDisk: p.peerDisk,
        conn: this.volumeConnState(p.v.number),
        flags: 0,
      },
    });
  }

  /** After a local role or disk change: the peer's view of us follows. */
  stateChanged(): void {
    if (this.linkStateNow !== 'Connected') return;
    for (const p of this.vols) if (p.sync !== 'Negotiating') this.sendState(p);
  }

  /** Starts a new handshake round for a volume (after `primary --force`, `invalidate`). */
  renegotiate(n: number): void {
    const p = this.vols[n]!;
    if (this.linkStateNow !== 'Connected' || p.sync !== 'Established') return;
    p.sync = 'Negotiating';
    this.closeGate(p);
    this.sendRound(p);
  }

  private onReportState(p: PeerVolume, s: ReportState): void {
    this.peerRoleNow = s.role;
    if (s.role === 'Primary') this.peerPromoting = false;
    const before = p.peerDisk;
    p.peerDisk = s.disk;
    // The peer lost its disk while we write as Primary: a new data generation starts, so
    // its old copy is recognisably older when it attaches again (DRBD after_state_ch).
    if (
      (s.disk === 'Diskless' || s.disk === 'Failed') &&
      before !== s.disk &&
      this.h.role() === 'Primary' &&
      p.v.disk === 'UpToDate' &&
      p.v.meta?.uuids().bitmap === 0n
    ) {
      void this.newCurrentUuid(p).catch((e: unknown) =>
        this.h.log.log('error', `new current UUID: ${(e as Error).message}`, { volume: p.v.number }),
      );
    }
    // The peer is UpToDate again: it is no longer known to be outdated (DRBD clears MDF_PEER_OUT_DATED).
    if (s.disk === 'UpToDate' && p.v.meta?.flags().peerOutdated) {
      p.v.meta
        .setFlags({ peerOutdated: false })
        .catch((e: unknown) =>
          this.h.log.log('error', `clearing peer-outdated: ${(e as Error).message}`, { volume: p.v.number }),
        );
    }
    if (p.peerRoundOpen) {
      p.peerRoundOpen = false;
      if (!p.roundSent) {
        p.sync = 'Negotiating';
        this.closeGate(p);
        this.sendRound(p);
      }
      p.roundSent = false;
      this.decide(p);
      return;
    }
    if (before !== s.disk) this.h.event(`peer-disk:${s.disk} volume:${p.v.number}`);
    // Both nodes decided the same direction (DRBD's rules on contradictory UUIDs): neither
    // would ever send or ask for data.
    if (
      (p.sync === 'WFBitMapS' && s.conn === 'WFBitMapS') ||
      (p.sync === 'WFBitMapT' && (s.conn === 'WFBitMapT' || s.conn === 'WFSyncUUID'))
    ) {
      this.refuse(
        p,
        'sync-refused',
        `both nodes decided to be ${p.sync === 'WFBitMapS' ? 'SyncSource' : 'SyncTarget'}: the generation UUIDs contradict each other; resolve with 'tandemadm invalidate' on the node whose data is to be replaced`,
      );
      return;
    }
    // The SyncTarget reports UpToDate when it has everything: the resync is over here too.
    if (p.sync === 'SyncSource' && s.disk === 'UpToDate') void this.finishSource(p);
  }

  private decide(p: PeerVolume): void {
    const meta = p.v.meta;
    const peerU = p.peerUuids;
    const n = p.v.number;
    if (meta === undefined || peerU === undefined || p.peerDisk === 'Diskless' || p.v.disk === 'Diskless') {
      // Nothing to compare: replication waits for both disks (DRBD: no resync with a diskless side).
      this.established(p);
      return;
    }
    if (p.peerSizes !== undefined && p.peerSizes.usableBytes !== p.v.sizeBytes) {
      this.refuse(
        p,
        'incompatible',
        `the peer's volume ${n} holds ${p.peerSizes.usableBytes} bytes, this node's ${p.v.sizeBytes}: both need the same size`,
      );
      return;
    }
    const self: SideInfo = {
      uuids: meta.uuids(),
      crashedPrimary: meta.flags().crashedPrimary,
      disk: p.v.disk,
      role: this.h.role(),
      dirtyBits: meta.dirtyBits(),
      discardMyData: this.discardMyData,
    };
    const peer: SideInfo = {
      uuids: { current: peerU.current, bitmap: peerU.bitmap, history: peerU.history },
      crashedPrimary: (peerU.flags & uuidFlagBits.crashedPrimary) !== 0,
      disk: p.peerDisk,
      role: this.peerRoleNow,
      dirtyBits: peerU.dirtyBits,
      discardMyData: (peerU.flags & uuidFlagBits.discardMyData) !== 0,
    };
    const s = this.h.settings;
    const d: SyncDecision = decideSync(
      self,
      peer,
      { afterSb0pri: s.afterSb0pri, afterSb1pri: s.afterSb1pri, afterSb2pri: s.afterSb2pri },
      this.h.nodeName < this.h.peerName,
    );
    this.h.log.log('info', `sync handshake: ${d.message}`, {
      volume: n,
      self: formatUuids(self.uuids),
      peer: formatUuids(peer.uuids),
    });
    if (d.kind === 'refuse') {
      for (const handler of d.handlers) this.h.runHandler(handler, n);
      const details =
        d.reason === 'split-brain'
          ? `${d.message} Out of sync: ${kib(self.dirtyBits)} KiB changed on this node, ${kib(peer.dirtyBits)} KiB on ${this.h.peerName}. To keep ${this.h.peerName}'s data: on this node 'tandemadm secondary ${this.h.resource}; tandemadm connect --discard-my-data ${this.h.resource}', and 'tandemadm connect ${this.h.resource}' on ${this.h.peerName}. ` +
            `To keep this node's data: the same with the nodes swapped.`
          : d.message;
      this.refuse(p, d.reason === 'split-brain' ? 'split-brain' : 'sync-refused', details);
      return;
    }
    this.discardMyData = false;
    if (d.kind === 'in-sync') {
      void this.inSync(p);
      return;
    }
    if (d.direction === 'target' && this.h.role() === 'Primary') {
      this.refuse(p, 'sync-refused', 'I shall become SyncTarget, but I am Primary! (demote first)');
      return;
    }
    if (d.splitBrain) {
      this.h.event(`split-brain volume:${n} resolved by ${d.splitBrain.resolvedBy}`);
      this.h.runHandler('initial-split-brain', n);
    }
    void this.startBitmapExchange(p, d.direction, d.full);
  }

  private refuse(
    p: PeerVolume,
    code: 'split-brain' | 'sync-refused' | 'incompatible',
    message: string,
  ): void {
    p.refusal = message;
    this.h.log.log('error', message, { volume: p.v.number });
    this.h.event(`${code} volume:${p.v.number}`);
    this.link.drop(
      { code: code === 'incompatible' ? 'incompatible' : code, message },
      { fatal: true, tell: code === 'incompatible' ? 'incompatible' : 'split-brain' },
    );
  }

  private async inSync(p: PeerVolume): Promise<void> {
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'the sync handshake');
    try {
      if (meta.flags().crashedPrimary) await meta.setFlags({ crashedPrimary: false });
      // Same generation on both sides and the peer's data is good: so is ours.
      const good = (d: DiskState): boolean => d === 'UpToDate' || d === 'Consistent';
      if ((p.v.disk === 'Outdated' || p.v.disk === 'Consistent') && good(p.peerDisk)) {
        await p.v.setDisk('UpToDate');
      }
      if (meta.dirtyBits() > 0 && this.h.role() !== 'Primary') {
        this.h.log.log('warn', `no resync, but ${meta.dirtyBits()} bits in the bitmap`, {
          volume: p.v.number,
        });
      }
    } catch (e) {
      this.h.log.log('error', `after the handshake: ${(e as Error).message}`, { volume: p.v.number });
    }
    this.established(p);
  }

  private established(p: PeerVolume): void {
    if (this.linkStateNow !== 'Connected') return;
    p.sync = 'Established';
    this.openGate(p);
    this.h.event(`replication:Established volume:${p.v.number} peer-disk:${p.peerDisk}`);
    this.sendState(p);
  }

  private async startBitmapExchange(
    p: PeerVolume,
    direction: 'source' | 'target',
    full: boolean,
  ): Promise<void> {
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'the bitmap exchange');
    p.direction = direction;
    p.sync = direction === 'source' ? 'WFBitMapS' : 'WFBitMapT';
    p.bitmapIn = new BitmapReceiver(meta.bitCount, (first, count) => meta.setBits(first, count));
    p.bitmapSent = false;
    // Tells the peer our direction before the bitmap: it checks that it decided the other.
    this.sendState(p);
    try {
      if (full) await meta.requestFullSync();
      if (this.linkStateNow !== 'Connected') return;
      for (const chunk of encodeBitmapChunks(meta.bitmapBytes(), meta.bitCount)) {
        this.link.send({ kind: 'Bitmap', volume: p.v.number, body: chunk });
      }
      p.bitmapSent = true;
      this.h.event(`replication:${p.sync} volume:${p.v.number}${full ? ' (full sync)' : ''}`);
      await this.bitmapExchanged(p);
    } catch (e) {
      this.h.log.log('error', `bitmap exchange: ${(e as Error).message}`, { volume: p.v.number });
      this.link.drop({ code: 'protocol-error', message: (e as Error).message }, { fatal: false });
    }
  }

  private async bitmapExchanged(p: PeerVolume): Promise<void> {
    if (!p.bitmapSent || !p.bitmapIn?.done) return;
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'the bitmap exchange');
    if (p.direction === 'target') {
      p.sync = 'WFSyncUUID';
      return;
    }
    // SyncSource: a fresh bitmap UUID that the target takes as its current one, so an
    // interrupted resync is recognised and continued after a reconnect (DRBD's P_SYNC_UUID).
    const u = meta.uuids();
    const syncUuid =
      u.bitmap !== 0n && u.bitmap !== uuidJustCreated
        ? (u.bitmap + uuidNewBitmapOffset) & mask64
        : newUuid() & ~1n;
    // DRBD drbd_uuid_set(UI_BITMAP): a bitmap UUID that is replaced goes to the history.
    await meta.setUuids(
      u.bitmap === 0n ? { bitmap: syncUuid } : { bitmap: syncUuid, history: [u.bitmap, u.history[0]] },
    );
    await meta.flush();
    if (this.linkStateNow !== 'Connected' || p.sync !== 'WFBitMapS') return;
    this.link.send({ kind: 'SyncUuid', volume: p.v.number, body: { uuid: syncUuid } });
    p.sync = 'SyncSource';
    p.peerDisk = 'Inconsistent';
    this.source.begin(p.v.number, meta.outOfSyncBytes());
    this.openGate(p);
    this.h.event(`replication:SyncSource volume:${p.v.number} ${kib(meta.dirtyBits())} KiB to sync`);
  }

  private async onSyncUuid(p: PeerVolume, uuid: bigint): Promise<void> {
    if (p.sync !== 'WFSyncUUID') {
      this.protocolError(`SyncUuid in state ${p.sync}`);
      return;
    }
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'starting the resync');
    try {
      await meta.setUuids({ current: uuid, bitmap: 0n });
      await p.v.setDisk('Inconsistent');
      await meta.flush();
    } catch (e) {
      this.h.log.log('error', `cannot start the resync: ${(e as Error).message}`, { volume: p.v.number });
      this.link.drop({ code: 'protocol-error', message: (e as Error).message }, { fatal: false });
      return;
    }
    if (this.linkStateNow !== 'Connected' || p.sync !== 'WFSyncUUID') return;
    p.sync = 'SyncTarget';
    this.openGate(p);
    this.sendState(p);
    this.h.event(`replication:SyncTarget volume:${p.v.number} ${kib(meta.dirtyBits())} KiB to sync`);
    p.target = new ResyncTarget({
      volume: p.v,
      link: this.link,
      counters: p.counters,
      settings: this.h.settings,
      log: this.h.log,
      ...(this.h.clock === undefined ? {} : { clock: this.h.clock }),
      done: () => void this.finishTarget(p),
      failed: (message) => this.link.drop({ code: 'protocol-error', message }, { fatal: false }),
    });
    p.target.start();
  }

  private async finishTarget(p: PeerVolume): Promise<void> {
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'finishing the resync');
    const peerCurrent = p.peerUuids?.current;
    try {
      // Everything resynced is on stable storage before the metadata says UpToDate.
      await p.v.flushLocal();
      // The target now holds the source's generation (DRBD drbd_resync_finished).
      if (peerCurrent !== undefined) await meta.setUuids({ current: peerCurrent, bitmap: 0n });
      await meta.setFlags({ crashedPrimary: false });
      await meta.flush();
      await p.v.setDisk('UpToDate');
    } catch (e) {
      this.h.log.log('error', `finishing the resync: ${(e as Error).message}`, { volume: p.v.number });
      return;
    }
    const stats = p.target?.progress();
    p.target = undefined;
    if (this.linkStateNow !== 'Connected') return;
    p.sync = 'Established';
    p.peerDisk = 'UpToDate';
    this.h.log.log(
      'info',
      `resync done: ${kib(stats?.doneBytes ?? 0, true)} KiB at ${kib(stats?.speedBytes ?? 0, true)} KiB/s`,
      { volume: p.v.number },
    );
    this.h.event(`replication:Established volume:${p.v.number} disk:UpToDate`);
    this.sendState(p);
  }

  /**
   * The volume's disk went away (detached after an I/O error) while a handshake step or
   * a resync was under way: the detach tells the peer and a later attach starts over.
   */
  private diskGone(p: PeerVolume, during: string): void {
    this.h.log.log('warn', `${during}: the disk is gone (${p.v.disk})`, { volume: p.v.number });
  }

  private async finishSource(p: PeerVolume): Promise<void> {
    p.sync = 'Established';
    this.source.end(p.v.number);
    const meta = p.v.meta;
    if (!meta) return this.diskGone(p, 'finishing the resync');
    try {
      const u = meta.uuids();
      // DRBD drbd_uuid_set_bm(0): the bitmap UUID goes to the history.
      if (u.bitmap !== 0n) await meta.setUuids({ bitmap: 0n, history: [u.bitmap, u.history[0]] });
      await meta.setFlags({ crashedPrimary: false });
      await meta.flush();
    } catch (e) {
      this.h.log.log('error', `finishing the resync: ${(e as Error).message}`, { volume: p.v.number });
    }
    if (meta.dirtyBits() > 0) {
      this.h.log.log('warn', `resync done, ${meta.dirtyBits()} bits still set here`, { volume: p.v.number });
    }
    this.h.event(`replication:Established volume:${p.v.number} peer-disk:UpToDate`);
    this.sendState(p);
  }

  private closeGate(p: PeerVolume): void {
    if (p.gate !== undefined) return;
    let open!: () => void;
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    p.gate = { promise, open };
  }

  private openGate(p: PeerVolume): void {
    const g = p.gate;
    p.gate = undefined;
    g?.open();
  }

  // ------------------------------------------------------------ the write path (sender)

  /** Awaited by an application write before it is sent: the handshake, a full send queue. */
  writeGate(n: number): Promise<void> | undefined {
    const p = this.vols[n]!;
    if (this.suspension !== undefined) return this.suspension.promise;
    if (p.generationOnWrite) {
      // Only a disconnected Primary's first write starts a generation; connected again
      // (or demoted) before writing, the old generation simply goes on.
      if (this.linkStateNow === 'Connected' || this.h.role() !== 'Primary') p.generationOnWrite = false;
      else return this.startGeneration(p);
    }
    if (p.gate !== undefined) return p.gate.promise;
    if (this.link.queuedBytes > sendQueueBytesMax) return this.link.whenDrained();
    return undefined;
  }

  private replicating(p: PeerVolume): boolean {
    if (this.linkStateNow !== 'Connected') return false;
    if (
      p.sync !== 'Established' &&
      p.sync !== 'SyncSource' &&
      p.sync !== 'SyncTarget' &&
      p.sync !== 'VerifyS'
    )
      return false;
    return p.peerDisk !== 'Diskless' && p.peerDisk !== 'DUnknown' && p.peerDisk !== 'Failed';
  }

  /**
   * Sends an application write to the peer (under the volume's range lock). Resolves
   * true when the protocol's condition holds (A: in the kernel's send queue; B: the peer
   * has it; C: it is on the peer's disk), false when the peer part failed. Undefined
   * when the peer does not get the write at all: the caller marks it out of sync.
   */
  replicateWrite(
    n: number,
    buf: Buffer,
    offset: number,
    fua: boolean,
    forget?: () => void,
  ): Promise<boolean> | undefined {
    const p = this.vols[n]!;
    if (!this.replicating(p)) return undefined;
    // A and B: a write sent after another completed starts a new epoch, so the peer
    // applies it after that one (it orders by the epoch in each Data frame). C needs that
    // for no ordering: a write completes only once it is on the peer's disk. For every
    // protocol the Barrier that has the peer flush what it got, and confirm it, comes from
    // the barrier timer: with A and B one per epoch had the peer flush after every write
    // at queue depth 1.
    if (this.closeEpoch && this.h.settings.protocol !== 'C') this.nextEpoch();
    const protocol = this.h.settings.protocol;
    const seq = ++this.seq;
    let flags = fua ? dataFlagBits.fua : 0;
    if (protocol === 'B') flags |= dataFlagBits.ackReceived;
    if (protocol === 'C') flags |= dataFlagBits.ackWritten;
    const entry: TlEntry = {
      seq,
      volume: n,
      offset,
      length: buf.length,
      epoch: this.epoch,
      sentMs: this.clock.now(),
      resolve: undefined,
      forget,
    };
    const done = new Promise<boolean>((resolve) => {
      entry.resolve = resolve;
    });
    this.tl.set(seq, entry);
    this.epochWrites++;
    p.counters.pending++;
    p.counters.sentBytes += buf.length;
    const sent = this.link.sendZeroCopy(
      {
        kind: 'Data',
        volume: n,
        body: { seq, epoch: this.epoch, offset, length: buf.length, flags, payload: buf },
      },
      // Protocol A completes when the bytes are in the kernel's send queue; the buffer
      // may be reused only then, for every protocol.
      (ok) => {
        if (protocol !== 'A') return;
        if (ok) this.peerPartDone(entry); // else the connection loss settles it
      },
    );
    if (!sent) {
      this.tl.delete(seq);
      p.counters.pending--;
      return undefined;
    }
    // B and C settle on the peer's ack, which comes after the socket took the buffer.
    return done;
  }

  /** Closes the current epoch: Barrier(n) now; the peer answers once epoch n is on stable storage. */
  private sendBarrier(): void {
    if (this.epochWrites === 0) return;
    // Barrier(n) covers every write of the epochs up to n, not only of epoch n.
    this.link.send({ kind: 'Barrier', volume: 0, body: { epoch: this.epoch } });
    this.nextEpoch();
  }

  /** The next write starts a new epoch; the Barrier that closes this one comes later. */
  private nextEpoch(): void {
    if (this.epochWrites === 0) return;
    this.epoch++;
    this.epochWrites = 0;
    this.closeEpoch = false;
    for (const q of this.vols) q.counters.epochs = this.epoch - 1 - this.barrierAcked;
  }

  /**
   * Closes the current epoch at once instead of at the barrier timer: writes wait
   * for activity-log extents that only the peer's BarrierAck releases.
   */
  closeEpochNow(): void {
    // (When the writes holding the log have not left yet, this does nothing and
    // their epoch closes at the barrier timer, as before.)
    if (this.linkStateNow === 'Connected') this.sendBarrier();
  }

  /** An application write completed: the next write starts a new epoch. */
  writeCompleted(): void {
    if (this.epochWrites > 0) this.closeEpoch = true;
    // Every written epoch is closed within barrierIntervalMs even when no write follows,
    // so the peer's flush confirms it and the transfer log (and activity log) let go.
    if (this.epochWrites > 0 && this.barrierTimer === undefined) {
      this.barrierTimer = this.clock.setTimeout(() => {
        this.barrierTimer = undefined;
        if (this.linkStateNow === 'Connected') this.sendBarrier();
      }, this.h.barrierIntervalMs ?? barrierIntervalMs);
    }
    this.source.kick();
  }

  /**
   * A FLUSH: every write the peer received before it is on the peer's stable storage
   * when this resolves true (DRBD's barrier + flush). Undefined when not replicating.
   */
  replicateFlush(): Promise<boolean> | undefined {
    if (this.linkStateNow !== 'Connected' || !this.vols.some((p) => this.replicating(p))) return undefined;
    const flushId = ++this.flushId;
    const seqAtFlush = this.seq;
    if (!this.link.send({ kind: 'Flush', volume: 0, body: { flushId } })) return undefined;
    return new Promise((resolve) => this.flushWaiters.set(flushId, { seqAtFlush, resolve }));
  }

  /**
   * Drops completed transfer-log entries from the oldest on while `done` holds: the
   * peer has them on its disk. The log is in sequence order (a Map keeps insertion
   * order), so this stops at the first entry that is not done.
   */
  private forgetWritten(done: (e: TlEntry) => boolean): void {
    for (const e of this.tl.values()) {
      if (!done(e)) return;
      if (e.resolve === undefined) this.dropEntry(e);
    }
  }

  /**
   * The peer part of a write is done as its protocol asks (A: sent; B: RecvAck;
   * C: WriteAck): the application's write may complete. A BarrierAck or FlushAck can
   * overtake the acks of its own writes (the peer sends acks a turn later), and
   * forgetWritten keeps entries not yet done: such an entry leaves the log now, or
   * its activity-log extent would stay held until the next barrier, and a write
   * waiting for a free slot might wait for ever.
   */
  private peerPartDone(e: TlEntry): void {
    const resolve = e.resolve;
    if (resolve === undefined) return;
    e.resolve = undefined;
    const p = this.vols[e.volume]!;
    p.counters.pending = Math.max(0, p.counters.pending - 1);
    resolve(true);
    if (e.epoch <= this.barrierAcked || e.seq <= this.flushAckedSeq) this.dropEntry(e);
  }

  private dropEntry(e: TlEntry): void {
    if (this.tl.delete(e.seq)) e.forget?.();
  }

  private acked(first: number, last: number, how: 'received' | 'written' | 'failed'): void {
    const settle = (e: TlEntry): void => {
      const p = this.vols[e.volume]!;
      const protocol = this.h.settings.protocol;
      if (how === 'failed') {
        p.v.meta?.markOutOfSync(e.offset, e.length);
        this.source.dirtied(e.volume, e.offset, e.length);
        this.dropEntry(e);
        if (e.resolve) p.counters.pending = Math.max(0, p.counters.pending - 1);
        e.resolve?.(false);
        e.resolve = undefined;
        return;
      }
      if (how === 'received') {
        if (protocol === 'B') this.peerPartDone(e);
        return;
      }
      // A WriteAck: only protocol C asks for one. The write is on the peer's disk (its page
      // cache): the application's write completes; the entry stays in the transfer log
      // until a BarrierAck or FlushAck says the peer flushed it (a power loss of the
      // peer's host then still finds it out of sync here).
      if (protocol === 'C') this.peerPartDone(e);
    };
    // A hostile range cannot make us loop: walk whichever is smaller.
    if (last - first < this.tl.size) {
      for (let s = first; s <= last; s++) {
        const e = this.tl.get(s);
        if (e) settle(e);
      }
    } else {
      for (const e of [...this.tl.values()]) if (e.seq >= first && e.seq <= last) settle(e);
    }
  }

  // ------------------------------------------------------------ promotion

  /** Asks a connected peer whether we may become Primary; resolves with DRBD's SS_ code (>= 0: yes). */
  async askPromote(): Promise<number> {
    if (this.linkStateNow !== 'Connected') return 1;
    if (this.peerRoleNow === 'Primary' && !this.h.settings.allowTwoPrimaries) return -1;
    const txId = ++this.txId;
    this.promoting = true;
    try {
      const reply = new Promise<number>((resolve) => this.txWaiters.set(txId, resolve));
      this.link.send({
        kind: 'StateChangeRequest',
        volume: 0,
        body: { txId, phase: 'prepare', change: 'promote', flags: 0 },
      });
      return await reply;
    } finally {
      this.promoting = false;
    }
  }

  /** A promotion the peer is making or has made (no two Primaries without allow-two-primaries). */
  peerMayBePrimary(): boolean {
    return this.linkStateNow === 'Connected' && (this.peerRoleNow === 'Primary' || this.peerPromoting);
  }

  // ------------------------------------------------------------ frames

  private protocolError(message: string): void {
    this.h.log.log('error', `peer: ${message}`);
    this.link.drop({ code: 'protocol-error', message }, { fatal: false, tell: 'protocol-error' });
  }

  private vol(frame: Frame): PeerVolume | undefined {
    const p = this.vols[frame.volume];
    if (p === undefined)
      this.protocolError(`${frame.kind} for volume ${frame.volume}, which this resource does not have`);
    return p;
  }

  private onFrame(frame: Frame): void {
    switch (frame.kind) {
      case 'ReportParams':
        this.onParams(frame.body);
        return;
      case 'ReportSizes': {
        const p = this.vol(frame);
        if (!p) return;
        if (p.sync !== 'Off' && p.sync !== 'Negotiating' && p.sync !== 'Established') {
          this.protocolError(`a handshake for volume ${frame.volume} during ${p.sync}`);
          return;
        }
        p.peerSizes = frame.body;
        p.peerRoundOpen = true;
        return;
      }
      case 'ReportUuids': {
        const p = this.vol(frame);
        if (p) p.peerUuids = frame.body;
        return;
      }
      case 'ReportState': {
        const p = this.vol(frame);
        if (p) this.onReportState(p, frame.body);
        return;
      }
      case 'Bitmap': {
        const p = this.vol(frame);
        if (!p) return;
        if (p.bitmapIn === undefined || (p.sync !== 'WFBitMapS' && p.sync !== 'WFBitMapT')) {
          this.protocolError(`Bitmap in state ${p.sync}`);
          return;
        }
        try {
          p.bitmapIn.apply(frame.body);
        } catch (e) {
          this.protocolError((e as Error).message);
          return;
        }
        void this.bitmapExchanged(p).catch((e: unknown) =>
          this.link.drop({ code: 'protocol-error', message: (e as Error).message }, { fatal: false }),
        );
        return;
      }
      case 'SyncUuid': {
        const p = this.vol(frame);
        if (p) void this.onSyncUuid(p, frame.body.uuid);
        return;
      }
      case 'StateChangeRequest':
        this.onStateChangeRequest(frame);
        return;
      case 'StateChangeReply': {
        const w = this.txWaiters.get(frame.body.txId);
        this.txWaiters.delete(frame.body.txId);
        w?.(frame.body.result);
        return;
      }
      case 'Data':
        this.onData(frame);
        return;
      case 'RecvAck':
        this.acked(frame.body.firstSeq, frame.body.lastSeq, 'received');
        return;
      case 'WriteAck':
        this.acked(frame.body.firstSeq, frame.body.lastSeq, 'written');
        return;
      case 'NegAck':
        this.h.log.log(
          'error',
          `the peer failed writes ${frame.body.firstSeq}..${frame.body.lastSeq} (errno ${frame.body.error}): marked out of sync`,
        );
        this.acked(frame.body.firstSeq, frame.body.lastSeq, 'failed');
        return;
      case 'Barrier':
        this.onBarrier(frame.body.epoch);
        return;
      case 'BarrierAck':
        // Every write of epochs up to this one is on the peer's disk (protocols A and B).
        this.forgetWritten((e) => e.epoch <= frame.body.epoch);
        this.barrierAcked = Math.max(this.barrierAcked, frame.body.epoch);
        for (const p of this.vols) p.counters.epochs = Math.max(0, this.epoch - 1 - this.barrierAcked);
        return;
      case 'Flush':
        this.onFlush(frame.body.flushId);
        return;
      case 'FlushAck': {
        const w = this.flushWaiters.get(frame.body.flushId);
        if (!w) return;
        this.flushWaiters.delete(frame.body.flushId);
        this.forgetWritten((e) => e.seq <= w.seqAtFlush);
        this.flushAckedSeq = Math.max(this.flushAckedSeq, w.seqAtFlush);
        w.resolve(true);
        return;
      }
      case 'OutOfSync': {
        const p = this.vol(frame);
        if (p && this.inRange(p, frame.body)) p.v.meta?.markOutOfSync(frame.body.offset, frame.body.length);
        return;
      }
      case 'ResyncRequest':
      case 'ResyncChecksumRequest':
        if (this.vol(frame)) this.source.request(frame);
        return;
      case 'ResyncAck': {
        const p = this.vol(frame);
        if (p && this.inRange(p, frame.body)) {
          const { offset, length } = frame.body;
          if (this.source.acked(frame.volume, offset, length)) p.v.meta?.markInSync(offset, length);
        }
        return;
      }
      case 'ResyncData':
      case 'ResyncInSync':
      case 'ResyncFailed': {
        const p = this.vol(frame);
        if (!p) return;
        if (p.target === undefined) {
          this.protocolError(`${frame.kind} while not SyncTarget`);
          return;
        }
        p.target.onFrame(frame);
        return;
      }
      case 'VerifyRequest': {
        const p = this.vol(frame);
        if (p && this.inRange(p, frame.body)) void this.answerVerify(p, frame.body.offset, frame.body.length);
        return;
      }
      case 'VerifyReply': {
        const p = this.vol(frame);
        if (p?.verify) p.verify.onReply(frame.body);
        return;
      }
      case 'VerifyResult': {
        const p = this.vol(frame);
        if (p && this.inRange(p, frame.body) && !frame.body.inSync) {
          p.v.meta?.markOutOfSync(frame.body.offset, frame.body.length);
        }
        return;
      }
      default:
        this.protocolError(`unexpected ${frame.kind}`);
    }
  }

  private inRange(p: PeerVolume, r: { offset: number; length: number }): boolean {
    if (r.offset + r.length <= p.v.sizeBytes) return true;
    this.protocolError(`range ${r.offset}+${r.length} beyond volume ${p.v.number}'s ${p.v.sizeBytes} bytes`);
    return false;
  }

  private onParams(params: ReportParams): void {
    const s = this.h.settings;
    const mismatch: string[] = [];
    if (params.protocol !== s.protocol)
      mismatch.push(`protocol ${params.protocol} there, ${s.protocol} here`);
    if (params.allowTwoPrimaries !== s.allowTwoPrimaries) mismatch.push('allow-two-primaries differs');
    // DRBD's convert_after_sb: the peer's discard-local is our discard-remote.
    const theirs = policiesAsSeenByPeer({
      afterSb0pri: params.afterSb0pri,
      afterSb1pri: params.afterSb1pri,
      afterSb2pri: params.afterSb2pri,
    });
    if (theirs.afterSb0pri !== s.afterSb0pri) mismatch.push('after-sb-0pri differs');
    if (params.afterSb1pri !== s.afterSb1pri) mismatch.push('after-sb-1pri differs');
    if (params.afterSb2pri !== s.afterSb2pri) mismatch.push('after-sb-2pri differs');
    if (params.csumsAlg !== s.csumsAlg)
      mismatch.push(`csums-alg '${params.csumsAlg}' there, '${s.csumsAlg}' here`);
    if (params.verifyAlg !== s.verifyAlg)
      mismatch.push(`verify-alg '${params.verifyAlg}' there, '${s.verifyAlg}' here`);
    if (mismatch.length > 0) {
      const message = `incompatible net settings: ${mismatch.join('; ')}`;
      for (const p of this.vols) p.refusal = message;
      this.h.log.log('error', message);
      this.link.drop({ code: 'incompatible', message }, { fatal: true, tell: 'incompatible' });
      return;
    }
  }

  private onStateChangeRequest(frame: FrameOf<'StateChangeRequest'>): void {
    const { txId, change } = frame.body;
    let result = 0;
    switch (change) {
      case 'promote':
        if ((this.h.role() === 'Primary' || this.promoting) && !this.h.settings.allowTwoPrimaries)
          result = -1;
        else this.peerPromoting = true;
        break;
      case 'start-sync-source':
        // The peer's `invalidate-remote`: this node becomes the target of a full sync.
        void this.invalidateLocal().then((ok) =>
          this.link.send({ kind: 'StateChangeReply', volume: 0, body: { txId, result: ok ? 0 : -2 } }),
        );
        return;
      default:
        result = -3;
    }
    this.link.send({ kind: 'StateChangeReply', volume: 0, body: { txId, result } });
  }

  /**
   * `invalidate`: this node's data is thrown away and fetched whole from the peer.
   * Resolves once the disk is Inconsistent with every bit set and the handshake round
   * that makes this node SyncTarget is sent; false when not possible here.
   */
  async invalidateLocal(): Promise<boolean> {
    if (this.h.role() === 'Primary') return false;
    const ps = this.vols.filter((p) => p.sync === 'Established' && p.peerDisk === 'UpToDate' && p.v.meta);
    if (ps.length !== this.vols.length) return false;
    for (const p of ps) {
      p.sync = 'Negotiating';
      this.closeGate(p);
    }
    for (const p of ps) {
      try {
        await p.v.meta!.requestFullSync();
        await p.v.setDisk('Inconsistent', 'invalidate');
      } catch (e) {
        this.h.log.log('error', `invalidate: ${(e as Error).message}`, { volume: p.v.number });
        this.link.drop(
          { code: 'protocol-error', message: `invalidate: ${(e as Error).message}` },
          { fatal: false },
        );
        return false;
      }
      if (this.linkStateNow === 'Connected') this.sendRound(p);
    }
    return true;
  }

  /** `invalidate-remote`: the peer becomes the target of a full sync from here. */
  async invalidateRemote(): Promise<number> {
    if (this.linkStateNow !== 'Connected') return -15;
    const txId = ++this.txId;
    const reply = new Promise<number>((resolve) => this.txWaiters.set(txId, resolve));
    this.link.send({
      kind: 'StateChangeRequest',
      volume: 0,
      body: { txId, phase: 'commit', change: 'start-sync-source', flags: 0 },
    });
    return reply;
  }

  /** `verify`: compare both replicas; resolves when started. */
  startVerify(n: number): string | undefined {
    const p = this.vols[n]!;
    if (this.h.settings.verifyAlg === '') return `no verify-alg configured for ${this.h.resource}`;
    if (this.connState() !== 'Connected' || p.sync !== 'Established') {
      return `volume ${n} is not Connected and in sync (${this.volumeConnState(n)})`;
    }
    p.sync = 'VerifyS';
    this.h.event(`replication:VerifyS volume:${n}`);
    p.verify = new VerifySource({
      volume: p.v,
      link: this.link,
      alg: this.h.settings.verifyAlg,
      log: this.h.log,
      done: (outOfSyncBytes) => {
        if (p.sync === 'VerifyS') p.sync = 'Established';
        this.h.log.log('info', `online verify done: ${kib(outOfSyncBytes, true)} KiB out of sync`, {
          volume: n,
        });
        this.h.event(`verify-done volume:${n} out-of-sync:${kib(outOfSyncBytes, true)}k`);
      },
    });
    p.verify.start();
    return undefined;
  }

  private async answerVerify(p: PeerVolume, offset: number, length: number): Promise<void> {
    const lock = p.v.ranges.acquire(offset, length);
    try {
      if (lock.ready) await lock.ready;
      const buf = Buffer.allocUnsafe(length);
      await p.v.readLocal(buf, offset);
      this.link.send({
        kind: 'VerifyReply',
        volume: p.v.number,
        body: { offset, length, digest: digestOf(this.h.settings.verifyAlg, buf) },
      });
    } catch (e) {
      this.h.log.log('error', `verify read at ${offset}: ${(e as Error).message}`, { volume: p.v.number });
    } finally {
      lock.release();
    }
  }

  // ------------------------------------------------------------ the write path (receiver)

  /** Peer data received and not yet on this node's disk, bytes (bounded: max-buffers). */
  get receivePendingBytes(): number {
    return this.receivePending;
  }

  private receivePending = 0;

  private onData(frame: FrameOf<'Data'>): void {
    const p = this.vol(frame);
    if (!p) return;
    const d = frame.body;
    const connection = this.connection;
    if (!this.inRange(p, d)) return;
    // The peer numbers its writes in the order it sent them, and overlapping writes must
    // reach our disk in that order: a frame out of order (a broken peer, or something
    // between us that reorders bytes) ends the connection rather than letting an older
    // write land over a newer one unnoticed. The peer then resyncs what we did not confirm.
    if (d.seq <= this.lastDataSeq) {
      this.protocolError(
        `Data frame ${d.seq} after ${this.lastDataSeq}: the peer's writes came out of order`,
      );
      return;
    }
    this.lastDataSeq = d.seq;
    p.counters.receivedBytes += d.length;
    if ((d.flags & dataFlagBits.ackReceived) !== 0 && d.seq > this.recvAckedSeq)
      this.queueAck('received', d.seq);
    // Completed-before-submitted: wait for every earlier-received write of a lower epoch.
    let earlierEpoch = false;
    for (const r of this.received) {
      if (r.epoch < d.epoch) {
        earlierEpoch = true;
        break;
      }
    }
    // Nothing to wait for (no earlier epoch, no overlapping write under way) and a plain
    // small write: done now, with no promise, as the Primary's writeFast does.
    if (
      !earlierEpoch &&
      (d.flags & (dataFlagBits.fua | dataFlagBits.zeroes | dataFlagBits.discard)) === 0 &&
      !p.v.ranges.overlaps(d.offset, d.length)
    ) {
      let written: boolean;
      try {
        written = p.v.writeLocalAtOnce(d.payload, d.offset);
      } catch (e) {
        this.peerWriteFailed(p, d, e, connection);
        return;
      }
      if (written) {
        if ((d.flags & dataFlagBits.ackWritten) !== 0) this.queueAck('written', d.seq);
        return;
      }
    }
    // Backpressure: past max-buffers the link stops reading until the disk catches up.
    const limit = this.h.settings.receiveBufferBytes;
    this.receivePending += d.length;
    if (this.receivePending > limit) this.link.pauseReading();
    const waits: Promise<void>[] = [];
    if (earlierEpoch) for (const r of this.received) if (r.epoch < d.epoch) waits.push(r.done);
    const lock = p.v.ranges.acquire(d.offset, d.length);
    if (lock.ready) waits.push(lock.ready);
    p.counters.unacked++;
    let finish!: () => void;
    const entry: Received = {
      epoch: d.epoch,
      done: new Promise<void>((resolve) => {
        finish = resolve;
      }),
    };
    this.received.add(entry);
    const apply = async (): Promise<void> => {
      try {
        if (waits.length > 0) await Promise.all(waits);
        const zeroes = (d.flags & (dataFlagBits.zeroes | dataFlagBits.discard)) !== 0;
        const payload = zeroes ? Buffer.alloc(d.length) : d.payload;
        await p.v.writeLocal(payload, d.offset, (d.flags & dataFlagBits.fua) !== 0);
        if ((d.flags & dataFlagBits.ackWritten) !== 0 && connection === this.connection)
          this.queueAck('written', d.seq);
      } catch (e) {
        this.peerWriteFailed(p, d, e, connection);
      } finally {
        lock.release();
        p.counters.unacked = Math.max(0, p.counters.unacked - 1);
        this.received.delete(entry);
        this.receivePending -= d.length;
        if (this.receivePending <= limit / 2) this.link.resumeReading();
        finish();
      }
    };
    void apply();
  }

  /**
   * Protocol B: the RecvAcks for the Data frames of one read leave before any of them is
   * written. A small write is done on this thread and can block it (a buffered write
   * waiting for the journal while a barrier's flush commits, a stalled disk); the peer's
   * write completes on receipt and must not wait for that. Frames out of order are left
   * to onData, which ends the connection; so does any frame it refuses, and the peer then
   * resyncs every write we did not confirm with a BarrierAck, acknowledged or not.
   */
  private ackReceivedAtOnce(frames: readonly Frame[]): void {
    const acked = Math.max(this.lastDataSeq, this.recvAckedSeq);
    let first = 0;
    let last = acked;
    const send = (): void => {
      if (first === 0) return;
      this.link.send({ kind: 'RecvAck', volume: 0, body: { firstSeq: first, lastSeq: last } });
      first = 0;
    };
    for (const f of frames) {
      if (f.kind !== 'Data' || (f.body.flags & dataFlagBits.ackReceived) === 0) continue;
      const seq = f.body.seq;
      if (seq <= last) break;
      if (seq !== last + 1) send();
      if (first === 0) first = seq;
      last = seq;
    }
    if (last === acked) return;
    send();
    this.recvAckedSeq = last;
    this.link.flushNow();
  }

  /** A write from the peer failed on our disk: logged, out of sync here too, and a NegAck. */
  private peerWriteFailed(p: PeerVolume, d: FrameOf<'Data'>['body'], e: unknown, connection: number): void {
    this.h.log.log('error', `peer write at ${d.offset}+${d.length}: ${(e as Error).message}`, {
      volume: p.v.number,
    });
    // Our copy of the block is stale now: out of sync here too (a SyncTarget must not
    // finish over it).
    try {
      p.v.meta?.markOutOfSync(d.offset, d.length);
    } catch {
      // The metadata is gone with the disk: nothing to mark.
    }
    if (connection === this.connection) {
      this.link.send({ kind: 'NegAck', volume: 0, body: { firstSeq: d.seq, lastSeq: d.seq, error: 5 } });
    }
  }

  /**
   * Barrier(n): once every write of epochs <= n received so far is written, flush the
   * disks (disk-flushes) and answer BarrierAck(n). Barriers that arrive while a flush
   * runs are answered by the next one together: one fdatasync per batch, not per epoch.
   */
  private onBarrier(epoch: number): void {
    const connection = this.connection;
    const waits = [...this.received].filter((r) => r.epoch <= epoch).map((r) => r.done);
    const run = async (): Promise<void> => {
      await Promise.all(waits);
      if (connection !== this.connection || epoch <= this.barrierFlushed) return;
      // Later barriers are answered too when all their writes are already written.
      let oldestInFlight = Number.POSITIVE_INFINITY;
      for (const r of this.received) oldestInFlight = Math.min(oldestInFlight, r.epoch);
      const upTo = Math.max(epoch, Math.min(this.barrierWanted, oldestInFlight - 1));
      try {
        if (this.h.settings.diskFlushes) for (const p of this.vols) if (p.v.meta) await p.v.flushLocal();
      } catch (e) {
        this.h.log.log('error', `flush for a barrier: ${(e as Error).message}`);
        this.link.drop(
          { code: 'protocol-error', message: `flush failed: ${(e as Error).message}` },
          { fatal: false },
        );
        return;
      }
      this.barrierFlushed = Math.max(this.barrierFlushed, upTo);
      if (connection === this.connection) {
        this.link.send({ kind: 'BarrierAck', volume: 0, body: { epoch: upTo, writes: waits.length } });
      }
    };
    this.barrierWanted = Math.max(this.barrierWanted, epoch);
    this.barrierChain = this.barrierChain.then(run, run);
  }

  private onFlush(flushId: number): void {
    const connection = this.connection;
    const waits = [...this.received].map((r) => r.done);
    void (async () => {
      await Promise.all(waits);
      try {
        if (this.h.settings.diskFlushes) for (const p of this.vols) if (p.v.meta) await p.v.flushLocal();
        if (connection === this.connection)
          this.link.send({ kind: 'FlushAck', volume: 0, body: { flushId } });
      } catch (e) {
        this.h.log.log('error', `flush for the peer: ${(e as Error).message}`);
        this.link.drop(
          { code: 'protocol-error', message: `flush failed: ${(e as Error).message}` },
          { fatal: false },
        );
      }
    })();
  }

  private queueAck(kind: 'received' | 'written', seq: number): void {
    (kind === 'received' ? this.recvAcks : this.writeAcks).push(seq);
    if (this.acksScheduled) return;
    this.acksScheduled = true;
    // One ack frame per run of consecutive sequence numbers completed in this turn.
    setImmediate(() => {
      this.acksScheduled = false;
      const send = (seqs: number[], k: 'RecvAck' | 'WriteAck'): void => {
        seqs.sort((a, b) => a - b);
        let first = seqs[0];
        for (let i = 0; i < seqs.length; i++) {
          const s = seqs[i]!;
          const next = seqs[i + 1];
          if (next === s + 1) continue;
          this.link.send({ kind: k, volume: 0, body: { firstSeq: first!, lastSeq: s } });
          first = next;
        }
      };
      if (this.recvAcks.length > 0) send(this.recvAcks, 'RecvAck');
      if (this.writeAcks.length > 0) send(this.writeAcks, 'WriteAck');
      this.recvAcks = [];
      this.writeAcks = [];
    });
  }
}

function kib(bitsOrBytes: number, bytes = false): number {
  return bytes ? Math.ceil(bitsOrBytes / 1024) : bitsOrBytes * 4;
}

function formatUuids(u: { current: bigint; bitmap: bigint; history: readonly [bigint, bigint] }): string {
  return `${formatUuid(u.current)}:${formatUuid(u.bitmap)}:${formatUuid(u.history[0])}:${formatUuid(u.history[1])}`;
}
