// MetaStore on memory storage: create-md, open, superblock A/B updates, bitmap
// write-back, the activity log around writes, clean close, and recovery after crashes
// at every write of a session (torn blocks included).
import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { MetaError } from '../../src/meta/errors.js';
import { alExtentBytes, computeLayout, type MetaLayout, MiB } from '../../src/meta/layout.js';
import { detectExisting, MetaStore, readMeta, uuidJustCreated } from '../../src/meta/store.js';
import { FileStorage } from '../../src/storage/file.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { CrashingStorage, counterRandom } from './crash-storage.js';

const backingBytes = 64 * MiB;
const layout = computeLayout({ kind: 'internal', backingBytes });

async function created(l: MetaLayout = layout) {
  const mem = new MemoryStorage(l.metaDeviceBytes);
  await MetaStore.create(mem, l, { random: counterRandom(), nodeId: 1 });
  return mem;
}

test('create-md: Inconsistent, just-created UUID, empty log and bitmap, clean', async () => {
  const mem = await created();
  const snap = await readMeta(mem, layout);
  const sb = snap.superblock;
  assert.equal(sb.seq, 2);
  assert.equal(sb.currentUuid, uuidJustCreated);
  assert.equal(sb.bitmapUuid, 0n);
  assert.deepEqual(sb.historyUuids, [0n, 0n]);
  assert.equal(sb.dataBytes, layout.dataBytes);
  assert.equal(sb.nodeId, 1);
  assert.equal(sb.alSlots, 1237);
  assert.deepEqual(
    Object.entries(sb.flags).filter(([, v]) => v),
    [['cleanShutdown', true]],
  );
  assert.deepEqual(snap.al.extents, []);
  assert.ok(snap.al.complete);
  assert.equal(snap.bitmap.countSet(), 0);
  assert.equal((await detectExisting(mem, layout)).kind, 'tandem');
  // Nothing was written into the data area.
  const data = Buffer.alloc(layout.dataBytes);
  await mem.read(data, 0);
  assert.ok(data.every((x) => x === 0));
});

test('create-md refuses al-extents out of range', async () => {
  const mem = new MemoryStorage(backingBytes);
  await assert.rejects(MetaStore.create(mem, layout, { alSlots: 6 }), { code: 'META_BAD_FIELD' });
  await assert.rejects(MetaStore.create(mem, layout, { alSlots: 6000 }), { code: 'META_BAD_FIELD' });
});

test('create-md over older metadata with a higher sequence: the new one wins', async () => {
  const mem = await created();
  const store = await MetaStore.open(mem, layout);
  for (let i = 0; i < 5; i++) await store.updateSuperblock({ currentUuid: 77n });
  await store.close();
  await MetaStore.create(mem, layout, { random: counterRandom(9) });
  const snap = await readMeta(mem, layout);
  assert.equal(snap.superblock.seq, 2);
  assert.equal(snap.superblock.currentUuid, uuidJustCreated);
});

test('detectExisting: none on a blank device, damaged when both copies are corrupt', async () => {
  const mem = new MemoryStorage(backingBytes);
  assert.deepEqual(await detectExisting(mem, layout), { kind: 'none' });
  await MetaStore.create(mem, layout);
  for (const off of layout.superblockOffsets) await mem.write(Buffer.from([0x55]), off + 100);
  const found = await detectExisting(mem, layout);
  assert.equal(found.kind, 'damaged');
  assert.equal(found.kind === 'damaged' && found.error.code, 'META_NOT_FOUND');
  await assert.rejects(MetaStore.open(mem, layout), { code: 'META_NOT_FOUND' });
});

test('open clears the clean flag; updates alternate copies with rising sequence; close sets it', async () => {
  const mem = await created();
  const store = await MetaStore.open(mem, layout);
  assert.ok(store.recovery.cleanShutdown);
  assert.deepEqual(store.recovery.alExtents, []);
  assert.equal(store.superblock.flags.cleanShutdown, false);
  assert.equal((await readMeta(mem, layout)).superblock.flags.cleanShutdown, false);
  const seq = store.superblock.seq;
  // Concurrent updates are serialized, each on top of the last.
  await Promise.all([
    store.updateSuperblock({ currentUuid: 10n }),
    store.updateSuperblock({ bitmapUuid: 11n }),
    store.updateSuperblock({ flags: { consistent: true } }),
  ]);
  assert.equal(store.superblock.seq, seq + 3);
  const snap = await readMeta(mem, layout);
  assert.equal(snap.superblock.seq, seq + 3);
  assert.equal(snap.copy, (seq + 3) % 2);
  assert.equal(snap.superblock.currentUuid, 10n);
  assert.equal(snap.superblock.bitmapUuid, 11n);
  assert.ok(snap.superblock.flags.consistent);
  await store.close();
  assert.ok((await readMeta(mem, layout)).superblock.flags.cleanShutdown);
  await assert.rejects(store.updateSuperblock({}), { code: 'META_CLOSED' });
});

