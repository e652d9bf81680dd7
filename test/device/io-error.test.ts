// `disk { on-io-error }` on one node: a resource on memory disks with real
// metadata, its data (and metadata) device wrapped in FaultyStorage, driven
// through the NBD socket. What DRBD 8.4 does (drbd_int.h __drbd_chk_io_error_):
// `detach` (the default since 8.4) takes the disk to Failed, then Diskless, and
// the node keeps running; `pass_on` only fails the request; a metadata I/O
// error detaches whatever the policy says.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseDrbdConfig } from '../../src/config/drbd-load.js';
import { localHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { volumeMeta } from '../../src/device/disk.js';
import { Resource } from '../../src/device/resource.js';
import type { VolumeOpener } from '../../src/device/volume.js';
import { computeLayout } from '../../src/meta/layout.js';
import { MetaStore } from '../../src/meta/store.js';
import { Cmd, NbdErrno } from '../../src/nbd/protocol.js';
import { FaultyStorage } from '../../src/storage/faulty.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageView } from '../../src/storage/view.js';
import { memoryLogger } from '../../src/util/log.js';
import { TestNbdClient } from '../helpers/nbd-client.js';

const backingBytes = 64 * 1024 * 1024;

function conf(disk: string): string {
  return `resource r0 {
  device /dev/drbd1; disk /dev/fake; meta-disk internal;
  ${disk}
  on a { address 127.0.0.1:7789; }
  on b { address 127.0.0.2:7789; }
}`;
}

/**
 * A Primary resource (forced: fresh metadata) whose data and metadata devices are
 * FaultyStorage over one memory disk. Every attach wraps the disk anew; `faults`
 * holds the current wrappers.
 */
async function setup(diskSection: string) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ioerr-'));
  const r = resolveConfig(parseDrbdConfig(conf(diskSection), 'test.res')).resources[0]!;
  const disk = new MemoryStorage(backingBytes, 'mem');
  const layout = computeLayout({ kind: 'internal', backingBytes });
  await MetaStore.create(disk, layout);
  const faults: { data?: FaultyStorage; meta?: FaultyStorage; attaches: number; closeFails: boolean } = {
    attaches: 0,
    closeFails: false,
  };
  const opener: VolumeOpener = async () => {
    faults.attaches++;
    const metaDevice = new FaultyStorage(disk, { seed: 2 * faults.attaches });
    const store = await MetaStore.open(metaDevice, layout);
    const data = new FaultyStorage(new StorageView(disk, 0, layout.dataBytes), {
      seed: 2 * faults.attaches + 1,
    });
    faults.data = data;
    faults.meta = metaDevice;
    const close = async () => {
      if (faults.closeFails) throw new Error('injected: closing the disk failed');
    };
    return { data, meta: volumeMeta(store, { layout, metaDevice, data, close }) };
  };
  const log = memoryLogger();
  const res = new Resource(r, localHost(r, 'a'), {
    runDir: dir,
    log,
    opener,
    kernelDevices: false,
    replication: false,
  });
  await res.bringUp();
  await res.primary(true);
  const clients: TestNbdClient[] = [];
  const connect = async () => {
    const c = await TestNbdClient.connect(res.socketPath);
    clients.push(c);
    await c.handshake();
    return c;
  };
  return {
    res,
    faults,
    log,
    connect,
    /** The volume's disk state as `status` shows it. */
    disk: () => res.status().volumes[0]?.disk,
    cleanup: async () => {
      for (const c of clients) c.close();
      await waitFor(() => res.status().nbdClients === 0);
      // A failed down leaves the NBD server listening: close it anyway, or the test never ends.
      await res.down().catch(() => res.forceClose());
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `cond` until true or 2 s pass; returns the last value. */
async function waitFor(cond: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return cond();
}

const block = 4096;

async function writeBlock(c: TestNbdClient, offset: number, fill: number): Promise<number> {
  c.send(Cmd.WRITE, offset, block, 0, Buffer.alloc(block, fill));
  return (await c.reply()).error;
}

async function readBlock(c: TestNbdClient, offset: number): Promise<{ error: number; data: Buffer }> {
  c.send(Cmd.READ, offset, block);
  return c.reply(block);
}

/** Unhandled rejections during a test mean a fault escaped as a crash of the daemon. */
function trackUnhandled(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const on = (e: unknown) => errors.push(e);
  process.on('unhandledRejection', on);
  return { errors, stop: () => process.off('unhandledRejection', on) };
}

// Both ways a write takes (src/device/volume.ts writeFast): at once on the event loop,
// and through the promise path (a delayed disk is never written at once).
for (const way of ['at once', 'through the promise path'] as const) {
  test(`detach: a data write error (${way}) fails that request with EIO, the disk goes Diskless, the node keeps running`, async () => {
    const t = await setup('disk { on-io-error detach; }');
    if (way !== 'at once') t.faults.data?.setDelay('write', 0);
    const unhandled = trackUnhandled();
    try {
      const c = await t.connect();
      await c.go('r0');
      assert.equal(await writeBlock(c, 0, 0x11), 0);
      assert.equal(t.disk(), 'UpToDate');

      t.faults.data?.failNthWrite(1);
      assert.equal(
        await writeBlock(c, block, 0x22),
        NbdErrno.EIO,
        'the failed write is EIO at the NBD level',
      );
      assert.ok(await waitFor(() => t.disk() === 'Diskless'), `disk ${t.disk()}`);
      const st = t.res.status();
      assert.match(st.volumes[0]?.diskReason ?? '', /I\/O error/);
      assert.equal(st.role, 'Primary', 'still Primary: DRBD keeps the role, diskless');
      assert.ok(
        t.log.lines.some((l) =>
          /^error .*I\/O error on \/dev\/fake: .*injected EIO.*on-io-error detach/.test(l),
        ),
        t.log.lines.join('\n'),
      );

      // The open connection is still framed, but gets no more I/O done.
      // (Which errno: see the todo test below.)
      assert.notEqual((await readBlock(c, 0)).error, 0, 'no I/O on a diskless volume without a peer');
      assert.notEqual(await writeBlock(c, 0, 0x33), 0);
      assert.equal(c.closed, false);

      // New connections are refused, with the reason.
      const c2 = await t.connect();
      await assert.rejects(c2.go('r0'), /volume 0 has no disk \(Diskless\)/);
      assert.deepEqual(unhandled.errors, []);
    } finally {
      unhandled.stop();
      await t.cleanup();
    }
  });
}

test('detach: later I/O on a connection opened before fails with EIO (DRBD on-no-data-accessible io-error)', async () => {
  const t = await setup('disk { on-io-error detach; }');
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.data?.failNthWrite(1);
    assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
    assert.ok(await waitFor(() => t.disk() === 'Diskless'));
    assert.equal((await readBlock(c, 0)).error, NbdErrno.EIO, 'read');
    assert.equal(await writeBlock(c, 0, 0x33), NbdErrno.EIO, 'write: not ENOSPC, the disk is not full');
  } finally {
    await t.cleanup();
  }
});

test('detach: after the disk is healed, attach brings it back UpToDate with the data written before the fault', async () => {
  const t = await setup('disk { on-io-error detach; }');
  try {
    const c = await t.connect();
    await c.go('r0');
    assert.equal(await writeBlock(c, 8 * block, 0x5a), 0);
    t.faults.data?.failAll();
    assert.equal((await readBlock(c, 0)).error, NbdErrno.EIO, 'a read error detaches too');
    assert.ok(await waitFor(() => t.disk() === 'Diskless'));
    c.close();
    await waitFor(() => t.res.status().nbdClients === 0);

    await t.res.attach();
    assert.equal(t.faults.attaches, 2);
    assert.equal(t.disk(), 'UpToDate');
    const c2 = await t.connect();
    await c2.go('r0');
    const r = await readBlock(c2, 8 * block);
    assert.equal(r.error, 0);
    assert.ok(r.data.every((x) => x === 0x5a));
    // The crash-like detach left the activity log to replay: the extent stays out of sync for the peer.
    assert.ok(t.res.status().volumes[0]!.outOfSyncBytes > 0);
  } finally {
    await t.cleanup();
  }
});

test('detach: when closing the failed disk fails as well, that is logged, not a crash', async () => {
  const t = await setup('disk { on-io-error detach; }');
  const unhandled = trackUnhandled();
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.closeFails = true;
    t.faults.data?.failNthWrite(1);
    assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
    assert.ok(
      await waitFor(() => t.log.lines.some((l) => /detach after the I\/O error: injected: closing/.test(l))),
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled.errors, []);
    assert.equal(t.disk(), 'Diskless');
    t.faults.closeFails = false;
  } finally {
    unhandled.stop();
    await t.cleanup();
  }
});

test('detach: a flush error detaches too', async () => {
  const t = await setup('disk { on-io-error detach; }');
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.data?.setErrorRate('flush', 1);
    c.send(Cmd.FLUSH, 0, 0);
    assert.equal((await c.reply()).error, NbdErrno.EIO);
    assert.ok(await waitFor(() => t.disk() === 'Diskless'));
    assert.equal(t.faults.data?.injected.flushErrors, 1);
  } finally {
    await t.cleanup();
  }
});

