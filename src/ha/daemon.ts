// The tandem-ha daemon of one node: membership over the heartbeat links, the resource
// groups of haresources, and the policy (policy.ts) that decides after every change
// which groups this node starts or stops. A small control socket (DIR/tandem-ha.sock,
// JSON lines, mode 0600) answers status, standby and takeover. With a witness (ha.cf's
// `witness NAME`) the data nodes act only with a majority (quorum.ts), and the witness
// itself runs no groups: it votes and relays.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { HaConfig } from '../config/ha.js';
import { LineSplitter } from '../daemon/control-protocol.js';
import { acquirePidFile } from '../daemon/pidfile.js';
import type { AgentContext } from './agents/agent.js';
import { resolveAgent } from './agents/agent.js';
import { spawnRun } from './agents/spawn-run.js';
import { Dashboard, type DashboardEvent } from './dashboard.js';
import { GroupManager, type GroupStatus } from './groups.js';
import { Membership, type MembershipCounters, type PeerView } from './membership.js';
import { HaMetrics } from './metrics.js';
import { clusterBytesMax, type GroupReport, nodeNameBytesMax } from './packet.js';
import { decideGroups, lostQuorum, type PeerLiveness } from './policy.js';
import { deadByMajority, type Quorum, type QuorumInput, quorumOf } from './quorum.js';
import { openTransport } from './transport.js';

export interface HaDaemonOptions {
  readonly config: HaConfig;
  readonly node: string;
  readonly runDir: string;
  /** argv of tandemadm for the tandemdisk/drbddisk agent. */
  readonly tandemadm: readonly string[];
  readonly log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Where LSB scripts are looked up after resource.d (default /etc/init.d). */
  readonly initDir?: string;
  /** How long drbddisk/tandemdisk waits for an UpToDate disk when promoting (default 10 s). */
  readonly diskWaitSeconds?: number;
  /** argv that reboots this node, for `on_stop_failure reboot` (default `reboot -f`). */
  readonly rebootCommand?: readonly string[];
}

/** Log lines the dashboard shows as recent events. */
const eventsMax = 100;

/**
 * The dashboard's token: the first line of a file only root may read (as authkeys),
 * at least 16 characters. Anything else is refused, naming the file.
 */
export function readTokenFile(path: string): string {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(path, 'utf8');
    mode = statSync(path).mode;
  } catch (e) {
    throw new Error(`dashboard_token_file ${path}: ${(e as Error).message}`);
  }
  if ((mode & 0o077) !== 0)
    throw new Error(
      `dashboard_token_file ${path}: mode ${(mode & 0o777).toString(8)}, must not be readable by others (chmod 600)`,
    );
  const token = (text.split('\n')[0] ?? '').trim();
  if (token.length < 16)
    throw new Error(`dashboard_token_file ${path}: the token must have at least 16 characters`);
  return token;
}

export interface HaStatus {
  readonly node: string;
  /** The other data node (null on the witness). */
  readonly peer: PeerView | null;
  /** Every other node: the peer, and the witness or (on the witness) both data nodes. */
  readonly nodes: readonly PeerView[];
  readonly witness: string | null;
  readonly quorum: Quorum;
  /** On the witness: outdated data nodes not yet told, with their resource. */
  readonly outdatePending: Readonly<Record<string, string>>;
  readonly standby: boolean;
  readonly groups: readonly GroupStatus[];
  readonly counters: MembershipCounters;
  readonly failovers: number;
}

export class HaDaemon {
  private readonly o: HaDaemonOptions;
  /** The other data node; undefined on the witness. */
  readonly peerName: string | undefined;
  readonly witness: string | undefined;
  private hadQuorum = true;
  /** The majority was held once since start (before that, its absence may be only the votes' round trip). */
  private everHadQuorum = false;

