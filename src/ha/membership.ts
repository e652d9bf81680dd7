// Membership: heartbeats out every `keepalive` on every link, heartbeats in, and each
// peer's liveness — `up` while heard on any link, late after `warntime` (logged once),
// dead after `deadtime` of silence on every link (`initdead` while it has never been
// heard since this node started). Every packet must carry a valid MAC under a key of
// authkeys and a generation/sequence not seen before; forged, replayed and malformed
// packets are dropped and counted, never acted on. Requests (standby, takeover,
// outdate-peer) ride on the same links, addressed to one node, and are answered once; a
// request whose reply never comes fails after its timeout. Each heartbeat carries the
// sender's view of the other nodes (a witness's word on who is alive), and every node
// relays requests and replies addressed to another node once: with a witness, a request
// reaches the peer around a cut between the two.
import type { AuthKey } from '../config/authkeys.js';
import { type LinkClock, realClock, type TimerHandle } from '../replication/clock.js';
import type { GroupState } from './groups.js';
import {
  type DecodedPacket,
  decodePacket,
  encodePacket,
  type GroupReport,
  type HaPacket,
  HaPacketError,
  type NodeReport,
  type NodeState,
  type RequestKind,
  verifyPacket,
} from './packet.js';
import { ReplayGuard } from './replay.js';
import type { HeartbeatTransport } from './transport.js';

export type PeerState = NodeState;

export interface PeerView {
  readonly name: string;
  readonly state: PeerState;
  /** Late: up, but silent for more than warntime. */
  readonly late: boolean;
  /** ms since the last valid packet (undefined: never heard). */
  readonly silentMs: number | undefined;
  /** Per link: ms since the last valid packet on it. */
  readonly links: Readonly<Record<string, number>>;
  readonly groups: readonly GroupReport[];
  readonly standby: boolean;
  readonly generation: string | undefined;
  /** The node's own view of the others, from its last heartbeat (empty while it is not up). */
  readonly view: readonly NodeReport[];
  /** ms since that heartbeat was taken (undefined: none). */
  readonly heartbeatAgeMs: number | undefined;
}

export interface MembershipCounters {
  received: number;
  sent: number;
  malformed: number;
  forged: number;
  replayed: number;
  foreign: number;
  late: number;
  /** Requests and replies for another node, sent on once. */
  relayed: number;
}

export interface MembershipOptions {
  readonly self: string;
  /** The other nodes of the cluster. */
  readonly peers: readonly string[];
  readonly cluster: string;
  readonly keepaliveMs: number;
  readonly warntimeMs: number;
  readonly deadtimeMs: number;
  readonly initdeadMs: number;
  readonly activeKey: AuthKey;
  readonly keys: readonly AuthKey[];
  readonly clock?: LinkClock;
  /** What this node reports in each heartbeat (`outdatePending`: the witness's outdates it holds). */
  readonly report: () => {
    groups: readonly GroupReport[];
    standby: boolean;
    outdatePending?: ReadonlySet<string>;
  };
  readonly onPeerChange: (view: PeerView, why: string) => void;
  /** Answers a peer's request: 0 done, negative refused, with a message. */
  readonly onRequest: (
    kind: RequestKind,
    resource: string,
    from: string,
  ) => Promise<{ result: number; message: string }>;
  readonly log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /**
   * This start's generation: larger than every earlier one of this node (the daemon
   * keeps a counter on disk, as Heartbeat's hb_generation, so a clock that went
   * backwards cannot make a restarted node's packets look old). Default: Date.now().
   */
  readonly generation?: number;
}

interface Pending {
  readonly resolve: (r: { result: number; message: string }) => void;
  readonly timer: TimerHandle;
}

/** What this node knows of one other node. */
class PeerTracker {
  state: PeerState = 'init';
  late = false;
  lastHeardMs: number | undefined;
  readonly linkHeard = new Map<string, number>();
  groups: readonly GroupReport[] = [];
  standby = false;
  generation: number | undefined;
  /** The highest heartbeat seq of the peer's generation whose state was taken. */
  lastHeartbeatSeq = 0;
  view: readonly NodeReport[] = [];
  heartbeatAtMs: number | undefined;

  constructor(readonly name: string) {}

