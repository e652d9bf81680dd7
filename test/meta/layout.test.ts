// The metadata layout, table-driven, with the size relationship checked for every case
// and for random sizes: data + metadata fit the device, areas are 4 KiB aligned.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { MetaError } from '../../src/meta/errors.js';
import {
  computeLayout,
  extentsOf,
  type MetaDiskSpec,
  type MetaLayout,
  MiB,
  metaAlignBytes,
} from '../../src/meta/layout.js';

const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

function checkInvariants(l: MetaLayout): void {
  for (const off of [l.metaOffsetBytes, l.alOffsetBytes, l.bitmapOffsetBytes, ...l.superblockOffsets]) {
    assert.equal(off % metaAlignBytes, 0);
  }
  assert.equal(l.dataBytes % metaAlignBytes, 0);
  assert.ok(l.metaOffsetBytes + l.metaBytes <= l.metaDeviceBytes);
  assert.ok(l.bitmapBytes * 8 * 4096 >= l.dataBytes, 'bitmap covers the data');
  if (l.kind === 'internal') {
    assert.ok(l.dataBytes + l.metaBytes <= l.backingBytes, 'data + metadata <= device');
    assert.ok(l.dataBytes <= l.metaOffsetBytes, 'metadata after the data');
  }
}

const cases: { name: string; spec: MetaDiskSpec; want: Partial<MetaLayout> }[] = [
  {
    name: 'internal 1 GiB',
    spec: { kind: 'internal', backingBytes: GiB },
    want: {
      dataBytes: 1073668096,
      metaOffsetBytes: 1073668096,
      metaBytes: 73728,
      superblockOffsets: [1073668096, 1073672192],
      alOffsetBytes: 1073676288,
      bitmapOffsetBytes: 1073709056,
      bitmapBytes: 32768,
      bitmapBits: 262126,
    },
  },
  {
    name: 'internal, size not 4 KiB aligned: the tail is unused',
    spec: { kind: 'internal', backingBytes: GiB + 1000 },
    want: { metaBytes: 77824, metaOffsetBytes: GiB - 77824, dataBytes: GiB - 77824, bitmapBytes: 36864 },
  },
  {
    name: 'internal, the smallest accepted disk',
    spec: { kind: 'internal', backingBytes: 1093632 },
    want: { dataBytes: MiB, metaBytes: 45056, metaOffsetBytes: MiB, bitmapBytes: 4096 },
  },
  {
    name: 'internal 2 TiB',
    spec: { kind: 'internal', backingBytes: 2 * TiB },
    want: { metaBytes: 64 * MiB + 40960, dataBytes: 2 * TiB - 64 * MiB - 40960 },
  },
  {
    name: 'external flexible: the whole backing disk is data',
    spec: { kind: 'external-flexible', backingBytes: 10 * GiB, metaDeviceBytes: GiB },
    want: {
      dataBytes: 10 * GiB,
      metaOffsetBytes: 0,
      superblockOffsets: [0, 4096],
      alOffsetBytes: 8192,
      bitmapOffsetBytes: 40960,
      bitmapBytes: 327680,
      metaBytes: 368640,
    },
  },
  {
    name: 'external indexed [2]: slot at 256 MiB',
    spec: { kind: 'external-indexed', backingBytes: 10 * GiB, metaDeviceBytes: 512 * MiB, index: 2 },
    want: {
      dataBytes: 10 * GiB,
      metaOffsetBytes: 256 * MiB,
      metaBytes: 128 * MiB,
      alOffsetBytes: 256 * MiB + 8192,
      bitmapBytes: 128 * MiB - 40960,
    },
  },
  {
    name: 'external indexed caps the data at what a 128 MiB slot covers',
    spec: { kind: 'external-indexed', backingBytes: 8 * TiB, metaDeviceBytes: 128 * MiB, index: 0 },
    want: { dataBytes: (128 * MiB - 40960) * 8 * 4096 },
  },
];

