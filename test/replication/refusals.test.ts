// What the decoder refuses, case by case: each bad header or payload gives a ProtocolError
// with its stable code and the offset (in the frame) of the field at fault. Cases start
// from a valid frame and change a few bytes, so each one tests exactly one rule.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ProtocolError } from '../../src/replication/errors.js';
import { checkHeader, decodeFrame, encodeFrame, type Frame } from '../../src/replication/frames.js';
import {
  frameHeaderBytes,
  negotiateVersion,
  protocolVersionMax,
  protocolVersionMin,
  readHeader,
} from '../../src/replication/header.js';

const hello: Frame = {
  kind: 'Hello',
  volume: 0,
  body: {
    protocolMin: 1,
    protocolMax: 1,
    features: 0,
    nodeName: 'alice',
    resourceName: 'r0',
    tandemVersion: '',
    authAlg: '',
  },
};
const data: Frame = {
  kind: 'Data',
  volume: 0,
  body: { seq: 1, epoch: 1, offset: 0, length: 4, flags: 0, payload: Buffer.from('abcd') },
};
const bitmapRle: Frame = {
  kind: 'Bitmap',
  volume: 0,
  body: {
    startBit: 0,
    bitCount: 300,
    encoding: 'rle',
    firstDirty: false,
    data: Buffer.from('0ac8015a', 'hex'),
  },
};
const bitmapPlain: Frame = {
  kind: 'Bitmap',
  volume: 0,
  body: { startBit: 0, bitCount: 12, encoding: 'plain', firstDirty: false, data: Buffer.from('ff0f', 'hex') },
};
const P = frameHeaderBytes;

/** The frame's bytes with `hex` written at `at`; the header's length is fixed up to the new size. */
function patched(frame: Frame, at: number, hex: string, opts: { resize?: boolean } = {}): Buffer {
  const b = encodeFrame(frame);
  const patch = Buffer.from(hex, 'hex');
  const out = opts.resize ? Buffer.concat([b.subarray(0, at), patch]) : Buffer.from(b);
  if (!opts.resize) patch.copy(out, at);
  if (opts.resize) out.writeUInt32BE(out.length - P, 12);
  return out;
}

/** `frame` with `tail` appended to its payload (length fixed up). */
function appended(frame: Frame, hex: string): Buffer {
  const b = Buffer.concat([encodeFrame(frame), Buffer.from(hex, 'hex')]);
  b.writeUInt32BE(b.length - P, 12);
  return b;
}

interface Case {
  readonly name: string;
  readonly bytes: Buffer;
  readonly code: string;
  readonly offset: number;
}

