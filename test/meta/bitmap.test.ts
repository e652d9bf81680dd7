// The dirty bitmap against a naive model (a Set of block numbers), its rounding rules,
// page tracking and the on-disk encoding.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { Bitmap, bitmapPageBytes, bitsPerPage } from '../../src/meta/bitmap.js';
import { MetaError } from '../../src/meta/errors.js';

const block = 4096;

test('bitmap golden bytes: bit n is byte n/8, bit n%8', () => {
  const bm = new Bitmap(64 * block);
  bm.setBits(0, 1);
  bm.setBits(9, 3);
  bm.setBits(63, 1);
  assert.equal(Buffer.from(bm.encode().subarray(0, 8)).toString('hex'), '010e000000000080');
  assert.equal(bm.encode().length, bitmapPageBytes);
});

test('bitmap: setRange rounds out, clearRange rounds in', () => {
  const bm = new Bitmap(100 * block);
  assert.equal(bm.setRange(block + 1, 1), 1); // one byte dirties its block
  assert.ok(bm.test(1));
  assert.equal(bm.setRange(3 * block - 1, 2), 2); // straddles blocks 2 and 3
  assert.equal(bm.countSet(), 3);
  assert.equal(bm.clearRange(block + 1, block), 0); // no whole block inside
  assert.equal(bm.clearRange(block, block), 1);
  assert.equal(bm.clearRange(2 * block - 1, 2 * block + 2), 2); // covers blocks 2 and 3 wholly
  assert.equal(bm.countSet(), 0);
  assert.equal(bm.setRange(0, 0), 0);
});

test('bitmap: a short last block counts as one and is cleared by a range to the end', () => {
  const bm = new Bitmap(10 * block + 100);
  assert.equal(bm.bits, 11);
  bm.setRange(10 * block, 100);
  assert.equal(bm.outOfSyncBytes(), 100);
  bm.setAll();
  assert.equal(bm.outOfSyncBytes(), 10 * block + 100);
  assert.equal(bm.clearRange(10 * block, 100), 1);
  assert.deepEqual(
    [...bm.dirtyRuns()],
    [{ firstBit: 0, bitCount: 10, offsetBytes: 0, lengthBytes: 10 * block }],
  );
});

test('bitmap: only changed pages are dirty', () => {
  const bm = new Bitmap(4 * bitsPerPage * block);
  assert.equal(bm.pageCount, 4);
  assert.deepEqual(bm.takeDirtyPages(), []);
  bm.setBits(bitsPerPage - 1, 2); // last bit of page 0, first of page 1
  bm.setBits(3 * bitsPerPage + 5, 1);
  assert.equal(bm.dirtyPageCount, 3);
  assert.deepEqual(bm.takeDirtyPages(), [0, 1, 3]);
  assert.deepEqual(bm.takeDirtyPages(), []);
  bm.setBits(bitsPerPage - 1, 2); // already set: nothing changes
  assert.deepEqual(bm.takeDirtyPages(), []);
  bm.clearBits(3 * bitsPerPage, bitsPerPage);
  assert.deepEqual(bm.takeDirtyPages(), [3]);
  bm.markPagesDirty([2]);
  assert.deepEqual(bm.takeDirtyPages(), [2]);
  assert.equal(bm.page(1)[0], 1);
});

test('bitmap decode: short area refused, padding bits dropped', () => {
  assert.throws(
    () => Bitmap.decode(10 * block, new Uint8Array(100)),
    (e: unknown) => e instanceof MetaError && e.code === 'META_SHORT' && e.offset === 100,
  );
  const area = new Uint8Array(bitmapPageBytes).fill(0xff);
  const bm = Bitmap.decode(10 * block, area);
  assert.equal(bm.countSet(), 10);
  assert.equal(bm.encode()[1], 0x03);
  assert.equal(bm.encode()[2], 0);
});

type BitOp =
  | { kind: 'set' | 'clear'; offset: number; length: number }
  | { kind: 'setBits' | 'clearBits'; first: number; count: number };