  /**
   * How long a starting node waits for the others' votes before it releases a group it
   * found running (a restarted tandem-ha whose group runs on): about two heartbeat
   * round trips, at most deadtime.
   */
  private quorumGraceMs(): number {
    const { keepalive, deadtime } = this.o.config.hacf;
    return Math.min(deadtime.ms, 4 * keepalive.ms);
  }
  /**
   * On the witness: the data nodes whose copy is old (their peer went on writing while
   * the majority counted them dead), with the resource, kept in RUN_DIR/tandem-ha.outdated
   * until the node itself confirms its disk Outdated.
   */
  private readonly outdatePending = new Map<string, string>();
  /** When each pending outdate was last asked for (ms): one try at a time. */
  private readonly outdateAsked = new Map<string, number>();
  private readonly groups: GroupManager;
  private readonly membership: Membership;
  private standby = false;
  /** Groups whose last start here failed: the peer may try them. */
  private readonly startFailed = new Set<string>();
  /** The peer's liveness at the last evaluation (a change clears startFailed). */
  private lastLiveness: PeerLiveness | undefined;
  private server: Server | undefined;
  private evaluating = false;
  private evaluation: Promise<void> = Promise.resolve();
  private again = false;
  private failovers = 0;
  private metrics: HaMetrics | undefined;
  private dashboard: Dashboard | undefined;
  private readonly recent: DashboardEvent[] = [];
  private stopped = false;
  private releasePid: (() => void) | undefined;

  constructor(options: HaDaemonOptions) {
    // Everything tandem-ha logs is also kept, the last eventsMax of it, for the dashboard.
    const o: HaDaemonOptions = {
      ...options,
      log: (level, message) => {
        options.log(level, message);
        this.recent.push({ at: Date.now(), level, text: message });
        if (this.recent.length > eventsMax) this.recent.splice(0, this.recent.length - eventsMax);
      },
    };
    this.o = o;
    const hacf = o.config.hacf;
    const others = hacf.nodes.map((n) => n.name).filter((n) => n !== o.node);
    this.witness = hacf.witness?.name;
    if (others.length !== (this.witness === undefined ? 1 : 2)) {
      throw new Error(
        `tandem-ha runs two nodes with disks, and optionally a witness: ha.cf names ${hacf.nodes.length} node(s) (${hacf.nodes.map((n) => n.name).join(', ')})${hacf.nodes.length === 3 ? '; name the third with `witness NAME`' : ''}`,
      );
    }
    this.peerName = o.node === this.witness ? undefined : others.find((n) => n !== this.witness);
    if (this.witness === undefined)
      o.log(
        'info',
        'no witness: each node acts on its own view; resource-level fencing (fence-peer → tandem-ha outdate-peer) is what keeps a partitioned Primary from writing alone',
      );
    for (const n of hacf.nodes) {
      if (Buffer.byteLength(n.name) > nodeNameBytesMax) {
        throw new Error(
          `node name '${n.name}' is longer than ${nodeNameBytesMax} bytes, more than a heartbeat carries`,
        );
      }
    }
    const ctx: AgentContext = {
      configDir: o.config.dir,
      tandemadm: o.tandemadm,
      ...(o.initDir === undefined ? {} : { initDir: o.initDir }),
      ...(o.diskWaitSeconds === undefined ? {} : { diskWaitSeconds: o.diskWaitSeconds }),
      // spawnRun, not execFile: an init script whose daemon keeps stdout open must not
      // hold `start` until the timeout, and a timeout must be told from a failure.
      run: spawnRun,
      log: (level, message) => o.log(level, message),
      // With a witness, a start under way stops short of promoting once the majority is gone.
      mayNotAct: () => (quorumOf(this.quorumInput()).has ? undefined : lostQuorum),
    };
    this.groups = new GroupManager({
      // The witness has no disks: it runs no group, whatever haresources says.
      groups: o.node === this.witness ? [] : o.config.resources.groups,
      ctx,
      resolve: resolveAgent,
      log: o.log,
      onChange: () => {
        this.membership?.beat();
      },
    });
    this.membership = new Membership({
      self: o.node,
      peers: others,
      cluster: clusterId(hacf.nodes.map((n) => n.name)),
      keepaliveMs: hacf.keepalive.ms,
      warntimeMs: hacf.warntime.ms,
      deadtimeMs: hacf.deadtime.ms,
      initdeadMs: hacf.initdead.ms,
      activeKey: o.config.authkeys.active,
      keys: o.config.authkeys.keys,
      report: () => ({
        groups: this.report(),
        standby: this.standby,
        outdatePending: new Set(this.outdatePending.keys()),
      }),
      onPeerChange: (view, why) => {
        o.log(view.state === 'dead' ? 'warn' : 'info', `node ${view.name}: ${view.state} (${why})`);
        this.evaluate();
      },
      onRequest: (kind, resource, from) => this.onRequest(kind, resource, from),
      log: o.log,
      generation: nextGeneration(o.runDir),
    });
  }

