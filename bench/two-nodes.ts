// Benchmark: two tandem nodes on this machine (both daemons share its cores), the
// Primary driven by fio's nbd engine. Rows: protocols A, B and C beside the same
// Primary disconnected (one node) and `nbdkit file` on the same backing file; the
// initial full sync of random data against `nbdcopy` of the same bytes; and the
// application's write latency while a resync runs against the same job idle; and the
// least a Node replicator does per write (bench/node-floor.ts), the floor under protocol C.
// Usage: npm run bench:two-nodes -- [--seconds N] [--repeat N] [--protocols C,B,A] [--jobs-only] [--busy-poll USEC]
//   --protocols: which protocols, in this order; the references (nbdkit, one node) are
//   measured in the first one's cluster. --jobs-only: skip the sync and resync rows.
//   --repeat: the fio jobs this many times (1 by default), each round on new clusters;
//   the table gives medians and the range of the per-round ratios.
//   TANDEMD_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' profiles both daemons.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cluster, freePort } from '../test/helpers/cluster.js';
import { sh, systemTestSkipReason, type TandemNode } from '../test/helpers/tandem-node.js';
import { type FioJob, type FioResult, fio, fmt, median, startNbdkit, stopChild, table } from './lib.js';
import { startNodeFloor } from './node-floor.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '1' },
    protocols: { type: 'string', default: 'C,B,A' },
    'jobs-only': { type: 'boolean', default: false },
    'busy-poll': { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const protocols = values.protocols.split(',').map((p) => p.trim().toUpperCase());
for (const p of protocols) {
  if (p !== 'A' && p !== 'B' && p !== 'C') {
    process.stderr.write(`bench: --protocols: ${p} is not A, B or C\n`);
    process.exit(2);
  }
}
const jobsOnly = values['jobs-only'];
const repeat = Math.max(1, Number(values.repeat) || 1);
const diskBytes = 1024 * 1024 * 1024;
const ioBytes = 512 * 1024 * 1024;

const skip = await systemTestSkipReason(['fio', 'nbdkit', 'nbdcopy']);
if (skip) {
  process.stderr.write(`bench: ${skip}\n`);
  process.exit(1);
}

const jobs: readonly FioJob[] = [
  { name: '4k randwrite QD1', rw: 'randwrite', bs: '4k', iodepth: 1 },
  { name: '4k randwrite QD16', rw: 'randwrite', bs: '4k', iodepth: 16 },
];

async function must(p: Promise<{ code: number; err: string; out?: string }>, what: string): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what}: ${r.err}`);
  return r.out ?? '';
}

async function settle(): Promise<void> {
  await sh('sync', []);
  await sh('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

function uri(n: TandemNode): string {
  return `nbd+unix:///r0?socket=${join(n.runDir, 'r0.nbd')}`;
}

async function status(n: TandemNode) {
  return JSON.parse(await must(n.adm('status', '--json', 'r0'), 'status')).resources[0];
}

/** Two allocated 1 GiB backing files; alpha's full of random data (so the full sync moves real bytes). */
async function cluster(protocol: 'A' | 'B' | 'C'): Promise<Cluster> {
  const c = await Cluster.create({ protocol, diskBytes: 0 });
  await must(
    sh('dd', [
      'if=/dev/urandom',
      `of=${c.a.disk}`,
      'bs=4M',
      `count=${diskBytes / (4 * 1024 * 1024)}`,
      'conv=fsync',
    ]),
    'dd alpha',
  );
  await must(
    sh('dd', [
      'if=/dev/zero',
      `of=${c.b.disk}`,
      'bs=4M',
      `count=${diskBytes / (4 * 1024 * 1024)}`,
      'conv=fsync',
    ]),
    'dd bravo',
  );
  await c.upBoth([
    '--no-kernel-device',
    ...(values['busy-poll'] === undefined ? [] : ['--busy-poll', values['busy-poll']]),
  ]);
  for (const n of c.nodes) await must(n.adm('--timeout', '30', 'wait-connect', 'r0'), 'wait-connect');
  return c;
}

function syncSecondsFromLog(log: string): number | undefined {
  const at = (re: RegExp): number | undefined => {
    const line = log.split('\n').find((l) => re.test(l));
    return line ? Date.parse(line.slice(0, 24)) : undefined;
  };
  const start = at(/replication:SyncTarget volume:0/);
  const end = at(/resync done/);
  return start !== undefined && end !== undefined && end > start ? (end - start) / 1000 : undefined;
}