test('geometry: metadata for another data size is refused', async () => {
  const meta = new MemoryStorage(16 * MiB);
  const l1 = computeLayout({ kind: 'external-flexible', backingBytes: 32 * MiB, metaDeviceBytes: 16 * MiB });
  const l2 = computeLayout({ kind: 'external-flexible', backingBytes: 48 * MiB, metaDeviceBytes: 16 * MiB });
  await MetaStore.create(meta, l1);
  await (await MetaStore.open(meta, l1)).close();
  await assert.rejects(MetaStore.open(meta, l2), (e: unknown) => {
    assert.ok(e instanceof MetaError && e.code === 'META_GEOMETRY_MISMATCH');
    assert.match(e.message, /33554432.*50331648/);
    return true;
  });
});

test('bitmap write-back writes only the dirty pages, consecutive ones together', async () => {
  const big = computeLayout({ kind: 'internal', backingBytes: 4096 * MiB });
  const storage = new CrashingStorage(await created(big));
  const store = await MetaStore.open(storage, big);
  storage.writes.length = 0;
  const page = 32768 * 4096; // data bytes one bitmap page covers
  store.markOutOfSync(0, 4096);
  store.markOutOfSync(page + 5, 1);
  store.markOutOfSync(3 * page, 4096);
  assert.equal(store.bitmapPageWrites, 0);
  await store.flushBitmap();
  assert.deepEqual(storage.writes, [
    { offset: big.bitmapOffsetBytes, length: 2 * 4096 },
    { offset: big.bitmapOffsetBytes + 3 * 4096, length: 4096 },
  ]);
  // /proc/drbd's bm: counts the pages written.
  assert.equal(store.bitmapPageWrites, 3);
  storage.writes.length = 0;
  await store.flushBitmap();
  assert.deepEqual(storage.writes, []);
  assert.equal(store.bitmapPageWrites, 3);
  assert.equal(store.markInSync(0, 4096), 1);
  await store.close();
  const snap = await readMeta(storage.inner, big);
  assert.equal(snap.bitmap.countSet(), 2);
});

test('crash while Primary: the log extents are marked out of sync at the next open', async () => {
  const mem = await created();
  const store = await MetaStore.open(mem, layout);
  await store.alBegin([0, 5]);
  await store.alBegin([7]);
  store.alComplete(7);
  store.markOutOfSync(10 * MiB, 4096); // disconnected write, in extent 2, bitmap not yet flushed
  await store.alBegin([2]);
  // Crash: no close. The next start recovers.
  const again = await MetaStore.open(mem, layout);
  assert.equal(again.recovery.cleanShutdown, false);
  assert.deepEqual(again.recovery.alExtents, [0, 2, 5, 7]);
  assert.ok(again.recovery.alComplete);
  const bm = again.bitmap;
  assert.equal(bm.countSet(), 4 * (alExtentBytes / 4096));
  for (const e of [0, 2, 5, 7]) assert.ok(bm.test((e * alExtentBytes) / 4096));
  assert.ok(!bm.test((alExtentBytes * 1) / 4096));
  // Recovery emptied the log after making the bits durable.
  const snap = await readMeta(mem, layout);
  assert.deepEqual(snap.al.extents, []);
  assert.equal(snap.bitmap.countSet(), bm.countSet());
  await again.close();
});

