// The seed's story without Heartbeat, as root with the real kernel pieces: two
// nodes, create-md on both, up, primary --force on one, the initial sync to
// UpToDate/UpToDate, mkfs.ext4 and mount on the device, files written; umount,
// secondary; primary on the other node, mount there: the files are there and
// e2fsck -fn finds the filesystem clean.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../helpers/cluster.js';
import { sh, systemTestSkipReason, type TandemNode } from '../helpers/tandem-node.js';

const skip = await systemTestSkipReason(['nbdfuse', 'losetup', 'mkfs.ext4', 'e2fsck', 'mount']);

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

async function blockDevice(n: TandemNode): Promise<string> {
  const st = JSON.parse(ok(await n.adm('status', '--json', 'r0'), 'status'));
  const k = st.resources[0].volumes[0].kernelDevice;
  assert.ok(k?.blockDevice, `no kernel device on ${n.name}: ${JSON.stringify(k)}`);
  return k.blockDevice as string;
}

describe('the seed story on two tandem nodes', { skip }, () => {
  let c: Cluster;
  before(async () => {
    c = await Cluster.create({ diskBytes: 128 * 1024 * 1024 });
    await c.upBoth([]);
  });
  after(async () => {
    await c?.cleanup();
  });

  test('initial sync after primary --force', async () => {
    for (const n of c.nodes)
      ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), `wait-connect ${n.name}`);
    ok(await c.a.adm('primary', '--force', 'r0'), 'primary --force');
    for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), `wait-sync ${n.name}`);
    assert.equal(ok(await c.b.adm('dstate', 'r0'), 'dstate'), 'UpToDate/UpToDate\n');
  });

  test('mkfs.ext4, mount, write files on alpha', async () => {
    const dev = await blockDevice(c.a);
    ok(await sh('mkfs.ext4', ['-q', '-F', dev]), 'mkfs.ext4');
    ok(await sh('mount', [dev, c.a.mnt]), 'mount');
    for (let i = 0; i < 20; i++)
      writeFileSync(join(c.a.mnt, `file${i}.txt`), `tandem seed file ${i}\n`.repeat(500 * i + 1));
    writeFileSync(join(c.a.mnt, 'index.html'), '<h1>tandem</h1>\n');
    ok(await sh('umount', [c.a.mnt]), 'umount');
    ok(await c.a.adm('secondary', 'r0'), 'secondary');
  });

  test('primary on bravo: the files are there and the filesystem is clean', async () => {
    ok(await c.b.adm('primary', 'r0'), 'primary bravo');
    const dev = await blockDevice(c.b);
    ok(await sh('e2fsck', ['-fn', dev]), 'e2fsck -fn');
    ok(await sh('mount', [dev, c.b.mnt]), 'mount on bravo');
    try {
      for (let i = 0; i < 20; i++) {
        assert.equal(
          readFileSync(join(c.b.mnt, `file${i}.txt`), 'utf8'),
          `tandem seed file ${i}\n`.repeat(500 * i + 1),
        );
      }
      assert.equal(readFileSync(join(c.b.mnt, 'index.html'), 'utf8'), '<h1>tandem</h1>\n');
    } finally {
      ok(await sh('umount', [c.b.mnt]), 'umount on bravo');
    }
  });
});