const cases: readonly Case[] = [
  // Header
  {
    name: 'header shorter than 16 bytes',
    bytes: encodeFrame(hello).subarray(0, 10),
    code: 'REPL_BAD_LENGTH',
    offset: 10,
  },
  { name: 'another magic', bytes: patched(hello, 0, '44524244'), code: 'REPL_BAD_MAGIC', offset: 0 },
  { name: 'frame format 2', bytes: patched(hello, 4, '02'), code: 'REPL_BAD_VERSION', offset: 4 },
  { name: 'frame format 0', bytes: patched(hello, 4, '00'), code: 'REPL_BAD_VERSION', offset: 4 },
  { name: 'unknown header flag', bytes: patched(hello, 5, '02'), code: 'REPL_BAD_FIELD', offset: 5 },
  {
    name: 'optional flag on a known type',
    bytes: patched(hello, 5, '01'),
    code: 'REPL_BAD_FIELD',
    offset: 5,
  },
  { name: 'reserved header bytes', bytes: patched(hello, 10, '0001'), code: 'REPL_BAD_FIELD', offset: 10 },
  { name: 'unknown type', bytes: patched(hello, 6, '7f00'), code: 'REPL_UNKNOWN_TYPE', offset: 6 },
  {
    name: 'unknown optional type, too long to skip',
    bytes: patched(hello, 5, '01 7f00 0000 0000 00010001'.replaceAll(' ', '')),
    code: 'REPL_TOO_LONG',
    offset: 12,
  },
  { name: 'Hello on volume 1', bytes: patched(hello, 8, '0001'), code: 'REPL_BAD_FIELD', offset: 8 },
  {
    name: 'Ping with a payload',
    bytes: appended({ kind: 'Ping', volume: 0, body: {} }, '00'),
    code: 'REPL_TOO_LONG',
    offset: 12,
  },
  { name: 'Data claiming 4 GiB', bytes: patched(data, 12, 'ffffffff'), code: 'REPL_TOO_LONG', offset: 12 },
  {
    name: 'Data shorter than its fields',
    bytes: patched(data, 12, '0000001f'),
    code: 'REPL_BAD_LENGTH',
    offset: 12,
  },
  {
    name: 'frame longer than its header says',
    bytes: Buffer.concat([encodeFrame(hello), Buffer.from([0])]),
    code: 'REPL_BAD_LENGTH',
    offset: 12,
  },
  // Hello
  {
    name: 'Hello protocol range from 0',
    bytes: patched(hello, P, '0000'),
    code: 'REPL_BAD_FIELD',
    offset: P,
  },
  {
    name: 'Hello protocol min above max',
    bytes: patched(hello, P, '0002 0001'.replace(' ', '')),
    code: 'REPL_BAD_FIELD',
    offset: P,
  },
  {
    name: 'Hello empty node name',
    bytes: patched(hello, P + 8, '00 02 7230 00 00'.replaceAll(' ', ''), { resize: true }),
    code: 'REPL_BAD_FIELD',
    offset: P + 8,
  },
  {
    name: 'Hello node name not UTF-8',
    bytes: patched(hello, P + 9, 'ff'),
    code: 'REPL_BAD_FIELD',
    offset: P + 9,
  },
  {
    name: 'Hello string past the payload',
    bytes: patched(hello, P + 8, '40'),
    code: 'REPL_BAD_LENGTH',
    offset: P + 9,
  },
  {
    name: 'Hello bytes after the last field',
    bytes: appended(hello, '00'),
    code: 'REPL_BAD_LENGTH',
    offset: P + 19,
  },
  // Enumerations, booleans, flags, ranges
  {
    name: 'AuthResult unknown verdict',
    bytes: patched({ kind: 'AuthResult', volume: 0, body: { result: 'ok' } }, P, '09'),
    code: 'REPL_BAD_FIELD',
    offset: P,
  },
  {
    name: 'after-sb-1pri with a 0pri-only policy',
    bytes: patched(reportParams(), P + 2, '03'),
    code: 'REPL_BAD_FIELD',
    offset: P + 2,
  },
  {
    name: 'ReportParams boolean 2',
    bytes: patched(reportParams(), P + 4, '02'),
    code: 'REPL_BAD_FIELD',
    offset: P + 4,
  },
  {
    name: 'ReportParams unknown conn flag',
    bytes: patched(reportParams(), P + 5, '80'),
    code: 'REPL_BAD_FIELD',
    offset: P + 5,
  },
  {
    name: 'ReportUuids unknown flag',
    bytes: patched(reportUuids(), P + 40, '00000100'),
    code: 'REPL_BAD_FIELD',
    offset: P + 40,
  },
  {
    name: 'ReportUuids dirty bits beyond 2^53',
    bytes: patched(reportUuids(), P + 32, '0020000000000000'),
    code: 'REPL_BAD_FIELD',
    offset: P + 32,
  },
  {
    name: 'ReportSizes usable above backing',
    bytes: patched(reportSizes(), P + 8, '0000000000100001'),
    code: 'REPL_BAD_FIELD',
    offset: P + 8,
  },
  {
    name: 'ReportSizes io max 0',
    bytes: patched(reportSizes(), P + 32, '00000000'),
    code: 'REPL_BAD_FIELD',
    offset: P + 32,
  },
  {
    name: 'ReportState disk state 9',
    bytes: patched(reportState(), P + 2, '09'),
    code: 'REPL_BAD_FIELD',
    offset: P + 2,
  },
  {
    name: 'ReportState conn state 24',
    bytes: patched(reportState(), P + 4, '18'),
    code: 'REPL_BAD_FIELD',
    offset: P + 4,
  },
  {
    name: 'Data asking for both acks',
    bytes: patched(data, P + 28, '00000030'),
    code: 'REPL_BAD_FIELD',
    offset: P + 28,
  },
  {
    name: 'Data unknown flag',
    bytes: patched(data, P + 28, '00000080'),
    code: 'REPL_BAD_FIELD',
    offset: P + 28,
  },
  {
    name: 'Data of length 0',
    bytes: patched(data, P + 24, '00000000'),
    code: 'REPL_BAD_FIELD',
    offset: P + 24,
  },
  {
    name: 'Data longer than 32 MiB',
    bytes: patched(data, P + 24, '02000001'),
    code: 'REPL_BAD_FIELD',
    offset: P + 24,
  },
  {
    name: 'Data payload shorter than its length',
    bytes: patched(data, P + 24, '00000005'),
    code: 'REPL_BAD_LENGTH',
    offset: P + 32,
  },
  {
    name: 'Data discard with a payload',
    bytes: patched(data, P + 28, '00000004'),
    code: 'REPL_BAD_LENGTH',
    offset: P + 32,
  },
  {
    name: 'Data range beyond 2^53',
    bytes: patched(data, P + 16, '001fffffffffffff'),
    code: 'REPL_BAD_FIELD',
    offset: P + 24,
  },
  {
    name: 'WriteAck range backwards',
    bytes: patched(
      { kind: 'WriteAck', volume: 0, body: { firstSeq: 5, lastSeq: 5 } },
      P + 8,
      '0000000000000004',
    ),
    code: 'REPL_BAD_FIELD',
    offset: P + 8,
  },
  {
    name: 'VerifyResult boolean 2',
    bytes: patched(
      { kind: 'VerifyResult', volume: 0, body: { offset: 0, length: 1, inSync: true } },
      P + 12,
      '02',
    ),
    code: 'REPL_BAD_FIELD',
    offset: P + 12,
  },
  {
    name: 'digest shorter than 4 bytes',
    bytes: patched(
      { kind: 'VerifyReply', volume: 0, body: { offset: 0, length: 1, digest: Buffer.alloc(4) } },
      P + 12,
      '03',
      { resize: false },
    ),
    code: 'REPL_BAD_FIELD',
    offset: P + 12,
  },
  // Bitmap
  {
    name: 'Bitmap of 0 bits',
    bytes: patched(bitmapRle, P + 8, '00000000'),
    code: 'REPL_BAD_FIELD',
    offset: P + 8,
  },
  {
    name: 'Bitmap unknown encoding',
    bytes: patched(bitmapRle, P + 12, '02'),
    code: 'REPL_BAD_FIELD',
    offset: P + 12,
  },
  {
    name: 'Bitmap run of length 0',
    bytes: patched(bitmapRle, P + 14, '00'),
    code: 'REPL_BAD_FIELD',
    offset: P + 14,
  },
  {
    name: 'Bitmap run in a longer form than needed',
    bytes: patched(bitmapRle, P + 14, '8a00', { resize: true }),
    code: 'REPL_BAD_FIELD',
    offset: P + 14,
  },
  {
    name: 'Bitmap run cut off',
    bytes: patched(bitmapRle, P + 14, '0ac8', { resize: true }),
    code: 'REPL_BAD_FIELD',
    offset: P + 15,
  },
  {
    name: 'Bitmap runs short of bitCount',
    bytes: patched(bitmapRle, P + 8, '0000012d'),
    code: 'REPL_BAD_LENGTH',
    offset: P + 18,
  },
  {
    name: 'Bitmap runs beyond bitCount',
    bytes: patched(bitmapRle, P + 8, '0000012b'),
    code: 'REPL_BAD_FIELD',
    offset: P + 17,
  },
  {
    name: 'Bitmap plain with firstDirty',
    bytes: patched(bitmapPlain, P + 13, '01'),
    code: 'REPL_BAD_FIELD',
    offset: P + 13,
  },
  {
    name: 'Bitmap plain bits past bitCount',
    bytes: patched(bitmapPlain, P + 15, '1f'),
    code: 'REPL_BAD_FIELD',
    offset: P + 15,
  },
  {
    name: 'Bitmap plain of the wrong size',
    bytes: patched(bitmapPlain, P + 8, '00000011'),
    code: 'REPL_BAD_LENGTH',
    offset: P + 16,
  },
];

