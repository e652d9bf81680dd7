// The superblock codec: exact bytes of a fixed superblock, round trips, refusal of
// newer formats, A/B selection by sequence, torn copies, and fuzzing of decode.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { crc32c } from '../../src/meta/crc32c.js';
import { MetaError } from '../../src/meta/errors.js';
import {
  decodeSuperblock,
  encodeSuperblock,
  flagsFromBits,
  noFlags,
  pickSuperblock,
  type Superblock,
  superblockFields,
} from '../../src/meta/superblock.js';

export const sample: Superblock = {
  seq: 7,
  dataBytes: 1073668096,
  bitmapBytesPerBit: 4096,
  alExtentBytes: 4194304,
  alSlots: 1237,
  alRingBlocks: 8,
  metaId: 0x0123456789abcdefn,
  currentUuid: 0xa1b2c3d4e5f60718n,
  bitmapUuid: 0x1111222233334444n,
  historyUuids: [0x5555666677778888n, 0x99990000aaaabbbbn],
  flags: { ...noFlags, consistent: true, wasUpToDate: true, cleanShutdown: true },
  nodeId: 1,
};

/** The first 88 bytes of `sample`, big-endian, field by field. */
const goldenHead = [
  '544e444d', // magic "TNDM"
  '0001', // format version 1
  '0000', // reserved
  '0000000000000007', // seq
  '000000003ffee000', // data bytes 1073668096
  '00001000', // bitmap bytes per bit 4096
  '00400000', // AL extent bytes 4 MiB
  '000004d5', // al-extents 1237
  '00000008', // AL ring blocks
  '0123456789abcdef', // meta id
  'a1b2c3d4e5f60718', // current UUID
  '1111222233334444', // bitmap UUID
  '5555666677778888', // history[0]
  '99990000aaaabbbb', // history[1]
  '00000091', // flags: consistent | wasUpToDate | cleanShutdown
  '00000001', // node id
].join('');
const goldenCrc = '6bf2bf28';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof MetaError, `not a MetaError: ${e}`);
    return e.code;
  }
  return 'ok';
}

test('superblock golden bytes', () => {
  const b = encodeSuperblock(sample);
  assert.equal(b.length, 4096);
  assert.equal(b.subarray(0, superblockFields.end).toString('hex'), goldenHead);
  assert.ok(b.subarray(superblockFields.end, superblockFields.crc).every((x) => x === 0));
  assert.equal(b.subarray(superblockFields.crc).toString('hex'), goldenCrc);
});

test('superblock golden bytes decode to the sample', () => {
  const b = Buffer.alloc(4096);
  Buffer.from(goldenHead, 'hex').copy(b, 0);
  Buffer.from(goldenCrc, 'hex').copy(b, 4092);
  assert.deepEqual(decodeSuperblock(b), sample);
});

const arbSuperblock: fc.Arbitrary<Superblock> = fc
  .record({
    seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    dataBytes: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    bitmapBytesPerBit: fc.constant(4096),
    alExtentBytes: fc.constant(4194304),
    alSlots: fc.integer({ min: 7, max: 5754 }),
    alRingBlocks: fc.constant(8),
    metaId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    currentUuid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    bitmapUuid: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    historyUuids: fc.tuple(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    ),
    flags: fc.integer({ min: 0, max: 0xff }).map((bits) => flagsFromBits(bits & ~(1 << 2))),
    nodeId: fc.integer({ min: 0, max: 31 }),
  })
  .map((r) => ({ ...r })); // fast-check's records have a null prototype

test('superblock round trip', () => {
  fc.assert(
    fc.property(arbSuperblock, (sb) => {
      assert.deepEqual(decodeSuperblock(encodeSuperblock(sb)), sb);
    }),
    { seed: 0x5b01, numRuns: 500 },
  );
});

test('superblock refuses a newer format version before anything else', () => {
  const b = encodeSuperblock(sample);
  b.writeUInt16BE(2, superblockFields.version);
  assert.throws(
    () => decodeSuperblock(b),
    (e: unknown) => e instanceof MetaError && e.code === 'META_NEWER_VERSION' && e.offset === 4,
  );
  // A newer copy is refused even when the other copy is valid: reading the old one would roll back.
  assert.throws(() => pickSuperblock(encodeSuperblock(sample), b), { code: 'META_NEWER_VERSION' });
});

