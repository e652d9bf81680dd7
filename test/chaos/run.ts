// Runs one chaos schedule against two real tandemd processes on loopback whose
// replication link goes through two proxies the runner controls (reset, silent
// partition, latency, a side that stops reading), while a workload writes through NBD
// and keeps the history of every acknowledged write. After the schedule everything is
// healed and restarted, and the run is judged:
//  - every write acknowledged under protocol C (under A and B: every write acknowledged
//    before an acknowledged FLUSH) is on the final Primary, byte for byte;
//  - the replicas are identical (online verify finds nothing out of sync);
//  - never were both nodes Primary (polled all along);
//  - no tandemd died but those the schedule killed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/daemon/control-client.js';
import { Cmd } from '../../src/nbd/protocol.js';
import { freePort } from '../helpers/cluster.js';
import { FaultyDisk } from '../helpers/faulty-disk.js';
import { LinkProxy } from '../helpers/link-proxy.js';
import { TestNbdClient } from '../helpers/nbd-client.js';
import { TandemNode } from '../helpers/tandem-node.js';
import { verifyResult } from '../helpers/verify.js';
import { describeFault, type Fault, formatSchedule, type Schedule } from './schedule.js';

const blockBytes = 4096;
const resource = 'r0';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ChaosOptions {
  /** Blocks of 4 KiB the workload writes into (default 4096: 16 MiB). */
  readonly blocks?: number;
  /** Writes in flight (default 8). */
  readonly depth?: number;
  /** Per-line progress (default: nothing). */
  readonly log?: (line: string) => void;
}

export interface ChaosResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly acked: number;
  readonly faults: number;
  readonly skipped: number;
  /** The schedule and what happened, for a failure's report. */
  readonly report: string;
}

/** A run's result; its report is the schedule, what happened and the problems, for replay. */
export function chaosResult(
  seed: number,
  scheduleText: string,
  events: readonly string[],
  problems: readonly string[],
  counts: { readonly acked: number; readonly faults: number; readonly skipped: number },
): ChaosResult {
  const report = [
    scheduleText,
    'what happened:',
    ...events.map((e) => `  ${e}`),
    ...(problems.length ? ['problems:', ...problems.map((p) => `  ${p}`)] : []),
  ].join('\n');
  return { seed, ok: problems.length === 0, problems, ...counts, report };
}

/** Block content of write n: (n, block) in every 8 bytes, recognisable when misplaced. */
export function pattern(n: number, block: number): Buffer {
  const b = Buffer.alloc(blockBytes);
  for (let at = 0; at < blockBytes; at += 8) {
    b.writeUInt32BE(n, at);
    b.writeUInt32BE(block, at + 4);
  }
  return b;
}

/** The write number a block holds: 0 for zeroes, -1 for anything not one whole pattern. */
function stampOf(b: Buffer, block: number): number {
  if (b.every((x) => x === 0)) return 0;
  const n = b.readUInt32BE(0);
  return b.equals(pattern(n, block)) ? n : -1;
}

/**
 * What the final Primary's blocks say about the history: every block must hold one
 * whole write that was sent to it (or zeroes), no older than the write `required` names.
 */
export function judgeBlocks(
  issued: ReadonlyMap<number, readonly number[]>,
  required: ReadonlyMap<number, number>,
  contents: ReadonlyMap<number, Buffer>,
): string[] {
  const problems: string[] = [];
  let lost = 0;
  for (const [block, list] of issued) {
    const data = contents.get(block);
    if (data === undefined) {
      problems.push(`block ${block} was not read back`);
      continue;
    }
    const stamp = stampOf(data, block);
    const need = required.get(block) ?? 0;
    if (stamp < 0) problems.push(`block ${block} holds no whole write (torn or foreign data)`);
    else if (stamp < need) {
      if (lost++ < 10)
        problems.push(
          `block ${block}: acknowledged write ${need} is lost (the block holds ${stamp === 0 ? 'zeroes' : `write ${stamp}`})`,
        );
    } else if (stamp !== 0 && !list.includes(stamp))
      problems.push(`block ${block} holds write ${stamp}, never sent to it`);
  }
  if (lost > 10) problems.push(`… ${lost} acknowledged writes lost in all`);
  return problems;
}

async function openNbd(n: TandemNode): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(join(n.runDir, `${resource}.nbd`));
  await c.handshake();
  await c.go(resource);
  return c;
}

