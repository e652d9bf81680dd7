// Benchmark: the seed's failover, timed. Two servers and a client in network namespaces
// (test/helpers/seed-cluster.ts: keepalive 200ms, deadtime 1s, auto_failback on); each
// round kills server6 outright (SIGKILL of every process, network gone) and measures
// the time to the client's first good page from the VIP on server7; then revives
// server6 and measures until the group is back on it and the page is served again.
// Usage: npm run bench:failover -- [--rounds N]
import { parseArgs } from 'node:util';
import { SeedCluster, seedTools, sleep } from '../test/helpers/seed-cluster.js';
import { systemTestSkipReason } from '../test/helpers/tandem-node.js';
import { fmt, table } from './lib.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const rounds = Number(values.rounds);
const skip = await systemTestSkipReason(seedTools);
if (skip) {
  process.stderr.write(`bench: ${skip}\n`);
  process.exit(1);
}

const c = await SeedCluster.create();
const rows: string[][] = [];
try {
  const [s6, s7] = c.servers;
  await c.prepare();
  for (const s of c.servers) c.startHa(s);
  await c.waitForPage(30_000);
  for (let round = 1; round <= rounds; round++) {
    const t0 = Date.now();
    await c.kill(s6);
    const failoverMs = await c.waitForPage(30_000, t0);
    // The group's start finishes just after the page is served; wait for it before reviving.
    for (let i = 0; !(await c.ha(s7, 'rscstatus')).out.startsWith('all\n'); i++) {
      if (i > 100) throw new Error('server7 never held the whole group');
      await sleep(100);
    }
    const t1 = Date.now();
    await c.revive(s6);
    for (let i = 0; !(await c.ha(s6, 'rscstatus')).out.startsWith('all\n'); i++) {
      if (i > 600) throw new Error('the group never came back to server6');
      await sleep(100);
    }
    const failbackMs = await c.waitForPage(30_000, t1);
    rows.push([String(round), fmt(failoverMs / 1000, 2), fmt(failbackMs / 1000, 2)]);
  }
} finally {
  await c.cleanup();
}
const failovers = rows.map((r) => Number(r[1]));
process.stdout.write(
  `failover of the seed's group (IPaddr + drbddisk + Filesystem ext4 + httpd), keepalive 200ms, deadtime 1s, ${rounds} rounds\n\n${table(
    ['round', 'kill → first good page (s)', 'revive → group back, page served (s)'],
    rows,
  )}\n\nworst failover: ${fmt(Math.max(...failovers), 2)} s (target: under 3 s)\n`,
);