test('eviction writes the bitmap before the log forgets the extent', async () => {
  const storage = new CrashingStorage(await created());
  const store = await MetaStore.open(storage, layout, { alSlots: 7 });
  for (let e = 0; e < 7; e++) {
    await store.alBegin([e]);
    store.markOutOfSync(e * alExtentBytes, 4096);
    store.alComplete(e);
  }
  await store.flushBitmap();
  store.markOutOfSync(4096 * 3, 4096); // in extent 0, the least recently used
  storage.writes.length = 0;
  // /proc/drbd's al: one per transaction; an extent already in the log needs none.
  const transactions = store.alWrites;
  assert.ok(transactions >= 7);
  await store.alBegin([6]);
  store.alComplete(6);
  assert.equal(store.alWrites, transactions);
  await store.alBegin([8]);
  assert.equal(store.alWrites, transactions + 1);
  const bitmapAt = layout.bitmapOffsetBytes;
  assert.equal(storage.writes.length, 2);
  assert.equal(storage.writes[0]!.offset, bitmapAt);
  assert.ok(storage.writes[1]!.offset >= layout.alOffsetBytes && storage.writes[1]!.offset < bitmapAt);
  assert.deepEqual(store.alActive(), [1, 2, 3, 4, 5, 6, 8]);
  store.alComplete(8);
  await store.close();
});

test('eviction makes the data durable before the log forgets the extent; adding one needs no data flush', async () => {
  const storage = new CrashingStorage(await created());
  const events: string[] = [];
  const store = await MetaStore.open(storage, layout, {
    alSlots: 7,
    flushData: async () => {
      events.push(`data flush after ${storage.writes.length} metadata writes`);
    },
  });
  for (let e = 0; e < 7; e++) {
    await store.alBegin([e]);
    store.alComplete(e);
  }
  events.length = 0;
  storage.writes.length = 0;
  await store.alBegin([6]); // active: no transaction at all
  store.alComplete(6);
  assert.deepEqual(events, []);
  await store.alBegin([8]); // evicts extent 0
  store.alComplete(8);
  assert.deepEqual(events, ['data flush after 0 metadata writes'], 'before the log block is written');
  assert.ok(storage.writes.length >= 1);
  await store.close();
});

test('a failing data flush fails the evicting transaction, and the store with it', async () => {
  let fail = false;
  const store = await MetaStore.open(await created(), layout, {
    alSlots: 7,
    flushData: async () => {
      if (fail) throw new Error('injected: fdatasync failed');
    },
  });
  for (let e = 0; e < 7; e++) {
    await store.alBegin([e]);
    store.alComplete(e);
  }
  fail = true;
  await assert.rejects(store.alBegin([8]), /injected: fdatasync failed/);
  assert.throws(() => store.tryAlBegin([1]), /injected: fdatasync failed/);
});

