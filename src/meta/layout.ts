// Where tandem's metadata lives: for a backing disk and a meta-disk choice, the
// offsets of the two superblock copies, the activity-log ring and the bitmap, and
// how many bytes of the backing disk remain for data. Pure arithmetic, no I/O.
import assert from 'node:assert/strict';
import { formatBytes, MetaError } from './errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Every metadata area starts and ends on this boundary (page size, the usual physical block). */
export const metaAlignBytes = 4 * KiB;
export const superblockBytes = 4 * KiB;
/** Two superblock copies, written alternately, so a torn write leaves the other one good. */
export const superblockCopies = 2;
export const alTransactionBytes = 4 * KiB;
/** DRBD's default activity log is 32 KiB: eight 4 KiB transaction blocks. */
export const alRingBlocks = 8;
/** One bitmap bit covers this much data (DRBD: BM_BLOCK_SIZE). */
export const bitmapBytesPerBit = 4 * KiB;
/** One activity-log extent covers this much data (DRBD: AL_EXTENT_SIZE). */
export const alExtentBytes = 4 * MiB;
/** DRBD's `meta-disk PATH [N]` slot size: metadata of volume N at N * 128 MiB. */
export const indexedSlotBytes = 128 * MiB;
/** A device smaller than this for data is a mistake, not a configuration. */
export const dataBytesMin = 1 * MiB;

/** The sizes before the bitmap: superblock copies and the AL ring. */
const fixedMetaBytes = superblockCopies * superblockBytes + alRingBlocks * alTransactionBytes;

export type MetaDiskSpec =
  /** `meta-disk internal`: metadata at the end of the backing disk. */
  | { readonly kind: 'internal'; readonly backingBytes: number }
  /** `meta-disk PATH`: the whole device PATH holds this volume's metadata. */
  | { readonly kind: 'external-flexible'; readonly backingBytes: number; readonly metaDeviceBytes: number }
  /** `meta-disk PATH [N]`: DRBD's fixed 128 MiB slot N of PATH. */
  | {
      readonly kind: 'external-indexed';
      readonly backingBytes: number;
      readonly metaDeviceBytes: number;
      readonly index: number;
    };

export interface MetaLayout {
  readonly kind: MetaDiskSpec['kind'];
  /** Size of the backing (data) device. */
  readonly backingBytes: number;
  /** Size of the device that holds the metadata (the backing device itself when internal). */
  readonly metaDeviceBytes: number;
  /** Usable data bytes, from offset 0 of the backing device; a multiple of 4 KiB. */
  readonly dataBytes: number;
  /** The metadata area on the meta device: [metaOffsetBytes, metaOffsetBytes + metaBytes). */
  readonly metaOffsetBytes: number;
  readonly metaBytes: number;
  /** Absolute offsets on the meta device of superblock copy A and B. */
  readonly superblockOffsets: readonly [number, number];
  readonly alOffsetBytes: number;
  readonly alBlocks: number;
  readonly bitmapOffsetBytes: number;
  /** The on-disk bitmap area: whole 4 KiB pages. */
  readonly bitmapBytes: number;
  /** One bit per 4 KiB of data. */
  readonly bitmapBits: number;
}

function alignDown(n: number, align: number): number {
  return n - (n % align);
}

function alignUp(n: number, align: number): number {
  return alignDown(n + align - 1, align);
}

/** Bytes of on-disk bitmap (whole pages) that cover `dataBytes`. */
export function bitmapAreaBytes(dataBytes: number): number {
  const bits = Math.ceil(dataBytes / bitmapBytesPerBit);
  return alignUp(Math.ceil(bits / 8), metaAlignBytes);
}

function checkSize(name: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new MetaError('META_BAD_LAYOUT', `${name} must be a non-negative integer, got ${bytes}`);
  }
}

function tooSmall(what: string, haveBytes: number, needBytes: number): MetaError {
  return new MetaError(
    'META_TOO_SMALL',
    `${what} has ${formatBytes(haveBytes)}; tandem needs at least ${formatBytes(needBytes)} ` +
      `(data + metadata, at least ${formatBytes(dataBytesMin)} of data)`,
  );
}

/** Areas in the order they sit in the meta area: superblocks, AL ring, bitmap. */
function areas(
  spec: MetaDiskSpec,
  metaDeviceBytes: number,
  dataBytes: number,
  metaOffsetBytes: number,
  bitmapBytes: number,
): MetaLayout {
  const alOffsetBytes = metaOffsetBytes + superblockCopies * superblockBytes;
  const layout: MetaLayout = {
    kind: spec.kind,
    backingBytes: spec.backingBytes,
    metaDeviceBytes,
    dataBytes,
    metaOffsetBytes,
    metaBytes: fixedMetaBytes + bitmapBytes,
    superblockOffsets: [metaOffsetBytes, metaOffsetBytes + superblockBytes],
    alOffsetBytes,
    alBlocks: alRingBlocks,
    bitmapOffsetBytes: alOffsetBytes + alRingBlocks * alTransactionBytes,
    bitmapBytes,
    bitmapBits: Math.ceil(dataBytes / bitmapBytesPerBit),
  };
  assertLayout(layout);
  return layout;
}

