// Benchmark: the seed's failover, timed. Two servers and a client in network namespaces
// (test/helpers/seed-cluster.ts: keepalive 200ms, deadtime 1s, auto_failback on); each
// round kills server6 outright (SIGKILL of every process, network gone) and measures
// the time to the client's first good page from the VIP on server7; then revives
// server6 and measures until the group is back on it and the page is served again.
// With --witness a third node votes, and each round also cuts server6 from server7 and
// the witness with nftables (a silent partition, server6 alive): the time from the cut
// to the client's first good page from server7, then the heal and the group's return.
// Usage: npm run bench:failover -- [--rounds N] [--witness]
import { parseArgs } from 'node:util';
import { SeedCluster, seedTools, sleep } from '../test/helpers/seed-cluster.js';
import { systemTestSkipReason } from '../test/helpers/tandem-node.js';
import { fmt, table } from './lib.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, witness: { type: 'boolean', default: false } },
});
const rounds = Number(values.rounds);
const withWitness = values.witness === true;
const skip = await systemTestSkipReason(seedTools);
if (skip) {
  process.stderr.write(`bench: ${skip}\n`);
  process.exit(1);
}

const c = await SeedCluster.create({ witness: withWitness });
const rows: string[][] = [];
/** Waits until `s` holds the whole group. */
async function holdsAll(s: (typeof c.servers)[number], what: string): Promise<void> {
  for (let i = 0; !(await c.ha(s, 'rscstatus')).out.startsWith('all\n'); i++) {
    if (i > 600) throw new Error(what);
    await sleep(100);
  }
}
try {
  const [s6, s7] = c.servers;
  await c.prepare();
  for (const s of c.servers) c.startHa(s);
  if (c.witness) c.startHa(c.witness);
  await c.waitForPage(30_000);
  await holdsAll(s6, 'server6 never held the group');
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
    const row = [String(round), fmt(failoverMs / 1000, 2), fmt(failbackMs / 1000, 2)];
    if (c.witness) {
      const t2 = Date.now();
      await c.cut(c.servers[0]);
      // server6 answers the client until it has released the group: wait for server7's page.
      await holdsAll(s7, 'server7 never took the group after the cut');
      const partitionMs = await c.waitForPage(30_000, t2);
      const t3 = Date.now();
      await c.heal(c.servers[0]);
      await holdsAll(s6, 'the group never came back to server6 after the heal');
      const healMs = await c.waitForPage(30_000, t3);
      row.push(fmt(partitionMs / 1000, 2), fmt(healMs / 1000, 2));
    }
    rows.push(row);
  }
} finally {
  await c.cleanup();
}
const failovers = rows.map((r) => Number(r[1]));
process.stdout.write(
  `failover of the seed's group (IPaddr + drbddisk + Filesystem ext4 + httpd), keepalive 200ms, deadtime 1s, ${rounds} rounds${withWitness ? ', with a witness' : ''}\n\n${table(
    [
      'round',
      'kill → first good page (s)',
      'revive → group back, page served (s)',
      ...(withWitness ? ['partition → page from server7 (s)', 'heal → group back (s)'] : []),
    ],
    rows,
  )}\n\nworst failover: ${fmt(Math.max(...failovers), 2)} s (target: under 3 s)\n`,
);
