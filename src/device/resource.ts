// One replicated resource on this node: its volumes, its role, its NBD
// socket and kernel devices, its replication engine (the peer link), and DRBD's
// rules for up/down/attach/detach/connect/disconnect and role changes.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ResolvedHost, ResolvedResource } from '../config/drbd-model.js';
import { splitHostPort } from '../config/drbd-options.js';
import { optionValue, peerHost } from '../config/drbd-resolve.js';
import type { ResourceStatus } from '../daemon/status.js';
import { type KernelDevice, KernelDeviceManager } from '../nbd/kernel.js';
import { NbdServer } from '../nbd/server.js';
import type { Logger } from '../util/log.js';
import { replicationSettings } from './replication-settings.js';
import { promoteLinkLost, Replicator } from './replicator.js';
import { decidePrimary, formatRefusal, type Refusal, type Role, refusals } from './state.js';
import { Volume, type VolumeOpener } from './volume.js';

/** One line of `tandemadm events`. */
export interface ResourceEvent {
  readonly time: string;
  readonly text: string;
}
const eventsKept = 500;

/** A refused state change, with DRBD's code and text. */
export class StateChangeError extends Error {
  readonly code = 'STATE_CHANGE_FAILED';
  readonly refusal: Refusal;
  constructor(refusal: Refusal, detail?: string) {
    super(detail ? `${formatRefusal(refusal)}: ${detail}` : formatRefusal(refusal));
    this.refusal = refusal;
  }
}

export interface ResourceOptions {
  readonly runDir: string;
  readonly log: Logger;
  readonly opener: VolumeOpener;
  /** Make kernel devices on promotion (off in unit tests). */
  readonly kernelDevices: boolean;
  readonly kernel?: KernelDeviceManager;
  /** Start the peer link at `up` (off only in one-node unit tests). */
  readonly replication?: boolean;
  /** Dial the peer here instead of its configured address (tests: through a fault-injecting proxy). */
  readonly peerEndpoint?: { readonly host: string; readonly port: number };
  /** Each application write's latency, with the protocol it completed under (metrics). */
  readonly observeWrite?: (protocol: string, seconds: number) => void;
  /** Bytes arrived from a client or the peer (the daemon's busy poll). */
  readonly activity?: () => void;
  /** The longest an epoch with writes stays open (tests: long, to see what else closes it). */
  readonly barrierIntervalMs?: number;
}

export class Resource {
  readonly name: string;
  private cfg: ResolvedResource;
  private readonly local: ResolvedHost;
  private readonly options: ResourceOptions;
  readonly volumes: Volume[];
  private roleNow: Role = 'Secondary';
  /** Set while `secondary`/`down` demotes: the export already refuses. */
  private demoting = false;
  /** `secondary --force` so far: requests in flight across one fail (Volume.notForcedOut). */
  private forced = 0;
  private up = false;
  readonly replicator: Replicator | undefined;
  readonly events: ResourceEvent[] = [];
  private nbd: NbdServer | undefined;
  private readonly kernel: KernelDeviceManager;
  private readonly kernelDevices = new Map<number, KernelDevice>();
  /** Serializes state changes of this resource. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(cfg: ResolvedResource, local: ResolvedHost, options: ResourceOptions) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.local = local;
    this.options = options;
    this.kernel = options.kernel ?? new KernelDeviceManager();
    const log = options.log.child({ resource: cfg.name });
    const protocol = replicationSettings(cfg).protocol;
    const host = {
      resourceName: cfg.name,
      role: () => this.roleNow,
      serving: () => this.roleNow === 'Primary' && !this.demoting,
      forcedDemotions: () => this.forced,
      onIoError: () =>
        (optionValue(this.cfg, 'disk', 'on-io-error') ?? 'detach') as
          | 'pass_on'
          | 'call-local-io-error'
          | 'detach',
      fencing: () => String(optionValue(this.cfg, 'disk', 'fencing') ?? 'dont-care'),
      log,
      peer: () => (this.up ? this.replicator : undefined),
      diskChanged: () => this.replicator?.stateChanged(),
      ...(options.observeWrite === undefined
        ? {}
        : {
            // Labelled with the protocol it was replicated under, or 'none' without the peer.
            writeDone: (seconds: number) =>
              options.observeWrite?.(
                this.replicator?.connState() === 'Connected' ? protocol : 'none',
                seconds,
              ),
          }),
    };
    this.volumes = local.volumes.map((v) => new Volume(host, v, options.opener));
    const peer = peerHost(cfg, local);
    this.replicator =
      options.replication === false
        ? undefined
        : new Replicator({
            resource: cfg.name,
            nodeName: local.names[0] ?? local.address.host,
            peerName: peer.names[0] ?? peer.address.host,
            listen: { host: local.address.host, port: local.address.port },
            peer: options.peerEndpoint ?? { host: peer.address.host, port: peer.address.port },
            settings: replicationSettings(cfg),
            log,
            volumes: this.volumes,
            role: () => this.roleNow,
            event: (text) => this.event(text),
            runHandler: (name, volume) => this.runHandler(name, volume),
            connectionLost: () => this.fencePeer(),
            activity: options.activity,
            ...(options.barrierIntervalMs === undefined
              ? {}
              : { barrierIntervalMs: options.barrierIntervalMs }),
          });
  }

  /** Records a state change for `events` (and logs it). */
  event(text: string): void {
    this.events.push({ time: new Date().toISOString(), text });
    if (this.events.length > eventsKept) this.events.splice(0, this.events.length - eventsKept);
    this.log.log('info', text);
  }

