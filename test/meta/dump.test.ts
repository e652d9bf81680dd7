// dump-md output: exact text for a fixed metadata state, and the JSON form.
import assert from 'node:assert/strict';
import test from 'node:test';
import { dumpMetaJson, dumpMetaText, formatUuid } from '../../src/meta/dump.js';
import { computeLayout, MiB } from '../../src/meta/layout.js';
import { MetaStore, readMeta } from '../../src/meta/store.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { counterRandom } from './crash-storage.js';

async function snapshot() {
  const layout = computeLayout({ kind: 'internal', backingBytes: 64 * MiB });
  const mem = new MemoryStorage(64 * MiB);
  await MetaStore.create(mem, layout, { random: counterRandom(), nodeId: 1 });
  const store = await MetaStore.open(mem, layout);
  await store.updateSuperblock({
    currentUuid: 0xa1b2c3d4e5f60718n,
    historyUuids: [4n, 0n],
    flags: { consistent: true, primaryIndicator: true },
  });
  await store.alBegin([0, 1, 2, 9]);
  store.markOutOfSync(0, 3 * 4096 + 1);
  await store.flushBitmap();
  return readMeta(mem, layout);
}

test('formatUuid: 16 upper-case hex digits', () => {
  assert.equal(formatUuid(4n), '0000000000000004');
  assert.equal(formatUuid(2n ** 64n - 1n), 'FFFFFFFFFFFFFFFF');
});

test('dump-md text', async () => {
  assert.equal(
    dumpMetaText(await snapshot()),
    [
      '# tandem metadata, format version 1',
      'meta-disk internal; superblock copy A, sequence 4',
      'data-size 67063808 bytes (63.9 MiB)',
      'meta-area 45056 bytes (44 KiB) at offset 67063808',
      'bitmap 4096 bytes per bit; al-extent 4194304 bytes; al-extents 1237',
      'node-id 1',
      'meta-id 25303B46515C6772',
      'uuid current A1B2C3D4E5F60718 bitmap 0000000000000000 history 0000000000000004 0000000000000000',
      'flags consistent primaryIndicator',
      'activity-log 4 extents: 0-2,9',
      'out-of-sync 4 of 16373 blocks: 16384 bytes (16 KiB)',
      '',
    ].join('\n'),
  );
});

test('dump-md JSON', async () => {
  const j = dumpMetaJson(await snapshot());
  // JSON-able: survives a round trip through JSON unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(j)), j);
  assert.equal(j.uuids.current, 'A1B2C3D4E5F60718');
  assert.deepEqual(j.flags, ['consistent', 'primaryIndicator']);
  assert.deepEqual(j.activityLog.extents, [0, 1, 2, 9]);
  assert.equal(j.bitmap.outOfSyncBits, 4);
  assert.equal(j.sizes.dataBytes, 67063808);
});