/**
 * Writes distinct blocks, `depth` at a time (never two in flight to one block, so each
 * block's order is the order of its acknowledgements), a FLUSH every 64 writes. When the
 * connection dies, what was in flight may or may not have landed; it waits for a target.
 */
class Workload {
  /** Write numbers issued per block, ascending. */
  readonly issued = new Map<number, number[]>();
  /** The last acknowledged write per block. */
  readonly acked = new Map<number, number>();
  /** The last write per block acknowledged before an acknowledged FLUSH was sent. */
  readonly flushed = new Map<number, number>();
  errors: string[] = [];
  /** While set, failed requests are expected (the Primary's disk is failing): counted, not errors. */
  errorsExpected = false;
  expectedErrors = 0;
  ackCount = 0;
  private next = 1;
  private target: TandemNode | undefined;
  private stopped = false;
  private readonly rand: () => number;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly blocks: number,
    private readonly depth: number,
    seed: number,
  ) {
    let s = seed ^ 0x5bd1e995;
    this.rand = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 4294967296;
    };
  }

  private failed(what: string): void {
    if (this.errorsExpected) this.expectedErrors++;
    else this.errors.push(what);
  }

  start(target: TandemNode): void {
    this.target = target;
    this.running = this.loop();
  }

  /** The workload goes on against `target` (after a failover). */
  moveTo(target: TandemNode): void {
    this.target = target;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const target = this.target;
      let client: TestNbdClient | undefined;
      try {
        if (!target) throw new Error('no target');
        client = await openNbd(target);
      } catch {
        // No Primary serving right now: wait for the runner to name one.
        await new Promise<void>((r) => {
          this.wake = r;
          setTimeout(r, 200);
        });
        continue;
      }
      await this.session(client);
      client.close();
    }
  }

  private async session(c: TestNbdClient): Promise<void> {
    const pending = new Map<
      bigint,
      { kind: 'write'; block: number; n: number } | { kind: 'flush'; snapshot: Map<number, number> }
    >();
    const busy = new Set<number>();
    let sinceFlush = 0;
    const send = (): void => {
      if (sinceFlush >= 64) {
        sinceFlush = 0;
        pending.set(c.send(Cmd.FLUSH, 0, 0), { kind: 'flush', snapshot: new Map(this.acked) });
        return;
      }
      let block = Math.floor(this.rand() * this.blocks);
      while (busy.has(block)) block = (block + 1) % this.blocks;
      const n = this.next++;
      busy.add(block);
      const list = this.issued.get(block) ?? [];
      list.push(n);
      this.issued.set(block, list);
      sinceFlush++;
      pending.set(c.send(Cmd.WRITE, block * blockBytes, blockBytes, 0, pattern(n, block)), {
        kind: 'write',
        block,
        n,
      });
    };
    for (let i = 0; i < this.depth; i++) send();
    try {
      while (!this.stopped) {
        const r = await c.reply();
        const p = pending.get(r.cookie);
        if (!p) throw new Error('a reply for a request never sent');
        pending.delete(r.cookie);
        if (p.kind === 'flush') {
          if (r.error !== 0) this.failed(`FLUSH failed with NBD error ${r.error}`);
          else for (const [b, n] of p.snapshot) if ((this.flushed.get(b) ?? 0) < n) this.flushed.set(b, n);
        } else {
          busy.delete(p.block);
          if (r.error !== 0) this.failed(`write ${p.n} to block ${p.block} failed with NBD error ${r.error}`);
          else {
            this.acked.set(p.block, p.n);
            this.ackCount++;
          }
        }
        send();
      }
      // Let what is in flight finish, so the end state is known.
      while (pending.size > 0) {
        const r = await c.reply();
        const p = pending.get(r.cookie);
        pending.delete(r.cookie);
        if (p?.kind === 'write' && r.error === 0) {
          this.acked.set(p.block, p.n);
          this.ackCount++;
        }
      }
    } catch {
      // The server went away: what is pending was never acknowledged.
    }
  }
}

interface Node {
  readonly tn: TandemNode;
  alive: boolean;
  /** The faulty disk under it (schedules with disk faults). */
  disk?: FaultyDisk;
}

const diskBytes = 64 * 1024 * 1024;