test('a full log waits for a write to complete', async () => {
  const store = await MetaStore.open(await created(), layout, { alSlots: 7 });
  for (let e = 0; e < 7; e++) await store.alBegin([e]);
  let started = false;
  const waiting = store.alBegin([100]).then(() => {
    started = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(started, false);
  store.alComplete(3);
  await waiting;
  assert.ok(!store.alActive().includes(3));
  for (const e of [0, 1, 2, 4, 5, 6, 100]) store.alComplete(e);
  await store.close();
});

test('requestFullSync sets every bit; a crash half-way is finished at the next open', async () => {
  const mem = await created();
  const store = await MetaStore.open(mem, layout);
  await store.requestFullSync();
  assert.equal(store.bitmap.countSet(), layout.bitmapBits);
  assert.equal(store.superblock.flags.fullSync, false);
  await store.close();
  // Crash right after the flag was written: the bitmap is not yet all set on disk.
  const mem2 = await created();
  const storage = new CrashingStorage(mem2);
  const s2 = await MetaStore.open(storage, layout);
  storage.crashAtWrite = storage.writes.length + 1; // after the superblock, at the bitmap
  await assert.rejects(s2.requestFullSync(), { code: 'EIO' });
  const reopened = await MetaStore.open(mem2, layout);
  assert.ok(reopened.recovery.fullSyncRedone);
  assert.equal(reopened.bitmap.countSet(), layout.bitmapBits);
  assert.equal((await readMeta(mem2, layout)).bitmap.countSet(), layout.bitmapBits);
  await reopened.close();
});

test('after a failed metadata write the store refuses further writes', async () => {
  const storage = new CrashingStorage(await created());
  const store = await MetaStore.open(storage, layout);
  storage.failNextWrite = true;
  await assert.rejects(store.updateSuperblock({ currentUuid: 1n }), { code: 'EIO' });
  await assert.rejects(store.alBegin([1]), { code: 'EIO' });
  await assert.rejects(store.flushBitmap(), { code: 'EIO' });
});

/** One session: open, five updates each with a write in a new extent, close. */
async function session(storage: CrashingStorage, progress: { uuid: bigint; marked: number }) {
  const store = await MetaStore.open(storage, layout);
  for (let i = 1; i <= 5; i++) {
    await store.updateSuperblock({ currentUuid: BigInt(100 + i) });
    progress.uuid = BigInt(100 + i);
    await store.alBegin([i]);
    store.markOutOfSync(i * alExtentBytes + 4096, 4096);
    progress.marked = i;
    if (i === 3) await store.flushBitmap();
    store.alComplete(i);
  }
  await store.close();
}

test('a crash at any write of a session, with a torn block, leaves loadable metadata that lost nothing', async () => {
  let crashes = 0;
  for (const tornBytes of [0, 1000, 2048, 4000]) {
    for (let at = 0; ; at++) {
      const storage = new CrashingStorage(await created());
      storage.crashAtWrite = at;
      storage.tornBytes = tornBytes;
      const progress = { uuid: uuidJustCreated, marked: 0 };
      try {
        await session(storage, progress);
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'EIO');
      }
      if (!storage.crashed) break;
      crashes++;
      const store = await MetaStore.open(storage.inner, layout);
      const uuid = store.superblock.currentUuid;
      assert.ok(
        uuid === progress.uuid || uuid === progress.uuid + 1n,
        `at ${at}: uuid ${uuid} vs ${progress.uuid}`,
      );
      for (let i = 1; i <= progress.marked; i++) {
        assert.ok(
          store.bitmap.test((i * alExtentBytes + 4096) / 4096),
          `at write ${at}: block of extent ${i} lost`,
        );
      }
      await store.close();
    }
  }
  assert.ok(crashes >= 40, `${crashes} crash points`);
});

/** Writes that take a few event-loop turns, so calls overlap as on a real disk. */
class SlowStorage extends MemoryStorage {
  readonly order: number[] = [];
  override async write(buf: Uint8Array, offset: number): Promise<void> {
    await new Promise((r) => setTimeout(r, 2));
    await super.write(buf, offset);
    this.order.push(offset);
  }
}

test('an overlapping flushBitmap returns only once the earlier one is durable', async () => {
  const slow = new SlowStorage(backingBytes);
  await MetaStore.create(slow, layout);
  const store = await MetaStore.open(slow, layout);
  store.markOutOfSync(0, 4096);
  const first = store.flushBitmap(); // takes page 0 and starts writing
  await store.flushBitmap(); // nothing left to take, but must wait for the first
  const onDisk = Buffer.alloc(1);
  await slow.read(onDisk, layout.bitmapOffsetBytes);
  assert.equal(onDisk[0], 1);
  await first;
  await store.close();
});

test('concurrent alBegin calls write one transaction at a time, in sequence order', async () => {
  const slow = new SlowStorage(backingBytes);
  await MetaStore.create(slow, layout);
  const store = await MetaStore.open(slow, layout);
  slow.order.length = 0;
  await Promise.all([store.alBegin([1]), store.alBegin([2]), store.alBegin([1]), store.alBegin([3])]);
  const ring = slow.order.map((off) => (off - layout.alOffsetBytes) / 4096);
  assert.equal(ring.length, 3);
  assert.deepEqual(
    ring,
    [...ring].sort((a, b) => a - b),
  );
  const snap = await readMeta(slow, layout);
  assert.deepEqual(snap.al.extents, [1, 2, 3]);
  for (const e of [1, 2, 1, 3]) store.alComplete(e);
  await store.close();
});

test('on a real file: create-md, open, write, crash, recover', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-meta-'));
  try {
    const path = join(dir, 'disk.img');
    await writeFile(path, '');
    await truncate(path, backingBytes);
    const disk = await FileStorage.open(path);
    await MetaStore.create(disk, layout);
    const store = await MetaStore.open(disk, layout);
    await store.alBegin([3]);
    await disk.close(); // the process dies with extent 3 in the log
    const again = await FileStorage.open(path);
    const recovered = await MetaStore.open(again, layout);
    assert.deepEqual(recovered.recovery.alExtents, [3]);
    assert.equal(recovered.bitmap.countSet(), alExtentBytes / 4096);
    await recovered.close();
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