for (const c of cases) {
  test(`layout: ${c.name}`, () => {
    const l = computeLayout(c.spec);
    for (const [key, value] of Object.entries(c.want))
      assert.deepEqual(l[key as keyof MetaLayout], value, key);
    checkInvariants(l);
  });
}

const refusals: { name: string; spec: MetaDiskSpec; code: string; mentions: string[] }[] = [
  {
    name: 'internal disk too small names both sizes',
    spec: { kind: 'internal', backingBytes: MiB },
    code: 'META_TOO_SMALL',
    mentions: ['1048576 bytes', '1093632 bytes'],
  },
  {
    name: 'empty disk',
    spec: { kind: 'internal', backingBytes: 0 },
    code: 'META_TOO_SMALL',
    mentions: ['0 bytes'],
  },
  {
    name: 'flexible meta-disk too small for the bitmap',
    spec: { kind: 'external-flexible', backingBytes: 10 * GiB, metaDeviceBytes: 64 * 1024 },
    code: 'META_TOO_SMALL',
    mentions: ['65536 bytes', '368640 bytes'],
  },
  {
    name: 'flexible backing disk under the minimum',
    spec: { kind: 'external-flexible', backingBytes: 4096, metaDeviceBytes: GiB },
    code: 'META_TOO_SMALL',
    mentions: ['4096 bytes'],
  },
  {
    name: 'indexed slot beyond the meta-disk',
    spec: { kind: 'external-indexed', backingBytes: GiB, metaDeviceBytes: 512 * MiB, index: 4 },
    code: 'META_TOO_SMALL',
    mentions: ['[4]', '671088640 bytes'],
  },
  {
    name: 'negative index',
    spec: { kind: 'external-indexed', backingBytes: GiB, metaDeviceBytes: GiB, index: -1 },
    code: 'META_BAD_LAYOUT',
    mentions: [],
  },
  {
    name: 'fractional size',
    spec: { kind: 'internal', backingBytes: 1.5 },
    code: 'META_BAD_LAYOUT',
    mentions: [],
  },
];

for (const r of refusals) {
  test(`layout refuses: ${r.name}`, () => {
    assert.throws(
      () => computeLayout(r.spec),
      (e: unknown) => {
        assert.ok(e instanceof MetaError);
        assert.equal(e.code, r.code);
        for (const m of r.mentions) assert.ok(e.message.includes(m), `${e.message} mentions ${m}`);
        return true;
      },
    );
  });
}

test('layout property: any internal size is refused or fits', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 50 }), (backingBytes) => {
      try {
        checkInvariants(computeLayout({ kind: 'internal', backingBytes }));
      } catch (e) {
        assert.ok(e instanceof MetaError && e.code === 'META_TOO_SMALL');
      }
    }),
    { seed: 0x1a70, numRuns: 2000 },
  );
});

test('layout property: external layouts never overlap their slot', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 46 }),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: 0, max: 16 }),
      (backingBytes, metaDeviceBytes, index) => {
        for (const spec of [
          { kind: 'external-flexible' as const, backingBytes, metaDeviceBytes },
          { kind: 'external-indexed' as const, backingBytes, metaDeviceBytes, index },
        ]) {
          try {
            const l = computeLayout(spec);
            checkInvariants(l);
            if (spec.kind === 'external-indexed') assert.equal(l.metaOffsetBytes, index * 128 * MiB);
          } catch (e) {
            assert.ok(e instanceof MetaError && e.code === 'META_TOO_SMALL');
          }
        }
      },
    ),
    { seed: 0x1a71, numRuns: 1000 },
  );
});

test('extentsOf: a write names every 4 MiB extent it touches', () => {
  assert.deepEqual(extentsOf(0, 4096), [0]);
  assert.deepEqual(extentsOf(4 * MiB - 4096, 8192), [0, 1]);
  assert.deepEqual(extentsOf(4 * MiB, 4 * MiB), [1]);
  assert.deepEqual(extentsOf(10 * MiB, 0), []);
});
