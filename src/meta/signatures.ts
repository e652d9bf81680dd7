// Recognizes what else may already live on a disk (a filesystem, swap, LVM, a
// partition table), so that create-md asks before overwriting it. Pure: looks only
// at the first bytes of the device, which the caller reads.

/** Read this much from the start of the device: the btrfs superblock ends at 64 KiB + 4 KiB. */
export const signatureScanBytes = 68 * 1024;

export type FilesystemSignature = 'ext2/3/4' | 'xfs' | 'btrfs' | 'swap' | 'LVM2 PV' | 'partition table';

interface Probe {
  readonly name: FilesystemSignature;
  readonly offset: number;
  readonly magic: Uint8Array;
}

const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

/** Offsets and magics as libblkid knows them. */
const probes: readonly Probe[] = [
  // ext superblock at 1024, s_magic 0xEF53 little-endian at +56.
  { name: 'ext2/3/4', offset: 1080, magic: new Uint8Array([0x53, 0xef]) },
  { name: 'xfs', offset: 0, magic: ascii('XFSB') },
  // btrfs primary superblock at 64 KiB, magic at +64.
  { name: 'btrfs', offset: 65600, magic: ascii('_BHRfS_M') },
  // mkswap writes the magic in the last 10 bytes of the first page (4 KiB pages).
  { name: 'swap', offset: 4086, magic: ascii('SWAPSPACE2') },
  { name: 'swap', offset: 4086, magic: ascii('SWAP-SPACE') },
  // The LVM label may sit in any of the first four sectors.
  ...[0, 512, 1024, 1536].map((offset) => ({ name: 'LVM2 PV' as const, offset, magic: ascii('LABELONE') })),
  // An MBR (or GPT's protective MBR, or a boot sector) ends with 0x55 0xAA.
  { name: 'partition table', offset: 510, magic: new Uint8Array([0x55, 0xaa]) },
];

function matches(buf: Uint8Array, p: Probe): boolean {
  if (buf.length < p.offset + p.magic.length) return false;
  for (let i = 0; i < p.magic.length; i++) if (buf[p.offset + i] !== p.magic[i]) return false;
  return true;
}

/** The first known signature in `buf` (the device's first bytes), or undefined. */
export function hasFilesystemSignature(buf: Uint8Array): FilesystemSignature | undefined {
  return probes.find((p) => matches(buf, p))?.name;
}
