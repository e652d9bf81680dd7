// MemoryStorage: sparse 64 KiB chunks, zeroes where nothing was written, the
// range and closed checks every storage shares, and the counters tests read.
import assert from 'node:assert/strict';
import test from 'node:test';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageError, type StorageErrorCode } from '../../src/storage/storage.js';

const KiB = 1024;
const chunkBytes = 64 * KiB;

function isCode(code: StorageErrorCode) {
  return (e: unknown) => e instanceof StorageError && e.code === code;
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('unwritten bytes read as zeroes, also into a dirty buffer', async () => {
  const m = new MemoryStorage(1024 * KiB);
  const b = Buffer.alloc(3 * chunkBytes, 0xee);
  await m.read(b, 100);
  assert.ok(b.every((x) => x === 0));
});

test('writes and reads across chunk boundaries round-trip, around untouched bytes', async () => {
  const m = new MemoryStorage(1024 * KiB);
  const data = pattern(2 * chunkBytes + 777, 5);
  const at = chunkBytes - 123;
  await m.write(data, at);
  const back = Buffer.alloc(data.length + 200);
  await m.read(back, at - 100);
  assert.ok(back.subarray(0, 100).every((x) => x === 0));
  assert.ok(back.subarray(100, 100 + data.length).equals(data));
  assert.ok(back.subarray(100 + data.length).every((x) => x === 0));
});

test('discard zeroes exactly its range', async () => {
  const m = new MemoryStorage(256 * KiB);
  await m.write(Buffer.alloc(256 * KiB, 0x11), 0);
  await m.discard(chunkBytes - 10, chunkBytes + 20);
  const b = Buffer.alloc(256 * KiB);
  await m.read(b, 0);
  const zeroStart = chunkBytes - 10;
  const zeroEnd = zeroStart + chunkBytes + 20;
  for (const [i, x] of b.entries()) assert.equal(x, i >= zeroStart && i < zeroEnd ? 0 : 0x11, `byte ${i}`);
});

test('a huge disk costs only what is written (sparse)', async () => {
  const m = new MemoryStorage(2 ** 50, 'huge');
  await m.write(Buffer.alloc(4096, 9), 2 ** 50 - 4096);
  const b = Buffer.alloc(4096);
  await m.read(b, 2 ** 50 - 4096);
  assert.equal(b[4095], 9);
  assert.equal(m.name, 'huge');
  assert.equal(m.sizeBytes, 2 ** 50);
});

test('accesses outside the device are refused with EINVAL, naming the range', async () => {
  const m = new MemoryStorage(64 * KiB, 'mem0');
  const cases: [string, () => Promise<void>][] = [
    ['read past the end', () => m.read(Buffer.alloc(2), 64 * KiB - 1)],
    ['write past the end', () => m.write(Buffer.alloc(1), 64 * KiB)],
    ['negative offset', () => m.read(Buffer.alloc(1), -1)],
    ['fractional offset', () => m.write(Buffer.alloc(1), 0.5)],
    ['NaN offset', () => m.read(Buffer.alloc(1), Number.NaN)],
    ['unsafe offset', () => m.read(Buffer.alloc(1), 2 ** 53)],
    ['discard past the end', () => m.discard(1, 64 * KiB)],
    ['negative discard', () => m.discard(0, -1)],
  ];
  for (const [what, f] of cases) {
    await assert.rejects(f(), (e: unknown) => {
      assert.ok(e instanceof StorageError, what);
      assert.equal(e.code, 'EINVAL', what);
      assert.match(e.message, /^mem0: access .* outside 0\.\.65536$/, what);
      return true;
    });
  }
  // The last byte and empty accesses at the end are inside.
  await m.write(Buffer.alloc(1), 64 * KiB - 1);
  await m.read(Buffer.alloc(0), 64 * KiB);
});

test('close: every later operation fails with ECLOSED; closing twice is fine', async () => {
  const m = new MemoryStorage(64 * KiB);
  await m.close();
  await m.close();
  await assert.rejects(m.read(Buffer.alloc(1), 0), isCode('ECLOSED'));
  await assert.rejects(m.write(Buffer.alloc(1), 0), isCode('ECLOSED'));
  await assert.rejects(m.flush(), isCode('ECLOSED'));
  await assert.rejects(m.discard(0, 1), isCode('ECLOSED'));
});

test('errors are rejections, never synchronous throws; flush is counted', async () => {
  const m = new MemoryStorage(4096);
  const p = m.read(Buffer.alloc(1), 9999);
  assert.ok(p instanceof Promise);
  await assert.rejects(p, isCode('EINVAL'));
  await m.flush();
  await m.flush();
  assert.equal(m.flushes, 2);
});