  /** `fencing` (disk section in 8.4, net in 9): dont-care, resource-only, resource-and-stonith. */
  private fencingPolicy(): string {
    return String(
      optionValue(this.cfg, 'disk', 'fencing') ?? optionValue(this.cfg, 'net', 'fencing') ?? 'dont-care',
    );
  }

  /**
   * DRBD's resource-level fencing: a Primary that loses its peer holds every new write
   * and runs the `fence-peer` handler (e.g. `tandem-ha outdate-peer`), whose exit code
   * says what became of the peer (drbd-peer-outdater's codes): 3 its disk is not
   * UpToDate anyway, 4 it was outdated, 5 it could not be reached, 6 it is Primary
   * itself (or, from tandem-ha with a witness, this node has no majority), 7 it was
   * fenced (STONITH). 3, 4 and 7 resume writes (3 and 4 also record the peer as
   * outdated). 6 keeps them held: two nodes must not both write. For 5 and any
   * other answer, resource-only resumes (DRBD's semantics: the peer may be dead, or alive
   * and writing), resource-and-stonith keeps writes held until `tandemadm resume-io`.
   */
  private fencePeer(): void {
    const policy = this.fencingPolicy();
    const rep = this.replicator;
    if (policy === 'dont-care' || this.roleNow !== 'Primary' || rep === undefined) return;
    rep.suspend('fencing');
    const done = async (code: number | null): Promise<void> => {
      if (code === 3 || code === 4) {
        for (const v of this.volumes) {
          await v.meta
            ?.setFlags({ peerOutdated: true })
            .catch((e: unknown) =>
              this.log.log('error', `cannot record the peer as outdated: ${(e as Error).message}`),
            );
        }
      }
      if (code === 3 || code === 4 || code === 7) {
        await rep.resume();
        return;
      }
      if (code === 6) {
        this.log.log(
          'error',
          'fence-peer: the peer is Primary, or this node has no majority; writes stay suspended (two nodes must not both write)',
        );
        return;
      }
      if (policy === 'resource-only') {
        this.log.log(
          'warn',
          `fence-peer could not outdate the peer (exit ${code}); resource-only: writes resume`,
        );
        await rep.resume();
        return;
      }
      this.log.log(
        'error',
        `fence-peer failed (exit ${code}); ${policy}: writes stay suspended until 'tandemadm resume-io ${this.name}'`,
      );
    };
    if (!this.runHandler('fence-peer', 0, (code) => void done(code))) {
      this.log.log(
        'error',
        `fencing ${policy} but no fence-peer handler configured: writes stay suspended (tandemadm resume-io ${this.name})`,
      );
    }
  }

