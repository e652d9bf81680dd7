// Runs one chaos schedule against the whole stack: the seed's cluster with a witness
// (server6 and server7 with tandemd and tandem-ha, a diskless witness with tandem-ha; the
// group VIP + drbddisk + ext4 + httpd; fencing through tandem-ha outdate-peer) in network
// namespaces. A writer on whichever server owns the group creates files, each fsync'd
// with its directory and only then logged as acknowledged; when the group moves, a new
// writer starts on the new owner. Faults: SIGKILL of tandem-ha (restarted), a crashed
// server (every process killed, network down; rebooted), a silent partition of one node,
// packet loss between one node and the others (nftables in its namespace).
// Judged after everything is healed:
//  - never were both servers Primary (polled all along, each reading bracketed);
//  - exactly one server owns the group, the client gets the page from the VIP;
//  - every acknowledged file is on the final owner, byte for byte;
//  - the replicas are identical (online verify);
//  - no tandemd or tandem-ha died but those the schedule killed.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { callDaemon } from '../../src/daemon/control-client.js';
import { fsyncWriter, SeedCluster, type Server } from '../helpers/seed-cluster.js';
import { verifyResult } from '../helpers/verify.js';
import { describeHaFault, formatHaSchedule, type HaFault, type HaSchedule } from './ha-schedule.js';
import { type ChaosResult, chaosResult } from './run.js';

const resource = 'example';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface HaChaosOptions {
  readonly log?: (line: string) => void;
}