/** Applies `o`; returns the model's block range [first, end) and what the bitmap reported. */
function applyOp(bm: Bitmap, o: BitOp, dataBytes: number): [number, number, number] {
  switch (o.kind) {
    case 'set': {
      const first = Math.floor(o.offset / block);
      const end = o.length === 0 ? first : Math.ceil((o.offset + o.length) / block);
      return [first, end, bm.setRange(o.offset, o.length)];
    }
    case 'clear': {
      const stop = o.offset + o.length;
      const end = stop === dataBytes ? bm.bits : Math.floor(stop / block);
      return [Math.ceil(o.offset / block), end, bm.clearRange(o.offset, o.length)];
    }
    case 'setBits':
      return [o.first, o.first + o.count, bm.setBits(o.first, o.count)];
    case 'clearBits':
      return [o.first, o.first + o.count, bm.clearBits(o.first, o.count)];
  }
}

test('bitmap against a Set of block numbers', () => {
  const dataBlocks = 3 * bitsPerPage + 77;
  const dataBytes = dataBlocks * block - 1000; // a short last block
  const byteRange = fc
    .tuple(fc.integer({ min: 0, max: dataBytes }), fc.integer({ min: 0, max: 40 * block }))
    .map(([offset, length]) => ({ offset, length: Math.min(length, dataBytes - offset) }));
  const bitRange = fc
    .tuple(fc.integer({ min: 0, max: dataBlocks }), fc.integer({ min: 0, max: bitsPerPage + 100 }))
    .map(([first, count]) => ({ first, count: Math.min(count, dataBlocks - first) }));
  const op: fc.Arbitrary<BitOp> = fc.oneof(
    byteRange.map((r) => ({ kind: 'set' as const, ...r })),
    byteRange.map((r) => ({ kind: 'clear' as const, ...r })),
    bitRange.map((r) => ({ kind: 'setBits' as const, ...r })),
    bitRange.map((r) => ({ kind: 'clearBits' as const, ...r })),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const bm = new Bitmap(dataBytes);
      const model = new Set<number>();
      for (const o of ops) {
        const before = model.size;
        const [first, end, changed] = applyOp(bm, o, dataBytes);
        for (let b = first; b < end; b++) o.kind.startsWith('set') ? model.add(b) : model.delete(b);
        assert.equal(changed, Math.abs(model.size - before));
      }
      assert.equal(bm.countSet(), model.size);
      // Runs cover exactly the model's blocks, in order, maximal.
      const fromRuns: number[] = [];
      let lastEnd = -1;
      for (const r of bm.dirtyRuns()) {
        assert.ok(r.firstBit > lastEnd, 'runs are separated by a clear bit');
        for (let b = r.firstBit; b < r.firstBit + r.bitCount; b++) fromRuns.push(b);
        assert.equal(r.offsetBytes, r.firstBit * block);
        assert.ok(r.offsetBytes + r.lengthBytes <= dataBytes);
        lastEnd = r.firstBit + r.bitCount;
      }
      assert.deepEqual(
        fromRuns,
        [...model].sort((a, b) => a - b),
      );
      // Encode/decode round trip.
      const again = Bitmap.decode(dataBytes, bm.encode());
      assert.equal(again.countSet(), model.size);
      for (const b of model) assert.ok(again.test(b));
    }),
    { seed: 0xb175, numRuns: 150 },
  );
});

test('bitmap: setAll on a large bitmap and runs from a start bit', () => {
  const bm = new Bitmap(2 ** 40); // 1 TiB of data: 2^28 bits, 32 MiB
  assert.equal(bm.setAll(), 2 ** 28);
  assert.equal(bm.outOfSyncBytes(), 2 ** 40);
  bm.clearBits(0, 2 ** 28 - 10);
  assert.deepEqual(
    [...bm.dirtyRuns(5)].map((r) => [r.firstBit, r.bitCount]),
    [[2 ** 28 - 10, 10]],
  );
});