  snapshot(now: number): PeerView {
    const links: Record<string, number> = {};
    for (const [name, at] of this.linkHeard) links[name] = Math.round(now - at);
    return {
      name: this.name,
      state: this.state,
      late: this.late,
      silentMs: this.lastHeardMs === undefined ? undefined : Math.round(now - this.lastHeardMs),
      links,
      groups: this.groups,
      standby: this.standby,
      generation: this.generation === undefined ? undefined : String(this.generation),
      view: this.view,
      heartbeatAgeMs: this.heartbeatAtMs === undefined ? undefined : Math.round(now - this.heartbeatAtMs),
    };
  }
}

export class Membership {
  private readonly o: MembershipOptions;
  private readonly clock: LinkClock;
  private transport: HeartbeatTransport | undefined;
  private readonly generation: number;
  private seq = 0;
  private readonly startedMs: number;
  private readonly peers = new Map<string, PeerTracker>();
  private readonly replay: ReplayGuard;
  private timer: TimerHandle | undefined;
  private lastTickMs: number | undefined;
  private requestId = 0;
  private readonly pending = new Map<number, Pending>();
  /** Requests answered, by sender:generation:id, so a retransmission is not acted on twice. */
  private readonly answered = new Map<string, Promise<{ result: number; message: string }>>();
  readonly counters: MembershipCounters = {
    received: 0,
    sent: 0,
    malformed: 0,
    forged: 0,
    replayed: 0,
    foreign: 0,
    late: 0,
    relayed: 0,
  };

  constructor(o: MembershipOptions) {
    this.o = o;
    this.clock = o.clock ?? realClock;
    this.startedMs = this.clock.now();
    this.generation = o.generation ?? Date.now();
    for (const name of o.peers) this.peers.set(name, new PeerTracker(name));
    this.replay = new ReplayGuard(o.peers);
    if (o.activeKey.method === 'crc') {
      o.log('warn', "authkeys uses crc: heartbeats are not authenticated (Heartbeat's no-security mode)");
    }
  }

  /** Time since this membership was made (the daemon's start), ms. */
  uptimeMs(): number {
    return this.clock.now() - this.startedMs;
  }

  /** Heartbeats are being sent (start() was called, stop() not yet). */
  get started(): boolean {
    return this.transport !== undefined;
  }

