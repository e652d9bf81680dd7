// Golden bytes of every frame type: a fixed frame, its exact bytes written out field by
// field (header: magic "TNDP", format 1, flags, type, volume, reserved, payload length),
// checked both ways. A change here is a wire-format change: it needs a protocol version.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import {
  decodeFrame,
  encodeFrame,
  encodeFrameParts,
  type Frame,
  frameKinds,
  frameTable,
} from '../../src/replication/frames.js';
import { frameHeaderBytes, headerFields } from '../../src/replication/header.js';
import { repoRoot } from '../helpers/paths.js';

interface Golden {
  readonly name: string;
  readonly frame: Frame;
  /** Hex, spaces for readability only. */
  readonly bytes: readonly string[];
}

const challenge = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
const sha1Digest = Buffer.from('00112233445566778899aabbccddeeff00112233', 'hex');

const goldens: readonly Golden[] = [
  {
    name: 'Hello',
    frame: {
      kind: 'Hello',
      volume: 0,
      body: {
        protocolMin: 1,
        protocolMax: 1,
        features: 3,
        nodeName: 'alice',
        resourceName: 'r0',
        tandemVersion: '0.1.0',
        authAlg: 'sha1',
      },
    },
    bytes: [
      '544e4450 01 00 0001 0000 0000 0000001c', // header: Hello, 28 bytes
      '0001 0001', // protocol 1..1
      '00000003', // features: discard | writeZeroes
      '05 616c696365', // "alice"
      '02 7230', // "r0"
      '05 302e312e30', // "0.1.0"
      '04 73686131', // "sha1"
    ],
  },
  {
    name: 'AuthChallenge',
    frame: { kind: 'AuthChallenge', volume: 0, body: { challenge } },
    bytes: ['544e4450 01 00 0002 0000 0000 00000040', challenge.toString('hex')],
  },
  {
    name: 'AuthResponse',
    frame: { kind: 'AuthResponse', volume: 0, body: { response: Buffer.alloc(20, 0xab) } },
    bytes: ['544e4450 01 00 0003 0000 0000 00000014', 'ab'.repeat(20)],
  },
  {
    name: 'AuthResult',
    frame: { kind: 'AuthResult', volume: 0, body: { result: 'wrong-response' } },
    bytes: ['544e4450 01 00 0004 0000 0000 00000001', '01'],
  },
  {
    name: 'Ping',
    frame: { kind: 'Ping', volume: 0, body: {} },
    bytes: ['544e4450 01 00 0005 0000 0000 00000000'],
  },
  {
    name: 'PingAck',
    frame: { kind: 'PingAck', volume: 0, body: {} },
    bytes: ['544e4450 01 00 0006 0000 0000 00000000'],
  },
  {
    name: 'Disconnect',
    frame: { kind: 'Disconnect', volume: 0, body: { reason: 'split-brain', message: 'bye' } },
    bytes: ['544e4450 01 00 0007 0000 0000 00000005', '05', '03 627965'],
  },
  {
    name: 'ReportParams',
    frame: {
      kind: 'ReportParams',
      volume: 0,
      body: {
        protocol: 'C',
        afterSb0pri: 'discard-zero-changes',
        afterSb1pri: 'consensus',
        afterSb2pri: 'disconnect',
        allowTwoPrimaries: false,
        connFlags: 1,
        integrityAlg: '',
        csumsAlg: 'md5',
        verifyAlg: 'sha256',
      },
    },
    bytes: [
      '544e4450 01 00 0010 0000 0000 00000012',
      '03', // protocol C
      '03 07 00', // after-sb: discard-zero-changes, consensus, disconnect (DRBD's numbers)
      '00', // allow-two-primaries no
      '01', // discard-my-data
      '00', // integrity: none
      '03 6d6435', // csums "md5"
      '06 736861323536', // verify "sha256"
    ],
  },
  {
    name: 'ReportUuids',
    frame: {
      kind: 'ReportUuids',
      volume: 1,
      body: {
        current: 0x0123456789abcdefn,
        bitmap: 0n,
        history: [0x1111111111111111n, 0x2222222222222222n],
        dirtyBits: 4096,
        flags: 6,
      },
    },
    bytes: [
      '544e4450 01 00 0011 0001 0000 0000002c', // volume 1, 44 bytes
      '0123456789abcdef', // current
      '0000000000000000', // bitmap
      '1111111111111111 2222222222222222', // history
      '0000000000001000', // dirty bits
      '00000006', // crashedPrimary | inconsistent
    ],
  },
  {
    name: 'ReportSizes',
    frame: {
      kind: 'ReportSizes',
      volume: 1,
      body: {
        backingBytes: 1073741824,
        usableBytes: 1073668096,
        requestedBytes: 0,
        currentBytes: 1073668096,
        ioBytesMax: 33554432,
        flags: 0,
      },
    },
    bytes: [
      '544e4450 01 00 0012 0001 0000 00000028',
      '0000000040000000', // backing 1 GiB
      '000000003ffee000', // usable
      '0000000000000000', // requested: none
      '000000003ffee000', // current
      '02000000', // io max 32 MiB
      '00000000', // flags
    ],
  },
  {
    name: 'ReportState',
    frame: {
      kind: 'ReportState',
      volume: 2,
      body: {
        role: 'Primary',
        peerRole: 'Secondary',
        disk: 'UpToDate',
        peerDisk: 'Inconsistent',
        conn: 'SyncSource',
        flags: 2,
      },
    },
    bytes: ['544e4450 01 00 0013 0002 0000 00000006', '01 02', '08 04', '10', '02'],
  },
  {
    name: 'StateChangeRequest',
    frame: {
      kind: 'StateChangeRequest',
      volume: 0,
      body: { txId: 7, phase: 'prepare', change: 'promote', flags: 1 },
    },
    bytes: ['544e4450 01 00 0014 0000 0000 00000007', '00000007', '01', '00', '01'],
  },
  {
    name: 'StateChangeReply',
    frame: { kind: 'StateChangeReply', volume: 0, body: { txId: 7, result: -1 } },
    bytes: ['544e4450 01 00 0015 0000 0000 00000008', '00000007', 'ffffffff'],
  },
  {
    name: 'Bitmap (rle)',
    frame: {
      kind: 'Bitmap',
      volume: 0,
      body: {
        startBit: 0,
        bitCount: 300,
        encoding: 'rle',
        firstDirty: false,
        data: Buffer.from('0ac8015a', 'hex'),
      },
    },
    bytes: [
      '544e4450 01 00 0016 0000 0000 00000012',
      '0000000000000000', // start bit
      '0000012c', // 300 bits
      '01 00', // rle, first run clean
      '0a c801 5a', // runs 10 clean, 200 dirty, 90 clean
    ],
  },
  {
    name: 'Bitmap (plain)',
    frame: {
      kind: 'Bitmap',
      volume: 4,
      body: {
        startBit: 8,
        bitCount: 12,
        encoding: 'plain',
        firstDirty: false,
        data: Buffer.from('ff0f', 'hex'),
      },
    },
    bytes: ['544e4450 01 00 0016 0004 0000 00000010', '0000000000000008', '0000000c', '00 00', 'ff 0f'],
  },
  {
    name: 'SyncUuid',
    frame: { kind: 'SyncUuid', volume: 1, body: { uuid: 0xfedcba9876543210n } },
    bytes: ['544e4450 01 00 0017 0001 0000 00000008', 'fedcba9876543210'],
  },
  {
    name: 'Data (write)',
    frame: {
      kind: 'Data',
      volume: 0,
      body: { seq: 1, epoch: 5, offset: 4096, length: 8, flags: 0x21, payload: Buffer.from('tandem!\n') },
    },
    bytes: [
      '544e4450 01 00 0020 0000 0000 00000028',
      '0000000000000001', // seq
      '0000000000000005', // epoch
      '0000000000001000', // offset
      '00000008', // length
      '00000021', // fua | ackWritten
      '74616e64656d210a', // "tandem!\n"
    ],
  },
  {
    name: 'Data (discard)',
    frame: {
      kind: 'Data',
      volume: 3,
      body: { seq: 2, epoch: 5, offset: 0, length: 1048576, flags: 0x2c, payload: Buffer.alloc(0) },
    },
    bytes: [
      '544e4450 01 00 0020 0003 0000 00000020',
      '0000000000000002 0000000000000005 0000000000000000',
      '00100000', // 1 MiB
      '0000002c', // discard | zeroes | ackWritten, no payload
    ],
  },
  {
    name: 'RecvAck',
    frame: { kind: 'RecvAck', volume: 0, body: { firstSeq: 1, lastSeq: 16 } },
    bytes: ['544e4450 01 00 0021 0000 0000 00000010', '0000000000000001', '0000000000000010'],
  },
  {
    name: 'WriteAck',
    frame: { kind: 'WriteAck', volume: 0, body: { firstSeq: 17, lastSeq: 17 } },
    bytes: ['544e4450 01 00 0022 0000 0000 00000010', '0000000000000011', '0000000000000011'],
  },
  {
    name: 'NegAck',
    frame: { kind: 'NegAck', volume: 0, body: { firstSeq: 3, lastSeq: 4, error: 5 } },
    bytes: ['544e4450 01 00 0023 0000 0000 00000014', '0000000000000003 0000000000000004', '00000005'],
  },
  {
    name: 'Barrier',
    frame: { kind: 'Barrier', volume: 0, body: { epoch: 5 } },
    bytes: ['544e4450 01 00 0024 0000 0000 00000008', '0000000000000005'],
  },
  {
    name: 'BarrierAck',
    frame: { kind: 'BarrierAck', volume: 0, body: { epoch: 5, writes: 2 } },
    bytes: ['544e4450 01 00 0025 0000 0000 0000000c', '0000000000000005', '00000002'],
  },
  {
    name: 'Flush',
    frame: { kind: 'Flush', volume: 0, body: { flushId: 9 } },
    bytes: ['544e4450 01 00 0026 0000 0000 00000008', '0000000000000009'],
  },
  {
    name: 'FlushAck',
    frame: { kind: 'FlushAck', volume: 0, body: { flushId: 9 } },
    bytes: ['544e4450 01 00 0027 0000 0000 00000008', '0000000000000009'],
  },
  {
    name: 'OutOfSync',
    frame: { kind: 'OutOfSync', volume: 3, body: { offset: 65536, length: 4096 } },
    bytes: ['544e4450 01 00 0028 0003 0000 0000000c', '0000000000010000', '00001000'],
  },
  {
    name: 'ResyncRequest',
    frame: { kind: 'ResyncRequest', volume: 0, body: { offset: 2 ** 40, length: 131072 } },
    bytes: ['544e4450 01 00 0030 0000 0000 0000000c', '0000010000000000', '00020000'],
  },
  {
    name: 'ResyncChecksumRequest',
    frame: {
      kind: 'ResyncChecksumRequest',
      volume: 0,
      body: { offset: 0, length: 4096, digest: Buffer.from('deadbeef', 'hex') },
    },
    bytes: ['544e4450 01 00 0031 0000 0000 00000011', '0000000000000000', '00001000', '04 deadbeef'],
  },
  {
    name: 'ResyncData',
    frame: {
      kind: 'ResyncData',
      volume: 0,
      body: { offset: 8192, length: 4, flags: 0, payload: Buffer.from('01020304', 'hex') },
    },
    bytes: ['544e4450 01 00 0032 0000 0000 00000014', '0000000000002000', '00000004', '00000000', '01020304'],
  },
  {
    name: 'ResyncData (all zeroes)',
    frame: {
      kind: 'ResyncData',
      volume: 1,
      body: { offset: 0, length: 1048576, flags: 1, payload: Buffer.alloc(0) },
    },
    bytes: ['544e4450 01 00 0032 0001 0000 00000010', '0000000000000000', '00100000', '00000001'],
  },
  {
    name: 'ResyncInSync',
    frame: { kind: 'ResyncInSync', volume: 0, body: { offset: 0, length: 4096 } },
    bytes: ['544e4450 01 00 0033 0000 0000 0000000c', '0000000000000000', '00001000'],
  },
  {
    name: 'ResyncAck',
    frame: { kind: 'ResyncAck', volume: 0, body: { offset: 4096, length: 4096 } },
    bytes: ['544e4450 01 00 0034 0000 0000 0000000c', '0000000000001000', '00001000'],
  },
  {
    name: 'ResyncFailed',
    frame: { kind: 'ResyncFailed', volume: 0, body: { offset: 0, length: 4096, error: 5 } },
    bytes: ['544e4450 01 00 0035 0000 0000 00000010', '0000000000000000', '00001000', '00000005'],
  },
  {
    name: 'VerifyRequest',
    frame: { kind: 'VerifyRequest', volume: 0, body: { offset: 0, length: 262144 } },
    bytes: ['544e4450 01 00 0038 0000 0000 0000000c', '0000000000000000', '00040000'],
  },
  {
    name: 'VerifyReply',
    frame: { kind: 'VerifyReply', volume: 0, body: { offset: 0, length: 262144, digest: sha1Digest } },
    bytes: [
      '544e4450 01 00 0039 0000 0000 00000021',
      '0000000000000000',
      '00040000',
      '14',
      sha1Digest.toString('hex'),
    ],
  },
  {
    name: 'VerifyResult',
    frame: { kind: 'VerifyResult', volume: 0, body: { offset: 0, length: 262144, inSync: false } },
    bytes: ['544e4450 01 00 003a 0000 0000 0000000d', '0000000000000000', '00040000', '00'],
  },
];

