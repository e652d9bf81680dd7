// The seed's experiment, whole, in network namespaces: hosts server6 and server7 and a
// client on one bridge; on each server tandemd + tandem-ha; resource `example`
// (protocol C, verify-alg sha1) with ext4 on it; haresources `server6
// IPaddr::VIP/24/eth0 drbddisk::example Filesystem::DEVICE::DIR::ext4 httpd`, httpd an
// LSB-style script serving the mounted directory. The client fetches a page from the
// VIP; server6 dies (every process killed with SIGKILL, its network gone); the client
// gets the same page from server7; server6 comes back, resyncs, and with auto_failback
// on the group moves back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestNet } from '../helpers/netns.js';
import { page, SeedCluster, type Server, seedTools, sleep, vip } from '../helpers/seed-cluster.js';
import { sh, systemTestSkipReason } from '../helpers/tandem-node.js';

const skip = await systemTestSkipReason(seedTools);

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

describe('the seed experiment: Heartbeat moves IP, disk, filesystem and httpd', { skip }, () => {
  let c: SeedCluster;
  let net: TestNet;
  let servers: readonly [Server, Server];
  const adm = (s: Server, ...args: string[]) => c.adm(s, ...args);
  const ha = (s: Server, ...args: string[]) => c.ha(s, ...args);
  const fetch = () => c.fetch();

  before(async () => {
    c = await SeedCluster.create();
    net = c.net;
    servers = c.servers;
  });

  after(async () => {
    await c?.cleanup();
  });

  test('the seed before Heartbeat: create-md, up, primary --force, sync, mkfs.ext4, a page', async () => {
    const [, s7] = servers;
    await c.prepare();
    assert.equal(ok(await adm(s7, 'dstate', 'example'), 'dstate'), 'UpToDate/UpToDate\n');
  });

  test('tandem-ha starts the group on server6: the client gets the page from the VIP', async () => {
    const [s6] = servers as [Server, Server];
    for (const s of servers) c.startHa(s);
    for (let i = 0; ; i++) {
      const r = await fetch();
      if (r.code === 0 && r.out === page) break;
      assert.ok(
        i < 100,
        `no page from ${vip}: ${r.err}\n${readFileSync(join(s6.dir, 'tandemd.log'), 'utf8').slice(-2000)}`,
      );
      await sleep(200);
    }
    // The group is whole once its last agent's start returns, just after the page is served.
    for (let i = 0; !/^all\n/.test((await ha(s6, 'rscstatus')).out); i++) {
      assert.ok(i < 50, `server6 does not hold the group: ${(await ha(s6, 'rscstatus')).out}`);
      await sleep(100);
    }
  });

  test('server6 dies: the client gets the same page from server7 within deadtime + a few seconds', async (t) => {
    const [, s7] = servers as [Server, Server];
    const t0 = Date.now();
    // A dead server: every process gone at once, its network with it.
    const pids = await sh('ip', ['netns', 'pids', net.ns('server6')]);
    for (const pid of pids.out.split('\n').filter(Boolean)) await sh('kill', ['-9', pid]);
    await net.down('server6');
    for (;;) {
      const r = await fetch();
      if (r.code === 0 && r.out === page) break;
      assert.ok(Date.now() - t0 < 20_000, `no page from server7 after ${Date.now() - t0} ms: ${r.err}`);
      await sleep(100);
    }
    const seconds = (Date.now() - t0) / 1000;
    t.diagnostic(`failover: ${seconds.toFixed(2)} s from SIGKILL to the first good response (deadtime 1 s)`);
    assert.ok(seconds < 1 + 8, `failover took ${seconds} s`);
    // The group finishes starting (the last agent's start returns) just after the page is served.
    for (let i = 0; ; i++) {
      const r = await ha(s7, 'rscstatus');
      if (r.out.startsWith('all\n')) break;
      assert.ok(i < 50, `server7 does not hold the group: ${r.out}${r.err}`);
      await sleep(100);
    }
    assert.match(ok(await adm(s7, 'role', 'example'), 'role'), /^Primary\//);
    assert.match(ok(await ha(s7, 'nodestatus', 'server6'), 'nodestatus'), /^dead\n/);
  });

  test('server6 comes back: it resyncs, and auto_failback moves the group back cleanly', async () => {
    const [s6, s7] = servers as [Server, Server];
    // What a reboot clears: the dead node's mount and its address.
    await sh('umount', ['-l', s6.www]);
    await net.exec('server6', 'ip', ['addr', 'del', `${vip}/24`, 'dev', 'eth0']);
    await net.up('server6');
    await c.startTandemd(s6);
    ok(await adm(s6, 'up', 'example'), 'up server6');
    c.startHa(s6);
    for (let i = 0; ; i++) {
      const r = await ha(s6, 'rscstatus');
      if (r.code === 0 && r.out.startsWith('all\n')) break;
      assert.ok(i < 150, `the group did not come back: ${r.out}${r.err}`);
      await sleep(200);
    }
    assert.match(ok(await ha(s7, 'rscstatus'), 'rscstatus'), /^none\n/);
    assert.match(ok(await adm(s6, 'dstate', 'example'), 'dstate'), /^UpToDate\/UpToDate/);
    for (let i = 0; ; i++) {
      const r = await fetch();
      if (r.code === 0 && r.out === page) break;
      assert.ok(i < 50, `no page after failback: ${r.err}`);
      await sleep(200);
    }
  });

  test('standby moves the group to server7, takeover brings it back', async () => {
    const [s6, s7] = servers;
    const holds = async (s: Server) => (await ha(s, 'rscstatus')).out.startsWith('all\n');
    ok(await ha(s6, 'standby'), 'standby');
    for (let i = 0; !(await holds(s7)); i++) {
      assert.ok(i < 150, `server7 did not take the group: ${(await ha(s7, 'rscstatus')).out}`);
      await sleep(100);
    }
    assert.match(ok(await ha(s6, 'rscstatus'), 'rscstatus'), /^none\n/);
    assert.equal((await c.waitForPage(10_000)) >= 0, true);
    // auto_failback does not undo a standby.
    await sleep(1500);
    assert.ok(await holds(s7), 'the group went back by itself');
    ok(await ha(s6, 'takeover'), 'takeover');
    for (let i = 0; !(await holds(s6)); i++) {
      assert.ok(i < 150, `server6 did not take the group back: ${(await ha(s6, 'rscstatus')).out}`);
      await sleep(100);
    }
    await c.waitForPage(10_000);
  });

  test('the replication link alone is cut: server6 fences server7 (Outdated) through tandem-ha and keeps serving', async () => {
    const [s6, s7] = servers as [Server, Server];
    // A silent partition of the replication port only; heartbeats (UDP 694) still flow.
    const nft = (...args: string[]) => net.exec('server6', 'nft', args);
    ok(await nft('add', 'table', 'inet', 'tandemtest'), 'nft table');
    ok(
      await nft('add', 'chain', 'inet', 'tandemtest', 'in', '{ type filter hook input priority 0; }'),
      'nft chain',
    );
    ok(
      await nft('add', 'chain', 'inet', 'tandemtest', 'out', '{ type filter hook output priority 0; }'),
      'nft chain',
    );
    for (const chain of ['in', 'out']) {
      ok(await nft('add', 'rule', 'inet', 'tandemtest', chain, 'tcp', 'dport', '7789', 'drop'), 'nft rule');
      ok(await nft('add', 'rule', 'inet', 'tandemtest', chain, 'tcp', 'sport', '7789', 'drop'), 'nft rule');
    }
    for (let i = 0; ; i++) {
      const d = await adm(s7, 'dstate', 'example');
      if (d.out.startsWith('Outdated/')) break;
      assert.ok(
        i < 100,
        `server7 was not outdated: ${d.out}${d.err}\n${readFileSync(join(s6.dir, 'tandemd.log'), 'utf8').slice(-1500)}`,
      );
      await sleep(100);
    }
    // server6 writes on: its fence-peer handler answered, writes are not held.
    for (let i = 0; ; i++) {
      const st = JSON.parse(ok(await adm(s6, 'status', '--json', 'example'), 'status')).resources[0];
      if (st.suspended === null) break;
      assert.ok(i < 50, `writes stay suspended on server6: ${st.suspended}`);
      await sleep(100);
    }
    assert.equal((await fetch()).out, page);
    // Heal: the link comes back, server7 resyncs to UpToDate.
    ok(await nft('delete', 'table', 'inet', 'tandemtest'), 'nft delete');
    for (const s of servers)
      ok(await adm(s, '--timeout', '60', 'wait-sync', 'example'), `wait-sync ${s.name}`);
    assert.equal(ok(await adm(s7, 'dstate', 'example'), 'dstate'), 'UpToDate/UpToDate\n');
  });

  test('server6 dies while server7 is Outdated: server7 does not take over (an Outdated disk needs --force)', async () => {
    const [, s7] = servers as [Server, Server];
    const nft = (...args: string[]) => net.exec('server6', 'nft', args);
    ok(await nft('add', 'table', 'inet', 'tandemtest'), 'nft table');
    ok(
      await nft('add', 'chain', 'inet', 'tandemtest', 'in', '{ type filter hook input priority 0; }'),
      'nft chain',
    );
    ok(await nft('add', 'rule', 'inet', 'tandemtest', 'in', 'tcp', 'dport', '7789', 'drop'), 'nft rule');
    ok(await nft('add', 'rule', 'inet', 'tandemtest', 'in', 'tcp', 'sport', '7789', 'drop'), 'nft rule');
    for (let i = 0; !(await adm(s7, 'dstate', 'example')).out.startsWith('Outdated/'); i++) {
      assert.ok(i < 100, 'server7 was not outdated');
      await sleep(100);
    }
    const pids = await sh('ip', ['netns', 'pids', net.ns('server6')]);
    for (const pid of pids.out.split('\n').filter(Boolean)) await sh('kill', ['-9', pid]);
    await net.down('server6');
    // deadtime 1 s, then drbddisk waits 3 s (TANDEM_HA_DISK_WAIT) for an UpToDate disk and gives up.
    for (let i = 0; ; i++) {
      const st = JSON.parse(ok(await ha(s7, 'status', '--json'), 'status')) as {
        peer: { state: string };
        groups: { state: string; reason: string | null }[];
      };
      if (st.peer.state === 'dead' && st.groups[0]?.reason) {
        assert.equal(st.groups[0].state, 'released');
        assert.match(st.groups[0].reason, /drbddisk::example failed to start: .*UpToDate/);
        break;
      }
      assert.ok(i < 150, `server7: ${JSON.stringify(st)}`);
      await sleep(100);
    }
    assert.match(ok(await adm(s7, 'role', 'example'), 'role'), /^Secondary\//);
    assert.notEqual((await fetch()).out, page, 'an Outdated node served the page');
  });
});