  /** `resume-io`: the operator lets suspended writes go on. */
  resumeIo(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      await this.replicator?.resume();
    });
  }

  /** `outdate`: this Secondary's data is marked Outdated (the fence-peer handler's job on the peer). */
  outdate(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      // DRBD: a Primary's disk below UpToDate is refused (-2), and so is outdating a connected disk (-5).
      if (this.roleNow === 'Primary')
        throw new StateChangeError(refusals.noUpToDateDisk, 'this node is Primary');
      if (this.replicator?.connState() === 'Connected') throw new StateChangeError(refusals.outdateConnected);
      for (const v of this.volumes) {
        if (v.disk === 'UpToDate' || v.disk === 'Consistent')
          await v.setDisk('Outdated', 'outdated by the peer (fencing)');
      }
      this.replicator?.stateChanged();
    });
  }

  /**
   * DRBD's `handlers` section: runs the configured command (`sh -c`, with DRBD's
   * environment) without waiting for it; `onExit` gets its exit code once (null when it
   * could not run). Returns false when no such handler is configured.
   */
  private runHandler(name: string, volume: number, onExit?: (code: number | null) => void): boolean {
    const cmd = optionValue(this.cfg, 'handlers', name);
    if (typeof cmd !== 'string' || cmd === '') return false;
    const v = this.volumes[volume];
    const peer = peerHost(this.cfg, this.local);
    const child = spawn('/bin/sh', ['-c', cmd], {
      stdio: 'ignore',
      env: {
        ...process.env,
        DRBD_RESOURCE: this.name,
        DRBD_VOLUME: String(volume),
        DRBD_MINOR: String(v?.cfg.device.minor ?? ''),
        DRBD_PEER: peer.names[0] ?? '',
        DRBD_PEER_ADDRESS: peer.address.host,
      },
    });
    let reported = false;
    const report = (code: number | null): void => {
      if (reported) return;
      reported = true;
      this.log.log(code === 0 ? 'info' : 'warn', `handler ${name} exited ${code}`);
      onExit?.(code);
    };
    child.on('error', (e) => {
      this.log.log('error', `handler ${name}: ${e.message}`);
      report(null);
    });
    child.on('exit', (code) => report(code));
    return true;
  }

  get log(): Logger {
    return this.options.log.child({ resource: this.name });
  }

  /** The NBD socket for users (nbdinfo, qemu-io, fio, a VM). */
  get socketPath(): string {
    return join(this.options.runDir, `${this.name}.nbd`);
  }

  /** A second socket only the kernel device's client (nbdfuse, nbd-client) uses, so its connections are told apart. */
  get kernelSocketPath(): string {
    return join(this.options.runDir, `${this.name}.kernel.nbd`);
  }

  /** Runs state changes one at a time. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.chain.then(f, f);
    this.chain = next.catch(() => {});
    return next;
  }

  role(): Role {
    return this.roleNow;
  }

  /** `up`: attach every volume and start serving the (refusing, while Secondary) NBD socket. */
  bringUp(): Promise<void> {
    return this.serial(async () => {
      if (!this.up) {
        const server = new NbdServer({
          log: (level, m) => this.log.log(level, m),
          activity: this.options.activity,
        });
        for (const v of this.volumes) server.add(v);
        await server.listenUnix(this.socketPath, 'public');
        await server.listenUnix(this.kernelSocketPath, 'kernel');
        const tcp = optionValue(this.cfg, 'options', 'nbd-address');
        if (typeof tcp === 'string') {
          const { host, port } = splitHostPort(tcp);
          try {
            await server.listenTcp(host, port, 'public');
          } catch (e) {
            await server.close();
            throw new Error(`cannot serve NBD on ${tcp}: ${(e as Error).message}`);
          }
          this.log.log('info', `NBD export also on tcp ${tcp}`);
        }
        this.nbd = server;
        this.up = true;
      }
      for (const v of this.volumes) if (v.disk === 'Diskless') await v.attach();
      // DRBD's `up` is attach + connect.
      await this.replicator?.connect();
      this.log.log('info', 'up');
    });
  }

  connect(options: { discardMyData?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      await this.replicator?.connect(options);
    });
  }

  disconnect(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      await this.replicator?.disconnect();
    });
  }

  /** `invalidate`: this node's data is replaced by the peer's (full sync, this node SyncTarget). */
  invalidate(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      if (!(await this.replicator?.invalidateLocal())) {
        throw new StateChangeError(
          refusals.noUpToDateDisk,
          'invalidate needs a Secondary connected to a peer with UpToDate data',
        );
      }
    });
  }

  /** `invalidate-remote`: the peer's data is replaced by this node's. */
  invalidateRemote(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      const r = await this.replicator?.invalidateRemote();
      if (r === undefined || r < 0) {
        throw new StateChangeError(
          refusals.noUpToDateDisk,
          'invalidate-remote needs a connection to a Secondary peer, and UpToDate data here',
        );
      }
    });
  }

  verify(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      for (const v of this.volumes) {
        const problem = this.replicator ? this.replicator.startVerify(v.cfg.number) : 'no replication';
        if (problem !== undefined) throw new Error(`verify: ${problem}`);
      }
    });
  }

  attach(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      for (const v of this.volumes) {
        if (v.disk !== 'Diskless') continue;
        await v.attach();
        // Connected: a new handshake compares the disk's generation with the peer's
        // (DRBD does the same when a disk is attached under a live connection).
        this.replicator?.renegotiate(v.cfg.number);
      }
    });
  }

  detach(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      // Without a peer, a Primary's local disk is its only data.
      if (this.roleNow === 'Primary')
        throw new StateChangeError(
          refusals.noUpToDateDisk,
          'a Primary without a connected peer needs its disk',
        );
      for (const v of this.volumes) await v.detach(true);
      this.replicator?.stateChanged();
    });
  }

  primary(force: boolean): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      if (this.roleNow === 'Primary') return;
      const decisions = this.volumes.map((v) => ({ v, d: decidePrimary(v.disk, force) }));
      for (const { d } of decisions) if (!d.ok) throw new StateChangeError(d.refusal);
      const rep = this.replicator;
      let connected = rep !== undefined && rep.connState() === 'Connected';
      // A SyncTarget's disk is being overwritten by the peer: no Primary here until it is done.
      for (const v of this.volumes) {
        const r = rep?.volumeConnState(v.cfg.number);
        if (r === 'SyncTarget' || r === 'WFBitMapT' || r === 'WFSyncUUID') {
          throw new StateChangeError(
            refusals.noUpToDateDisk,
            `volume ${v.cfg.number} is ${r}: wait for the resync`,
          );
        }
      }
      if (rep?.peerMayBePrimary() && !replicationSettings(this.cfg).allowTwoPrimaries) {
        throw new StateChangeError(refusals.twoPrimaries);
      }
      if (rep && connected) {
        const answer = await rep.askPromote();
        // The link died while the peer was asked (a partition: the peer went silent): no
        // peer to agree with, promoted alone as if disconnected from the start.
        if (answer === promoteLinkLost) connected = false;
        else if (answer < 0) throw new StateChangeError(refusals.twoPrimaries);
      }
      for (const { v, d } of decisions) {
        if (d.ok && d.forced) await v.forcePrimary();
        else {
          // DRBD drbd_set_role: promoted without a peer, a new data generation starts —
          // with the first write when there is a replicator to hold it back (DRBD 9's
          // NEW_CUR_UUID), so a promotion undone before any write changes nothing.
          if (!connected && v.meta && v.meta.uuids().bitmap === 0n) {
            if (rep) rep.generationOnFirstWrite(v.cfg.number);
            else await v.meta.newCurrentUuid();
          }
          await v.setPrimaryFlag(true);
        }
      }
      this.roleNow = 'Primary';
      this.event(`role:Primary${force ? ' (forced)' : ''}`);
      rep?.stateChanged();
      // `primary --force` while connected: this node's data is now the reference; the
      // handshake again makes it SyncSource (the seed's initial full sync).
      if (connected) for (const { v, d } of decisions) if (d.ok && d.forced) rep?.renegotiate(v.cfg.number);
      if (this.options.kernelDevices) await this.makeKernelDevices();
    });
  }

  /**
   * `secondary`; with `force` (DRBD 9's `secondary --force`), also while the device is
   * mounted or open: the node is Secondary at once, every application request held
   * (fencing) or in flight fails with EIO instead of completing, and so does every new
   * one. tandem-ha uses it when a node loses the majority: the filesystem can then be
   * unmounted, and nothing is acknowledged here that the node taking over lacks.
   */
  secondary(force = false): Promise<void> {
    if (force) return this.forceSecondary();
    return this.serial(async () => this.demote());
  }

  /** Not queued behind other state changes: a promotion waiting on a silent peer must not delay it. */
  private async forceSecondary(): Promise<void> {
    this.requireUp();
    if (this.roleNow !== 'Primary') return;
    this.forced++;
    this.roleNow = 'Secondary';
    this.event('role:Secondary (forced: requests in flight fail)');
    // Writes held by fencing go on to fail (no new data generation: nothing was written).
    await this.replicator?.resume();
    this.replicator?.stateChanged();
    for (const v of this.volumes) {
      await v
        .flushDisk()
        .catch((e: unknown) => this.log.log('error', `flush on forced demotion: ${(e as Error).message}`));
      await v.setPrimaryFlag(false);
    }
    // Kernel devices nobody holds go now; a mounted one stays (failing I/O) until the
    // next `secondary` or `down` finds it unused.
    await this.serial(async () => this.removeUnusedKernelDevices());
  }

  private async removeUnusedKernelDevices(): Promise<void> {
    for (const [, d] of this.kernelDevices) if (await this.kernel.inUse(d)) return;
    await this.removeKernelDevices();
  }

  private async demote(): Promise<void> {
    if (this.roleNow !== 'Primary') {
      // Left over from `secondary --force`: removed once unused, refused while in use.
      for (const [, d] of this.kernelDevices) {
        const busy = await this.kernel.inUse(d);
        if (busy) throw new StateChangeError(refusals.deviceInUse, busy);
      }
      await this.removeKernelDevices();
      return;
    }
    // From here no new client may open the export, and no request is served,
    // even while the checks and the kernel device's removal are awaited.
    this.demoting = true;
    try {
      for (const [, d] of this.kernelDevices) {
        const busy = await this.kernel.inUse(d);
        if (busy) throw new StateChangeError(refusals.deviceInUse, busy);
      }
      const external = this.nbd?.clientCount('public') ?? 0;
      if (external > 0) {
        throw new StateChangeError(
          refusals.deviceInUse,
          `${external} NBD client(s) connected to ${this.socketPath}`,
        );
      }
      await this.removeKernelDevices();
      this.nbd?.disconnect('kernel');
      for (const v of this.volumes) {
        await v
          .flushDisk()
          .catch((e: unknown) => this.log.log('error', `flush on demotion: ${(e as Error).message}`));
        await v.setPrimaryFlag(false);
      }
      this.roleNow = 'Secondary';
      this.event('role:Secondary');
      this.replicator?.stateChanged();
    } finally {
      this.demoting = false;
    }
  }

  down(): Promise<void> {
    return this.serial(async () => {
      if (!this.up) return;
      await this.demote();
      try {
        await this.replicator?.disconnect();
        await this.nbd?.close();
        for (const v of this.volumes) await v.detach(true);
      } finally {
        // Whatever failed above, the next `up` starts from nothing.
        this.nbd = undefined;
        this.up = false;
      }
      this.log.log('info', 'down');
    });
  }

  /** At shutdown when `down` was refused (device in use): flush and close the metadata cleanly anyway. */
  async forceClose(): Promise<void> {
    await this.replicator?.disconnect().catch(() => {});
    await this.nbd?.close();
    this.nbd = undefined;
    for (const v of this.volumes) {
      await v.flushDisk().catch(() => {});
      await v.detach(true).catch(() => {});
    }
    this.up = false;
  }

  private requireUp(): void {
    if (!this.up)
      throw new StateChangeError(
        { code: -10, text: 'Unknown resource' },
        `'${this.name}' is not up: run 'tandemadm up ${this.name}'`,
      );
  }

  private async makeKernelDevices(): Promise<void> {
    for (const v of this.volumes) {
      if (this.kernelDevices.has(v.cfg.number)) continue;
      let d: KernelDevice;
      try {
        d = await this.kernel.attach({
          socketPath: this.kernelSocketPath,
          exportName: v.name,
          devicePath: v.cfg.device.path,
          stateDir: this.options.runDir,
          log: (m) => this.log.log('info', m),
        });
      } catch (e) {
        // The node is Primary and the NBD export serves: a kernel device that could
        // not be made (nbdfuse failed, a leftover still mounted) is said in status,
        // rather than a failed `primary` that left the role changed anyway.
        const reason = `no kernel device: ${(e as Error).message}`;
        this.log.log('error', reason, { volume: v.cfg.number });
        d = { kind: 'none', blockDevice: undefined, devicePath: v.cfg.device.path, reason };
      }
      this.kernelDevices.set(v.cfg.number, d);
    }
  }

  private async removeKernelDevices(): Promise<void> {
    for (const v of this.volumes) {
      const d = this.kernelDevices.get(v.cfg.number);
      if (!d) continue;
      await this.kernel.detach(
        {
          socketPath: this.kernelSocketPath,
          exportName: v.name,
          devicePath: v.cfg.device.path,
          stateDir: this.options.runDir,
        },
        d,
      );
      this.kernelDevices.delete(v.cfg.number);
    }
  }

  /** Removes kernel devices a killed tandemd left behind (before `up`). */
  async cleanupStale(): Promise<void> {
    for (const v of this.volumes) {
      await this.kernel.cleanupStale({
        stateDir: this.options.runDir,
        exportName: v.name,
        log: (m) => this.log.log('info', m),
      });
    }
  }

  status(): ResourceStatus {
    const peer = peerHost(this.cfg, this.local);
    const rep = this.up ? this.replicator : undefined;
    return {
      name: this.name,
      role: this.roleNow,
      peerRole: rep?.connState() === 'Connected' ? rep.peerRole : 'Unknown',
      connection: rep?.connState() ?? 'StandAlone',
      connectionReason: rep && rep.connState() !== 'Connected' ? rep.linkReason.message : null,
      peer: peer.names[0] ?? peer.address.host,
      protocol: this.cfg.protocol,
      authenticated:
        replicationSettings(this.cfg).auth !== undefined || replicationSettings(this.cfg).tls !== undefined,
      suspended: rep?.suspended ?? null,
      nbdSocket: this.socketPath,
      nbdTcp: (optionValue(this.cfg, 'options', 'nbd-address') as string | undefined) ?? null,
      nbdClients: this.nbd?.clientCount('public') ?? 0,
      volumes: this.volumes.map((v) => {
        const n = v.cfg.number;
        const k = this.kernelDevices.get(n);
        const c = rep?.counters(n);
        const meta = v.meta?.metaWrites();
        const sync = rep?.syncProgress(n);
        const verify = rep?.verifyResult(n);
        return {
          volume: n,
          minor: v.cfg.device.minor,
          device: v.cfg.device.path,
          disk: v.disk,
          peerDisk: rep?.peerDisk(n) ?? 'DUnknown',
          replication: rep?.volumeConnState(n) ?? 'StandAlone',
          sizeBytes: v.sizeBytes,
          outOfSyncBytes: v.outOfSyncBytes(),
          nbdExport: v.name,
          kernelDevice: k
            ? { kind: k.kind, blockDevice: k.blockDevice ?? null, reason: k.reason ?? null }
            : null,
          diskReason: v.diskReason ?? null,
          sync: sync
            ? {
                totalBytes: sync.totalBytes,
                doneBytes: sync.doneBytes,
                speedBytesPerSecond: Math.round(sync.speedBytes),
              }
            : null,
          verify: verify ?? null,
          splitBrain: rep?.refusal(n) ?? null,
          counters: {
            sentBytes: c?.sentBytes ?? 0,
            receivedBytes: c?.receivedBytes ?? 0,
            diskWrittenBytes: v.localCounters.diskWrittenBytes,
            diskReadBytes: v.localCounters.diskReadBytes,
            pending: c?.pending ?? 0,
            unacked: c?.unacked ?? 0,
            appPending: v.appInFlight(),
            epochs: c?.epochs ?? 0,
            alWrites: meta?.activityLog ?? 0,
            bitmapWrites: meta?.bitmapPages ?? 0,
          },
        };
      }),
    };
  }
}