/** The floor under protocol C's latency here: one 64-byte round trip between two Node processes over loopback TCP. */
async function nodeRoundTripUs(): Promise<number> {
  const server = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer(c=>{c.setNoDelay(true);c.on('data',d=>c.write(d))});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<number>((resolve) =>
      server.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))),
    );
    const sock = connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    const n = 20_000;
    const buf = Buffer.alloc(64);
    let i = 0;
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      sock.on('data', () => {
        if (++i === n) resolve();
        else sock.write(buf);
      });
      sock.write(buf);
    });
    sock.destroy();
    return ((performance.now() - t0) * 1000) / n;
  } finally {
    server.kill();
  }
}

const rows: string[][] = [];
/** Medians over the rounds, and the range of the per-round ratios (a round's run against the same round's reference). */
const row = (name: string, r: FioResult[], ref: FioResult[], oneNode?: FioResult[]): string[] => {
  const ratios = r.map((x, i) => x.iops / ref[i]!.iops);
  const p50s = oneNode ? r.map((x, i) => x.p50us / oneNode[i]!.p50us) : [];
  const range = (xs: number[]) =>
    xs.length > 1 ? ` (${fmt(Math.min(...xs), 2)}-${fmt(Math.max(...xs), 2)})` : '';
  return [
    name,
    fmt(median(r.map((x) => x.iops))),
    `${fmt(median(ratios), 2)}${range(ratios)}`,
    oneNode ? `${fmt(median(p50s), 2)}${range(p50s)}` : '',
    `${fmt(median(r.map((x) => x.p50us)))}/${fmt(median(r.map((x) => x.p99us)))}`,
  ];
};

let syncRow: string[] | undefined;
let latencyRows: string[][] = [];
const results = new Map<string, FioResult[]>();
const record = (key: string, r: FioResult): void => {
  results.set(key, [...(results.get(key) ?? []), r]);
};

for (let round = 0; round < repeat; round++)
  for (const protocol of protocols as ('A' | 'B' | 'C')[]) {
    const first = protocol === protocols[0];
    const extras = round === 0 && !jobsOnly;
    const c = await cluster(protocol);
    try {
      // The initial full sync of 1 GiB of random data.
      const t0 = performance.now();
      await must(c.a.adm('primary', '--force', 'r0'), 'primary --force');
      for (const n of c.nodes) await must(n.adm('--timeout', '600', 'wait-sync', 'r0'), 'wait-sync');
      // The resync itself, from the target's log (SyncTarget → resync done), without the
      // time tandemadm takes to start and poll.
      const syncSeconds = syncSecondsFromLog(c.b.log()) ?? (performance.now() - t0) / 1000;
      const dataBytes = (await status(c.a)).volumes[0].sizeBytes as number;
      if (first && extras) {
        // The same bytes copied by nbdcopy into nbdkit serving an allocated scratch file.
        const scratch = join(c.dir, 'scratch.img');
        await must(
          sh('dd', [
            'if=/dev/zero',
            `of=${scratch}`,
            'bs=4M',
            `count=${diskBytes / (4 * 1024 * 1024)}`,
            'conv=fsync',
          ]),
          'dd scratch',
        );
        const sock = join(c.dir, 'copy.sock');
        const kit = await startNbdkit(scratch, sock);
        const t1 = performance.now();
        await must(sh('nbdcopy', [c.a.disk, `nbd+unix:///?socket=${sock}`], 600_000), 'nbdcopy');
        const copySeconds = (performance.now() - t1) / 1000;
        await stopChild(kit);
        await sh('rm', ['-f', scratch]);
        const mbps = dataBytes / syncSeconds / 1e6;
        const copyMbps = dataBytes / copySeconds / 1e6;
        syncRow = ['full sync 1 GiB random', fmt(mbps, 1), fmt(copyMbps, 1), fmt(mbps / copyMbps, 2)];
      }
      for (const job of jobs) {
        await settle();
        record(`${protocol} ${job.name}`, await fio(uri(c.a), job, seconds, ioBytes));
      }
      if (protocol === 'C' && extras) {
        // Application latency while a resync runs: bravo misses 256 MiB of random
        // writes, reconnects, and fio measures QD1 writes during the resync.
        await must(c.a.adm('disconnect', 'r0'), 'disconnect');
        await must(
          sh('fio', [
            '--name=dirty',
            '--ioengine=nbd',
            `--uri=${uri(c.a)}`,
            '--rw=write',
            '--bs=1m',
            '--iodepth=8',
            '--size=256m',
            '--offset=256m',
          ]),
          'dirty',
        );
        const oos = (await status(c.a)).volumes[0].outOfSyncBytes as number;
        await must(c.a.adm('connect', 'r0'), 'connect');
        const tSync = performance.now();
        const during = await fio(uri(c.a), jobs[0]!, Math.min(seconds, 5), ioBytes);
        for (const n of c.nodes) await must(n.adm('--timeout', '600', 'wait-sync', 'r0'), 'wait-sync');
        const resyncSeconds = (performance.now() - tSync) / 1000;
        const idle = results.get(`C ${jobs[0]!.name}`)![0]!;
        latencyRows = [
          ['4k randwrite QD1, idle', `${fmt(idle.p50us)}/${fmt(idle.p99us)}`, '1.00', ''],
          [
            '4k randwrite QD1, during resync',
            `${fmt(during.p50us)}/${fmt(during.p99us)}`,
            fmt(during.p50us / idle.p50us, 2),
            `${fmt(oos / 1e6, 0)} MB in ${fmt(resyncSeconds, 1)} s (≥ ${fmt(oos / resyncSeconds / 1e6, 1)} MB/s)`,
          ],
        ];
      }
      if (!first) continue;
      // The same Primary without its peer: one node.
      await must(c.a.adm('disconnect', 'r0'), 'disconnect');
      for (const job of jobs) {
        await settle();
        record(`one-node ${job.name}`, await fio(uri(c.a), job, seconds, ioBytes));
      }
      {
        const sock = join(c.dir, 'nbdkit.sock');
        const kit = await startNbdkit(c.a.disk, sock);
        try {
          for (const job of jobs) {
            await settle();
            record(`nbdkit ${job.name}`, await fio(`nbd+unix:///?socket=${sock}`, job, seconds, ioBytes));
          }
        } finally {
          await stopChild(kit);
        }
      }
      // The least a Node replicator does (bench/node-floor.ts), on the same two files: its
      // peer flushing every 50 ms as tandem's Secondary does, and never.
      for (const flushMs of [50, 0]) {
        const floor = await startNodeFloor({
          file: c.a.disk,
          peerFile: c.b.disk,
          socketPath: join(c.dir, 'floor.sock'),
          port: await freePort(),
          sizeBytes: ioBytes,
          flushMs,
        });
        try {
          for (const job of jobs) {
            await settle();
            record(`floor${flushMs} ${job.name}`, await fio(floor.uri, job, seconds, ioBytes));
          }
        } finally {
          await floor.stop();
        }
      }
    } finally {
      // SIGTERM first: a clean stop (and the profiles, under TANDEMD_NODE_ARGS=--cpu-prof).
      for (const n of c.nodes) await n.stop('SIGTERM');
      await c.cleanup();
    }
  }