test('detach: with many requests in flight, each gets exactly one reply and nothing crashes', async () => {
  const t = await setup('disk { on-io-error detach; }');
  const unhandled = trackUnhandled();
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.data?.setDelay('write', { minMs: 1, maxMs: 10 });
    t.faults.data?.failNthWrite(3);
    const cookies = new Set<bigint>();
    for (let i = 0; i < 16; i++) cookies.add(c.send(Cmd.WRITE, i * block, block, 0, Buffer.alloc(block, i)));
    const errors: number[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await c.reply();
      assert.ok(cookies.delete(r.cookie), `one reply per request (cookie ${r.cookie})`);
      errors.push(r.error);
    }
    assert.ok(errors.includes(NbdErrno.EIO));
    assert.ok(await waitFor(() => t.disk() === 'Diskless'));
    assert.equal(c.closed, false);
    assert.deepEqual(unhandled.errors, []);
  } finally {
    unhandled.stop();
    await t.cleanup();
  }
});

test('pass_on: the request fails with EIO, the disk is kept, and I/O works again once the fault heals', async () => {
  const t = await setup('disk { on-io-error pass_on; }');
  try {
    const c = await t.connect();
    await c.go('r0');
    assert.equal(await writeBlock(c, 0, 0x11), 0);
    t.faults.data?.failRange(block, block, ['read', 'write']);
    assert.equal(await writeBlock(c, block, 0x22), NbdErrno.EIO);
    assert.equal((await readBlock(c, block)).error, NbdErrno.EIO);
    // Other blocks still work while the bad range is bad.
    assert.equal(await writeBlock(c, 2 * block, 0x33), 0);
    assert.notEqual(t.disk(), 'Failed');
    assert.notEqual(t.disk(), 'Diskless');
    assert.ok(t.log.lines.some((l) => /^error .*on-io-error pass_on/.test(l)));

    t.faults.data?.heal();
    assert.equal(await writeBlock(c, block, 0x44), 0);
    const r = await readBlock(c, block);
    assert.equal(r.error, 0);
    assert.ok(r.data.every((x) => x === 0x44));
    assert.ok((await readBlock(c, 0)).data.every((x) => x === 0x11));
    assert.equal(t.faults.attaches, 1, 'never detached');
    assert.equal(t.faults.data?.injected.writeErrors, 1);
    assert.equal(t.faults.data?.injected.readErrors, 1);
  } finally {
    await t.cleanup();
  }
});

