// Not a benchmark: the chaos runner's command line (test/chaos/run.ts), kept out of
// test/ so that `node --test dist/test/` does not run it as a test file.
// `npm run chaos -- [--seeds N] [--first S] [--steps K] [--protocol C] [--disks]`: runs N seeded
// schedules one after another and reports how many passed; a failure prints its seed,
// schedule and what happened, so `--first SEED --seeds 1` replays it. `--disks` runs the
// nodes on faulty disks (root, FUSE, nbdkit) and adds disk faults to the schedules.
// `--ha` runs the whole stack instead: the seed cluster with a witness in network
// namespaces (root), under crashes, partitions and SIGKILLs of tandem-ha.
import { parseArgs } from 'node:util';
import { runHaChaos } from '../test/chaos/ha-run.js';
import { makeHaSchedule } from '../test/chaos/ha-schedule.js';
import { runChaos } from '../test/chaos/run.js';
import { makeSchedule } from '../test/chaos/schedule.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '10' },
    first: { type: 'string', default: '1' },
    steps: { type: 'string', default: '12' },
    protocol: { type: 'string', default: 'C' },
    disks: { type: 'boolean', default: false },
    ha: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
const protocol = values.protocol as 'A' | 'B' | 'C';
if (!['A', 'B', 'C'].includes(protocol)) {
  process.stderr.write(`chaos: --protocol A, B or C, not ${values.protocol}\n`);
  process.exit(2);
}
const first = Number(values.first);
const count = Number(values.seeds);
let passed = 0;
let acked = 0;
let faults = 0;
const failed: number[] = [];
for (let seed = first; seed < first + count; seed++) {
  const t = Date.now();
  const log = values.verbose ? { log: (l: string) => process.stdout.write(`  ${l}\n`) } : {};
  const r = values.ha
    ? await runHaChaos(makeHaSchedule(seed, Number(values.steps)), log)
    : await runChaos(makeSchedule(seed, Number(values.steps), protocol, values.disks), log);
  acked += r.acked;
  faults += r.faults;
  const secs = ((Date.now() - t) / 1000).toFixed(1);
  if (r.ok) {
    passed++;
    process.stdout.write(
      `seed ${seed}: ok (${r.acked} writes acknowledged, ${r.faults} faults, ${r.skipped} skipped, ${secs} s)\n`,
    );
  } else {
    failed.push(seed);
    process.stdout.write(`seed ${seed}: FAILED (${secs} s)\n${r.report}\n`);
  }
}
process.stdout.write(
  `\n${passed} of ${count} schedules passed (${values.ha ? 'the seed cluster with a witness' : `protocol ${protocol}`}${values.disks ? ', faulty disks' : ''}, ${faults} faults, ${acked} writes acknowledged)${failed.length ? `; failed seeds: ${failed.join(', ')}` : ''}\n`,
);
process.exit(failed.length === 0 ? 0 : 1);