const rttUs = await nodeRoundTripUs();
for (const job of jobs) {
  const ref = results.get(`nbdkit ${job.name}`)!;
  const one = results.get(`one-node ${job.name}`)!;
  rows.push(row(`nbdkit file, ${job.name}`, ref, ref));
  rows.push(row(`tandem one node, ${job.name}`, one, ref, one));
  rows.push(row(`least Node replicator, ${job.name}`, results.get(`floor50 ${job.name}`)!, ref, one));
  rows.push(
    row(`least Node replicator, no flushes, ${job.name}`, results.get(`floor0 ${job.name}`)!, ref, one),
  );
  for (const protocol of ['A', 'B', 'C'].filter((p) => protocols.includes(p))) {
    rows.push(
      row(`tandem protocol ${protocol}, ${job.name}`, results.get(`${protocol} ${job.name}`)!, ref, one),
    );
  }
}

process.stdout.write(
  `two nodes on one machine, ${seconds} s per job, ${repeat === 1 ? 'one round' : `medians of ${repeat} rounds`}, 1 GiB allocated backing files, fio nbd engine on the Primary\n\n${table(
    ['job', 'IOPS', 'ratio to nbdkit', 'p50 vs one node', 'p50/p99 us'],
    rows,
  )}\n\nThe least Node replicator (bench/node-floor.ts): tandem's NBD server, a buffered write and a frame to a peer process that writes it and acks, and flushes every 50 ms as tandem's Secondary does (or never); the floor under protocol C for any replicator written in Node on this machine.\nA 64-byte round trip between two Node processes over loopback TCP (the floor under protocol B/C latency here): ${fmt(rttUs)} us\n\n${table(['sync', 'tandem MB/s', 'nbdcopy MB/s', 'ratio'], syncRow ? [syncRow] : [])}\n\n${table(
    ['application during resync', 'p50/p99 us', 'p50 ratio', 'resync'],
    latencyRows,
  )}\n`,
);