function reportParams(): Frame {
  return {
    kind: 'ReportParams',
    volume: 0,
    body: {
      protocol: 'C',
      afterSb0pri: 'disconnect',
      afterSb1pri: 'disconnect',
      afterSb2pri: 'disconnect',
      allowTwoPrimaries: false,
      connFlags: 0,
      integrityAlg: '',
      csumsAlg: '',
      verifyAlg: '',
    },
  };
}

function reportUuids(): Frame {
  return {
    kind: 'ReportUuids',
    volume: 0,
    body: { current: 4n, bitmap: 0n, history: [0n, 0n], dirtyBits: 0, flags: 0 },
  };
}

function reportSizes(): Frame {
  return {
    kind: 'ReportSizes',
    volume: 0,
    body: {
      backingBytes: 0x100000,
      usableBytes: 0x100000,
      requestedBytes: 0,
      currentBytes: 0,
      ioBytesMax: 1,
      flags: 0,
    },
  };
}

function reportState(): Frame {
  return {
    kind: 'ReportState',
    volume: 0,
    body: {
      role: 'Secondary',
      peerRole: 'Unknown',
      disk: 'UpToDate',
      peerDisk: 'DUnknown',
      conn: 'Connected',
      flags: 0,
    },
  };
}

for (const c of cases) {
  test(`refused: ${c.name}`, () => {
    try {
      decodeFrame(c.bytes);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${e}`);
      assert.equal(e.code, c.code, e.message);
      assert.equal(e.offset, c.offset, e.message);
      return;
    }
    assert.equal('ok', c.code, 'decoded without error');
  });
}

test('an auth alg name with a space or control byte is refused', () => {
  const b = encodeFrame({ ...hello, body: { ...hello.body, authAlg: 'ab' } } as Frame);
  for (const bad of ['20', '09', '7f', 'c3']) {
    const copy = Buffer.from(b);
    Buffer.from(bad, 'hex').copy(copy, copy.length - 1);
    assert.throws(() => decodeFrame(copy), { code: 'REPL_BAD_FIELD', offset: copy.length - 1 });
  }
});

test('a header is judged before its payload exists', () => {
  // Only the 16 header bytes of a Data frame claiming 4 GiB: refused right there.
  const head = patched(data, 12, 'ffffffff').subarray(0, P);
  assert.throws(() => checkHeader(readHeader(head)), { code: 'REPL_TOO_LONG', offset: 12, frameType: 0x20 });
  // An unknown type flagged optional is to be skipped, within its own bound.
  const optional = patched(hello, 5, '01 7f00 0000 0000 00000010'.replaceAll(' ', '')).subarray(0, P);
  assert.deepEqual(checkHeader(readHeader(optional)), { action: 'skip' });
});

test('protocol versions: the highest both speak, or none', () => {
  assert.equal(negotiateVersion({ min: 1, max: 3 }, { min: 2, max: 5 }), 3);
  assert.equal(negotiateVersion({ min: 1, max: 3 }, { min: 1, max: 1 }), 1);
  assert.equal(negotiateVersion({ min: 2, max: 3 }, { min: 4, max: 5 }), undefined);
  assert.equal(negotiateVersion({ min: 4, max: 5 }, { min: 2, max: 3 }), undefined);
  const ours = { min: protocolVersionMin, max: protocolVersionMax };
  assert.equal(negotiateVersion(ours, ours), protocolVersionMax);
});