/** The invariants every layout holds; a failure is a bug in this file. */
export function assertLayout(l: MetaLayout): void {
  assert.ok(l.dataBytes >= dataBytesMin && l.dataBytes % metaAlignBytes === 0);
  assert.ok(l.dataBytes <= l.backingBytes);
  assert.ok(l.metaOffsetBytes % metaAlignBytes === 0 && l.metaBytes % metaAlignBytes === 0);
  assert.ok(l.metaOffsetBytes + l.metaBytes <= l.metaDeviceBytes);
  assert.ok(l.bitmapBytes * 8 >= l.bitmapBits);
  assert.equal(l.bitmapOffsetBytes + l.bitmapBytes, l.metaOffsetBytes + l.metaBytes);
  // Internal: data and metadata share the device and must not overlap.
  if (l.kind === 'internal') assert.ok(l.dataBytes + l.metaBytes <= l.backingBytes);
  if (l.kind === 'internal') assert.ok(l.dataBytes <= l.metaOffsetBytes);
}

/** Computes the layout; throws MetaError META_TOO_SMALL / META_BAD_LAYOUT for impossible input. */
export function computeLayout(spec: MetaDiskSpec): MetaLayout {
  checkSize('backing size', spec.backingBytes);
  switch (spec.kind) {
    case 'internal': {
      // The bitmap covers the whole backing disk (a little more than the data):
      // sizing it for data alone would make the sizes depend on each other.
      const bitmapBytes = bitmapAreaBytes(spec.backingBytes);
      const metaBytes = fixedMetaBytes + bitmapBytes;
      const needBytes = dataBytesMin + metaBytes;
      const usableBytes = alignDown(spec.backingBytes, metaAlignBytes);
      if (usableBytes < needBytes) throw tooSmall('backing disk', spec.backingBytes, needBytes);
      // Metadata at the end, like DRBD's internal meta-disk: the data keeps offset 0.
      const metaOffsetBytes = usableBytes - metaBytes;
      return areas(spec, spec.backingBytes, metaOffsetBytes, metaOffsetBytes, bitmapBytes);
    }
    case 'external-flexible': {
      checkSize('meta-disk size', spec.metaDeviceBytes);
      const dataBytes = alignDown(spec.backingBytes, metaAlignBytes);
      if (dataBytes < dataBytesMin) throw tooSmall('backing disk', spec.backingBytes, dataBytesMin);
      const bitmapBytes = bitmapAreaBytes(dataBytes);
      const metaBytes = fixedMetaBytes + bitmapBytes;
      if (spec.metaDeviceBytes < metaBytes) throw tooSmall('meta-disk', spec.metaDeviceBytes, metaBytes);
      return areas(spec, spec.metaDeviceBytes, dataBytes, 0, bitmapBytes);
    }
    case 'external-indexed': {
      checkSize('meta-disk size', spec.metaDeviceBytes);
      checkSize('meta-disk index', spec.index);
      const slotStart = spec.index * indexedSlotBytes;
      if (spec.metaDeviceBytes < slotStart + indexedSlotBytes) {
        throw new MetaError(
          'META_TOO_SMALL',
          `meta-disk has ${formatBytes(spec.metaDeviceBytes)}; slot [${spec.index}] needs ` +
            `${formatBytes(slotStart + indexedSlotBytes)}`,
        );
      }
      // A 128 MiB slot has a fixed bitmap, so it covers at most ~4 TiB of data:
      // like DRBD, a larger backing disk is used only up to that size.
      const bitmapMaxBytes = indexedSlotBytes - fixedMetaBytes;
      const dataMaxBytes = bitmapMaxBytes * 8 * bitmapBytesPerBit;
      const dataBytes = Math.min(alignDown(spec.backingBytes, metaAlignBytes), dataMaxBytes);
      if (dataBytes < dataBytesMin) throw tooSmall('backing disk', spec.backingBytes, dataBytesMin);
      return areas(spec, spec.metaDeviceBytes, dataBytes, slotStart, bitmapMaxBytes);
    }
  }
}

/** The AL extent that holds data byte `offsetBytes`. */
export function extentOf(offsetBytes: number): number {
  return Math.floor(offsetBytes / alExtentBytes);
}

/** The AL extents a write of [offsetBytes, offsetBytes + lengthBytes) touches, in order. */
export function extentsOf(offsetBytes: number, lengthBytes: number): number[] {
  if (lengthBytes <= 0) return [];
  const out: number[] = [];
  const last = extentOf(offsetBytes + lengthBytes - 1);
  for (let e = extentOf(offsetBytes); e <= last; e++) out.push(e);
  return out;
}
