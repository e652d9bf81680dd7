// The busy poll with real daemons: the limit comes from `global { busy-poll }` or
// tandemd's --busy-poll (the flag wins), a bad flag is refused, and a node that has
// just served a stream of writes goes quiet by itself: once the writes stop it uses
// (almost) no CPU, whatever the window had grown to.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { NbdClient } from '../../src/nbd/client.js';
import { Cluster } from '../helpers/cluster.js';
import { sh } from '../helpers/tandem-node.js';

/** CPU time (user + system) of a process so far, in milliseconds. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

test('busy poll: set by the configuration or the flag, and quiet once the writes stop', async () => {
  const c = await Cluster.create({ protocol: 'C', diskBytes: 32 * 1024 * 1024 });
  try {
    // bravo from the configuration (polling off); alpha's flag overrides it.
    writeFileSync(c.conf, `global { busy-poll 0; }\n${readFileSync(c.conf, 'utf8')}`);
    for (const [n, args] of [
      [c.a, ['--no-kernel-device', '--busy-poll', '300']],
      [c.b, ['--no-kernel-device']],
    ] as const) {
      assert.equal((await n.adm('--force', 'create-md', 'r0')).code, 0);
      await n.start(args);
      assert.equal((await n.adm('up', 'r0')).code, 0);
    }
    assert.match(c.a.log(), /busy poll: up to 300 us after I\/O, adaptive/);
    assert.match(c.b.log(), /busy poll off/);
    for (const n of c.nodes) assert.equal((await n.adm('--timeout', '30', 'wait-connect', 'r0')).code, 0);
    assert.equal((await c.a.adm('primary', '--force', 'r0')).code, 0);
    for (const n of c.nodes) assert.equal((await n.adm('--timeout', '60', 'wait-sync', 'r0')).code, 0);

    // Writes one after another, as close together as the window likes: it opens.
    const client = await NbdClient.open({ path: join(c.a.runDir, 'r0.nbd') }, 'r0');
    const block = Buffer.alloc(4096, 7);
    for (let i = 0; i < 3000; i++) await client.write((i % 4096) * 4096, block);
    client.close();

    // Quiet now: over a second, each daemon spends no more than a few milliseconds.
    await new Promise((r) => setTimeout(r, 200));
    const pa = c.a.pid!;
    const pb = c.b.pid!;
    const [a0, b0] = [cpuMs(pa), cpuMs(pb)];
    await new Promise((r) => setTimeout(r, 1000));
    const [a1, b1] = [cpuMs(pa), cpuMs(pb)];
    assert.ok(a1 - a0 <= 50, `alpha used ${a1 - a0} ms of CPU in a quiet second`);
    assert.ok(b1 - b0 <= 50, `bravo used ${b1 - b0} ms of CPU in a quiet second`);
  } finally {
    await c.cleanup();
  }
});

test('tandemd --busy-poll refuses what is not microseconds from 0 to 10000', async () => {
  for (const bad of ['abc', '-5', '10001', '1.5', '']) {
    const r = await sh(process.execPath, [
      join(process.cwd(), 'dist/src/cli/tandemd.js'),
      '-c',
      '/nonexistent.conf',
      `--busy-poll=${bad}`,
    ]);
    assert.equal(r.code, 1, `--busy-poll '${bad}': ${r.err}`); // usage, as drbdadm
    assert.match(r.err, /--busy-poll: expected microseconds from 0 to 10000/);
  }
});
