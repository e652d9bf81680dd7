// One tandem node for system tests: a temp dir with a DRBD config, a backing
// file, a run dir, and a real tandemd process. cleanup() undoes everything it
// made (daemon, mounts, loop devices, FUSE mounts, files), also after a failure.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bin } from './paths.js';

const run = promisify(execFile);

export interface RunResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs a program without blocking the event loop; never rejects on a non-zero exit. */
export async function sh(cmd: string, args: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  try {
    const { stdout, stderr } = await run(cmd, [...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof x.code === 'number' ? x.code : -1,
      out: x.stdout ?? '',
      err: x.stderr ?? x.message,
    };
  }
}

export async function missingTools(tools: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const t of tools) if ((await sh('sh', ['-c', `command -v ${t}`])).code !== 0) missing.push(t);
  return missing;
}

/** Why system tests cannot run here, or undefined. */
export async function systemTestSkipReason(tools: readonly string[]): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'system tests need root (loop devices, FUSE, mount)';
  const missing = await missingTools(tools);
  if (missing.length) return `missing tools: ${missing.join(', ')} (run scripts/install-system-deps)`;
  return undefined;
}

export class TandemNode {
  readonly dir: string;
  readonly runDir: string;
  readonly conf: string;
  readonly disk: string;
  readonly device: string;
  readonly mnt: string;
  readonly name: string;
  private daemon: ChildProcess | undefined;
  /** Part of a cluster: the cluster's directory is removed by the cluster. */
  private readonly ownsDir: boolean;

  /** A node with a sparse backing file of `diskBytes` (256 MiB by default). */
  static async create(
    options: { diskBytes?: number; resource?: string; extraConf?: string; port?: number } = {},
  ): Promise<TandemNode> {
    const n = new TandemNode(options);
    await n.sizeDisk(options.diskBytes ?? 256 * 1024 * 1024);
    return n;
  }

  /**
   * A node of a two-node cluster on loopback: `dir` is its own directory inside the
   * cluster's, `conf` the configuration both nodes share (written by the caller).
   */
  static member(options: { dir: string; name: string; conf: string }): TandemNode {
    return new TandemNode({}, options);
  }

  private constructor(
    options: { resource?: string; extraConf?: string; port?: number },
    member?: { dir: string; name: string; conf: string },
  ) {
    this.ownsDir = member === undefined;
    this.name = member?.name ?? 'alpha';
    this.dir = member?.dir ?? mkdtempSync(join(tmpdir(), 'tandem-sys-'));
    mkdirSync(this.dir, { recursive: true });
    this.runDir = join(this.dir, 'run');
    this.disk = join(this.dir, 'disk.img');
    this.device = join(this.dir, 'drbd7');
    this.mnt = join(this.dir, 'mnt');
    mkdirSync(this.mnt);
    this.conf = member?.conf ?? join(this.dir, 'tandem.conf');
    writeFileSync(this.disk, Buffer.alloc(0));
    if (member !== undefined) return;
    writeFileSync(
      this.conf,
      `resource ${options.resource ?? 'r0'} {
  device ${this.device} minor 7;
  disk ${this.disk};
  meta-disk internal;
  net { protocol C; }
  ${options.extraConf ?? ''}
  on ${this.name} { address 127.0.0.1:${options.port ?? 7789}; }
  on bravo { address 127.0.0.2:${options.port ?? 7789}; }
}
`,
    );
  }

  /** Points the configuration at another backing disk (a block device, say). */
  useDisk(path: string): void {
    writeFileSync(this.conf, readFileSync(this.conf, 'utf8').replace(`disk ${this.disk};`, `disk ${path};`));
  }

  /** Makes the backing file `bytes` long (sparse). */
  async sizeDisk(bytes: number): Promise<void> {
    const r = await sh('truncate', ['-s', String(bytes), this.disk]);
    if (r.code !== 0) throw new Error(r.err);
  }

  adm(...args: string[]): Promise<RunResult> {
    return sh(process.execPath, [
      bin('tandemadm'),
      '-q',
      '-c',
      this.conf,
      '--node',
      this.name,
      '--run-dir',
      this.runDir,
      ...args,
    ]);
  }

  get logFile(): string {
    return join(this.dir, 'tandemd.log');
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** Starts tandemd and waits for its control socket to answer. */
  async start(extraArgs: readonly string[] = []): Promise<void> {
    // TANDEMD_NODE_ARGS: options for node itself, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile a bench.
    const nodeArgs = (process.env.TANDEMD_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const child = spawn(
      process.execPath,
      [
        ...nodeArgs,
        bin('tandemd'),
        '-c',
        this.conf,
        '--node',
        this.name,
        '--run-dir',
        this.runDir,
        '--log-file',
        this.logFile,
        ...extraArgs,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      this.stderrText = stderr.slice(-4000);
    });
    this.daemon = child;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`tandemd exited ${child.exitCode}: ${stderr}`);
      if ((await this.adm('status')).code === 0) return;
      if (Date.now() > deadline) throw new Error(`tandemd did not answer: ${stderr}\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private stderrText = '';

  /** The end of the last tandemd's stderr (where a crash's stack is). */
  get stderrTail(): string {
    return this.stderrText;
  }

  /** tandemd exited though nobody stopped it (stop() forgets the process it stops). */
  get crashed(): boolean {
    const d = this.daemon;
    return d !== undefined && (d.exitCode !== null || d.signalCode !== null);
  }

  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  /** Sends `signal` to tandemd without waiting; whether it is still running. */
  signal(signal: NodeJS.Signals): boolean {
    this.daemon?.kill(signal);
    return this.daemon !== undefined && this.daemon.exitCode === null;
  }

  /** Stops tandemd with `signal` and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.daemon;
    this.daemon = undefined;
    // Gone already (by exit or by a signal): its 'exit' has fired, do not wait for it.
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    return exited;
  }

  /** Everything this node made, undone; safe to call twice and after failures. */
  async cleanup(): Promise<void> {
    await sh('umount', ['-l', this.mnt]);
    await this.stop('SIGKILL');
    // Loop devices over our FUSE files, then the FUSE mounts themselves.
    const loops = await sh('losetup', ['-a']);
    for (const line of loops.out.split('\n')) {
      if (line.includes(this.dir)) await sh('losetup', ['-d', line.split(':')[0] as string]);
    }
    const mounts = readFileSync('/proc/self/mounts', 'utf8');
    for (const line of mounts.split('\n')) {
      const dir = line.split(' ')[1];
      if (dir?.startsWith(this.dir)) await sh('umount', ['-l', dir]);
    }
    await sh('pkill', ['-f', `nbdfuse ${this.runDir}`]);
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
