// Two real tandemd processes on loopback, file-backed disks, real NBD clients
// (qemu-io): the initial full sync after `primary --force`, replication of writes,
// a switch of roles, a bitmap-based resync after a disconnect, and verify.
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.js';
import { missingTools, sh, type TandemNode } from '../helpers/tandem-node.js';
import { verifyResult } from '../helpers/verify.js';

const missing = await missingTools(['qemu-io']);
const skip = missing.length ? `missing tools: ${missing.join(', ')}` : false;

function uri(n: TandemNode): string {
  return `nbd+unix:///r0?socket=${join(n.runDir, 'r0.nbd')}`;
}

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

async function status(n: TandemNode) {
  const st = JSON.parse(ok(await n.adm('status', '--json', 'r0'), 'status'));
  return st.resources[0];
}

async function qemuIo(n: TandemNode, cmds: string[]): Promise<string> {
  const args = ['-f', 'raw', uri(n)];
  for (const c of cmds) args.push('-c', c);
  const out = ok(await sh('qemu-io', args), `qemu-io on ${n.name}`);
  assert.doesNotMatch(out, /Pattern verification failed|error/i, out);
  return out;
}

describe('two nodes: initial sync, replication, role switch, resync, verify', { skip }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.create({ net: 'verify-alg sha1;' });
    await c.upBoth();
  });
  after(async () => {
    await c?.cleanup();
  });

  test('both nodes connect; fresh disks are Inconsistent on both sides', async () => {
    for (const n of c.nodes)
      ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), `wait-connect ${n.name}`);
    assert.equal(ok(await c.a.adm('cstate', 'r0'), 'cstate'), 'Connected\n');
    assert.equal(ok(await c.a.adm('dstate', 'r0'), 'dstate'), 'Inconsistent/Inconsistent\n');
    assert.equal(ok(await c.b.adm('role', 'r0'), 'role'), 'Secondary/Secondary\n');
  });

  test('primary --force on alpha makes it SyncSource of a full sync; both end UpToDate', async () => {
    ok(await c.a.adm('primary', '--force', 'r0'), 'primary --force');
    for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), `wait-sync ${n.name}`);
    assert.equal(ok(await c.a.adm('dstate', 'r0'), 'dstate'), 'UpToDate/UpToDate\n');
    assert.equal(ok(await c.b.adm('dstate', 'r0'), 'dstate'), 'UpToDate/UpToDate\n');
    assert.equal(ok(await c.b.adm('role', 'r0'), 'role'), 'Secondary/Primary\n');
    const st = await status(c.b);
    assert.equal(st.volumes[0].outOfSyncBytes, 0);
  });

  test('a second Primary is refused while connected', async () => {
    const r = await c.b.adm('primary', 'r0');
    assert.equal(r.code, 11, r.err);
    assert.match(r.err, /Multiple primaries not allowed by config/);
  });

  test('writes on alpha are on bravo after a role switch', async () => {
    await qemuIo(c.a, [
      'write -P 0x5a 0 1M',
      'write -P 0x33 4096 4096',
      'write -P 0x77 10M 3M',
      'write -P 0x21 60M 512',
      'flush',
    ]);
    ok(await c.a.adm('secondary', 'r0'), 'secondary alpha');
    ok(await c.b.adm('primary', 'r0'), 'primary bravo');
    await qemuIo(c.b, [
      'read -P 0x5a 0 4096',
      'read -P 0x33 4096 4096',
      'read -P 0x5a 8192 1040384',
      'read -P 0x77 10M 3M',
      'read -P 0x21 60M 512',
    ]);
  });

  test('disconnect, write 1% of the device, reconnect: only that is resynced', async () => {
    const before = (await status(c.b)).volumes[0].counters.sentBytes as number;
    ok(await c.b.adm('disconnect', 'r0'), 'disconnect');
    const size = (await status(c.b)).volumes[0].sizeBytes as number;
    const onePercent = Math.floor(size / 100 / 4096) * 4096;
    await qemuIo(c.b, [`write -P 0x44 8M ${onePercent}`]);
    const st = await status(c.b);
    assert.equal(st.volumes[0].outOfSyncBytes, onePercent, 'the writes are out of sync while disconnected');
    ok(await c.b.adm('connect', 'r0'), 'connect');
    for (const n of c.nodes) ok(await n.adm('--timeout', '30', 'wait-sync', 'r0'), `wait-sync ${n.name}`);
    const after = await status(c.b);
    assert.equal(after.volumes[0].outOfSyncBytes, 0);
    const resent = (after.volumes[0].counters.sentBytes as number) - before;
    assert.ok(
      resent >= onePercent && resent <= onePercent * 1.1,
      `resent ${resent} bytes for ${onePercent} written`,
    );
    ok(await c.b.adm('secondary', 'r0'), 'secondary bravo');
    ok(await c.a.adm('primary', 'r0'), 'primary alpha');
    await qemuIo(c.a, [`read -P 0x44 8M ${onePercent}`, 'read -P 0x77 12M 1M']);
  });

  test('verify finds nothing on identical replicas', async () => {
    ok(await c.a.adm('verify', 'r0'), 'verify');
    assert.equal(await verifyResult(async () => (await status(c.a)).volumes[0], 30_000), 0);
  });

  test('a block corrupted on the Secondary: verify finds exactly it, disconnect/connect repairs it', async () => {
    // Internal metadata sits at the end: device offset = backing file offset.
    const at = 10 * 1024 * 1024 + 5 * 4096;
    const fd = openSync(c.b.disk, 'r+');
    try {
      writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, at);
    } finally {
      closeSync(fd);
    }
    ok(await c.a.adm('verify', 'r0'), 'verify');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = await status(c.a);
      if (st.volumes[0].verify?.done) {
        assert.equal(st.volumes[0].verify.outOfSyncBytes, 4096);
        assert.equal(st.volumes[0].outOfSyncBytes, 4096);
        break;
      }
      assert.ok(Date.now() < deadline, 'verify did not finish');
      await new Promise((r) => setTimeout(r, 100));
    }
    ok(await c.a.adm('disconnect', 'r0'), 'disconnect');
    ok(await c.a.adm('connect', 'r0'), 'connect');
    for (const n of c.nodes) ok(await n.adm('--timeout', '30', 'wait-sync', 'r0'), `wait-sync ${n.name}`);
    assert.equal((await status(c.b)).volumes[0].outOfSyncBytes, 0);
    const back = Buffer.alloc(4096);
    const rd = openSync(c.b.disk, 'r');
    try {
      readSync(rd, back, 0, 4096, at);
    } finally {
      closeSync(rd);
    }
    assert.ok(back.equals(Buffer.alloc(4096, 0x77)), 'the block was not repaired');
  });
});
