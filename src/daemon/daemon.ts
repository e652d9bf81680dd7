// tandemd: all resources of one node. Owns the run dir (PID file, control
// socket, NBD sockets), answers tandemadm, and shuts down cleanly on SIGTERM.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedConfig, ResolvedResource } from '../config/drbd-model.js';
import { splitHostPort } from '../config/drbd-options.js';
import { assertRunnable, localHost, optionValue } from '../config/drbd-resolve.js';
import { openVolume } from '../device/disk.js';
import { Resource, StateChangeError } from '../device/resource.js';
import { refusals } from '../device/state.js';
import type { VolumeOpener } from '../device/volume.js';
import { nowaitUnavailable } from '../storage/nowait.js';
import { BusyPoll, busyPollUsDefault } from '../util/busy-poll.js';
import type { Logger } from '../util/log.js';
import type { ControlRequest } from './control-protocol.js';
import { ControlFailure, ControlServer } from './control-server.js';
import { DaemonMetrics } from './metrics.js';
import { acquirePidFile } from './pidfile.js';
import type { NodeStatus } from './status.js';

export interface DaemonOptions {
  readonly config: ResolvedConfig;
  readonly node: string;
  readonly runDir: string;
  readonly log: Logger;
  readonly kernelDevices?: boolean;
  readonly opener?: VolumeOpener;
  /** Serve Prometheus metrics at http://HOST:PORT/metrics (off when undefined). */
  readonly metricsAddress?: string;
  /** The busy-poll limit in microseconds (src/util/busy-poll.ts); 0 off, default busyPollUsDefault. */
  readonly busyPollUs?: number;
}

export class Daemon {
  private readonly options: DaemonOptions;
  private readonly resources = new Map<string, Resource>();
  /** Resources of this node that tandem will not run, and why. */
  private readonly refused = new Map<string, string>();
  private control: ControlServer | undefined;
  private releasePid: (() => void) | undefined;
  private stopping: Promise<unknown> | undefined;
  private metrics: DaemonMetrics | undefined;
  private readonly busyPoll: BusyPoll;

  constructor(options: DaemonOptions) {
    this.options = options;
    this.busyPoll = new BusyPoll({ maxUs: options.busyPollUs ?? busyPollUsDefault });
    for (const r of options.config.resources) {
      if (!r.hosts.some((h) => h.names.includes(options.node))) continue;
      try {
        assertRunnable(r);
      } catch (e) {
        this.refused.set(r.name, (e as Error).message);
        continue;
      }
      this.resources.set(r.name, this.makeResource(r));
    }
  }

  private makeResource(r: ResolvedResource): Resource {
    const alExtents = optionValue(r, 'disk', 'al-extents');
    const opener: VolumeOpener =
      this.options.opener ?? ((v) => openVolume(v, typeof alExtents === 'number' ? alExtents : undefined));
    return new Resource(r, localHost(r, this.options.node), {
      runDir: this.options.runDir,
      log: this.options.log,
      opener,
      kernelDevices: this.options.kernelDevices ?? true,
      // Only when metrics are served: timing costs two clock reads on every write.
      ...(this.options.metricsAddress === undefined
        ? {}
        : {
            observeWrite: (protocol: string, seconds: number) =>
              this.metrics?.observeWrite(r.name, protocol, seconds),
          }),
      activity: this.busyPoll.activity,
    });
  }

  /** The metrics port listened on (an address with port 0 gets one from the kernel). */
  get metricsPort(): number | undefined {
    return this.metrics?.port;
  }

  get controlSocket(): string {
    return join(this.options.runDir, 'tandemd.sock');
  }

  async start(): Promise<void> {
    mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
    this.releasePid = acquirePidFile(join(this.options.runDir, 'tandemd.pid'));
    try {
      // A leftover that cannot be removed (still mounted) is reported and blocks only
      // that resource's promotion, not the daemon.
      for (const r of this.resources.values()) {
        await r
          .cleanupStale()
          .catch((e: unknown) => this.options.log.log('error', `${r.name}: ${(e as Error).message}`));
      }
      this.control = new ControlServer(
        (req) => this.handle(req),
        (e) => this.options.log.log('error', `control request failed: ${(e as Error).stack ?? e}`),
      );
      await this.control.listen(this.controlSocket);
    } catch (e) {
      this.releasePid();
      throw e;
    }
    this.options.log.log(
      'info',
      `started for node ${this.options.node}: ${[...this.resources.keys()].join(', ') || 'no resources'}`,
    );
    const pollUs = this.busyPoll.maxUs;
    this.options.log.log(
      'info',
      pollUs === 0 ? 'busy poll off' : `busy poll: up to ${pollUs} us after I/O, adaptive`,
    );
    if (this.options.metricsAddress !== undefined) await this.startMetrics(this.options.metricsAddress);
    // Slower, not wrong: worth a line for whoever wonders why reads cost more here.
    if (nowaitUnavailable !== undefined)
      this.options.log.log(
        'info',
        `native I/O helper not in use (${nowaitUnavailable}): every read goes through the thread pool`,
      );
  }

