// `npm run demo`: the seed's story on one machine, with no root and no
// configuration. Two tandemd processes on loopback with file-backed disks in a
// temporary directory: create-md, up, primary --force, the initial sync with a
// progress bar, random writes through NBD, the Primary killed with SIGKILL, the
// other node promoted, and every acknowledged block read back byte for byte.
// It prints the commands as it runs them and a summary of what it measured.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callDaemon } from '../daemon/control-client.js';
import type { NodeStatus, ResourceStatus } from '../daemon/status.js';
import { NbdClient } from '../nbd/client.js';

export interface DemoOptions {
  readonly sizeBytes: number;
  readonly protocol: 'A' | 'B' | 'C';
  /** Seconds of random writes through NBD. */
  readonly writeSeconds: number;
  /** Leave the cluster running (alpha back as Secondary) until Ctrl-C. */
  readonly keep: boolean;
  /** Where the progress bar and the story go. */
  readonly out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
}

export interface DemoSummary {
  readonly syncMBps: number;
  readonly syncSeconds: number;
  readonly writeIops: number;
  readonly writesAcknowledged: number;
  readonly failoverSeconds: number;
  readonly blocksVerified: number;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = (name: string): string => join(repoRoot, 'bin', name);
const resource = 'r0';
const blockBytes = 4096;

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => ok(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** A size like 512M, 2G, 64KiB or plain bytes; throws naming the text otherwise. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]i?B?)?$/i.exec(text.trim());
  if (!m) throw new Error(`--size: '${text}' is not a size (e.g. 512M, 2G)`);
  const unit = (m[2] ?? '').toUpperCase()[0];
  const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  return Math.floor(Number(m[1]) * mult);
}

/** The content of block `block` at write number `gen`: regenerated for the check, never stored. */
export function blockPattern(
  block: number,
  gen: number,
  into: Buffer = Buffer.allocUnsafe(blockBytes),
): Buffer {
  let x = (block * 2654435761 + gen * 40503 + 1) >>> 0 || 1;
  for (let i = 0; i < blockBytes; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    into.writeUInt32LE(x, i);
  }
  return into;
}

class DemoNode {
  readonly name: string;
  readonly dir: string;
  readonly runDir: string;
  readonly disk: string;
  daemon: ChildProcess | undefined;
  private readonly conf: string;
  /** The demo is being stopped: start nothing more. */
  private readonly stopping: () => boolean;

  constructor(root: string, name: string, conf: string, stopping: () => boolean) {
    this.stopping = stopping;
    this.name = name;
    this.dir = join(root, name);
    this.runDir = join(this.dir, 'run');
    this.disk = join(this.dir, 'disk.img');
    this.conf = conf;
    mkdirSync(this.dir, { recursive: true });
  }

  get logFile(): string {
    return join(this.dir, 'tandemd.log');
  }

  get nbdSocket(): string {
    return join(this.runDir, `${resource}.nbd`);
  }

  /** The command line a user would type, for the story ($DIR: the demo's directory). */
  admLine(args: readonly string[]): string {
    return `tandemadm -c $DIR/tandem.conf --node ${this.name} --run-dir $DIR/${this.name}/run ${args.join(' ')}`;
  }

  /** The options every program of this node takes. */
  private get where(): string[] {
    return ['-c', this.conf, '--node', this.name, '--run-dir', this.runDir];
  }

  adm(args: readonly string[]): Promise<void> {
    const argv = [bin('tandemadm'), '-q', ...this.where, ...args];
    return new Promise((ok, fail) => {
      execFile(process.execPath, argv, { encoding: 'utf8' }, (err, _out, stderr) => {
        if (err)
          fail(new Error(`tandemadm ${args.join(' ')} on ${this.name}: ${stderr.trim() || err.message}`));
        else ok();
      });
    });
  }