test('pass_on: a failed data write makes an UpToDate disk Inconsistent (DRBD 8.4 __drbd_chk_io_error_)', async () => {
  const t = await setup('disk { on-io-error pass_on; }');
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.data?.failNthWrite(1);
    assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
    assert.equal(t.disk(), 'Inconsistent');
  } finally {
    await t.cleanup();
  }
});

test('on-io-error unset is detach, DRBD 8.4 and 9 default (drbd_limits.h DRBD_ON_IO_ERROR_DEF EP_DETACH)', async () => {
  const t = await setup('');
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.data?.failNthWrite(1);
    assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
    assert.ok(await waitFor(() => t.disk() === 'Diskless'), `disk ${t.disk()}`);
  } finally {
    await t.cleanup();
  }
});

test('on-io-error unset: an I/O error fails the request with EIO and nothing crashes', async () => {
  const t = await setup('');
  const unhandled = trackUnhandled();
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.data?.failNthWrite(1);
    assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
    assert.ok(t.log.lines.some((l) => /^error .*I\/O error/.test(l)));
    assert.deepEqual(unhandled.errors, []);
  } finally {
    unhandled.stop();
    await t.cleanup();
  }
});

for (const policy of ['detach', 'pass_on']) {
  test(`metadata: an activity-log write error fails the write with EIO and detaches (on-io-error ${policy})`, async () => {
    const t = await setup(`disk { on-io-error ${policy}; }`);
    const unhandled = trackUnhandled();
    try {
      const c = await t.connect();
      await c.go('r0');
      const writesBefore = t.faults.meta?.ops.writes ?? 0;
      t.faults.meta?.failAll();
      // The first write to a 4 MiB extent needs an activity-log transaction first.
      assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
      assert.equal(t.faults.meta?.injected.writeErrors, 1);
      assert.equal(t.faults.meta?.ops.writes, writesBefore + 1);
      assert.equal(t.faults.data?.ops.writes, 0, 'no data written without its activity-log entry');
      // DRBD: DRBD_META_IO_ERROR falls through to the detach case whatever the policy.
      assert.ok(await waitFor(() => t.disk() === 'Diskless'), `disk ${t.disk()}`);
      assert.match(t.res.status().volumes[0]?.diskReason ?? '', /I\/O error/);
      // The node stays up, and `down` works on the diskless volume.
      t.faults.meta?.heal();
      await t.res.secondary().catch(() => {});
      assert.deepEqual(unhandled.errors, []);
    } finally {
      unhandled.stop();
      await t.cleanup();
    }
  });
}

test('metadata: after an activity-log write error, down still completes', async () => {
  const t = await setup('disk { on-io-error detach; }');
  try {
    const c = await t.connect();
    await c.go('r0');
    t.faults.meta?.failNthWrite(1);
    assert.equal(await writeBlock(c, 0, 0x22), NbdErrno.EIO);
    c.close();
    assert.ok(await waitFor(() => t.res.status().nbdClients === 0));
    await t.res.down();
    assert.equal(t.disk(), 'Diskless');
  } finally {
    await t.cleanup();
  }
});
