// Benchmark: one tandem node (protocol C, no peer) against `nbdkit file` on the
// same backing file, through fio's nbd engine. Prints IOPS, MB/s, p50/p99
// latency and the ratio to nbdkit.
// Usage: npm run bench -- [--seconds N] [--repeat N] [--only TEXT] [--busy-poll USEC]
// Each job runs --repeat times (3 by default), nbdkit and tandem in turns whose
// order alternates; the table shows medians and the spread of the ratio, since
// one run on a shared 2-core machine varies by 10-20%. --only: the jobs whose
// name has TEXT.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sh, systemTestSkipReason, TandemNode } from '../test/helpers/tandem-node.js';
import {
  type FioResult,
  fio,
  fmt,
  median,
  medianResult,
  standardJobs,
  startNbdkit,
  stopChild,
  table,
} from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '3' },
    'busy-poll': { type: 'string' },
    only: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const repeat = Math.max(1, Number(values.repeat));
const jobs = standardJobs.filter((j) => values.only === undefined || j.name.includes(values.only));
const diskBytes = 1024 * 1024 * 1024;
const ioBytes = 512 * 1024 * 1024;

const skip = await systemTestSkipReason(['fio', 'nbdkit', 'fallocate']);
if (skip) {
  process.stderr.write(`bench: ${skip}\n`);
  process.exit(1);
}

async function settle(): Promise<void> {
  await sh('sync', []);
  await sh('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

const node = await TandemNode.create({ diskBytes: 0 });
try {
  // Allocated, not sparse: both servers then write into existing blocks.
  await sh('dd', [
    'if=/dev/zero',
    `of=${node.disk}`,
    'bs=4M',
    `count=${diskBytes / (4 * 1024 * 1024)}`,
    'conv=fsync',
  ]);
  const results = new Map<string, { nbdkit: FioResult; tandem: FioResult }[]>();
  const must = async (p: Promise<{ code: number; err: string }>, what: string) => {
    const r = await p;
    if (r.code !== 0) throw new Error(`${what}: ${r.err}`);
  };
  await must(node.adm('create-md', '--force', 'r0'), 'create-md');
  await node.start([
    '--no-kernel-device',
    ...(values['busy-poll'] === undefined ? [] : ['--busy-poll', values['busy-poll']]),
  ]);
  await must(node.adm('up', 'r0'), 'up');
  await must(node.adm('primary', '--force', 'r0'), 'primary');
  const tandemUri = `nbd+unix:///r0?socket=${join(node.runDir, 'r0.nbd')}`;
  // nbdkit serves the same file at the same time; fio stays in the first 512 MiB,
  // far from tandem's metadata at the end.
  const sock = join(node.dir, 'nbdkit.sock');
  const kit = await startNbdkit(node.disk, sock);
  try {
    for (let round = 0; round < repeat; round++) {
      for (const job of jobs) {
        // Each run starts from the same page cache: nothing dirty, nothing cached.
        const run = async (uri: string) => {
          await settle();
          return fio(uri, job, seconds, ioBytes);
        };
        const kitUri = `nbd+unix:///?socket=${sock}`;
        let nbdkit: FioResult;
        let tandem: FioResult;
        if (round % 2 === 0) {
          nbdkit = await run(kitUri);
          tandem = await run(tandemUri);
        } else {
          tandem = await run(tandemUri);
          nbdkit = await run(kitUri);
        }
        const list = results.get(job.name) ?? [];
        list.push({ nbdkit, tandem });
        results.set(job.name, list);
        process.stderr.write(
          `round ${round + 1}/${repeat} ${job.name}: ratio ${fmt(tandem.iops / nbdkit.iops, 2)}\n`,
        );
      }
    }
  } finally {
    await stopChild(kit);
  }

  const rows = jobs.map((job) => {
    const runs = results.get(job.name) ?? [];
    const nbdkit = medianResult(runs.map((r) => r.nbdkit));
    const tandem = medianResult(runs.map((r) => r.tandem));
    const ratios = runs.map((r) => r.tandem.iops / r.nbdkit.iops);
    return [
      job.name,
      fmt(nbdkit.iops),
      fmt(tandem.iops),
      fmt(median(ratios), 2),
      `${fmt(Math.min(...ratios), 2)}-${fmt(Math.max(...ratios), 2)}`,
      fmt(nbdkit.mbps, 1),
      fmt(tandem.mbps, 1),
      `${fmt(nbdkit.p50us)}/${fmt(nbdkit.p99us)}`,
      `${fmt(tandem.p50us)}/${fmt(tandem.p99us)}`,
    ];
  });
  process.stdout.write(
    `one node, ${seconds} s per job, medians of ${repeat} runs, 1 GiB allocated backing file, fio nbd engine over a unix socket\n\n${table(
      [
        'job',
        'nbdkit IOPS',
        'tandem IOPS',
        'ratio',
        'ratio range',
        'nbdkit MB/s',
        'tandem MB/s',
        'nbdkit p50/p99 us',
        'tandem p50/p99 us',
      ],
      rows,
    )}\n`,
  );
} finally {
  // SIGTERM first: a clean stop (and the profile, under TANDEMD_NODE_ARGS=--cpu-prof).
  await node.stop();
  await node.cleanup();
}