  async start(): Promise<void> {
    if (this.stopping()) throw new Error('the demo is stopping');
    const log = createWriteStream(join(this.dir, 'tandemd.stderr'));
    const child = spawn(
      process.execPath,
      [bin('tandemd'), ...this.where, '--log-file', this.logFile, '--no-kernel-device'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.pipe(log);
    this.daemon = child;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`tandemd on ${this.name} exited ${child.exitCode}`);
      try {
        await this.status();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`tandemd on ${this.name} did not answer within 15 s`);
        await sleep(50);
      }
    }
  }

  async status(): Promise<ResourceStatus> {
    const r = await callDaemon(join(this.runDir, 'tandemd.sock'), 'status', resource, false, 5_000);
    if (!r.ok) throw new Error(r.error.message);
    const s = (r.result as NodeStatus).resources[0];
    if (!s) throw new Error(`${this.name}: no resource ${resource}`);
    return s;
  }

  async control(cmd: 'primary' | 'secondary', force = false): Promise<void> {
    const r = await callDaemon(join(this.runDir, 'tandemd.sock'), cmd, resource, force, 30_000);
    if (!r.ok) throw new Error(r.error.message);
  }

  /** SIGKILL, as a crash would (or SIGTERM, SIGKILL 5 s later); resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.daemon;
    this.daemon = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const late = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(late);
  }

  logTail(lines = 15): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

function bar(fraction: number, width = 30): string {
  const full = Math.min(width, Math.floor(fraction * width));
  return `[${'='.repeat(full)}${full < width ? '>' : ''}${' '.repeat(Math.max(0, width - full - 1))}]`;
}

export class Demo {
  readonly root: string;
  private readonly options: DemoOptions;
  private readonly alpha: DemoNode;
  private readonly bravo: DemoNode;
  private cleaning: Promise<void> | undefined;

  constructor(options: DemoOptions) {
    this.options = options;
    this.root = mkdtempSync(join(tmpdir(), 'tandem-demo-'));
    const conf = join(this.root, 'tandem.conf');
    const stopping = () => this.cleaning !== undefined;
    this.alpha = new DemoNode(this.root, 'alpha', conf, stopping);
    this.bravo = new DemoNode(this.root, 'bravo', conf, stopping);
  }

  private say(line: string): void {
    this.options.out.write(`${line}\n`);
  }

  private async step(node: DemoNode, args: readonly string[]): Promise<void> {
    this.say(`[${node.name}] $ ${node.admLine(args)}`);
    await node.adm(args);
  }

  /** Runs the story; returns what it measured. Cleans up unless --keep (then call cleanup()). */
  async run(): Promise<DemoSummary> {
    const { sizeBytes, protocol } = this.options;
    const [pa, pb] = [await freePort(), await freePort()];
    const conf = join(this.root, 'tandem.conf');
    writeFileSync(
      conf,
      `# Written by the tandem demo: DRBD's configuration language, two nodes on loopback.
resource ${resource} {
  net { protocol ${protocol}; connect-int 1; }
  on alpha {
    device ${join(this.alpha.dir, 'drbd0')} minor 0;
    disk ${this.alpha.disk};
    meta-disk internal;
    address 127.0.0.1:${pa};
  }
  on bravo {
    device ${join(this.bravo.dir, 'drbd0')} minor 0;
    disk ${this.bravo.disk};
    meta-disk internal;
    address 127.0.0.1:${pb};
  }
}
`,
    );
    // The backing disks: sparse files (the data area plus room for internal metadata).
    for (const n of [this.alpha, this.bravo]) {
      writeFileSync(n.disk, Buffer.alloc(0));
      truncateSync(n.disk, sizeBytes);
    }
    this.say(
      `tandem demo: two nodes on loopback, protocol ${protocol}, ${mib(sizeBytes)} disks\nDIR=${this.root}\n`,
    );

    for (const n of [this.alpha, this.bravo]) await this.step(n, ['create-md', '--force', resource]);
    for (const n of [this.alpha, this.bravo]) {
      this.say(`[${n.name}] $ tandemd -c $DIR/tandem.conf --node ${n.name} --run-dir $DIR/${n.name}/run &`);
      await n.start();
      await this.step(n, ['up', resource]);
    }
    await this.waitFor(
      async () => (await this.alpha.status()).connection === 'Connected',
      'the nodes to connect',
    );
    this.say('both nodes Connected, Secondary/Secondary, Inconsistent/Inconsistent');

    // The seed's step: alpha's data becomes the reference, a full sync to bravo.
    await this.step(this.alpha, ['primary', '--force', resource]);
    const sync = await this.watchSync();

    // Random 4 KiB writes through NBD, 16 in flight, for a few seconds.
    const written = new Map<number, number>();
    const writes = await this.writeRandom(written);

    if (protocol !== 'C') {
      // A and B promise only what a FLUSH covered; C every acknowledged write.
      this.say(`protocol ${protocol}: a FLUSH before the crash (only protocol C keeps unflushed writes)`);
      const c = await NbdClient.open({ path: this.alpha.nbdSocket }, resource);
      await c.flush();
      c.close();
    }

    // The crash: alpha's tandemd dies with SIGKILL; bravo takes over.
    this.say(`\n[alpha] $ kill -9 ${this.alpha.daemon?.pid}    # the Primary crashes`);
    const killedAt = performance.now();
    await this.alpha.kill();
    await this.waitFor(async () => (await this.bravo.status()).connection !== 'Connected', 'bravo to see it');
    this.say(`[bravo] $ ${this.bravo.admLine(['primary', resource])}`);
    await this.waitFor(async () => {
      try {
        await this.bravo.control('primary');
        return true;
      } catch {
        return false;
      }
    }, 'bravo to become Primary');
    const client = await NbdClient.open({ path: this.bravo.nbdSocket }, resource);
    await client.read(0, blockBytes);
    const failoverSeconds = (performance.now() - killedAt) / 1000;
    this.say(`bravo is Primary and serving I/O ${failoverSeconds.toFixed(2)} s after the crash`);
    this.say('(promoted by hand at once; tandem-ha would wait its deadtime before it declares alpha dead)');

    // Every acknowledged write, byte for byte, from bravo.
    const blocksVerified = await this.verify(client, written);
    client.close();

    const summary: DemoSummary = {
      syncMBps: sync.mbps,
      syncSeconds: sync.seconds,
      writeIops: writes.iops,
      writesAcknowledged: writes.count,
      failoverSeconds,
      blocksVerified,
    };
    this.say(`\nsummary (protocol ${protocol}, ${mib(sizeBytes)}):`);
    this.say(`  initial sync        ${sync.mbps.toFixed(0)} MB/s (${sync.seconds.toFixed(1)} s)`);
    this.say(
      `  random 4 KiB writes ${writes.iops.toFixed(0)} IOPS through NBD, 16 in flight (${writes.count} acknowledged)`,
    );
    this.say(
      `  failover            ${failoverSeconds.toFixed(2)} s from SIGKILL of the Primary to the first read on the other node (promoted by hand)`,
    );
    this.say(
      `  check               ${blocksVerified} written blocks identical on the new Primary, byte for byte`,
    );

    if (this.options.keep) {
      this.say('\nalpha comes back as Secondary and resyncs from bravo:');
      this.say('[alpha] $ tandemd -c $DIR/tandem.conf --node alpha --run-dir $DIR/alpha/run &');
      await this.alpha.start();
      await this.step(this.alpha, ['up', resource]);
      this.say('\nthe cluster keeps running; try:');
      this.say(
        `  ${process.execPath} ${bin('tandemadm')} -c ${conf} --node bravo --run-dir ${this.bravo.runDir} status`,
      );
      this.say(`  nbdinfo 'nbd+unix:///${resource}?socket=${this.bravo.nbdSocket}'`);
      this.say('Ctrl-C stops both nodes and removes the directory.');
    }
    return summary;
  }

  private async waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (await check()) return;
      } catch {
        // The daemon may be busy or restarting: ask again.
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  /** The initial sync, with a progress bar; MB/s over the whole sync. */
  private async watchSync(): Promise<{ mbps: number; seconds: number }> {
    const started = performance.now();
    const tty = this.options.out.isTTY === true;
    let lastLine = '';
    let quarter = 0;
    for (;;) {
      const s = await this.alpha.status();
      const v = s.volumes[0];
      if (v && v.disk === 'UpToDate' && v.peerDisk === 'UpToDate') break;
      if (v?.sync) {
        const f = v.sync.totalBytes > 0 ? v.sync.doneBytes / v.sync.totalBytes : 0;
        const speed = v.sync.speedBytesPerSecond / 1e6;
        const line = `initial sync alpha -> bravo ${bar(f)} ${(100 * f).toFixed(1)}%  ${speed.toFixed(0)} MB/s`;
        // A terminal gets a live bar; a log gets a line at each quarter.
        if (tty) this.options.out.write(`\r${line}`);
        else if (Math.floor(f * 4) > quarter) {
          quarter = Math.floor(f * 4);
          this.say(line);
        }
        lastLine = line;
      }
      if (performance.now() - started > 600_000)
        throw new Error('the initial sync did not finish in 10 minutes');
      await sleep(100);
    }
    const seconds = (performance.now() - started) / 1000;
    // The data area: the disk less its internal metadata.
    const bytes = (await this.alpha.status()).volumes[0]?.sizeBytes ?? this.options.sizeBytes;
    const mbps = bytes / 1e6 / seconds;
    if (tty) this.options.out.write(`\r${' '.repeat(lastLine.length)}\r`);
    this.say(
      `initial sync alpha -> bravo ${bar(1)} 100%  done in ${seconds.toFixed(1)} s: UpToDate/UpToDate`,
    );
    return { mbps, seconds };
  }

  /** 4 KiB writes at random blocks, 16 in flight; `written` ends as block -> its last acknowledged write. */
  private async writeRandom(written: Map<number, number>): Promise<{ iops: number; count: number }> {
    const client = await NbdClient.open({ path: this.alpha.nbdSocket }, resource);
    const blocks = Math.floor(client.sizeBytes / blockBytes);
    const seconds = this.options.writeSeconds;
    this.say(
      `\nwriting random 4 KiB blocks through NBD (${this.alpha.nbdSocket}) for ${seconds} s, 16 in flight`,
    );
    const started = performance.now();
    const until = started + seconds * 1000;
    let gen = 0;
    let count = 0;
    // One write in flight per block at a time, so the last acknowledged one is its content.
    const busy = new Set<number>();
    const worker = async (): Promise<void> => {
      while (performance.now() < until) {
        let block = Math.floor(Math.random() * blocks);
        while (busy.has(block)) block = (block + 1) % blocks;
        busy.add(block);
        const g = ++gen;
        await client.write(block * blockBytes, blockPattern(block, g));
        busy.delete(block);
        written.set(block, g);
        count++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const elapsed = (performance.now() - started) / 1000;
    client.close();
    const iops = count / elapsed;
    this.say(`${count} writes acknowledged, ${iops.toFixed(0)} IOPS`);
    return { iops, count };
  }

  private async verify(client: NbdClient, written: Map<number, number>): Promise<number> {
    const expected = Buffer.allocUnsafe(blockBytes);
    let checked = 0;
    const entries = [...written.entries()];
    for (let i = 0; i < entries.length; i += 64) {
      const batch = entries.slice(i, i + 64);
      const got = await Promise.all(batch.map(([block]) => client.read(block * blockBytes, blockBytes)));
      batch.forEach(([block, gen], k) => {
        blockPattern(block, gen, expected);
        if (!expected.equals(got[k] as Buffer))
          throw new Error(
            `block ${block} (offset ${block * blockBytes}) differs on bravo: an acknowledged write was lost`,
          );
        checked++;
      });
    }
    this.say(`read back ${checked} written blocks from bravo: all identical`);
    return checked;
  }

  /** Log tails of both nodes, for a failed run. */
  logs(): string {
    return [this.alpha, this.bravo].map((n) => `--- ${n.name} (${n.logFile})\n${n.logTail()}`).join('\n');
  }

  /**
   * Stops both daemons and removes the directory. Every call gets the same promise,
   * so a Ctrl-C during a cleanup waits for it; no daemon starts once it has begun.
   */
  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await Promise.all([this.alpha.kill('SIGTERM'), this.bravo.kill('SIGTERM')]);
      rmSync(this.root, { recursive: true, force: true });
    })();
    return this.cleaning;
  }
}
