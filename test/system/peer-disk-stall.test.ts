// Protocol B completes a write once the peer has received it: not once the peer has
// written it. The Secondary writes a small block on its event loop, and a disk that
// stalls blocks that write, so its RecvAck must leave before the write starts. Two real
// tandemd processes; bravo's disk is a FUSE file whose requests can be held (FaultyDisk).
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NbdClient } from '../../src/nbd/client.js';
import { Cluster } from '../helpers/cluster.js';
import { FaultyDisk } from '../helpers/faulty-disk.js';
import { systemTestSkipReason } from '../helpers/tandem-node.js';

const skip = (await systemTestSkipReason([...FaultyDisk.tools])) ?? false;
const diskBytes = 16 * 1024 * 1024;
const at = 1024 * 1024;

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

/** The byte at `offset` of what bravo's disk has stored (behind the held requests). */
function storedByte(disk: FaultyDisk, offset: number): number {
  const fd = openSync(join(disk.dir, 'store.img'), 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    return b[0]!;
  } finally {
    closeSync(fd);
  }
}

describe('protocol B with a stalled disk on the Secondary', { skip }, () => {
  let c: Cluster;
  let disk: FaultyDisk | undefined;
  before(async () => {
    c = await Cluster.create({ protocol: 'B', diskBytes });
    disk = await FaultyDisk.create(join(c.dir, 'bravo-disk'), diskBytes);
    rmSync(c.b.disk);
    symlinkSync(disk.path, c.b.disk);
    await c.upBoth();
    for (const n of c.nodes)
      ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), `wait-connect ${n.name}`);
    ok(await c.a.adm('primary', '--force', 'r0'), 'primary --force');
    for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), `wait-sync ${n.name}`);
  });
  after(async () => {
    await disk?.resume().catch(() => {});
    // tandemd first: it may be waiting on the FUSE file.
    for (const n of c?.nodes ?? []) await n.stop('SIGKILL');
    await disk?.close();
    await c?.cleanup();
  });

  test('a write completes while the peer cannot write it, and reaches its disk once the disk is back', async () => {
    const d = disk!;
    assert.notEqual(storedByte(d, at), 0x6b);
    await d.pause();
    // A client that does not flush when it leaves (qemu-io does: a FLUSH waits for the
    // peer's disk under every protocol).
    const client = await NbdClient.open({ path: join(c.a.runDir, 'r0.nbd') }, 'r0');
    try {
      const t0 = performance.now();
      // Without the early RecvAck this waits until the link's ping timeout drops the peer.
      const wrote = await Promise.race([
        client.write(at, Buffer.alloc(4096, 0x6b)).then(() => performance.now() - t0),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000)),
      ]);
      assert.ok(
        wrote !== undefined && wrote < 3_000,
        `the write took ${wrote ?? '> 5000'} ms with the peer's disk stalled`,
      );
    } finally {
      client.close();
    }
    // Received, not written: bravo's disk holds nothing of it yet.
    assert.notEqual(storedByte(d, at), 0x6b, "the stalled disk has the block: the test's stall did not hold");
    assert.equal(ok(await c.a.adm('cstate', 'r0'), 'cstate'), 'Connected\n');
    await d.resume();
    const until = Date.now() + 10_000;
    while (storedByte(d, at) !== 0x6b) {
      assert.ok(Date.now() < until, 'the block did not reach the disk once it was back');
      await new Promise((r) => setTimeout(r, 50));
    }
    ok(await c.b.adm('--timeout', '20', 'wait-sync', 'r0'), 'wait-sync bravo');
    assert.equal(ok(await c.b.adm('dstate', 'r0'), 'dstate'), 'UpToDate/UpToDate\n');
  });
});