export async function runHaChaos(schedule: HaSchedule, options: HaChaosOptions = {}): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const events: string[] = [];
  const problems: string[] = [];
  const t0 = Date.now();
  const note = (line: string): void => {
    const l = `${((Date.now() - t0) / 1000).toFixed(2)}s ${line}`;
    events.push(l);
    log(l);
  };
  const c = await SeedCluster.create({ witness: true, autoFailback: false });
  const [s6, s7] = c.servers;
  const w = c.witness!;
  const all = [s6, s7, w] as const;
  /** Processes the runner started and which of them it meant to kill. */
  const expected = new Set<ChildProcess>();
  const procs = new Map<Server, { tandemd?: ChildProcess; ha?: ChildProcess }>(all.map((s) => [s, {}]));
  const watch = (s: Server, what: 'tandemd' | 'tandem-ha', child: ChildProcess): ChildProcess => {
    child.once('exit', (code, signal) => {
      if (!expected.has(child)) {
        note(`${what} on ${s.name} exited by itself (${signal ?? code})`);
        problems.push(`${what} on ${s.name} died by itself (${signal ?? code})`);
      }
    });
    return child;
  };
  const startHa = (s: Server): void => {
    procs.get(s)!.ha = watch(s, 'tandem-ha', c.startHa(s));
  };
  const role = async (s: Server): Promise<string | undefined> => {
    const r = await callDaemon(join(s.run, 'tandemd.sock'), 'status', resource, false, 2000).catch(
      () => undefined,
    );
    if (!r?.ok) return undefined;
    return (r.result as { resources: { role: string }[] }).resources[0]?.role;
  };
  const mounted = (s: Server): boolean =>
    readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[1] === s.www);
  const holds = async (s: Server) => (await c.ha(s, 'rscstatus')).out.startsWith('all\n');

  // The writer, on the owner of the moment.
  const script = join(c.root, 'writer.py');
  writeFileSync(script, fsyncWriter);
  const ackLogs: string[] = [];
  let writer: { server: Server; child: ChildProcess } | undefined;
  const startWriter = (s: Server): void => {
    const k = ackLogs.length + 1;
    const ackLog = join(c.root, `acks-${k}.log`);
    writeFileSync(ackLog, '');
    ackLogs.push(ackLog);
    const child = c.net.spawn(s.name, 'python3', [script, join(s.www, 'w'), ackLog, String(k * 1_000_000)]);
    expected.add(child);
    writer = { server: s, child };
    child.once('exit', () => {
      if (writer?.child === child) writer = undefined;
    });
    note(`a writer starts on ${s.name}`);
  };
  const acked = (): number[] =>
    ackLogs.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map(Number));

  const dead = new Set<Server>();
  let polling = true;
  let twoPrimaries = 0;
  const poller = (async () => {
    while (polling) {
      // Bracketed: server6 Primary before and after server7 was read Primary means both
      // were Primary at the moment of server7's reading.
      const a1 = await role(s6);
      const b = await role(s7);
      const a2 = await role(s6);
      if (a1 === 'Primary' && b === 'Primary' && a2 === 'Primary') {
        if (twoPrimaries++ === 0) {
          note('both servers are Primary');
          problems.push('both servers were Primary at once');
        }
      }
      for (const s of c.servers)
        if (!dead.has(s) && writer === undefined && mounted(s) && (await role(s)) === 'Primary')
          startWriter(s);
      await sleep(200);
    }
  })();

  let faults = 0;
  let owner: Server = s6;
  const findOwner = async (): Promise<Server | undefined> => {
    for (const s of c.servers) if (!dead.has(s) && (await holds(s))) return s;
    return undefined;
  };
  const crash = async (s: Server): Promise<void> => {
    const p = procs.get(s)!;
    for (const child of [p.tandemd, p.ha]) if (child) expected.add(child);
    dead.add(s);
    await c.kill(s);
  };
  const reboot = async (s: Server): Promise<void> => {
    await c.revive(s);
    procs.set(s, {
      tandemd: watch(s, 'tandemd', c.tandemd.get(s.name)!),
      ha: watch(s, 'tandem-ha', c.haDaemons.get(s.name)!),
    });
    dead.delete(s);
  };

  const inject = async (f: HaFault): Promise<void> => {
    const standby = owner === s6 ? s7 : s6;
    const target = f.target === 'owner' ? owner : f.target === 'standby' ? standby : w;
    note(`${describeHaFault(f)} (${target.name})`);
    switch (f.kind) {
      case 'kill-ha': {
        const ha = procs.get(target)!.ha;
        if (ha) {
          expected.add(ha);
          ha.kill('SIGKILL');
        }
        await sleep(f.ms);
        startHa(target);
        return;
      }
      case 'crash':
        await crash(target);
        await sleep(f.ms);
        await reboot(target);
        return;
      case 'cut':
      case 'lossy':
        await c.cut(target, f.kind === 'lossy' ? f.percent : 100);
        await sleep(f.ms);
        await c.heal(target);
        return;
    }
  };

  try {
    await c.prepare();
    for (const s of c.servers) procs.get(s)!.tandemd = watch(s, 'tandemd', c.tandemd.get(s.name)!);
    for (const s of all) startHa(s);
    await c.waitForPage(30_000);
    note('server6 serves the group');
    for (const step of schedule.steps) {
      await sleep(step.gapMs);
      owner = (await findOwner()) ?? owner;
      await inject(step.fault);
      faults++;
    }
    note('schedule done: healing, waiting for one owner and sync');
    for (const s of all) await c.heal(s);
    for (const s of c.servers) if (dead.has(s)) await reboot(s);
    let final: Server | undefined;
    for (let i = 0; i < 300; i++) {
      const owners = [];
      for (const s of c.servers) if (await holds(s)) owners.push(s);
      if (owners.length === 1) {
        final = owners[0];
        break;
      }
      await sleep(200);
    }
    if (!final) throw new Error('no single owner of the group within 60 s of the heal');
    note(`${final.name} owns the group`);
    await c.waitForPage(30_000);
    for (const s of c.servers) {
      const r = await c.adm(s, '--timeout', '60', 'wait-sync', resource);
      if (r.code !== 0) throw new Error(`wait-sync on ${s.name}: ${r.err.trim()}`);
    }
    polling = false;
    await poller;
    if (writer) {
      writer.child.kill('SIGKILL');
      await new Promise((r) => (writer ? writer.child.once('exit', r) : r(null)));
    }
    // Every acknowledged file on the final owner.
    const numbers = acked();
    let missing = 0;
    for (const n of numbers) {
      const f = join(final.www, 'w', String(n));
      const good = existsSync(f) && readFileSync(f, 'utf8') === `${n}\n`.repeat(200);
      if (!good && missing++ < 10)
        problems.push(`acknowledged write ${n} is ${existsSync(f) ? 'damaged' : 'missing'} on ${final.name}`);
    }
    if (missing > 10) problems.push(`… ${missing} acknowledged writes lost in all`);
    if (numbers.length < 50)
      problems.push(`only ${numbers.length} writes acknowledged: the workload did not run`);
    // The replicas, by online verify from the Primary.
    const v0 = await c.adm(final, 'verify', resource);
    if (v0.code !== 0) problems.push(`verify: ${v0.err.trim()}`);
    if (v0.code === 0) {
      try {
        const differ = await verifyResult(
          async () =>
            JSON.parse((await c.adm(final, 'status', '--json', resource)).out).resources[0].volumes[0],
        );
        if (differ !== 0) problems.push(`verify found ${differ} bytes that differ between the replicas`);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    note(`judged: ${numbers.length} files acknowledged, ${faults} faults`);
    return finish(numbers.length);
  } catch (e) {
    problems.push(`the run failed: ${(e as Error).message}`);
    return finish(acked().length);
  } finally {
    polling = false;
    await poller.catch(() => {});
    for (const p of procs.values()) for (const child of [p.tandemd, p.ha]) if (child) expected.add(child);
    if (writer) expected.add(writer.child);
    if (process.env['CHAOS_KEEP'] && (problems.length > 0 || process.env['CHAOS_KEEP'] === 'always')) {
      note(`kept for inspection: ${c.root} (logs: */tandemd.log, */ha.log; run cleanup by hand)`);
    } else await c.cleanup();
  }

  function finish(ackedCount: number): ChaosResult {
    return chaosResult(schedule.seed, formatHaSchedule(schedule), events, problems, {
      acked: ackedCount,
      faults,
      skipped: 0,
    });
  }
}
