// Makes a kernel block device for an NBD export and a symlink at the
// resource's `device` path, so that `mkfs.ext4 /dev/drbd1` and `mount` work:
// kernel NBD (nbd-client) where the host has the nbd module, else nbdfuse plus
// a loop device, else none (export only, said in status).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type KernelDeviceKind = 'nbd' | 'fuse-loop' | 'none';

export interface KernelDevice {
  readonly kind: KernelDeviceKind;
  /** The block device the kernel sees (/dev/nbd0, /dev/loop3), or undefined for 'none'. */
  readonly blockDevice: string | undefined;
  /** The configured path (/dev/drbd1), a symlink to blockDevice. */
  readonly devicePath: string;
  /** Why there is no kernel device, for status. */
  readonly reason: string | undefined;
}

export interface AttachOptions {
  readonly socketPath: string;
  readonly exportName: string;
  readonly devicePath: string;
  /** Where FUSE mount points and state files go (the run dir). */
  readonly stateDir: string;
  readonly log?: (message: string) => void;
}

interface StateFile {
  kind: KernelDeviceKind;
  blockDevice?: string;
  fuseDir?: string;
  nbdfusePid?: number;
  devicePath: string;
}

/** How long nbdfuse has to show its file. */
const fuseReadyMsMax = 10_000;

