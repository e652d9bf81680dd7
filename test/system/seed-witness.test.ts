// The seed's cluster with a witness: server6 and server7 with disks, a third node
// `witness` running tandem-ha only. server6 serves the group (VIP, disk, ext4, httpd) and
// a writer on it records every write the filesystem acknowledged (fsync returned). Then
// server6 is cut from server7 and the witness (nftables drops everything between them;
// the client still reaches it): server7 takes over with the witness's vote, server6 —
// without a majority — stops completing writes and releases the group. Healed: no split
// brain (server6 resyncs from server7), and every acknowledged write is on server7.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fsyncWriter, page, SeedCluster, type Server, seedTools, sleep } from '../helpers/seed-cluster.js';
import { systemTestSkipReason } from '../helpers/tandem-node.js';

const skip = await systemTestSkipReason(seedTools);

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

describe('the seed cluster with a witness: a partition never lets two nodes serve', { skip }, () => {
  let c: SeedCluster;
  let servers: readonly [Server, Server];
  const adm = (s: Server, ...args: string[]) => c.adm(s, ...args);
  const ha = (s: Server, ...args: string[]) => c.ha(s, ...args);
  const holds = async (s: Server) => (await ha(s, 'rscstatus')).out.startsWith('all\n');
  const log = (s: Server) => {
    const f = join(s.dir, 'tandemd.log');
    return existsSync(f) ? readFileSync(f, 'utf8').slice(-2500) : '';
  };

  before(async () => {
    c = await SeedCluster.create({ witness: true, autoFailback: false });
    servers = c.servers;
  });

  after(async () => {
    await c?.cleanup();
  });

  test('three nodes: server6 serves the group with the majority', async () => {
    const [s6] = servers;
    await c.prepare();
    for (const s of servers) c.startHa(s);
    c.startHa(c.witness!);
    await c.waitForPage(30_000);
    // The group is whole once its last agent's start returns, just after the page is served.
    for (let i = 0; !(await holds(s6)); i++) {
      assert.ok(i < 50, `server6 does not hold the group: ${(await ha(s6, 'rscstatus')).out}`);
      await sleep(100);
    }
    const st = JSON.parse(ok(await ha(c.witness!, 'status', '--json'), 'status')) as {
      quorum: { has: boolean };
      nodes: { name: string; state: string }[];
      groups: unknown[];
      peer: unknown;
    };
    assert.equal(st.quorum.has, true);
    assert.deepEqual(
      st.nodes.map((n) => [n.name, n.state]),
      [
        ['server6', 'up'],
        ['server7', 'up'],
      ],
    );
    assert.deepEqual(st.groups, [], 'the witness runs no groups');
    assert.equal(st.peer, null, 'the witness took a data node for its peer');
    assert.equal(ok(await ha(s6, 'listnodes'), 'listnodes'), 'server6\nserver7\nwitness\n');
  });

  test("garbage at tandem-ha's UDP port is counted and dropped; nothing changes", async (t) => {
    const [s6] = servers;
    type Counters = { malformed: number; forged: number; received: number };
    const counters = async () =>
      (JSON.parse(ok(await ha(s6, 'status', '--json'), 'status')) as { counters: Counters }).counters;
    const before = await counters();
    // From the client: random datagrams (empty to 1499 bytes), and ones that start with
    // the packet magic, at server6's heartbeat port.
    ok(
      await c.net.exec('client', 'python3', [
        '-c',
        [
          'import os, socket, time',
          's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
          'for i in range(200):',
          "    s.sendto(os.urandom(i * 7 % 1500), ('172.25.137.6', 694))",
          "    s.sendto(b'THAB' + os.urandom(i % 300), ('172.25.137.6', 694))",
          // Paced: a burst would overflow the socket's receive buffer in the kernel.
          '    time.sleep(0.002)',
        ].join('\n'),
      ]),
      'udp fuzz',
    );
    await sleep(500);
    const after = await counters();
    const dropped = after.malformed + after.forged - before.malformed - before.forged;
    t.diagnostic(`${dropped} of 400 garbage datagrams counted as malformed or forged`);
    assert.ok(dropped >= 390, `only ${dropped} of 400 garbage datagrams were counted`);
    assert.ok(after.received > before.received, 'heartbeats stopped being received');
    assert.ok(await holds(s6), 'server6 lost its group to garbage');
    const st = JSON.parse(ok(await ha(s6, 'status', '--json'), 'status')) as {
      nodes: { name: string; state: string }[];
    };
    assert.deepEqual(
      st.nodes.map((n) => n.state),
      ['up', 'up'],
    );
  });

  test('server6 is cut from server7 and the witness: server7 takes over, server6 stops serving writes', async (t) => {
    const [s6, s7] = servers;
    const acks = join(c.root, 'acks.log');
    const script = join(c.root, 'writer.py');
    writeFileSync(script, fsyncWriter);
    writeFileSync(acks, '');
    c.net.spawn('server6', 'python3', [script, join(s6.www, 'w'), acks]);
    const acked = () => readFileSync(acks, 'utf8').split('\n').filter(Boolean);
    for (let i = 0; acked().length < 20; i++) {
      assert.ok(i < 100, `the writer on server6 got no acknowledgements: ${acked().length}`);
      await sleep(100);
    }
    // A silent partition: everything between server6 and the other two is dropped.
    await c.cut(s6);
    const t0 = Date.now();
    const ackedAtCut = acked().length;
    for (let i = 0; !(await holds(s7)); i++) {
      assert.ok(i < 200, `server7 did not take over: ${(await ha(s7, 'rscstatus')).out}\n${log(s7)}`);
      await sleep(100);
    }
    t.diagnostic(`server7 holds the group ${((Date.now() - t0) / 1000).toFixed(2)} s after the cut`);
    assert.match(ok(await adm(s7, 'role', 'example'), 'role'), /^Primary\//);
    // server6, without a majority, released everything: not Primary, no VIP, no group.
    for (let i = 0; ; i++) {
      const role = (await adm(s6, 'role', 'example')).out;
      const rsc = (await ha(s6, 'rscstatus')).out;
      if (role.startsWith('Secondary/') && rsc.startsWith('none\n')) break;
      assert.ok(i < 150, `server6 still serves: ${role} ${rsc}\n${log(s6)}`);
      await sleep(100);
    }
    const addrs = ok(await c.net.exec('server6', 'ip', ['-4', 'addr', 'show', 'dev', 'eth0']), 'ip addr');
    assert.doesNotMatch(addrs, /172\.25\.137\.100/, 'server6 kept the VIP');
    const st6 = JSON.parse(ok(await ha(s6, 'status', '--json'), 'status')) as { quorum: { has: boolean } };
    assert.equal(st6.quorum.has, false);
    // The writer on server6 is stopped: no acknowledgement after the release.
    const ackedAtRelease = acked().length;
    await sleep(1000);
    assert.equal(acked().length, ackedAtRelease, 'server6 acknowledged writes without the majority');
    t.diagnostic(`writes acknowledged on server6: ${ackedAtCut} before the cut, ${ackedAtRelease} in all`);
    // Every acknowledged write is on server7, byte for byte.
    for (const n of acked()) {
      const f = join(s7.www, 'w', n);
      assert.ok(existsSync(f), `acknowledged write ${n} is missing on server7`);
      assert.equal(readFileSync(f, 'utf8'), `${n}\n`.repeat(200), `write ${n} differs on server7`);
    }
    // The client gets the page from server7.
    await c.waitForPage(15_000);
  });

  test('healed: no split brain — server6 resyncs from server7, the replicas are identical', async () => {
    const [s6, s7] = servers;
    assert.ok(await c.heal(s6), 'no cut to heal on server6');
    for (const s of servers)
      ok(await adm(s, '--timeout', '60', 'wait-sync', 'example'), `wait-sync ${s.name}`);
    assert.equal(ok(await adm(s7, 'dstate', 'example'), 'dstate'), 'UpToDate/UpToDate\n');
    assert.equal(ok(await adm(s7, 'cstate', 'example'), 'cstate'), 'Connected\n');
    const st = JSON.parse(ok(await adm(s7, 'status', '--json', 'example'), 'status')).resources[0];
    assert.equal(st.splitBrain ?? null, null);
    // Both nodes keep to one owner after the heal (auto_failback off).
    await sleep(1500);
    assert.ok(await holds(s7));
    assert.match(ok(await ha(s6, 'rscstatus'), 'rscstatus'), /^none\n/);
    ok(await adm(s7, 'verify', 'example'), 'verify');
    for (let i = 0; ; i++) {
      const v = JSON.parse(ok(await adm(s7, 'status', '--json', 'example'), 'status')).resources[0]
        .volumes[0];
      if (v.verify?.done) {
        assert.equal(v.verify.outOfSyncBytes, 0, 'verify found differences after the heal');
        break;
      }
      assert.ok(i < 300, 'verify did not finish');
      await sleep(100);
    }
    assert.equal((await c.fetch()).out, page);
  });

  test('server6 dies, server7 writes alone, then dies: server6 returns outdated (the witness told it) and does not take over', async (t) => {
    const [s6, s7] = servers;
    const w = c.witness!;
    await c.kill(s6);
    // server7's fence-peer handler: server6 is dead by the majority, so the witness holds
    // it outdated and server7's writes go on.
    for (let i = 0; ; i++) {
      const st = JSON.parse(ok(await ha(w, 'status', '--json'), 'status')) as {
        outdatePending: Record<string, string>;
      };
      if (st.outdatePending['server6'] === 'example') break;
      if (i >= 100) {
        const rs = (await adm(s7, 'status', '--json', 'example')).out;
        const hs = (await ha(s7, 'status', '--json')).out;
        assert.fail(`the witness holds no outdate for server6\n${rs}\n${hs}\n${log(s7)}`);
      }
      await sleep(100);
    }
    for (let i = 0; ; i++) {
      const st = JSON.parse(ok(await adm(s7, 'status', '--json', 'example'), 'status')).resources[0];
      if (st.suspended === null) break;
      assert.ok(i < 100, `writes stay held on server7: ${st.suspended}`);
      await sleep(100);
    }
    // server7 writes what server6 never gets.
    const acks = join(c.root, 'acks7.log');
    writeFileSync(acks, '');
    c.net.spawn('server7', 'python3', [join(c.root, 'writer.py'), join(s7.www, 'w7'), acks]);
    for (let i = 0; readFileSync(acks, 'utf8').split('\n').filter(Boolean).length < 10; i++) {
      assert.ok(i < 100, 'the writer on server7 got no acknowledgements');
      await sleep(100);
    }
    await c.kill(s7);
    // server6 comes back alone with the witness: the witness tells it first.
    await c.revive(s6);
    for (let i = 0; ; i++) {
      const d = (await adm(s6, 'dstate', 'example')).out;
      if (d.startsWith('Outdated/')) break;
      assert.ok(i < 150, `server6 was not outdated: ${d}\n${log(s6)}`);
      await sleep(100);
    }
    const st = JSON.parse(ok(await ha(w, 'status', '--json'), 'status')) as {
      outdatePending: Record<string, string>;
    };
    assert.deepEqual(st.outdatePending, {}, 'the witness still holds the outdate it delivered');
    // server7 is dead by the majority, but an Outdated disk takes nothing over.
    await sleep(3000);
    assert.match(ok(await adm(s6, 'role', 'example'), 'role'), /^Secondary\//);
    assert.notEqual((await c.fetch()).out, page, 'server6 served its outdated copy');
    t.diagnostic('server6 stayed Secondary with an Outdated disk: no acknowledged write of server7 was lost');
  });
});
