// Which way an application write goes (src/device/volume.ts writeFast): a small write
// with nothing to wait for is done at once on the event loop (the disk's writeSync),
// everything else through write()'s promise path, and the choice never reorders
// overlapping writes. A resource on a memory disk whose data area counts the two
// kinds of write, driven through the NBD socket.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseDrbdConfig } from '../../src/config/drbd-load.js';
import { localHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { Resource } from '../../src/device/resource.js';
import { Cmd, CmdFlag } from '../../src/nbd/protocol.js';
import { memoryLogger } from '../../src/util/log.js';
import { TestNbdClient } from '../helpers/nbd-client.js';
import { GatedStorage, memoryVolume } from '../helpers/resource-pair.js';

const backingBytes = 64 * 1024 * 1024;
const block = 4096;
/** One activity-log extent. */
const extentBytes = 4 * 1024 * 1024;

/** A Primary on a memory disk whose data area (a GatedStorage) counts the writes taken at once. */
async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-wfast-'));
  const r = resolveConfig(
    parseDrbdConfig(
      `resource r0 {
  device /dev/drbd1; disk /dev/fake; meta-disk internal;
  on a { address 127.0.0.1:7789; }
  on b { address 127.0.0.2:7789; }
}`,
      'test.res',
    ),
  ).resources[0]!;
  const { data, opener } = await memoryVolume(backingBytes, 'mem', (d) => new GatedStorage(d));
  const res = new Resource(r, localHost(r, 'a'), {
    runDir: dir,
    log: memoryLogger(),
    opener,
    kernelDevices: false,
    replication: false,
  });
  await res.bringUp();
  await res.primary(true);
  const c = await TestNbdClient.connect(res.socketPath);
  await c.handshake();
  await c.go('r0');
  return {
    data,
    /** [taken at once, through write()] so far. */
    ways: () => [data.syncWrites, data.writes - data.syncWrites],
    c,
    cleanup: async () => {
      data.release();
      c.close();
      await res.down().catch(() => res.forceClose());
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function write(
  c: TestNbdClient,
  offset: number,
  bytes: number,
  fill: number,
  flags = 0,
): Promise<void> {
  c.send(Cmd.WRITE, offset, bytes, flags, Buffer.alloc(bytes, fill));
  assert.equal((await c.reply()).error, 0);
}

test('a small write into an active extent is done at once; FUA, a new extent and a large write take the promise path', async () => {
  const t = await setup();
  try {
    const { ways, c } = t;
    // The extent's first write needs an activity-log transaction first: promise path.
    await write(c, 0, block, 1);
    assert.deepEqual(ways(), [0, 1]);
    await write(c, block, block, 2);
    assert.deepEqual(ways(), [1, 1], 'the extent is active now: at once');
    await write(c, 2 * block, block, 3, CmdFlag.FUA);
    assert.deepEqual(ways(), [1, 2], 'FUA waits for a flush');
    await write(c, 0, 128 * 1024, 4);
    assert.deepEqual(ways(), [1, 3], 'larger than the disk takes at once');
    await write(c, extentBytes, block, 5);
    assert.deepEqual(ways(), [1, 4], 'another extent: a transaction first');
    await write(c, extentBytes + block, block, 6);
    assert.deepEqual(ways(), [2, 4]);
    // What each way wrote is there.
    c.send(Cmd.READ, 0, 3 * block);
    const got = (await c.reply(3 * block)).data;
    assert.ok(got.subarray(0, 2 * block).every((b) => b === 4));
    assert.ok(got.subarray(2 * block).every((b) => b === 4));
    c.send(Cmd.READ, extentBytes, 2 * block);
    const got2 = (await c.reply(2 * block)).data;
    assert.ok(got2.subarray(0, block).every((b) => b === 5));
    assert.ok(got2.subarray(block).every((b) => b === 6));
  } finally {
    await t.cleanup();
  }
});

test('a write behind an overlapping one still under way waits for it: the later one wins, as submitted', async () => {
  const t = await setup();
  try {
    const { data, ways, c } = t;
    await write(c, 0, block, 1); // the extent is active from here
    const [sync0, async0] = ways() as [number, number];
    data.holdFlushes(); // a FUA write waits for its flush
    // A FUA write, then an overlapping plain one in the same packet, then a disjoint one.
    const fua = c.send(Cmd.WRITE, 0, 2 * block, CmdFlag.FUA, Buffer.alloc(2 * block, 0xaa));
    c.send(Cmd.WRITE, block, block, 0, Buffer.alloc(block, 0xbb));
    const disjoint = c.send(Cmd.WRITE, 8 * block, block, 0, Buffer.alloc(block, 0xcc));
    const first = await c.reply();
    assert.deepEqual([first.cookie, first.error], [disjoint, 0], 'the disjoint one, answered at once');
    data.release();
    const rest = [await c.reply(), await c.reply()];
    assert.deepEqual(
      rest.map((r) => r.error),
      [0, 0],
    );
    assert.ok(rest.some((r) => r.cookie === fua));
    const [sync1, async1] = ways() as [number, number];
    assert.equal(async1 - async0, 2, 'the FUA write and the one that overlaps it');
    assert.equal(sync1 - sync0, 1, 'the disjoint one, at once');
    c.send(Cmd.READ, 0, 2 * block);
    const got = (await c.reply(2 * block)).data;
    assert.ok(got.subarray(0, block).every((b) => b === 0xaa));
    assert.ok(
      got.subarray(block).every((b) => b === 0xbb),
      'the later write is on the disk, not overwritten by the earlier one',
    );
  } finally {
    await t.cleanup();
  }
});
