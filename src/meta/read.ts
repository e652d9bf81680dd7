// Reading tandem's metadata from a device without changing it: for dump-md, for
// create-md's "is something already here?" check, and as the first step of opening.
import { type AlReplay, replayActivityLog } from './activity-log.js';
import { Bitmap, bitmapPageBytes, bitsPerPage } from './bitmap.js';
import { MetaError } from './errors.js';
import { alTransactionBytes, type MetaLayout, superblockBytes } from './layout.js';
import { type PickResult, pickSuperblock, type Superblock, superblockMagic } from './superblock.js';

/** The interface the readers need: BlockStorage's read. */
export interface MetaReader {
  read(buf: Uint8Array, offset: number): Promise<void>;
}

/** Large areas (the bitmap) are read in pieces of at most this size. */
export const metaReadBytesMax = 1024 * 1024;

export interface MetaSnapshot {
  readonly layout: MetaLayout;
  readonly superblock: Superblock;
  /** The copy the superblock came from (0 = A, 1 = B). */
  readonly copy: 0 | 1;
  readonly al: AlReplay;
  readonly bitmap: Bitmap;
}

async function readCopies(storage: MetaReader, layout: MetaLayout): Promise<[Buffer, Buffer]> {
  const a = Buffer.alloc(superblockBytes);
  const b = Buffer.alloc(superblockBytes);
  await storage.read(a, layout.superblockOffsets[0]);
  await storage.read(b, layout.superblockOffsets[1]);
  return [a, b];
}

export async function readSuperblocks(storage: MetaReader, layout: MetaLayout): Promise<PickResult> {
  return pickSuperblock(...(await readCopies(storage, layout)));
}

export async function readAlRing(storage: MetaReader, layout: MetaLayout): Promise<Buffer[]> {
  const ring = Buffer.alloc(layout.alBlocks * alTransactionBytes);
  await storage.read(ring, layout.alOffsetBytes);
  const blocks: Buffer[] = [];
  for (let i = 0; i < layout.alBlocks; i++)
    blocks.push(ring.subarray(i * alTransactionBytes, (i + 1) * alTransactionBytes));
  return blocks;
}

export async function readBitmap(storage: MetaReader, layout: MetaLayout): Promise<Bitmap> {
  const area = Buffer.alloc(Math.ceil(layout.bitmapBits / bitsPerPage) * bitmapPageBytes);
  for (let done = 0; done < area.length; done += metaReadBytesMax) {
    const piece = area.subarray(done, Math.min(area.length, done + metaReadBytesMax));
    await storage.read(piece, layout.bitmapOffsetBytes + done);
  }
  return Bitmap.decode(layout.dataBytes, area);
}

/** The superblock must describe the device as the layout sees it now. */
export function checkGeometry(sb: Superblock, layout: MetaLayout): void {
  if (sb.dataBytes !== layout.dataBytes) {
    throw new MetaError(
      'META_GEOMETRY_MISMATCH',
      `metadata is for ${sb.dataBytes} data bytes, the device now gives ${layout.dataBytes} ` +
        '(the disk was resized or the meta-disk setting changed)',
    );
  }
}

/** Everything on disk, verified, with the activity log replayed; writes nothing. */
export async function readMeta(storage: MetaReader, layout: MetaLayout): Promise<MetaSnapshot> {
  const picked = await readSuperblocks(storage, layout);
  checkGeometry(picked.sb, layout);
  const al = replayActivityLog(await readAlRing(storage, layout), picked.sb.metaId);
  const bitmap = await readBitmap(storage, layout);
  return { layout, superblock: picked.sb, copy: picked.copy, al, bitmap };
}

export type ExistingMeta =
  /** Neither copy carries tandem's magic. */
  | { readonly kind: 'none' }
  | { readonly kind: 'tandem'; readonly superblock: Superblock }
  /** tandem's magic, but no valid copy (torn, corrupted, or newer than this tandem). */
  | { readonly kind: 'damaged'; readonly error: MetaError };

/** Whether the device already holds tandem metadata, for create-md's confirmation. */
export async function detectExisting(storage: MetaReader, layout: MetaLayout): Promise<ExistingMeta> {
  const copies = await readCopies(storage, layout);
  try {
    return { kind: 'tandem', superblock: pickSuperblock(...copies).sb };
  } catch (e) {
    if (!(e instanceof MetaError)) throw e;
    if (copies.every((c) => c.readUInt32BE(0) !== superblockMagic)) return { kind: 'none' };
    return { kind: 'damaged', error: e };
  }
}