  /** Starts sending heartbeats on `transport` (whose received packets go to receive()). */
  start(transport: HeartbeatTransport): void {
    this.transport = transport;
    this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.pending.values()) {
      this.clock.clearTimeout(p.timer);
      p.resolve({ result: -1, message: 'tandem-ha is stopping' });
    }
    this.pending.clear();
    await this.transport?.close();
    this.transport = undefined;
  }

  /** One peer's view; `name` must be a peer. */
  view(name: string): PeerView {
    const t = this.peers.get(name);
    if (t === undefined) throw new Error(`internal: ${name} is not a peer of ${this.o.self}`);
    return t.snapshot(this.clock.now());
  }

  views(): PeerView[] {
    const now = this.clock.now();
    return [...this.peers.values()].map((t) => t.snapshot(now));
  }

  /** True once every peer was heard, or initdead passed: group decisions may be made. */
  settled(): boolean {
    if (this.clock.now() - this.startedMs >= this.o.initdeadMs) return true;
    return [...this.peers.values()].every((t) => t.state !== 'init');
  }

  /** The body of a packet; the common fields are filled in here. */
  private send(to: string, body: BodyOf<'heartbeat'> | BodyOf<'request'> | BodyOf<'reply'>): void {
    if (!this.transport) return;
    this.seq++;
    let packet: Buffer;
    try {
      packet = encodePacket(
        {
          ...body,
          cluster: this.o.cluster,
          from: this.o.self,
          to,
          generation: this.generation,
          seq: this.seq,
          timeMs: Date.now(),
        } as HaPacket,
        this.o.activeKey,
      );
    } catch (e) {
      // Our own bug (a field over its limit): logged, never a crash of the daemon.
      this.o.log('error', `cannot encode a ${body.type} packet: ${(e as Error).message}`);
      return;
    }
    this.transport.send(packet);
    this.counters.sent++;
  }

  /** Sends a heartbeat now (after a local change, so the peers learn it at once). */
  beat(): void {
    const r = this.o.report();
    const now = this.clock.now();
    const view: NodeReport[] = [...this.peers.values()].map((t) => ({
      name: t.name,
      state: t.state,
      silentMs: t.lastHeardMs === undefined ? undefined : Math.round(now - t.lastHeardMs),
      outdatePending: r.outdatePending?.has(t.name) ?? false,
    }));
    this.send('', { type: 'heartbeat', groups: r.groups, standbyRequested: r.standby, view });
  }

  private tick(): void {
    const now = this.clock.now();
    // This node itself was paused (SIGSTOP, a VM pause, a swap storm): the timer fires
    // before the packets that queued up meanwhile are read. Judge the peers next time.
    const gap = this.lastTickMs === undefined ? 0 : now - this.lastTickMs;
    const paused = gap > Math.max(2 * this.o.keepaliveMs, this.o.deadtimeMs / 2);
    this.lastTickMs = now;
    if (paused)
      this.o.log(
        'warn',
        `this node was paused for ${Math.round(gap)} ms; liveness is judged at the next tick`,
      );
    else for (const t of this.peers.values()) this.checkLiveness(t);
    this.beat();
    this.timer = this.clock.setTimeout(() => this.tick(), this.o.keepaliveMs);
  }

  private checkLiveness(t: PeerTracker): void {
    const now = this.clock.now();
    if (t.state === 'init') {
      if (now - this.startedMs >= this.o.initdeadMs) {
        t.state = 'dead';
        this.o.onPeerChange(t.snapshot(now), `not heard within initdead ${this.o.initdeadMs} ms`);
      }
      return;
    }
    if (t.state !== 'up' || t.lastHeardMs === undefined) return;
    const silent = now - t.lastHeardMs;
    if (silent >= this.o.deadtimeMs) {
      t.state = 'dead';
      t.late = false;
      t.groups = [];
      t.view = [];
      this.o.onPeerChange(
        t.snapshot(now),
        `silent on every link for ${Math.round(silent)} ms (deadtime ${this.o.deadtimeMs} ms)`,
      );
      return;
    }
    if (!t.late && silent >= this.o.warntimeMs) {
      t.late = true;
      this.counters.late++;
      this.o.log(
        'warn',
        `node ${t.name}: late heartbeat, silent for ${Math.round(silent)} ms (warntime ${this.o.warntimeMs} ms)`,
      );
    }
  }

  /** One datagram from a link. Never throws: the network is the outside world. */
  receive(bytes: Buffer, link: string, from: string): void {
    let d: DecodedPacket;
    try {
      d = decodePacket(bytes);
    } catch (e) {
      this.counters.malformed++;
      if (!(e instanceof HaPacketError))
        this.o.log('error', `heartbeat from ${from} on ${link}: ${(e as Error).message}`);
      return;
    }
    const verdict = verifyPacket(d, this.o.keys);
    if (!verdict.ok) {
      this.counters.forged++;
      this.o.log(
        'warn',
        `dropped a packet from ${from} on ${link} claiming to be ${d.from}: ${verdict.reason}`,
      );
      return;
    }
    const t = this.peers.get(d.from);
    const forOther = d.to !== '' && d.to !== this.o.self;
    if (
      d.cluster !== this.o.cluster ||
      t === undefined ||
      (forOther && (d.type === 'heartbeat' || !this.peers.has(d.to)))
    ) {
      // Another cluster's, our own packet relayed back, or addressed to nobody we know.
      if (d.from !== this.o.self) this.counters.foreign++;
      return;
    }
    const r = this.replay.check(d.from, d.generation, d.seq);
    if (r !== 'ok') {
      // Also every copy of a packet on a second link or relayed: counted, not logged.
      this.counters.replayed++;
      return;
    }
    this.replay.accept(d.from, d.generation, d.seq);
    this.counters.received++;
    const now = this.clock.now();
    if (forOther) {
      // A request or reply for another node: sent on once (the replay guard makes it
      // once), byte for byte, so that it reaches a node this one hears and its sender
      // may not. It proves nothing about the sender's liveness here: only that it lived.
      this.counters.relayed++;
      this.transport?.send(bytes);
      return;
    }
    t.linkHeard.set(link, now);
    t.lastHeardMs = now;
    const restarted = t.generation !== undefined && d.generation !== t.generation;
    t.generation = d.generation;
    if (t.late) {
      t.late = false;
      this.o.log('info', `node ${t.name}: heard again`);
    }
    if (d.type === 'heartbeat') {
      const wasUp = t.state === 'up';
      // An older heartbeat that arrives late (UDP reorders) proves liveness, not state.
      if (!restarted && wasUp && d.seq < t.lastHeartbeatSeq) return;
      t.lastHeartbeatSeq = d.seq;
      const changed =
        !wasUp ||
        restarted ||
        d.standbyRequested !== t.standby ||
        JSON.stringify(d.groups) !== JSON.stringify(t.groups) ||
        JSON.stringify(d.view.map((v) => [v.name, v.state])) !==
          JSON.stringify(t.view.map((v) => [v.name, v.state]));
      t.groups = d.groups;
      t.standby = d.standbyRequested;
      t.view = d.view;
      t.heartbeatAtMs = now;
      t.state = 'up';
      if (changed)
        this.o.onPeerChange(t.snapshot(now), wasUp ? (restarted ? 'restarted' : 'reported a change') : 'up');
      return;
    }
    if (d.type === 'request') {
      const key = `${d.from}:${d.generation}:${d.requestId}`;
      const requestId = d.requestId;
      const requester = d.from;
      // The promise is kept from the first copy on: repeats (and copies on other links)
      // wait for the same answer instead of acting again.
      let answer = this.answered.get(key);
      if (answer === undefined) {
        answer = this.o.onRequest(d.kind, d.resource, requester).catch((e: unknown) => ({
          result: -5,
          message: `failed: ${(e as Error).message}`,
        }));
        this.answered.set(key, answer);
        if (this.answered.size > 64) this.answered.delete(this.answered.keys().next().value as string);
      }
      void answer.then((a) =>
        this.send(requester, { type: 'reply', requestId, result: a.result, message: replyText(a.message) }),
      );
      return;
    }
    const p = this.pending.get(d.requestId);
    if (!p) return;
    this.pending.delete(d.requestId);
    this.clock.clearTimeout(p.timer);
    p.resolve({ result: d.result, message: d.message });
  }

  /**
   * Asks node `to` to do something; resolves with its answer, or result -1 after the
   * timeout. `giveUp`, asked every keepalive, may end the wait earlier with its own answer.
   */
  request(
    kind: RequestKind,
    to: string,
    resource = '',
    timeoutMs = this.o.deadtimeMs,
    giveUp?: () => { result: number; message: string } | undefined,
  ): Promise<{ result: number; message: string }> {
    const requestId = ++this.requestId;
    const deadline = this.clock.now() + timeoutMs;
    return new Promise((resolve) => {
      // UDP loses packets: the request goes again every keepalive until answered (the peer
      // answers a repeat from its memory, acting once).
      const again = (): void => {
        if (!this.pending.has(requestId)) return;
        const early = giveUp?.();
        if (early !== undefined) {
          this.pending.delete(requestId);
          resolve(early);
          return;
        }
        if (this.clock.now() >= deadline) {
          this.pending.delete(requestId);
          resolve({ result: -1, message: `no answer from ${to} within ${timeoutMs} ms` });
          return;
        }
        this.send(to, { type: 'request', kind, requestId, resource });
        const entry = this.pending.get(requestId);
        if (entry)
          this.pending.set(requestId, {
            resolve: entry.resolve,
            timer: this.clock.setTimeout(again, this.o.keepaliveMs),
          });
      };
      this.pending.set(requestId, { resolve, timer: this.clock.setTimeout(again, this.o.keepaliveMs) });
      this.send(to, { type: 'request', kind, requestId, resource });
    });
  }
}

export type { GroupState };

type Common = 'cluster' | 'from' | 'to' | 'generation' | 'seq' | 'timeMs';
type BodyOf<T extends HaPacket['type']> = Omit<Extract<HaPacket, { type: T }>, Common>;

/** A reply message as a packet carries it: one line, no control characters, at most 200 bytes. */
function replyText(message: string): string {
  let t = [...message]
    .map((ch) => (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? ' ' : ch))
    .join('');
  t = t.replace(/ {2,}/g, ' ').trim();
  while (Buffer.byteLength(t) > 200) t = t.slice(0, -1);
  return t;
}