export async function runChaos(schedule: Schedule, options: ChaosOptions = {}): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const blocks = options.blocks ?? 4096;
  const events: string[] = [];
  const problems: string[] = [];
  const t0 = Date.now();
  const note = (line: string): void => {
    const l = `${((Date.now() - t0) / 1000).toFixed(2)}s ${line}`;
    events.push(l);
    log(l);
  };
  const dir = mkdtempSync(join(tmpdir(), 'tandem-chaos-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const proxyToA = await LinkProxy.start({ host: '127.0.0.1', port: pa });
  const proxyToB = await LinkProxy.start({ host: '127.0.0.1', port: pb });
  const proxies = [proxyToA, proxyToB];
  // Each node's own configuration: its address for real, the peer's through a proxy.
  const diskPath = (name: 'alpha' | 'bravo') =>
    schedule.disks ? join(dir, name, 'fd', 'mnt', 'nbd') : join(dir, name, 'disk.img');
  const conf = (self: 'alpha' | 'bravo') => {
    const file = join(dir, `${self}.conf`);
    const host = (name: 'alpha' | 'bravo') => {
      const port =
        name === self ? (name === 'alpha' ? pa : pb) : name === 'alpha' ? proxyToA.port : proxyToB.port;
      return `  on ${name} {
    device ${join(dir, name, 'drbd7')} minor 7;
    disk ${diskPath(name)};
    meta-disk internal;
    address 127.0.0.1:${port};
  }`;
    };
    writeFileSync(
      file,
      `resource ${resource} {
  net { protocol ${schedule.protocol}; connect-int 1; ping-int 1; ping-timeout 5; timeout 10; verify-alg crc32c; }
${host('alpha')}
${host('bravo')}
}
`,
    );
    return file;
  };
  const a: Node = {
    tn: TandemNode.member({ dir: join(dir, 'alpha'), name: 'alpha', conf: conf('alpha') }),
    alive: false,
  };
  const b: Node = {
    tn: TandemNode.member({ dir: join(dir, 'bravo'), name: 'bravo', conf: conf('bravo') }),
    alive: false,
  };
  const nodes = [a, b] as const;
  let primary: Node = a;
  const other = (n: Node) => (n === a ? b : a);
  const must = async (n: Node, ...args: string[]): Promise<string> => {
    const r = await n.tn.adm(...args);
    if (r.code !== 0) throw new Error(`${n.tn.name}: tandemadm ${args.join(' ')}: ${r.err.trim()}`);
    return r.out;
  };
  const startNode = async (n: Node): Promise<void> => {
    await n.tn.start(['--no-kernel-device']);
    n.alive = true;
    await must(n, 'up', resource);
  };
  const status = async (n: Node) => {
    const r = await callDaemon(join(n.tn.runDir, 'tandemd.sock'), 'status', resource, false, 5000);
    if (!r.ok) throw new Error(r.error.message);
    return (
      r.result as {
        resources: {
          role: string;
          connection: string;
          volumes: {
            disk: string;
            peerDisk: string;
            replication: string;
            verify: { done: boolean; outOfSyncBytes: number } | null;
          }[];
        }[];
      }
    ).resources[0]!;
  };
  let polling = true;
  let twoPrimaries = false;
  const poller = (async () => {
    while (polling) {
      const roles = await Promise.all(
        nodes.map(async (n) => (n.alive ? (await status(n).catch(() => undefined))?.role : undefined)),
      );
      if (roles[0] === 'Primary' && roles[1] === 'Primary' && !twoPrimaries) {
        twoPrimaries = true;
        note('both nodes are Primary');
        problems.push('both nodes were Primary at once');
      }
      for (const n of nodes)
        if (n.tn.crashed) {
          problems.push(`tandemd on ${n.tn.name} died by itself: ${n.tn.stderrTail.slice(-1500)}`);
          n.alive = false;
          await n.tn.stop('SIGKILL');
        }
      await sleep(150);
    }
  })();
  const workload = new Workload(blocks, options.depth ?? 8, schedule.seed);
  let faults = 0;
  let skipped = 0;
  try {
    for (const n of nodes) {
      if (schedule.disks) n.disk = await FaultyDisk.create(join(n.tn.dir, 'fd'), diskBytes);
      else await n.tn.sizeDisk(diskBytes);
      await must(n, '--force', 'create-md', resource);
    }
    for (const n of nodes) await startNode(n);
    for (const n of nodes) await must(n, '--timeout', '20', 'wait-connect', resource);
    await must(a, 'primary', '--force', resource);
    for (const n of nodes) await must(n, '--timeout', '60', 'wait-sync', resource);
    note('in sync; the workload starts on alpha');
    workload.start(a.tn);
    for (const step of schedule.steps) {
      await sleep(step.gapMs);
      const done = await inject(step.fault);
      if (done) faults++;
      else skipped++;
    }
    await sleep(500);
    note('schedule done: healing, restarting, waiting for sync');
    for (const p of proxies) {
      p.delay(0);
      p.release('forward');
      p.release('backward');
    }
    for (const n of nodes) {
      n.disk?.ioErrors(false);
      n.disk?.full(false);
      await n.disk?.resume();
    }
    for (const n of nodes) if (!n.alive) await startNode(n);
    for (const n of nodes) await reattach(n);
    await workload.stop();
    for (const n of nodes) await must(n, '--timeout', '30', 'wait-connect', resource);
    for (const n of nodes) await must(n, '--timeout', '60', 'wait-sync', resource);
    // The replicas: online verify from the Primary.
    await must(primary, 'verify', resource);
    try {
      const differ = await verifyResult(async () => (await status(primary)).volumes[0]);
      if (differ !== 0) problems.push(`verify found ${differ} bytes that differ between the replicas`);
    } catch (e) {
      problems.push((e as Error).message);
    }
    // Every acknowledged write, on the final Primary.
    const required = schedule.protocol === 'C' ? workload.acked : workload.flushed;
    const reader = await openNbd(primary.tn);
    const contents = new Map<number, Buffer>();
    for (const block of workload.issued.keys()) {
      reader.send(Cmd.READ, block * blockBytes, blockBytes);
      contents.set(block, (await reader.reply(blockBytes)).data);
    }
    problems.push(...judgeBlocks(workload.issued, required, contents));
    reader.close();
    if (workload.errors.length > 0)
      problems.push(...workload.errors.slice(0, 5).map((e) => `the application saw: ${e}`));
    note(
      `judged: ${workload.ackCount} writes acknowledged, ${faults} faults, ${skipped} skipped${workload.expectedErrors ? `, ${workload.expectedErrors} requests failed by a failing Primary disk` : ''}`,
    );
  } catch (e) {
    problems.push(`the run failed: ${(e as Error).message}`);
  } finally {
    polling = false;
    await workload.stop().catch(() => {});
    await poller;
    for (const p of proxies) await p.close();
    if (process.env['CHAOS_KEEP'] && problems.length > 0) {
      for (const n of nodes) await n.tn.stop('SIGKILL');
      for (const n of nodes) await n.disk?.resume().catch(() => {});
      note(`kept for inspection: ${dir} (faulty disks: their store.img)`);
      for (const n of nodes) await n.disk?.close();
    } else {
      for (const n of nodes) await n.disk?.resume().catch(() => {});
      for (const n of nodes) await n.tn.cleanup();
      for (const n of nodes) await n.disk?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return chaosResult(schedule.seed, formatSchedule(schedule), events, problems, {
    acked: workload.ackCount,
    faults,
    skipped,
  });

  function inSync(s: Awaited<ReturnType<typeof status>> | undefined): boolean {
    const v = s?.volumes[0];
    return (
      s?.connection === 'Connected' &&
      v?.disk === 'UpToDate' &&
      v.peerDisk === 'UpToDate' &&
      v.replication === 'Connected'
    );
  }

  /** A node whose disk failed gets it back: `attach` once the detach is done (an operator's job). */
  async function reattach(n: Node): Promise<void> {
    for (let i = 0; i < 150; i++) {
      const disk = (await status(n).catch(() => undefined))?.volumes[0]?.disk;
      if (disk !== undefined && disk !== 'Diskless' && disk !== 'Failed') return;
      if (disk === 'Diskless') {
        const r = await n.tn.adm('attach', resource);
        if (r.code === 0) {
          note(`${n.tn.name}: attach`);
          return;
        }
      }
      await sleep(100);
    }
    throw new Error(`${n.tn.name}: the disk could not be attached again within 15 s`);
  }

  async function inject(f: Fault): Promise<boolean> {
    const sec = other(primary);
    switch (f.kind) {
      case 'disk-error':
      case 'disk-full': {
        const n = f.side === 'primary' ? primary : sec;
        const d = n.disk;
        if (!n.alive || !d) return false;
        note(`${describeFault(f)} (${n.tn.name})`);
        // The Primary's failing disk fails the application's requests (tandem has no
        // diskless Primary serving through the peer yet): expected until it is back.
        if (n === primary) workload.errorsExpected = true;
        if (f.kind === 'disk-error') d.ioErrors(true);
        else d.full(true);
        await sleep(f.ms);
        d.ioErrors(false);
        d.full(false);
        const s = await status(n).catch(() => undefined);
        note(`${n.tn.name}: disk healed, it is ${s?.volumes[0]?.disk}`);
        await reattach(n);
        // Requests the client sent while the disk was failing may still come back failed.
        await sleep(300);
        workload.errorsExpected = false;
        return true;
      }
      case 'disk-stall': {
        const n = f.side === 'primary' ? primary : sec;
        const d = n.disk;
        if (!d) return false;
        note(`${describeFault(f)} (${n.tn.name})`);
        await d.pause();
        await sleep(f.ms);
        await d.resume();
        return true;
      }
      case 'power-cut': {
        const d = sec.disk;
        if (!sec.alive || !d) return false;
        note(`${describeFault(f)} (${sec.tn.name})`);
        await d.pause();
        await sleep(30);
        sec.alive = false;
        // A process waiting on a stalled FUSE disk dies only once its requests are
        // answered: the power cut (the disk's requests failing) lets it go.
        const dead = sec.tn.stop('SIGKILL');
        await d.powerCut();
        await dead;
        await sleep(f.ms);
        await startNode(sec);
        return true;
      }
      case 'reset-link':
        note(describeFault(f));
        for (const p of proxies) p.cut();
        return true;
      case 'partition':
      case 'stall': {
        // Held bytes arrive late, in order (as TCP retransmits after a partition), or never
        // if a side closed the connection meanwhile.
        const towardA = [
          [proxyToA, 'forward'],
          [proxyToB, 'backward'],
        ] as const;
        const towardB = [
          [proxyToB, 'forward'],
          [proxyToA, 'backward'],
        ] as const;
        const held =
          f.kind === 'partition'
            ? [...towardA, ...towardB]
            : (f.toward === 'primary') === (primary === a)
              ? towardA
              : towardB;
        note(describeFault(f));
        for (const [p, d] of held) p.hold(d);
        await sleep(f.ms);
        for (const [p, d] of held) p.release(d);
        return true;
      }
      case 'delay':
        note(describeFault(f));
        for (const p of proxies) p.delay(f.delayMs);
        await sleep(f.ms);
        for (const p of proxies) p.delay(0);
        return true;
      case 'kill-secondary':
        if (!sec.alive) return false;
        note(`${describeFault(f)} (${sec.tn.name})`);
        sec.alive = false;
        await sec.tn.stop('SIGKILL');
        await sleep(f.ms);
        await startNode(sec);
        return true;
      case 'kill-primary': {
        // Only from a pair in sync: a promoted Secondary must hold every acknowledged write.
        if (!sec.alive || !primary.alive) return false;
        // Wait a while for a resync under way to finish.
        let s = await status(sec).catch(() => undefined);
        for (let i = 0; i < 50 && !inSync(s); i++) {
          await sleep(100);
          s = await status(sec).catch(() => undefined);
        }
        const v = s?.volumes[0];
        if (!inSync(s)) {
          note(
            `skipped: ${describeFault(f)} (the pair is not in sync: ${s?.connection} ${v?.replication} ${v?.disk}/${v?.peerDisk})`,
          );
          return false;
        }
        const old = primary;
        note(`${describeFault(f)} (${old.tn.name})`);
        old.alive = false;
        await old.tn.stop('SIGKILL');
        let promoted = false;
        for (let i = 0; i < 50 && !promoted; i++) {
          promoted = (await sec.tn.adm('primary', resource)).code === 0;
          if (!promoted) await sleep(200);
        }
        if (!promoted) throw new Error(`${sec.tn.name} could not be promoted after the Primary was killed`);
        primary = sec;
        note(`${sec.tn.name} is Primary; the workload moves to it`);
        workload.moveTo(sec.tn);
        await sleep(f.ms);
        await startNode(old);
        return true;
      }
    }
  }
}