const hexOf = (g: Golden) => g.bytes.join('').replaceAll(' ', '');

test('the header layout is 16 bytes, fields in order', () => {
  assert.equal(headerFields.end, frameHeaderBytes);
  assert.deepEqual(Object.values(headerFields), [0, 4, 5, 6, 8, 10, 12, 16]);
});

test('every frame kind has a golden sample', () => {
  const covered = new Set(goldens.map((g) => g.frame.kind));
  assert.deepEqual(
    frameKinds.filter((k) => !covered.has(k)),
    [],
  );
});

for (const g of goldens) {
  test(`golden bytes: ${g.name}`, () => {
    const hex = hexOf(g);
    assert.equal(encodeFrame(g.frame).toString('hex'), hex);
    assert.deepEqual(decodeFrame(Buffer.from(hex, 'hex')), g.frame);
    // The zero-copy encoding yields the same bytes in parts.
    assert.equal(Buffer.concat(encodeFrameParts(g.frame)).toString('hex'), hex);
  });
}

test('PROTOCOL.md lists every frame type with its number, scope and payload bounds', () => {
  const text = readFileSync(join(repoRoot, 'src/replication/PROTOCOL.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length >= 6 && /^0x[0-9a-f]+$/.test(cells[2] ?? '')) rows.set(cells[1]!, cells);
  }
  const bound = (n: number) => (n >= 1024 * 1024 ? `32 MiB+${n - 32 * 1024 * 1024}` : String(n));
  for (const kind of frameKinds) {
    const spec = frameTable[kind];
    const row = rows.get(kind);
    assert.ok(row, `${kind} missing`);
    assert.equal(Number(row[2]), spec.type, kind);
    assert.equal(row[3], spec.scope === 'connection' ? 'C' : 'V', kind);
    const { payloadBytesMin: min, payloadBytesMax: max } = spec.codec;
    assert.equal(row[5], min === max ? String(min) : `${bound(min)}..${bound(max)}`, kind);
  }
  assert.equal(rows.size, frameKinds.length);
});
