// Two Resources in one process on loopback, memory disks with real metadata, the
// link through a proxy that can hold one direction or cut the connection, and the
// Secondary's disk behind a gate: when a write completes under protocols A, B and C,
// flushes that reach the peer's disk, what a lost connection marks out of sync, and
// the sync handshake's directions.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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
import { MemoryStorage } from '../../src/storage/memory.js';
import type { BlockStorage } from '../../src/storage/storage.js';
import { StorageView } from '../../src/storage/view.js';
import { memoryLogger } from '../../src/util/log.js';
import { freePort } from '../helpers/cluster.js';
import { LinkProxy } from '../helpers/link-proxy.js';

const backingBytes = 32 * 1024 * 1024;

/** A disk whose writes and flushes can be held (a slow or stuck disk). */
class GatedStorage implements BlockStorage {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  writes = 0;
  flushes = 0;
  constructor(private readonly inner: BlockStorage) {}
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get name(): string {
    return this.inner.name;
  }
  hold(): void {
    this.gate ??= new Promise((r) => {
      this.open = r;
    });
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  read(buf: Uint8Array, offset: number): Promise<void> {
    return this.inner.read(buf, offset);
  }
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (this.gate) await this.gate;
    this.writes++;
    return this.inner.write(buf, offset);
  }
  async flush(): Promise<void> {
    if (this.gate) await this.gate;
    this.flushes++;
    return this.inner.flush();
  }
  discard(offset: number, length: number): Promise<void> {
    return this.inner.discard(offset, length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Node {
  readonly res: Resource;
  readonly disk: MemoryStorage;
  readonly data: GatedStorage;
  readonly log: ReturnType<typeof memoryLogger>;
}

async function pair(protocol: 'A' | 'B' | 'C', extraNet = '') {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-repl-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const text = `resource r0 {
  device /dev/drbd1; disk /dev/fake; meta-disk internal;
  net { protocol ${protocol}; connect-int 1; ${extraNet} }
  on a { address 127.0.0.1:${pa}; }
  on b { address 127.0.0.1:${pb}; }
}`;
  const cfg = resolveConfig(parseDrbdConfig(text, 'test.res')).resources[0]!;
  // a dials b through the proxy; 'a' sorts first, so a's connection is the one kept.
  const proxy = await LinkProxy.start({ host: '127.0.0.1', port: pb });
  const make = async (name: 'a' | 'b'): Promise<Node> => {
    const disk = new MemoryStorage(backingBytes, `mem-${name}`);
    const layout = computeLayout({ kind: 'internal', backingBytes });
    await MetaStore.create(disk, layout);
    const data = new GatedStorage(new StorageView(disk, 0, layout.dataBytes));
    const opener: VolumeOpener = async () => {
      const store = await MetaStore.open(disk, layout);
      return { data, meta: volumeMeta(store, { layout, metaDevice: disk, data, close: async () => {} }) };
    };
    const log = memoryLogger();
    const res = new Resource(cfg, localHost(cfg, name), {
      runDir: join(dir, name),
      log,
      opener,
      kernelDevices: false,
      ...(name === 'a' ? { peerEndpoint: { host: '127.0.0.1', port: proxy.port } } : {}),
    });
    return { res, disk, data, log };
  };
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  const a = await make('a');
  const b = await make('b');
  await a.res.bringUp();
  await b.res.bringUp();
  return {
    a,
    b,
    proxy,
    async cleanup() {
      proxy.release('forward');
      proxy.release('backward');
      a.data.release();
      b.data.release();
      await a.res.down().catch(() => a.res.forceClose());
      await b.res.down().catch(() => b.res.forceClose());
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const vol = (n: Node) => n.res.status().volumes[0]!;

/** Connected, a Primary after the initial full sync, both UpToDate. */
async function syncedPair(protocol: 'A' | 'B' | 'C', extraNet = '') {
  const p = await pair(protocol, extraNet);
  await waitFor(
    'connected',
    () => p.a.res.status().connection === 'Connected' && p.b.res.status().connection === 'Connected',
  );
  await p.a.res.primary(true);
  await waitFor(
    'sync',
    () =>
      vol(p.a).peerDisk === 'UpToDate' &&
      vol(p.b).disk === 'UpToDate' &&
      vol(p.a).replication === 'Connected',
  );
  return p;
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await new Promise((r) => setTimeout(r, ms));
  return settled;
}

const volumeOf = (n: Node) => n.res.volumes[0]!;

test('fresh pair: connected, both Inconsistent; primary --force makes a full sync to UpToDate', async () => {
  const p = await pair('C');
  try {
    await waitFor('connected', () => p.a.res.status().connection === 'Connected');
    await waitFor('peer disk', () => vol(p.a).peerDisk === 'Inconsistent');
    assert.equal(vol(p.a).disk, 'Inconsistent');
    await p.a.res.primary(true);
    await waitFor(
      'UpToDate/UpToDate',
      () => vol(p.b).disk === 'UpToDate' && vol(p.a).peerDisk === 'UpToDate',
    );
    assert.equal(vol(p.b).outOfSyncBytes, 0);
    assert.equal(vol(p.a).outOfSyncBytes, 0);
    assert.equal(p.b.res.status().peerRole, 'Primary');
    // The full sync moved little: the memory disks are all zeroes, sent as "all zeroes".
    const sent = vol(p.a).counters.sentBytes;
    assert.ok(sent < 1024 * 1024, `a full sync of zeroes sent ${sent} bytes`);
  } finally {
    await p.cleanup();
  }
});

test('protocol C: a write completes only when the peer has written it', async () => {
  const p = await syncedPair('C');
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 7), 8192, false);
    assert.equal(await settlesWithin(w, 200), false, 'completed before the peer wrote it');
    p.b.data.release();
    await w;
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 8192);
    assert.ok(check.equals(Buffer.alloc(4096, 7)));
    // Acks held: still not complete.
    p.proxy.hold('backward');
    const w2 = volumeOf(p.a).write(Buffer.alloc(4096, 8), 16384, false);
    assert.equal(await settlesWithin(w2, 200), false, 'completed without the WriteAck');
    p.proxy.release('backward');
    await w2;
  } finally {
    await p.cleanup();
  }
});

test('protocol B: a write completes when the peer has received it, before its disk write', async () => {
  const p = await syncedPair('B');
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 9), 8192, false);
    assert.equal(await settlesWithin(w, 500), true, 'B waited for the peer disk');
    p.proxy.hold('backward');
    const w2 = volumeOf(p.a).write(Buffer.alloc(4096, 10), 16384, false);
    assert.equal(await settlesWithin(w2, 200), false, 'B completed without the RecvAck');
    p.proxy.release('backward');
    await w2;
    p.b.data.release();
  } finally {
    await p.cleanup();
  }
});

