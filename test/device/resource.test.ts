// A resource on one node with memory disks and real metadata: DRBD's rules
// for role changes, and the write path's bookkeeping.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseDrbdConfig } from '../../src/config/drbd-load.js';
import type { ResolvedVolume } from '../../src/config/drbd-model.js';
import { localHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { volumeMeta } from '../../src/device/disk.js';
import { Resource, StateChangeError } from '../../src/device/resource.js';
import type { VolumeOpener } from '../../src/device/volume.js';
import { computeLayout } from '../../src/meta/layout.js';
import { MetaStore } from '../../src/meta/store.js';
import { KernelDeviceManager } from '../../src/nbd/kernel.js';
import { Cmd } from '../../src/nbd/protocol.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageView } from '../../src/storage/view.js';
import { memoryLogger } from '../../src/util/log.js';
import { TestNbdClient } from '../helpers/nbd-client.js';

const conf = `resource r0 {
  device /dev/drbd1; disk /dev/fake; meta-disk internal;
  disk { on-io-error detach; }
  on a { address 127.0.0.1:7789; }
  on b { address 127.0.0.2:7789; }
}`;

const backingBytes = 64 * 1024 * 1024;

async function setup(text = conf) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-res-'));
  const r = resolveConfig(parseDrbdConfig(text, 'test.res')).resources[0]!;
  const disk = new MemoryStorage(backingBytes, 'mem');
  const layout = computeLayout({ kind: 'internal', backingBytes });
  await MetaStore.create(disk, layout);
  const opener: VolumeOpener = async (_v: ResolvedVolume) => {
    const store = await MetaStore.open(disk, layout);
    const data = new StorageView(disk, 0, layout.dataBytes);
    return { data, meta: volumeMeta(store, { layout, metaDevice: disk, data, close: async () => {} }) };
  };
  const log = memoryLogger();
  const res = new Resource(r, localHost(r, 'a'), {
    runDir: dir,
    log,
    opener,
    kernelDevices: false,
    replication: false,
  });
  return {
    res,
    disk,
    layout,
    dir,
    log,
    cleanup: async () => {
      await res.down().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function refusedWith(code: number) {
  return (e: unknown) => e instanceof StateChangeError && e.refusal.code === code;
}

test('fresh metadata is Inconsistent; primary needs --force, which makes it UpToDate with everything out of sync', async () => {
  const { res, layout, cleanup } = await setup();
  try {
    await res.bringUp();
    assert.equal(res.status().volumes[0]?.disk, 'Inconsistent');
    await assert.rejects(res.primary(false), refusedWith(-2));
    assert.equal(res.role(), 'Secondary');
    await res.primary(true);
    const st = res.status();
    assert.equal(st.role, 'Primary');
    assert.equal(st.volumes[0]?.disk, 'UpToDate');
    assert.equal(
      st.volumes[0]?.outOfSyncBytes,
      layout.dataBytes,
      'the peer must get everything (full initial sync)',
    );
    assert.equal(st.connection, 'StandAlone');
  } finally {
    await cleanup();
  }
});

test('a Secondary refuses I/O; a Primary with a connected NBD client refuses to demote', async () => {
  const { res, cleanup } = await setup();
  try {
    await res.bringUp();
    const c = await TestNbdClient.connect(res.socketPath);
    await c.handshake();
    await assert.rejects(c.go('r0'), /is Secondary: only the Primary serves I\/O/);
    c.close();
    await res.primary(true);
    const c2 = await TestNbdClient.connect(res.socketPath);
    await c2.handshake();
    const { size } = await c2.go('r0');
    assert.ok(size > 60 * 1024 * 1024);
    c2.send(Cmd.WRITE, 0, 4096, 0, Buffer.alloc(4096, 0x5a));
    assert.equal((await c2.reply()).error, 0);
    await assert.rejects(res.secondary(), refusedWith(-12));
    await assert.rejects(res.detach(), refusedWith(-2));
    c2.close();
    const deadline = Date.now() + 2000;
    while (res.status().nbdClients > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await res.secondary();
    assert.equal(res.role(), 'Secondary');
  } finally {
    await cleanup();
  }
});

test('after down and up the data and the role rules survive: UpToDate, primary without --force', async () => {
  const { res, cleanup } = await setup();
  try {
    await res.bringUp();
    await res.primary(true);
    await res.down();
    assert.equal(res.status().volumes[0]?.disk, 'Diskless');
    await res.bringUp();
    assert.equal(res.status().volumes[0]?.disk, 'UpToDate', 'consistent + was-up-to-date, fencing dont-care');
    await res.primary(false);
    assert.equal(res.role(), 'Primary');
  } finally {
    await cleanup();
  }
});

test('commands on a resource that is not up are refused with a reason', async () => {
  const { res, cleanup } = await setup();
  try {
    await assert.rejects(res.primary(true), /'r0' is not up/);
    await assert.rejects(res.attach(), /not up/);
  } finally {
    await cleanup();
  }
});

test('with nbd-address the export is also served on TCP, and TCP clients count as users', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const { res, cleanup } = await setup(
    conf.replace('disk { on-io-error detach; }', `options { nbd-address 127.0.0.1:${port}; }`),
  );
  try {
    await res.bringUp();
    await res.primary(true);
    assert.equal(res.status().nbdTcp, `127.0.0.1:${port}`);
    const c = await TestNbdClient.connectTcp('127.0.0.1', port);
    await c.handshake();
    await c.go('r0');
    c.send(Cmd.READ, 0, 4096);
    assert.equal((await c.reply(4096)).error, 0);
    await assert.rejects(res.secondary(), refusedWith(-12));
    c.close();
    const deadline = Date.now() + 2000;
    while (res.status().nbdClients > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await res.down();
  } finally {
    await cleanup();
  }
});

test('a connection that never opens the export does not block demotion', async () => {
  const { res, cleanup } = await setup();
  try {
    await res.bringUp();
    await res.primary(true);
    const idle = await TestNbdClient.connect(res.socketPath);
    await idle.handshake();
    await res.secondary();
    assert.equal(res.role(), 'Secondary');
    idle.close();
  } finally {
    await cleanup();
  }
});

test('a kernel device that cannot be made leaves a Primary serving NBD, and status says why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-res-'));
  const r = resolveConfig(parseDrbdConfig(conf, 'test.res')).resources[0]!;
  const disk = new MemoryStorage(backingBytes, 'mem');
  const layout = computeLayout({ kind: 'internal', backingBytes });
  await MetaStore.create(disk, layout);
  const opener: VolumeOpener = async () => {
    const store = await MetaStore.open(disk, layout);
    const data = new StorageView(disk, 0, layout.dataBytes);
    return { data, meta: volumeMeta(store, { layout, metaDevice: disk, data, close: async () => {} }) };
  };
  const kernel = new KernelDeviceManager();
  kernel.attach = async () => {
    throw new Error('nbdfuse did not start for r0: fusermount3: not found');
  };
  const res = new Resource(r, localHost(r, 'a'), {
    runDir: dir,
    log: memoryLogger(),
    opener,
    kernelDevices: true,
    kernel,
  });
  try {
    await res.bringUp();
    await res.primary(true);
    assert.equal(res.role(), 'Primary');
    const k = res.status().volumes[0]?.kernelDevice;
    assert.equal(k?.kind, 'none');
    assert.match(k?.reason ?? '', /no kernel device: nbdfuse did not start/);
    const c = await TestNbdClient.connect(res.socketPath);
    await c.handshake();
    await c.go('r0');
    c.close();
    const deadline = Date.now() + 2000;
    while (res.status().nbdClients > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  } finally {
    await res.down().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
