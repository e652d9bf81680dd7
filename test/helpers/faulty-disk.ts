// A backing disk that fails on demand, for real tandemd processes: a regular file in a
// FUSE mount (nbdfuse) served by two nbdkit processes in a chain, the disk itself at the
// end (file plugin on DIR/store.img):
//
//   tandemd -> DIR/mnt/nbd (nbdfuse) -> front nbdkit: error filter (writes fail with
//   ENOSPC while DIR/full exists), pause filter (I/O stalls while paused) -> back
//   nbdkit: error filter (every request fails with EIO while DIR/eio exists) -> store.img
//
// Two processes because one error filter has one errno per operation. A power cut kills
// the front nbdkit with what it holds (paused requests never reach the store: lost, as
// in a disk without a volatile cache) and mounts the disk again.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { sh } from './tandem-node.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`faulty disk: ${what} did not appear within ${ms} ms`);
    await sleep(20);
  }
}

export class FaultyDisk {
  /** The file tandemd uses as its backing disk. */
  readonly path: string;
  private back: ChildProcess | undefined;
  private front: ChildProcess | undefined;
  private fuse: ChildProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly bytes: number,
  ) {
    this.path = join(dir, 'mnt', 'nbd');
  }

  /** Tools a faulty disk needs (and root, for FUSE). */
  static readonly tools = ['nbdkit', 'nbdfuse', 'fusermount3'] as const;

  static async create(dir: string, bytes: number): Promise<FaultyDisk> {
    mkdirSync(join(dir, 'mnt'), { recursive: true });
    const d = new FaultyDisk(dir, bytes);
    const r = await sh('truncate', ['-s', String(bytes), join(dir, 'store.img')]);
    if (r.code !== 0) throw new Error(`faulty disk: truncate: ${r.err}`);
    try {
      d.back = d.spawnNbdkit('back.sock', [
        '--filter=error',
        'file',
        join(dir, 'store.img'),
        'error=EIO',
        'error-rate=100%',
        `error-file=${join(dir, 'eio')}`,
      ]);
      await waitFor('the back nbdkit socket', () => existsSync(join(dir, 'back.sock')));
      await d.mountFront();
    } catch (e) {
      await d.close();
      throw e;
    }
    return d;
  }

  private spawnNbdkit(sock: string, args: readonly string[]): ChildProcess {
    rmSync(join(this.dir, sock), { force: true });
    const p = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', join(this.dir, sock), ...args], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    p.on('error', () => {});
    return p;
  }

  private async mountFront(): Promise<void> {
    this.front = this.spawnNbdkit('front.sock', [
      '--filter=error',
      '--filter=pause',
      'nbd',
      `socket=${join(this.dir, 'back.sock')}`,
      'error-pwrite=ENOSPC',
      'error-pwrite-rate=100%',
      `error-pwrite-file=${join(this.dir, 'full')}`,
      'error-zero=ENOSPC',
      'error-zero-rate=100%',
      `error-zero-file=${join(this.dir, 'full')}`,
      `pause-control=${join(this.dir, 'pause.sock')}`,
    ]);
    await waitFor('the front nbdkit socket', () => existsSync(join(this.dir, 'front.sock')));
    this.fuse = spawn('nbdfuse', [join(this.dir, 'mnt'), '--unix', join(this.dir, 'front.sock')], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    this.fuse.on('error', () => {});
    await waitFor('the FUSE file', () => existsSync(this.path));
  }

  /** Every request fails with EIO (a dying disk) while on. */
  ioErrors(on: boolean): void {
    this.flag('eio', on);
  }

  /** Writes fail with ENOSPC (a thin pool out of space) while on. */
  full(on: boolean): void {
    this.flag('full', on);
  }

  private flag(name: string, on: boolean): void {
    const f = join(this.dir, name);
    if (on) writeFileSync(f, '');
    else rmSync(f, { force: true });
  }

  /** Requests wait in the front nbdkit until resume() (a disk that stops answering). */
  pause(): Promise<void> {
    return this.control('p');
  }

  resume(): Promise<void> {
    return this.control('r');
  }

  private control(c: 'p' | 'r'): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect(join(this.dir, 'pause.sock'));
      s.on('error', reject);
      s.on('connect', () => s.write(c));
      s.on('data', () => {
        s.destroy();
        resolve();
      });
    });
  }

  /**
   * Power cut (call with the user of the disk already killed): what the front nbdkit
   * holds is lost, the disk comes back with what reached the store, unpaused.
   */
  async powerCut(): Promise<void> {
    await this.unmountFront();
    await this.mountFront();
  }

  private async unmountFront(): Promise<void> {
    await killed(this.front);
    this.front = undefined;
    await sh('fusermount3', ['-u', '-z', join(this.dir, 'mnt')]);
    await killed(this.fuse);
    this.fuse = undefined;
  }

  async close(): Promise<void> {
    this.flag('eio', false);
    this.flag('full', false);
    await this.unmountFront();
    await killed(this.back);
    this.back = undefined;
  }
}

/** SIGKILLs `p` and waits for it to be gone (at once if it already is, by exit or signal). */
async function killed(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}