  private get outdatedFile(): string {
    return join(this.o.runDir, 'tandem-ha.outdated');
  }

  private loadOutdated(): void {
    if (!existsSync(this.outdatedFile)) return;
    try {
      const saved = JSON.parse(readFileSync(this.outdatedFile, 'utf8')) as unknown;
      if (typeof saved !== 'object' || saved === null) throw new Error('not a JSON object');
      for (const [node, res] of Object.entries(saved))
        if (node !== this.o.node && typeof res === 'string') this.outdatePending.set(node, res);
    } catch (e) {
      this.o.log('error', `${this.outdatedFile}: ${(e as Error).message}; outdates held before are lost`);
    }
  }

  private saveOutdated(): void {
    const tmp = `${this.outdatedFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(this.outdatePending))}\n`);
    renameSync(tmp, this.outdatedFile);
  }

  /**
   * The witness delivers the outdates it holds: to each such node that is up, once at a
   * time, until it answers that its disk is Outdated (or that it is connected to its peer,
   * which then resyncs it).
   */
  private deliverOutdates(): void {
    for (const [node, res] of this.outdatePending) {
      const last = this.outdateAsked.get(node);
      const timeoutMs = 3 * this.o.config.hacf.deadtime.ms;
      const up = this.membership.view(node).state === 'up';
      if (!up || (last !== undefined && Date.now() - last < timeoutMs + 1000)) continue;
      this.outdateAsked.set(node, Date.now());
      void this.membership.request('outdate-peer', node, res, timeoutMs).then((r) => {
        if (r.result === 0 || /\(-5\)/.test(r.message)) {
          this.outdatePending.delete(node);
          this.outdateAsked.delete(node);
          this.saveOutdated();
          this.o.log('info', `${node}: the outdate of ${res} is delivered (${r.message})`);
          this.membership.beat();
        } else this.o.log('warn', `${node}: outdate of ${res} not done yet: ${r.message}`);
      });
    }
  }

  private report(): GroupReport[] {
    return this.groups.status().map((g) => ({
      key: g.key,
      state: g.state === 'released' && this.startFailed.has(g.key) ? 'start-failed' : g.state,
    }));
  }

  get socketPath(): string {
    return join(this.o.runDir, 'tandem-ha.sock');
  }

  async start(): Promise<void> {
    // A bad token file is a configuration error: refused before anything starts.
    const tf = this.o.config.hacf.dashboardTokenFile;
    const token = this.o.config.hacf.dashboardAddress && tf !== undefined ? readTokenFile(tf) : undefined;
    // One tandem-ha per run dir: a second one would take the control socket and the port.
    mkdirSync(this.o.runDir, { recursive: true });
    this.releasePid = acquirePidFile(join(this.o.runDir, 'tandem-ha.pid'));
    const transport = await openTransport({
      links: this.o.config.hacf.links,
      onPacket: (buf, link, from) => this.membership.receive(buf, link, from),
      log: (m) => this.o.log('warn', m),
    });
    if (transport.links.length === 0)
      throw new Error('no usable heartbeat link in ha.cf (ucast, bcast or mcast)');
    this.o.log('info', `heartbeat links: ${transport.links.map((l) => l.name).join('; ')}`);
    // What a previous life of this daemon left running is ours until stopped: report it
    // as held, not as released, or the peer would start it too.
    await this.groups.probe();
    if (this.peerName === undefined) this.loadOutdated();
    this.membership.start(transport);
    await this.listen();
    await this.startDashboard(token);
    const m = this.o.config.hacf.metricsAddress;
    if (m !== undefined) {
      // For watching, not for failover: a port that cannot be had is logged, not fatal.
      const metrics = new HaMetrics(() => this.status(), this.o.config.hacf.deadtime.ms);
      try {
        await metrics.listen(m.host, m.port, (message) => this.o.log('warn', message));
        this.metrics = metrics;
        this.o.log('info', `metrics on http://${m.host}:${m.port}/metrics`);
      } catch (e) {
        this.o.log('error', `cannot serve metrics on ${m.host}:${m.port}: ${(e as Error).message}`);
      }
    }
    // Re-evaluate now and then: initdead passing is a change nobody reports.
    // The majority is a lease that runs out with time alone: look often.
    const timer = setInterval(() => this.evaluate(), Math.max(20, this.o.config.hacf.keepalive.ms / 4));
    timer.unref();
    this.evaluate();
  }

  /** Stops the groups this node runs (right to left), then membership. */
  /**
   * Stops the groups held here, last first, then membership. False when a group could
   * not be stopped: tandem-ha then goes on heartbeating (reporting it `failed`, so the
   * peer does not start it) instead of going silent with it held — or, with
   * `on_stop_failure reboot`, reboots the node.
   */
  async stop(): Promise<boolean> {
    this.stopped = true;
    // An action under way (a group starting) finishes first; then everything held here
    // is stopped, last group first.
    await this.evaluation;
    for (const g of [...this.groups.status()].reverse())
      if (g.state !== 'released') await this.groups.stop(g.key);
    const failed = this.groups.status().filter((g) => g.state === 'failed');
    if (failed.length > 0 && this.membership.started) {
      for (const g of failed) await this.stopFailed(g.key, g.reason ?? 'stop failed');
      this.membership.beat();
      return false;
    }
    await this.membership.stop();
    await this.metrics?.close();
    await this.dashboard?.close();
    const server = this.server;
    if (server) {
      // Only our own socket: a daemon that could not start must not remove a running one's.
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
    }
    this.releasePid?.();
    return true;
  }

  private quorumInput(): QuorumInput {
    return {
      self: this.o.node,
      witness: this.witness,
      peers: this.membership.views(),
      deadtimeMs: this.o.config.hacf.deadtime.ms,
      keepaliveMs: this.o.config.hacf.keepalive.ms,
    };
  }

  status(): HaStatus {
    return {
      node: this.o.node,
      peer: this.peerName === undefined ? null : this.membership.view(this.peerName),
      nodes: this.membership.views(),
      witness: this.witness ?? null,
      quorum: quorumOf(this.quorumInput()),
      outdatePending: Object.fromEntries(this.outdatePending),
      standby: this.standby,
      groups: this.groups.status(),
      counters: this.membership.counters,
      failovers: this.failovers,
    };
  }

  /** Runs the policy until it asks for nothing more; one evaluation at a time. */
  private evaluate(): void {
    if (this.stopped) return;
    if (this.evaluating) {
      this.again = true;
      return;
    }
    this.evaluating = true;
    this.evaluation = (async () => {
      try {
        do {
          this.again = false;
          if (this.peerName === undefined) {
            this.deliverOutdates();
            break;
          }
          const peer = this.membership.view(this.peerName);
          const qi = this.quorumInput();
          const quorum = quorumOf(qi);
          if (quorum.has) this.everHadQuorum = true;
          if (quorum.has !== this.hadQuorum) {
            this.hadQuorum = quorum.has;
            this.o.log(quorum.has ? 'info' : 'error', quorum.why);
          }
          // With a witness a silent peer is dead only by the majority's word; until then
          // it may be alive and serving (a cut between the two data nodes alone).
          // A node the witness holds an outdate for has an old copy: it takes nothing over.
          const outdated =
            this.witness !== undefined &&
            this.membership.view(this.witness).view.some((v) => v.name === this.o.node && v.outdatePending);
          const liveness: PeerLiveness =
            peer.state === 'up' ? 'up' : !outdated && deadByMajority(qi, this.peerName) ? 'dead' : 'unknown';
          // A start that failed here failed in the world of that moment (the peer still
          // Primary, say). Once the peer dies or comes back, this node may try again:
          // otherwise both nodes can wait for each other to try, and nobody serves.
          if (liveness !== this.lastLiveness) {
            if (liveness !== 'unknown') this.startFailed.clear();
            this.lastLiveness = liveness;
          }
          const actions = decideGroups({
            quorum: quorum.has,
            quorumPending: !this.everHadQuorum && this.membership.uptimeMs() < this.quorumGraceMs(),
            self: this.o.node,
            peerLiveness: liveness,
            settled: this.membership.settled(),
            standby: this.standby,
            peerStandby: peer.standby,
            autoFailback: this.o.config.hacf.autoFailback.failsBack,
            groups: this.groups.status().map((g) => ({
              key: g.key,
              preferred: g.node,
              mine: g.state,
              mineStartFailed: this.startFailed.has(g.key),
              peer: liveness === 'up' ? peerGroup(peer, g.key) : undefined,
            })),
          });
          // One action, then decide again: what the peer reported may have changed while
          // it ran (a peer that came back, a standby request).
          for (const a of actions.slice(0, 1)) {
            if (this.stopped) break;
            this.o.log('info', `group ${a.key}: ${a.kind} (${a.why})`);
            if (a.kind === 'start') {
              const ok = await this.groups.start(a.key);
              if (ok) {
                this.startFailed.delete(a.key);
                if (a.why === 'the peer is dead' || a.why.includes('standby') || a.why.includes('failed'))
                  this.failovers++;
              } else if (quorumOf(this.quorumInput()).has) this.startFailed.add(a.key);
              // A start abandoned for the majority is no failure of this node's: it may try again.
            } else {
              if (a.why === lostQuorum) await this.failDisks(a.key);
              await this.groups.stop(a.key);
            }
            const after = this.groups.status().find((g) => g.key === a.key);
            if (after?.state === 'failed') await this.stopFailed(a.key, after.reason ?? 'stop failed');
            this.membership.beat();
            this.again = true;
          }
        } while (this.again && !this.stopped);
      } catch (e) {
        this.o.log('error', `policy: ${(e as Error).message}`);
      } finally {
        this.evaluating = false;
      }
    })();
  }

  /**
   * A group that cannot be stopped stays held here (`on_stop_failure hold`, the default:
   * the peer never starts it while this node lives), or this node reboots at once
   * (`on_stop_failure reboot`, Heartbeat's way), so that the peer sees it dead and takes it.
   */
  private async stopFailed(key: string, reason: string): Promise<void> {
    if (this.o.config.hacf.onStopFailure !== 'reboot') {
      this.o.log('error', `group ${key} cannot be stopped (${reason}): held here, on_stop_failure hold`);
      return;
    }
    const argv = this.o.rebootCommand ?? ['reboot', '-f'];
    this.o.log(
      'error',
      `group ${key} cannot be stopped (${reason}): on_stop_failure reboot: ${argv.join(' ')}`,
    );
    const r = await spawnRun(argv[0]!, argv.slice(1), { timeoutMs: 30_000 });
    if (r.code !== 0) this.o.log('error', `reboot failed (exit ${r.code}): ${(r.err || r.out).trim()}`);
  }

  /**
   * A node without a majority gives its group up while the others may already count it
   * dead: its disks stop serving first (`tandemadm secondary --force`: writes held or in
   * flight fail, none completes), so the filesystem can be unmounted and nothing
   * acknowledged here is missing on the node that takes over.
   */
  private async failDisks(key: string): Promise<void> {
    const group = this.o.config.resources.groups.find((g) => g.key === key);
    const disks = (group?.resources ?? [])
      .filter((r) => r.name === 'drbddisk' || r.name === 'tandemdisk')
      .map((r) => r.args[0] ?? 'all');
    await Promise.all(
      disks.map(async (res) => {
        const r = await this.tandemadm(['secondary', '--force', res]);
        if (r.code === 0) this.o.log('warn', `${res}: forced Secondary (no majority): its I/O fails`);
        else this.o.log('error', `${res}: secondary --force failed: ${(r.err || r.out).trim()}`);
      }),
    );
  }

  private async onRequest(
    kind: string,
    resource: string,
    from: string,
  ): Promise<{ result: number; message: string }> {
    if (this.peerName === undefined) {
      if (kind === 'outdate-peer') {
        // A data node goes on writing while the majority counts its peer dead: the peer's
        // copy is old from now on. Held here until that node says its disk is Outdated.
        const other = this.o.config.hacf.nodes
          .map((n) => n.name)
          .find((n) => n !== from && n !== this.o.node);
        if (other === undefined) return { result: -3, message: 'no other data node' };
        // Held whether or not this node still hears it: a node it hears learns it at once
        // (connected to its peer, it is resynced instead); one it does not, when it returns.
        this.outdatePending.set(other, resource);
        this.saveOutdated();
        this.o.log('warn', `${other}: ${from} writes ${resource || 'all'} without it; its copy is outdated`);
        this.membership.beat();
        return { result: 0, message: `the witness holds ${other} outdated until it returns` };
      }
      return { result: -3, message: `the witness does not take ${kind} requests` };
    }
    const fromWitness = from === this.witness && kind === 'outdate-peer';
    if (from !== this.peerName && !fromWitness) {
      // A data node takes orders from its peer, and outdates from the witness.
      return { result: -3, message: `${this.o.node} does not take ${kind} requests from ${from}` };
    }
    if (kind === 'outdate-peer') {
      // The peer's fence-peer handler: mark this node's copy Outdated, so it never takes
      // over without an operator's --force while the peer goes on writing alone.
      // Our replication link may not have noticed the loss yet (its ping-timeout runs a
      // little behind the Primary's): while tandemadm says Connected (-5), try again.
      let r = await this.tandemadm(['outdate', resource || 'all']);
      for (let i = 0; i < 40 && r.code !== 0 && /\(-5\)/.test(r.err); i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        r = await this.tandemadm(['outdate', resource || 'all']);
      }
      if (r.code === 0) return { result: 0, message: `${this.o.node}: ${resource} outdated` };
      const text = (r.err || r.out).trim();
      return { result: /\(-2\)/.test(text) ? -6 : -5, message: `${this.o.node}: ${text}`.slice(0, 200) };
    }
    if (kind === 'standby') {
      // The peer takes over (hb_takeover there): this node gives everything away.
      this.setStandby(true);
      return { result: 0, message: 'standing by' };
    }
    return { result: -3, message: `unknown request ${kind}` };
  }

  /**
   * With a witness, an outdate-peer request that gets no answer need not wait out its
   * timeout: without a majority this node must hold its writes (-7: the peer may take
   * over); with one, and the peer dead by the majority, the peer cannot take over and
   * writes may go on (-1, unreachable).
   */
  private fenceVerdict(peer: string): { result: number; message: string } | undefined {
    const qi = this.quorumInput();
    const q = quorumOf(qi);
    if (!q.applies) return undefined;
    if (!q.has) return { result: -7, message: `${this.o.node} has no majority (${q.why}): writes stay held` };
    if (deadByMajority(qi, peer))
      return { result: -1, message: `${peer} is dead by the majority (${q.why}); it cannot take over` };
    return undefined;
  }

  /** The web dashboard, when ha.cf has dashboard_address; a port that cannot be had is logged, not fatal. */
  private async startDashboard(token: string | undefined): Promise<void> {
    const hacf = this.o.config.hacf;
    const at = hacf.dashboardAddress;
    if (at === undefined) return;
    const dashboard = new Dashboard(
      {
        node: this.o.node,
        deadtimeMs: hacf.deadtime.ms,
        status: () => this.status(),
        events: () => this.recent.slice(),
        tandemadm: (args) => this.tandemadm(args),
        standby: () => this.setStandby(true),
        takeover: () => this.takeover(),
        token,
      },
      (m) => this.o.log('warn', m),
    );
    try {
      await dashboard.listen(at.host, at.port);
      this.dashboard = dashboard;
      this.o.log(
        'info',
        `dashboard on http://${at.host}:${at.port}/ (${token ? 'actions with the token' : 'read-only'})`,
      );
    } catch (e) {
      this.o.log('error', `cannot serve the dashboard on ${at.host}:${at.port}: ${(e as Error).message}`);
    }
  }

  private tandemadm(args: readonly string[]) {
    return spawnRun(this.o.tandemadm[0]!, [...this.o.tandemadm.slice(1), '-q', ...args], {
      timeoutMs: 30_000,
    });
  }

  setStandby(on: boolean): void {
    this.standby = on;
    if (on) this.startFailed.clear();
    this.membership.beat();
    this.evaluate();
  }

  /** `takeover`: leave standby here and ask the peer to give its groups away. */
  async takeover(): Promise<{ result: number; message: string }> {
    if (this.peerName === undefined) return { result: -3, message: 'the witness runs no groups' };
    this.setStandby(false);
    const r = await this.membership.request('standby', this.peerName);
    this.evaluate();
    return r;
  }

  private async listen(): Promise<void> {
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
    const server = createServer((sock) => {
      sock.setEncoding('utf8');
      const lines = new LineSplitter();
      sock.on('error', () => {});
      sock.on('data', (chunk: string) => {
        let list: string[];
        try {
          list = lines.push(chunk);
        } catch {
          sock.destroy();
          return;
        }
        for (const line of list)
          this.answer(line).then(
            (reply) => {
              if (!sock.destroyed) sock.write(`${JSON.stringify(reply)}\n`);
            },
            (e: unknown) => {
              this.o.log('error', `control socket: ${(e as Error).message}`);
              sock.destroy();
            },
          );
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
    this.server = server;
  }

  private async answer(line: string): Promise<unknown> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return { id: null, ok: false, error: 'not JSON' };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return { id: null, ok: false, error: 'not a JSON object' };
    }
    const req = parsed as { id?: unknown; cmd?: unknown; resource?: unknown };
    const id = typeof req.id === 'number' ? req.id : null;
    switch (req.cmd) {
      case 'status':
        return { id, ok: true, result: this.status() };
      case 'standby':
        if (this.peerName === undefined) return { id, ok: false, error: 'the witness runs no groups' };
        this.setStandby(true);
        return { id, ok: true, result: 'standby: giving this node’s groups to the peer' };
      case 'outdate-peer': {
        // Longer than deadtime: the peer may retry while its replication link still
        // believes it is connected (outdate is refused then).
        if (this.peerName === undefined) return { id, ok: false, error: 'the witness has no disk to fence' };
        const peer = this.peerName;
        const resource = typeof req.resource === 'string' ? req.resource : '';
        const r = await this.membership.request(
          'outdate-peer',
          peer,
          resource,
          Math.max(15_000, this.o.config.hacf.deadtime.ms),
          () => this.fenceVerdict(peer),
        );
        if (r.result === -1 && this.witness !== undefined && deadByMajority(this.quorumInput(), peer)) {
          // The peer is dead by the majority: the witness keeps it outdated until it
          // returns, so it never takes over with the copy this node now writes past.
          const w = await this.membership.request('outdate-peer', this.witness, resource);
          return { id, ok: true, result: w.result === 0 ? w : r };
        }
        return { id, ok: true, result: r };
      }
      case 'takeover': {
        const r = await this.takeover();
        return r.result >= 0 ? { id, ok: true, result: r.message } : { id, ok: false, error: r.message };
      }
      default:
        return { id, ok: false, error: `unknown command ${JSON.stringify(req.cmd)}` };
    }
  }
}

/**
 * This start's generation, kept in RUN_DIR/tandem-ha.generation like Heartbeat's
 * hb_generation: one more than the last, and at least the clock, so a clock that went
 * backwards at boot cannot make the peer take our packets for a previous life's.
 */
function nextGeneration(runDir: string): number {
  const file = join(runDir, 'tandem-ha.generation');
  let last = 0;
  try {
    last = Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    // First start.
  }
  const next = Math.max(Date.now(), last + 1);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(file, `${next}\n`);
  return next;
}

/** The sorted node names; a digest of them when that is longer than a packet carries. */
function clusterId(nodes: readonly string[]): string {
  const id = [...nodes].sort().join(',');
  return Buffer.byteLength(id) <= clusterBytesMax
    ? id
    : createHash('sha256').update(id).digest('hex').slice(0, clusterBytesMax);
}

function peerGroup(peer: PeerView, key: string) {
  const g = peer.groups.find((x) => x.key === key);
  if (!g) return undefined;
  return g.state === 'start-failed'
    ? { state: 'released' as const, startFailed: true }
    : { state: g.state, startFailed: false };
}