  /** Metrics are for watching, not for serving data: failing to listen is logged, not fatal. */
  private async startMetrics(address: string): Promise<void> {
    const metrics = new DaemonMetrics(() => this.status());
    const { host, port } = splitHostPort(address);
    try {
      await metrics.listen(host, port, (m) => this.options.log.log('warn', m));
      this.metrics = metrics;
      this.options.log.log('info', `metrics on http://${address}/metrics`);
    } catch (e) {
      this.options.log.log('error', `cannot serve metrics on ${address}: ${(e as Error).message}`);
    }
  }

  private select(name: string): Resource[] {
    if (name === 'all') return [...this.resources.values()];
    const r = this.resources.get(name);
    if (r) return [r];
    const why = this.refused.get(name);
    throw new ControlFailure({
      code: 'UNKNOWN_RESOURCE',
      message:
        why ??
        `'${name}' is not a resource of node '${this.options.node}' (known: ${[...this.resources.keys()].join(', ') || 'none'})`,
    });
  }

  private async handle(req: ControlRequest): Promise<unknown> {
    if (req.cmd === 'ping') return { pid: process.pid };
    if (req.cmd === 'status') return this.status(req.resource);
    if (req.cmd === 'events') {
      return this.select(req.resource).flatMap((r) => r.events.map((e) => ({ resource: r.name, ...e })));
    }
    const targets = this.select(req.resource);
    for (const r of targets) {
      try {
        switch (req.cmd) {
          case 'up':
            await r.bringUp();
            break;
          case 'down':
            await r.down();
            break;
          case 'attach':
            await r.attach();
            break;
          case 'detach':
            await r.detach();
            break;
          case 'primary':
            await r.primary(req.force);
            break;
          case 'secondary':
            await r.secondary(req.force);
            break;
          case 'connect':
            await r.connect({ discardMyData: req.discardMyData === true });
            break;
          case 'disconnect':
            await r.disconnect();
            break;
          case 'invalidate':
            await r.invalidate();
            break;
          case 'invalidate-remote':
            await r.invalidateRemote();
            break;
          case 'verify':
            await r.verify();
            break;
          case 'outdate':
            await r.outdate();
            break;
          case 'resume-io':
            await r.resumeIo();
            break;
        }
      } catch (e) {
        if (e instanceof StateChangeError)
          throw new ControlFailure({ code: 'STATE_CHANGE_FAILED', message: `${r.name}: ${e.message}` });
        if (e instanceof ControlFailure) throw e;
        // Disk and metadata errors: the operator's to act on, not a bug of ours.
        throw new ControlFailure({ code: 'IO_ERROR', message: `${r.name}: ${(e as Error).message}` });
      }
    }
    return null;
  }

  status(name = 'all'): NodeStatus {
    return { node: this.options.node, pid: process.pid, resources: this.select(name).map((r) => r.status()) };
  }

  /**
   * Clean shutdown: every resource goes down (demoted, detached, metadata closed
   * cleanly). A resource whose device is still mounted or open keeps running,
   * and so does the daemon: cutting a mounted filesystem off its disk loses what
   * it has not written back yet, as a power loss would (found in review). Returns
   * whether the daemon may exit.
   */
  async stop(): Promise<boolean> {
    if (this.stopping) await this.stopping;
    let busy = 0;
    const run = (async () => {
      for (const r of this.resources.values()) {
        try {
          await r.down();
        } catch (e) {
          if (e instanceof StateChangeError && e.refusal.code === refusals.deviceInUse.code) {
            busy++;
            this.options.log.log(
              'error',
              `not stopping: ${r.name}: ${e.message}; unmount or close it, then stop tandemd again`,
            );
            continue;
          }
          this.options.log.log(
            'warn',
            `shutdown: ${r.name}: ${(e as Error).message}; closing its metadata anyway`,
          );
          await r.forceClose();
        }
      }
    })();
    this.stopping = run;
    await run;
    this.stopping = undefined;
    if (busy > 0) return false;
    await this.control?.close();
    await this.metrics?.close();
    this.releasePid?.();
    this.options.log.log('info', 'stopped');
    return true;
  }
}
