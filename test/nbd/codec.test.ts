import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import {
  decodeInfoRequest,
  decodeOptionHeader,
  decodeRequest,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeOptionReply,
  encodeRequest,
  encodeSimpleReply,
  encodeStructuredError,
  encodeStructuredReadHeader,
  NbdProtocolError,
} from '../../src/nbd/codec.js';

const hex = (b: Buffer) => b.toString('hex');

test('golden bytes of the server side of the handshake', () => {
  assert.equal(hex(encodeGreeting(3)), '4e42444d41474943' + '49484156454f5054' + '0003');
  assert.equal(
    hex(encodeOptionReply(7, 0x80000006, Buffer.from('no'))),
    '0003e889045565a9' + '00000007' + '80000006' + '00000002' + '6e6f',
  );
  assert.equal(hex(encodeInfoExport(1 << 20, 0x014d)), '0000' + '0000000000100000' + '014d');
  assert.equal(hex(encodeInfoBlockSize(1, 4096, 33554432)), '0003' + '00000001' + '00001000' + '02000000');
  assert.equal(encodeExportNameReply(512, 1, false).length, 134);
  assert.equal(hex(encodeExportNameReply(512, 1, true)), '0000000000000200' + '0001');
});

test('golden bytes of requests and replies', () => {
  const req = { flags: 1, type: 1, cookie: 0x1122334455667788n, offset: 4096, length: 512 };
  const bytes = encodeRequest(req);
  assert.equal(
    hex(bytes),
    '25609513' + '0001' + '0001' + '1122334455667788' + '0000000000001000' + '00000200',
  );
  assert.deepEqual(decodeRequest(bytes), req);
  assert.equal(hex(encodeSimpleReply(5n, 22)), '67446698' + '00000016' + '0000000000000005');
  assert.equal(
    hex(encodeStructuredReadHeader(5n, 4096, 512)),
    '668e33ef' + '0001' + '0001' + '0000000000000005' + '00000208' + '0000000000001000',
  );
  assert.equal(
    hex(encodeStructuredError(5n, 5, '')),
    '668e33ef' + '0001' + '8001' + '0000000000000005' + '00000006' + '00000005' + '0000',
  );
});

test('request round trip for any header', () => {
  fc.assert(
    fc.property(
      fc.record({
        flags: fc.integer({ min: 0, max: 0xffff }),
        type: fc.integer({ min: 0, max: 0xffff }),
        cookie: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        length: fc.integer({ min: 0, max: 0xffffffff }),
      }),
      (r) => assert.deepEqual(decodeRequest(encodeRequest(r)), { ...r }),
    ),
  );
});

test('offsets beyond 2^53 decode as out of range, not as a wrapped number', () => {
  const b = encodeRequest({ flags: 0, type: 0, cookie: 1n, offset: 0, length: 1 });
  b.writeBigUInt64BE(0xffffffffffffff00n, 16);
  assert.equal(decodeRequest(b).offset, Number.POSITIVE_INFINITY);
  // At the edge: 2^53 - 1 is the last exact offset, 2^53 the first out of range.
  b.writeBigUInt64BE(BigInt(Number.MAX_SAFE_INTEGER), 16);
  assert.equal(decodeRequest(b).offset, Number.MAX_SAFE_INTEGER);
  b.writeBigUInt64BE(1n << 53n, 16);
  assert.equal(decodeRequest(b).offset, Number.POSITIVE_INFINITY);
  // Any 64-bit offset: exact below 2^53, out of range from there.
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (o) => {
      b.writeBigUInt64BE(o, 16);
      const want = o <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(o) : Number.POSITIVE_INFINITY;
      assert.equal(decodeRequest(b).offset, want);
    }),
  );
});

test('decoders give a value or an NbdProtocolError for any bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const b = Buffer.from(bytes);
      for (const decode of [decodeRequest, decodeOptionHeader, decodeInfoRequest]) {
        try {
          decode(b);
        } catch (e) {
          assert.ok(e instanceof NbdProtocolError, String(e));
        }
      }
    }),
    { numRuns: 5000 },
  );
});

test('INFO/GO data: lengths are checked against the option data', () => {
  const ok = Buffer.from('00000002' + '7230' + '0002' + '0001' + '0003', 'hex');
  assert.deepEqual(decodeInfoRequest(ok), { name: 'r0', infos: [1, 3] });
  const lying = Buffer.from('0000ffff' + '7230' + '0000', 'hex');
  assert.throws(
    () => decodeInfoRequest(lying),
    (e: unknown) => e instanceof NbdProtocolError && e.code === 'NBD_BAD_OPTION',
  );
  const extra = Buffer.from('00000002' + '7230' + '0001' + '0001' + 'ff', 'hex');
  assert.throws(() => decodeInfoRequest(extra), NbdProtocolError);
});