async function which(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

function stateFile(o: { stateDir: string; exportName: string }): string {
  return join(o.stateDir, `${o.exportName.replace(/\//g, '_')}.kdev.json`);
}

/** The symlink at the device path, pointing to `target`; an existing non-link is never replaced. */
function linkDevice(devicePath: string, target: string): void {
  if (existsSync(devicePath) || isSymlink(devicePath)) {
    if (!isSymlink(devicePath))
      throw new Error(`${devicePath} exists and is not a symlink made by tandem: refusing to replace it`);
    rmSync(devicePath);
  }
  mkdirSync(dirname(devicePath), { recursive: true });
  symlinkSync(target, devicePath);
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Removes the symlink at the device path only if it points where tandem made it point. */
function unlinkDevice(devicePath: string, target: string | undefined): void {
  if (target === undefined || !isSymlink(devicePath)) return;
  if (readlinkSync(devicePath) === target) rmSync(devicePath);
}

export class KernelDeviceManager {
  private readonly children = new Map<string, ChildProcess>();

  /** Chooses and sets up the best available kind. Never throws for a missing facility: falls back to 'none'. */
  async attach(o: AttachOptions): Promise<KernelDevice> {
    await this.cleanupStale(o);
    if (process.getuid?.() !== 0) return this.none(o, 'not running as root');
    if (existsSync('/sys/block/nbd0') && (await which('nbd-client'))) return this.attachNbd(o);
    if (existsSync('/dev/fuse') && (await which('nbdfuse')) && (await which('losetup')))
      return this.attachFuseLoop(o);
    return this.none(o, 'neither the nbd kernel module nor nbdfuse + losetup are available');
  }

  private none(o: AttachOptions, reason: string): KernelDevice {
    o.log?.(`no kernel device for ${o.exportName}: ${reason}; the NBD export is at ${o.socketPath}`);
    return { kind: 'none', blockDevice: undefined, devicePath: o.devicePath, reason };
  }

  private async attachNbd(o: AttachOptions): Promise<KernelDevice> {
    // The first free /dev/nbdN: size 0 in sysfs means unused.
    let dev: string | undefined;
    for (let i = 0; i < 128 && !dev; i++) {
      const size = `/sys/block/nbd${i}/size`;
      if (existsSync(size) && readFileSync(size, 'utf8').trim() === '0') dev = `/dev/nbd${i}`;
    }
    if (!dev) return this.none(o, 'no free /dev/nbdN');
    await run('nbd-client', ['-unix', o.socketPath, dev, '-N', o.exportName, '-b', '4096']);
    linkDevice(o.devicePath, dev);
    this.save(o, { kind: 'nbd', blockDevice: dev, devicePath: o.devicePath });
    return { kind: 'nbd', blockDevice: dev, devicePath: o.devicePath, reason: undefined };
  }

  private async attachFuseLoop(o: AttachOptions): Promise<KernelDevice> {
    const fuseDir = join(o.stateDir, `${o.exportName.replace(/\//g, '_')}.fuse`);
    mkdirSync(fuseDir, { recursive: true });
    const uri = `nbd+unix:///${o.exportName}?socket=${o.socketPath}`;
    const child = spawn('nbdfuse', [fuseDir, uri], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    this.children.set(o.exportName, child);
    const file = join(fuseDir, 'nbd');
    const deadline = Date.now() + fuseReadyMsMax;
    while (!existsSync(file)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGTERM');
        this.children.delete(o.exportName);
        throw new Error(`nbdfuse did not start for ${o.exportName}: ${stderr.trim() || 'timed out'}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const { stdout } = await run('losetup', ['--find', '--show', file]);
    const loop = stdout.trim();
    try {
      linkDevice(o.devicePath, loop);
    } catch (e) {
      await run('losetup', ['-d', loop]).catch(() => {});
      await this.stopFuse(o.exportName, fuseDir);
      throw e;
    }
    this.save(o, {
      kind: 'fuse-loop',
      blockDevice: loop,
      fuseDir,
      nbdfusePid: child.pid,
      devicePath: o.devicePath,
    });
    o.log?.(`${o.devicePath} -> ${loop} (nbdfuse ${fuseDir})`);
    return { kind: 'fuse-loop', blockDevice: loop, devicePath: o.devicePath, reason: undefined };
  }

  private save(o: AttachOptions, s: StateFile): void {
    writeFileSync(stateFile(o), JSON.stringify(s));
  }

  /** Whether the kernel device is mounted, held (by a filesystem, LVM, ...) or open in any process. */
  async inUse(d: KernelDevice): Promise<string | undefined> {
    if (!d.blockDevice) return undefined;
    const name = d.blockDevice.replace('/dev/', '');
    const mounts = readFileSync('/proc/self/mounts', 'utf8');
    for (const line of mounts.split('\n')) {
      const [src, dir] = line.split(' ');
      if (src === d.blockDevice || src === d.devicePath) return `${d.devicePath} is mounted on ${dir}`;
    }
    try {
      const holders = readdirSync(`/sys/block/${name}/holders`);
      if (holders.length > 0) return `${d.devicePath} is held by ${holders.join(', ')}`;
    } catch {
      // no holders directory: nothing holds it
    }
    // A VM, a database or dd on the raw device: find it as fuser(1) does.
    const openers = processesWithOpen(d.blockDevice);
    if (openers.length > 0) return `${d.devicePath} is open in ${openers.slice(0, 5).join(', ')}`;
    return undefined;
  }

  /** Undoes attach. The caller has checked inUse(). */
  async detach(o: AttachOptions, d: KernelDevice): Promise<void> {
    // Nothing was made: a symlink at the device path is not ours to remove.
    if (d.kind === 'none' || !d.blockDevice) return;
    if (d.kind === 'nbd' && d.blockDevice) await run('nbd-client', ['-d', d.blockDevice]);
    if (d.kind === 'fuse-loop' && d.blockDevice) {
      await run('losetup', ['-d', d.blockDevice]);
      await this.stopFuse(o.exportName, join(o.stateDir, `${o.exportName.replace(/\//g, '_')}.fuse`));
    }
    unlinkDevice(o.devicePath, d.blockDevice);
    rmSync(stateFile(o), { force: true });
  }

  private async stopFuse(exportName: string, fuseDir: string): Promise<void> {
    await run('fusermount3', ['-u', fuseDir]).catch(() => run('umount', ['-l', fuseDir]).catch(() => {}));
    const child = this.children.get(exportName);
    this.children.delete(exportName);
    if (child && child.exitCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    rmSync(fuseDir, { recursive: true, force: true });
  }

  /**
   * Removes what a previous tandemd (killed, crashed) left: its loop device and
   * FUSE mount. A device still mounted is left alone and reported.
   */
  async cleanupStale(o: { stateDir: string; exportName: string; log?: (m: string) => void }): Promise<void> {
    const f = stateFile(o);
    if (!existsSync(f)) return;
    let s: StateFile;
    try {
      s = JSON.parse(readFileSync(f, 'utf8')) as StateFile;
    } catch {
      rmSync(f, { force: true });
      return;
    }
    // The recorded loop device is ours only if it still reads our FUSE file: after a
    // reboot or an operator's losetup -d the number may belong to something else.
    let blockDevice = s.blockDevice;
    if (s.kind === 'fuse-loop' && blockDevice && s.fuseDir) {
      const backing = `/sys/block/${blockDevice.replace('/dev/', '')}/loop/backing_file`;
      let file = '';
      try {
        file = readFileSync(backing, 'utf8').trim();
      } catch {
        // not a loop device any more
      }
      if (!file.startsWith(join(s.fuseDir, 'nbd'))) blockDevice = undefined;
    }
    const d: KernelDevice = { kind: s.kind, blockDevice, devicePath: s.devicePath, reason: undefined };
    const busy = await this.inUse(d);
    if (busy) {
      throw new Error(`a previous tandemd left ${s.blockDevice} behind and ${busy}: unmount it first`);
    }
    o.log?.(`removing ${blockDevice ?? 'the state'} left by a previous tandemd`);
    if (s.kind === 'fuse-loop' && blockDevice) await run('losetup', ['-d', blockDevice]).catch(() => {});
    if (s.kind === 'nbd' && s.blockDevice) await run('nbd-client', ['-d', s.blockDevice]).catch(() => {});
    if (s.fuseDir) {
      await run('fusermount3', ['-u', s.fuseDir]).catch(() =>
        run('umount', ['-l', s.fuseDir as string]).catch(() => {}),
      );
      rmSync(s.fuseDir, { recursive: true, force: true });
    }
    // Only if that pid is still an nbdfuse: pids are reused.
    if (s.nbdfusePid && readComm(s.nbdfusePid) === 'nbdfuse') {
      try {
        process.kill(s.nbdfusePid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    unlinkDevice(s.devicePath, s.blockDevice);
    rmSync(f, { force: true });
  }
}

function readComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** 'comm[pid]' of every process with `device` open (scans /proc/PID/fd like fuser). */
function processesWithOpen(device: string): string[] {
  const found: string[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return found;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === device) {
          found.push(`${readComm(Number(pid)) ?? '?'}[${pid}]`);
          break;
        }
      } catch {
        // the fd closed meanwhile
      }
    }
  }
  return found;
}