test('protocol A: a write completes with no answer from the peer; a FLUSH waits for the peer disk', async () => {
  const p = await syncedPair('A');
  try {
    p.proxy.hold('backward');
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 11), 8192, false);
    assert.equal(await settlesWithin(w, 500), true, 'A waited for the peer');
    const f = volumeOf(p.a).flush();
    assert.equal(await settlesWithin(f, 200), false, 'FLUSH completed before the peer disk was stable');
    p.b.data.release();
    assert.equal(await settlesWithin(f, 200), false, 'FLUSH completed without the FlushAck');
    p.proxy.release('backward');
    await f;
    assert.ok(p.b.data.flushes > 0, 'the peer flushed its disk');
  } finally {
    await p.cleanup();
  }
});

test('a lost connection completes pending writes locally and marks them out of sync', async () => {
  const p = await syncedPair('C');
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(8192, 12), 1024 * 1024, false);
    assert.equal(await settlesWithin(w, 100), false);
    p.proxy.cut();
    await w;
    assert.equal(vol(p.a).outOfSyncBytes, 8192);
    // While disconnected every write is out of sync.
    await volumeOf(p.a).write(Buffer.alloc(4096, 13), 2 * 1024 * 1024, false);
    assert.equal(vol(p.a).outOfSyncBytes, 8192 + 4096);
    p.b.data.release();
    // Reconnect (connect-int 1 s): a bitmap resync, a SyncSource, only those blocks.
    await waitFor(
      'resynced',
      () =>
        vol(p.a).replication === 'Connected' &&
        vol(p.a).outOfSyncBytes === 0 &&
        vol(p.b).outOfSyncBytes === 0,
      15_000,
    );
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 2 * 1024 * 1024);
    assert.ok(check.equals(Buffer.alloc(4096, 13)));
    await p.b.data.read(check, 1024 * 1024 + 4096);
    assert.ok(check.equals(Buffer.alloc(4096, 12)));
  } finally {
    await p.cleanup();
  }
});

test('overlapping writes in flight reach both disks in submission order', async () => {
  const p = await syncedPair('C');
  try {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      const off = 65536 + (i % 5) * 2048;
      writes.push(volumeOf(p.a).write(Buffer.alloc(8192, i + 1), off, false));
    }
    await Promise.all(writes);
    const mine = Buffer.alloc(96 * 1024);
    const theirs = Buffer.alloc(96 * 1024);
    await p.a.data.read(mine, 65536);
    await p.b.data.read(theirs, 65536);
    assert.ok(mine.equals(theirs), 'the replicas differ');
  } finally {
    await p.cleanup();
  }
});

test('verify finds exactly a corrupted block on the Secondary; reconnecting resyncs it', async () => {
  const p = await syncedPair('C', 'verify-alg crc32c;');
  try {
    await volumeOf(p.a).write(Buffer.alloc(1024 * 1024, 0x42), 4 * 1024 * 1024, false);
    // Corrupt one 4 KiB block of the Secondary's disk behind tandem's back.
    await p.b.disk.write(Buffer.alloc(4096, 0xee), 4 * 1024 * 1024 + 12 * 4096);
    await p.a.res.verify();
    await waitFor('verify', () => vol(p.a).verify?.done === true);
    assert.equal(vol(p.a).verify?.outOfSyncBytes, 4096);
    assert.equal(vol(p.a).outOfSyncBytes, 4096);
    await p.a.res.disconnect();
    await p.a.res.connect();
    await waitFor(
      'resync',
      () =>
        vol(p.a).replication === 'Connected' &&
        vol(p.a).outOfSyncBytes === 0 &&
        vol(p.b).outOfSyncBytes === 0,
    );
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 4 * 1024 * 1024 + 12 * 4096);
    assert.ok(check.equals(Buffer.alloc(4096, 0x42)));
  } finally {
    await p.cleanup();
  }
});
