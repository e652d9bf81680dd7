// One replicated resource on this node: its volumes, its role, its NBD
// socket and kernel devices, and DRBD's rules for up/down/attach/detach and
// role changes. Replication (the peer link) arrives with a later issue: the
// connection state is StandAlone until then.
import { join } from 'node:path';
import type { ResolvedHost, ResolvedResource } from '../config/drbd-model.js';
import { splitHostPort } from '../config/drbd-options.js';
import { optionValue, peerHost } from '../config/drbd-resolve.js';
import type { ResourceStatus } from '../daemon/status.js';
import { type KernelDevice, KernelDeviceManager } from '../nbd/kernel.js';
import { NbdServer } from '../nbd/server.js';
import type { Logger } from '../util/log.js';
import { type ConnState, decidePrimary, formatRefusal, type Refusal, type Role, refusals } from './state.js';
import { Volume, type VolumeOpener } from './volume.js';

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
  private conn: ConnState = 'StandAlone';
  private up = false;
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
    const host = {
      resourceName: cfg.name,
      role: () => this.roleNow,
      serving: () => this.roleNow === 'Primary' && !this.demoting,
      onIoError: () =>
        (optionValue(this.cfg, 'disk', 'on-io-error') ?? 'detach') as
          | 'pass_on'
          | 'call-local-io-error'
          | 'detach',
      fencing: () => String(optionValue(this.cfg, 'disk', 'fencing') ?? 'dont-care'),
      log,
    };
    this.volumes = local.volumes.map((v) => new Volume(host, v, options.opener));
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
        const server = new NbdServer({ log: (level, m) => this.log.log(level, m) });
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
      this.log.log('info', 'up');
    });
  }

  attach(): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      for (const v of this.volumes) if (v.disk === 'Diskless') await v.attach();
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
    });
  }

  primary(force: boolean): Promise<void> {
    return this.serial(async () => {
      this.requireUp();
      if (this.roleNow === 'Primary') return;
      const decisions = this.volumes.map((v) => ({ v, d: decidePrimary(v.disk, force) }));
      for (const { d } of decisions) if (!d.ok) throw new StateChangeError(d.refusal);
      for (const { v, d } of decisions) {
        if (d.ok && d.forced) await v.forcePrimary();
        else await v.setPrimaryFlag(true);
      }
      this.roleNow = 'Primary';
      this.log.log('info', `role Primary${force ? ' (forced)' : ''}`);
      if (this.options.kernelDevices) await this.makeKernelDevices();
    });
  }

  secondary(): Promise<void> {
    return this.serial(async () => this.demote());
  }

  private async demote(): Promise<void> {
    if (this.roleNow !== 'Primary') return;
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
      this.log.log('info', 'role Secondary');
    } finally {
      this.demoting = false;
    }
  }

  down(): Promise<void> {
    return this.serial(async () => {
      if (!this.up) return;
      await this.demote();
      try {
        await this.nbd?.close();
        for (const v of this.volumes) await v.detach(true);
      } finally {
        // Whatever failed above, the next `up` starts from nothing.
        this.nbd = undefined;
        this.up = false;
        this.conn = 'StandAlone';
      }
      this.log.log('info', 'down');
    });
  }

  /** At shutdown when `down` was refused (device in use): flush and close the metadata cleanly anyway. */
  async forceClose(): Promise<void> {
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
    return {
      name: this.name,
      role: this.roleNow,
      peerRole: 'Unknown',
      connection: this.conn,
      peer: peer.names[0] ?? peer.address.host,
      protocol: this.cfg.protocol,
      nbdSocket: this.socketPath,
      nbdTcp: (optionValue(this.cfg, 'options', 'nbd-address') as string | undefined) ?? null,
      nbdClients: this.nbd?.clientCount('public') ?? 0,
      volumes: this.volumes.map((v) => {
        const k = this.kernelDevices.get(v.cfg.number);
        return {
          volume: v.cfg.number,
          minor: v.cfg.device.minor,
          device: v.cfg.device.path,
          disk: v.disk,
          peerDisk: 'DUnknown',
          sizeBytes: v.sizeBytes,
          outOfSyncBytes: v.outOfSyncBytes(),
          nbdExport: v.name,
          kernelDevice: k
            ? { kind: k.kind, blockDevice: k.blockDevice ?? null, reason: k.reason ?? null }
            : null,
          diskReason: v.diskReason ?? null,
        };
      }),
    };
  }
}