test('superblock decode errors carry codes and offsets', () => {
  const good = encodeSuperblock(sample);
  const mutate = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  const cases: [string, Uint8Array, string, number][] = [
    ['short', good.subarray(0, 100), 'META_SHORT', 100],
    ['zeroes', Buffer.alloc(4096), 'META_BAD_MAGIC', 0],
    ['version 0', mutate((b) => b.writeUInt16BE(0, 4)), 'META_BAD_VERSION', 4],
    ['flipped bit', mutate((b) => (b[200]! ^= 1)), 'META_BAD_CHECKSUM', 4092],
  ];
  for (const [name, bytes, code, offset] of cases) {
    assert.throws(
      () => decodeSuperblock(bytes),
      (e: unknown) => e instanceof MetaError && e.code === code && e.offset === offset,
      name,
    );
  }
});

test('superblock field checks run after the checksum (re-signed bad fields)', () => {
  const resign = (f: (b: Buffer) => void) => {
    // Build the block by hand so the checksum is right but a field is not.
    const b = encodeSuperblock(sample);
    f(b);
    b.writeUInt32BE(crc32c(b.subarray(0, 4092)), 4092);
    return b;
  };
  const cases: [string, (b: Buffer) => void, number][] = [
    ['al-extents 6', (b) => b.writeUInt32BE(6, superblockFields.alSlots), superblockFields.alSlots],
    ['unknown flag bit', (b) => b.writeUInt32BE(1 << 20, superblockFields.flags), superblockFields.flags],
    ['node id 32', (b) => b.writeUInt32BE(32, superblockFields.nodeId), superblockFields.nodeId],
    ['bitmap granularity 512', (b) => b.writeUInt32BE(512, superblockFields.bitmapBytesPerBit), 24],
    ['seq beyond 2^53', (b) => b.writeBigUInt64BE(2n ** 60n, superblockFields.seq), superblockFields.seq],
  ];
  for (const [name, f, offset] of cases) {
    assert.throws(
      () => decodeSuperblock(resign(f)),
      (e: unknown) => e instanceof MetaError && e.code === 'META_BAD_FIELD' && e.offset === offset,
      name,
    );
  }
});

test('pickSuperblock takes the valid copy with the higher sequence', () => {
  const older = encodeSuperblock({ ...sample, seq: 10, nodeId: 0 });
  const newer = encodeSuperblock({ ...sample, seq: 11, nodeId: 1 });
  assert.equal(pickSuperblock(older, newer).sb.seq, 11);
  assert.equal(pickSuperblock(older, newer).copy, 1);
  assert.equal(pickSuperblock(newer, older).copy, 0);
  assert.equal(pickSuperblock(older, Buffer.alloc(4096)).sb.seq, 10);
  assert.throws(() => pickSuperblock(Buffer.alloc(4096), Buffer.alloc(4096)), { code: 'META_NOT_FOUND' });
});

test('a torn new copy (first half new, second half old) leaves the old copy current', () => {
  const old = encodeSuperblock({ ...sample, seq: 20 });
  const previous = encodeSuperblock({ ...sample, seq: 19, currentUuid: 1n });
  const next = encodeSuperblock({ ...sample, seq: 21, currentUuid: 2n });
  for (const tornAt of [512, 2048, 4092]) {
    const torn = Buffer.concat([next.subarray(0, tornAt), previous.subarray(tornAt)]);
    // Copy B (seq 21's slot) was being rewritten over seq 19 when the power failed.
    const picked = pickSuperblock(old, torn);
    assert.equal(picked.sb.seq, 20, `torn at ${tornAt}`);
    assert.equal(picked.copies[1].ok, false);
  }
});

test('fuzz: decode of random bytes is a value or a MetaError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 4200 }), (bytes) => {
      const code = codeOf(() => decodeSuperblock(bytes));
      assert.ok(code !== 'ok' || bytes.length >= 4096);
    }),
    { seed: 0x5b02, numRuns: 300 },
  );
});

test('fuzz: every mutation of a valid block is detected', () => {
  const good = encodeSuperblock(sample);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 1, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      (edits) => {
        const b = Buffer.from(good);
        for (const [at, x] of edits) b[at]! ^= x;
        const code = codeOf(() => decodeSuperblock(b));
        // Several edits can cancel out; otherwise CRC32C (or an earlier check) must catch them.
        if (b.equals(good)) assert.equal(code, 'ok');
        else assert.notEqual(code, 'ok');
      },
    ),
    { seed: 0x5b03, numRuns: 1000 },
  );
});
