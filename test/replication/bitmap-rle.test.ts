// The bitmap exchange against the real dirty bitmap (src/meta/bitmap.ts): a bitmap cut
// into Bitmap frames and received into an empty one comes out bit for bit the same;
// chunks never exceed their frame; the transfer is never larger than the plain bits.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { Bitmap } from '../../src/meta/bitmap.js';
import {
  type BitmapChunk,
  BitmapReceiver,
  bitmapFixedBytes,
  bitmapPayloadBytesMax,
  chunkDirtyRuns,
  encodeBitmapChunks,
} from '../../src/replication/bitmap-rle.js';
import { decodeFrame, encodeFrame } from '../../src/replication/frames.js';
import { frameHeaderBytes } from '../../src/replication/header.js';
import { fuzzSeed } from './arbitraries.js';

/** Sends `bm` as Bitmap frames of at most `payloadBytesMax` and receives them into a new bitmap. */
function transfer(
  bm: Bitmap,
  payloadBytesMax: number,
): { copy: Bitmap; chunks: BitmapChunk[]; wireBytes: number } {
  const copy = new Bitmap(bm.dataBytes);
  const receiver = new BitmapReceiver(copy.bits, (first, count) => copy.setBits(first, count));
  const chunks: BitmapChunk[] = [];
  let wireBytes = 0;
  for (const chunk of encodeBitmapChunks(bm.encode(), bm.bits, payloadBytesMax)) {
    const bytes = encodeFrame({ kind: 'Bitmap', volume: 0, body: chunk });
    assert.ok(bytes.length - frameHeaderBytes <= payloadBytesMax, 'chunk exceeds its frame');
    wireBytes += bytes.length;
    const frame = decodeFrame(bytes);
    assert.ok(frame.kind === 'Bitmap');
    receiver.apply(frame.body);
    chunks.push(frame.body);
  }
  assert.ok(receiver.done);
  return { copy, chunks, wireBytes };
}

const bitmapArb = fc
  .record(
    {
      blocks: fc.integer({ min: 1, max: 40000 }),
      ranges: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 3000 })), { maxLength: 40 }),
      singles: fc.array(fc.nat(), { maxLength: 200 }),
      payloadBytesMax: fc.integer({ min: bitmapFixedBytes + 6, max: 600 }),
    },
    { noNullPrototype: true },
  )
  .map(({ blocks, ranges, singles, payloadBytesMax }) => {
    const bm = new Bitmap(blocks * 4096);
    for (const [at, n] of ranges) {
      const first = at % bm.bits;
      bm.setBits(first, Math.min(n, bm.bits - first));
    }
    for (const at of singles) bm.setBits(at % bm.bits, 1);
    return { bm, payloadBytesMax };
  });

test('a random bitmap survives the transfer bit for bit', () => {
  fc.assert(
    fc.property(bitmapArb, ({ bm, payloadBytesMax }) => {
      const { copy, chunks } = transfer(bm, payloadBytesMax);
      assert.deepEqual(copy.encode(), bm.encode());
      assert.equal(copy.countSet(), bm.countSet());
      // The chunks tile the bitmap in order.
      let next = 0;
      for (const c of chunks) {
        assert.equal(c.startBit, next);
        // Never more bytes than the same bits plain.
        assert.ok(c.data.length <= Math.ceil(c.bitCount / 8), `${c.encoding} chunk of ${c.bitCount} bits`);
        next += c.bitCount;
      }
      assert.equal(next, bm.bits);
    }),
    { seed: fuzzSeed, numRuns: 200 },
  );
});

test("the dirty runs of the chunks are the bitmap's own dirty runs", () => {
  fc.assert(
    fc.property(bitmapArb, ({ bm, payloadBytesMax }) => {
      const fromChunks: [number, number][] = [];
      for (const c of encodeBitmapChunks(bm.encode(), bm.bits, payloadBytesMax)) {
        for (const r of chunkDirtyRuns(c)) {
          const last = fromChunks.at(-1);
          // A run cut by a chunk boundary continues in the next chunk.
          if (last && last[0] + last[1] === r.firstBit) last[1] += r.bitCount;
          else fromChunks.push([r.firstBit, r.bitCount]);
        }
      }
      assert.deepEqual(
        fromChunks,
        [...bm.dirtyRuns()].map((r) => [r.firstBit, r.bitCount]),
      );
    }),
    { seed: fuzzSeed, numRuns: 200 },
  );
});

test('alternating bits, the worst case for run lengths, go plain: never larger than the bitmap', () => {
  const bm = new Bitmap(100000 * 4096);
  for (let b = 0; b < bm.bits; b += 2) bm.setBits(b, 1);
  const { copy, chunks, wireBytes } = transfer(bm, 4096);
  assert.deepEqual(copy.encode(), bm.encode());
  assert.ok(chunks.every((c) => c.encoding === 'plain'));
  const plainBytes = Math.ceil(bm.bits / 8);
  const overhead = chunks.length * (frameHeaderBytes + bitmapFixedBytes);
  assert.ok(wireBytes <= plainBytes + overhead, `${wireBytes} > ${plainBytes} + ${overhead}`);
});

test('a clean or a fully dirty 256 GiB device is one tiny chunk', () => {
  const clean = new Bitmap(256 * 1024 ** 3);
  const [only, ...rest] = [...encodeBitmapChunks(clean.encode(), clean.bits)];
  assert.deepEqual(rest, []);
  assert.deepEqual(only, {
    startBit: 0,
    bitCount: clean.bits,
    encoding: 'rle',
    firstDirty: false,
    data: Buffer.from([0x80, 0x80, 0x80, 0x20]), // 2^26 as a varint
  });
  clean.setAll();
  const dirty = [...encodeBitmapChunks(clean.encode(), clean.bits)];
  assert.equal(dirty.length, 1);
  assert.equal(dirty[0]!.firstDirty, true);
});

test('an empty bitmap is no chunks, and received at once', () => {
  assert.deepEqual([...encodeBitmapChunks(new Uint8Array(0), 0)], []);
  assert.ok(new BitmapReceiver(0, () => assert.fail('no bits')).done);
});

test("chunks out of order or beyond the bitmap are the peer's error", () => {
  const bm = new Bitmap(64 * 4096);
  bm.setBits(3, 10);
  const [chunk] = [...encodeBitmapChunks(bm.encode(), bm.bits)];
  assert.ok(chunk);
  const receiver = new BitmapReceiver(bm.bits, () => {});
  assert.throws(() => receiver.apply({ ...chunk, startBit: 1 }), {
    code: 'REPL_BAD_FIELD',
    offset: frameHeaderBytes,
  });
  assert.throws(() => new BitmapReceiver(bm.bits - 1, () => {}).apply(chunk), {
    code: 'REPL_BAD_FIELD',
    offset: frameHeaderBytes + 8,
  });
  receiver.apply(chunk);
  assert.ok(receiver.done);
  assert.equal(receiver.receivedBits, bm.bits);
});

test('the default chunk fits the table maximum', () => {
  const bm = new Bitmap(1000000 * 4096);
  for (let b = 0; b < bm.bits; b += 3) bm.setBits(b, 1);
  const chunks = [...encodeBitmapChunks(bm.encode(), bm.bits)];
  assert.ok(chunks.length > 1);
  for (const c of chunks) assert.ok(bitmapFixedBytes + c.data.length <= bitmapPayloadBytesMax);
});
