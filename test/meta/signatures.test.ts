// Recognition of what may already be on a disk before create-md overwrites it.
import assert from 'node:assert/strict';
import test from 'node:test';
import { hasFilesystemSignature, signatureScanBytes } from '../../src/meta/store.js';

function image(at: number, bytes: number[] | string): Buffer {
  const b = Buffer.alloc(signatureScanBytes);
  (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes)).copy(b, at);
  return b;
}

const cases: [string, Buffer, string | undefined][] = [
  ['blank disk', Buffer.alloc(signatureScanBytes), undefined],
  ['ext4 (0xEF53 little-endian at 1080)', image(1080, [0x53, 0xef]), 'ext2/3/4'],
  ['ext magic byte-swapped is not ext', image(1080, [0xef, 0x53]), undefined],
  ['xfs', image(0, 'XFSB'), 'xfs'],
  ['btrfs', image(65600, '_BHRfS_M'), 'btrfs'],
  ['swap', image(4086, 'SWAPSPACE2'), 'swap'],
  ['old swap', image(4086, 'SWAP-SPACE'), 'swap'],
  ['LVM label in sector 1', image(512, 'LABELONE'), 'LVM2 PV'],
  ['LVM label in sector 3', image(1536, 'LABELONE'), 'LVM2 PV'],
  ['MBR / GPT protective MBR', image(510, [0x55, 0xaa]), 'partition table'],
  ['btrfs magic beyond a short buffer', image(65600, '_BHRfS_M').subarray(0, 65000), undefined],
  ['empty buffer', Buffer.alloc(0), undefined],
];

for (const [name, buf, want] of cases) {
  test(`signature: ${name}`, () => {
    assert.equal(hasFilesystemSignature(buf), want);
  });
}

test('signature scan covers the btrfs superblock', () => {
  assert.ok(signatureScanBytes >= 65600 + 8);
});
