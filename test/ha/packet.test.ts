// The tandem-ha packet codec and its replay guard: round trips of every packet type, golden
// bytes, each refusal with its code and offset, fuzzing (decodePacket returns or throws
// HaPacketError, nothing else), MAC verification, and the replay window against a model.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import test from 'node:test';
import fc from 'fast-check';
import { type AuthMethod, authMethods, parseAuthkeys } from '../../src/config/authkeys.js';
import {
  bodyBytesMax,
  type DecodedPacket,
  decodePacket,
  encodePacket,
  type GroupReport,
  groupStates,
  type HaPacket,
  HaPacketError,
  type HeartbeatPacket,
  macBytesOf,
  nodeStates,
  type PacketKey,
  packetBytesLargest,
  packetBytesMax,
  packetMagic,
  packetVersion,
  type ReplyPacket,
  type RequestPacket,
  requestKinds,
  verifyPacket,
} from '../../src/ha/packet.js';
import { ReplayGuard, type ReplayVerdict } from '../../src/ha/replay.js';
import { mutate, mutationArb } from '../helpers/byte-mutate.js';

/** Fixed, so a failure reproduces; fast-check prints the counterexample. */
const fuzzSeed = 0x4a7b31;

/** The code and offset of the HaPacketError `fn` throws, or 'ok'; any other exception fails. */
function refusal(fn: () => unknown): { code: string; offset: number } | 'ok' {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HaPacketError, `not an HaPacketError: ${e instanceof Error ? e.stack : e}`);
    return { code: e.code, offset: e.offset };
  }
  return 'ok';
}

/** The packet's fields without the seal, to compare with what was encoded. */
function fieldsOf(d: DecodedPacket): HaPacket {
  const { keyIndex: _k, method: _m, mac: _mac, signed: _s, ...rest } = d;
  return rest as HaPacket;
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

// ---------------------------------------------------------------------------------------
// Arbitraries

const nodeName = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'),
  minLength: 1,
  maxLength: 64,
});
/** Printable text with multi-byte characters, at most `maxChars` characters. */
const text = (minLength: number, maxChars: number) =>
  fc.string({
    unit: fc.constantFrom('a', 'Z', '0', ':', '/', ' ', ',', '.', 'é', '€', '\u00a0', '😀', '中'),
    minLength,
    maxLength: maxChars,
  });
const u64 = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const common = {
  cluster: text(1, 16),
  from: nodeName,
  to: fc.oneof(fc.constant(''), nodeName),
  generation: u64,
  seq: u64,
  timeMs: fc.maxSafeNat(),
};
const groupReport: fc.Arbitrary<GroupReport> = fc.record(
  { key: text(1, 30), state: fc.constantFrom(...groupStates.all) },
  { noNullPrototype: true },
);
const heartbeatArb: fc.Arbitrary<HeartbeatPacket> = fc.record(
  {
    type: fc.constant('heartbeat' as const),
    ...common,
    // ≤ 6 groups of ≤ 120-byte keys: always within the 1024-byte body.
    groups: fc.uniqueArray(groupReport, { selector: (g) => g.key, maxLength: 6 }),
    standbyRequested: fc.boolean(),
    view: fc.uniqueArray(
      fc.record(
        {
          name: nodeName,
          state: fc.constantFrom(...nodeStates.all),
          silentMs: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
          outdatePending: fc.boolean(),
        },
        { noNullPrototype: true },
      ),
      { selector: (n) => n.name, maxLength: 2 },
    ),
  },
  { noNullPrototype: true },
);
const requestArb: fc.Arbitrary<RequestPacket> = fc.record(
  {
    type: fc.constant('request' as const),
    ...common,
    kind: fc.constantFrom(...requestKinds.all),
    requestId: fc.integer({ min: 0, max: 0xffffffff }),
    resource: text(0, 60),
  },
  { noNullPrototype: true },
);
const replyArb: fc.Arbitrary<ReplyPacket> = fc.record(
  {
    type: fc.constant('reply' as const),
    ...common,
    requestId: fc.integer({ min: 0, max: 0xffffffff }),
    result: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    message: text(0, 50).filter((s) => utf8Bytes(s) <= 200),
  },
  { noNullPrototype: true },
);
const packetArb: fc.Arbitrary<HaPacket> = fc.oneof(heartbeatArb, requestArb, replyArb);
const keyArb: fc.Arbitrary<PacketKey> = fc
  .record(
    {
      index: fc.integer({ min: 0, max: 15 }),
      method: fc.constantFrom(...authMethods),
      secret: fc.string({ minLength: 1, maxLength: 40 }),
    },
    { noNullPrototype: true },
  )
  .map((k) => (k.method === 'crc' ? { ...k, secret: undefined } : k));

// ---------------------------------------------------------------------------------------
// Round trips

function roundTrip(p: HaPacket, key: PacketKey): void {
  const bytes = encodePacket(p, key);
  assert.ok(bytes.length <= packetBytesMax);
  const d = decodePacket(bytes);
  assert.deepEqual(fieldsOf(d), p);
  assert.equal(d.keyIndex, key.index);
  assert.equal(d.method, key.method);
  assert.equal(d.mac.length, macBytesOf[key.method]);
  assert.deepEqual(Buffer.from(d.signed), bytes.subarray(0, bytes.length - 3 - d.mac.length));
  assert.deepEqual(verifyPacket(d, [key]), { ok: true });
  // Canonical: the decoding encodes to the same bytes.
  assert.deepEqual(encodePacket(d, key), bytes);
}

for (const [name, arb] of [
  ['heartbeat', heartbeatArb],
  ['request', requestArb],
  ['reply', replyArb],
] as const) {
  test(`${name} packets round-trip under every method`, () => {
    fc.assert(
      fc.property(arb as fc.Arbitrary<HaPacket>, keyArb, (p, key) => roundTrip(p, key)),
      { seed: fuzzSeed, numRuns: 300 },
    );
  });
}

test('packets at every limit round-trip and stay within 1400 bytes', () => {
  const at = { cluster: 'c'.repeat(64), from: 'f'.repeat(64), to: 't'.repeat(64), generation: 2 ** 53 - 1 };
  const key: PacketKey = { index: 15, method: 'sha256', secret: 's' };
  // A body of exactly 1024 bytes: count + 3 groups of (1 + 255 + 1) + flags + an empty view
  // = 774 bytes, and one more group of 1 + 248 + 1.
  const groups: GroupReport[] = [0, 1, 2].map((i) => ({ key: `${i}`.repeat(255), state: 'failed' }));
  groups.push({ key: 'k'.repeat(248), state: 'running' });
  const p: HeartbeatPacket = {
    type: 'heartbeat',
    ...at,
    seq: 2 ** 53 - 1,
    timeMs: 2 ** 53 - 1,
    groups,
    standbyRequested: true,
    view: [],
  };
  const bytes = encodePacket(p, key);
  assert.equal(bytes.length, packetBytesLargest);
  assert.ok(bytes.length <= packetBytesMax);
  roundTrip(p, key);
  roundTrip(
    {
      type: 'reply',
      ...at,
      seq: 1,
      timeMs: 0,
      requestId: 0xffffffff,
      result: -(2 ** 31),
      message: 'm'.repeat(200),
    },
    key,
  );
  roundTrip(
    {
      type: 'request',
      ...at,
      seq: 1,
      timeMs: 0,
      requestId: 0,
      kind: 'release-groups',
      resource: 'r'.repeat(255),
    },
    key,
  );
});

// ---------------------------------------------------------------------------------------
// Golden bytes

const golden: HeartbeatPacket = {
  type: 'heartbeat',
  cluster: 'alice,bob',
  from: 'alice',
  to: '',
  generation: 1_700_000_000_000,
  seq: 7,
  timeMs: 1_700_000_000_123,
  groups: [
    { key: 'IPaddr::10.0.0.1', state: 'running' },
    { key: 'drbddisk::r0', state: 'released' },
  ],
  standbyRequested: true,
  view: [{ name: 'bob', state: 'up', silentMs: 200, outdatePending: true }],
};

/** The signed part of `golden`, field by field. */
const goldenSigned = [
  '54484142', // magic "THAB"
  '02', // version
  '01', // type heartbeat
  '0000', // flags
  '09 616c6963652c626f62', // cluster "alice,bob"
  '05 616c696365', // from "alice"
  '00', // to: everyone
  '0000018bcfe56800', // generation 1700000000000
  '0000000000000007', // seq 7
  '0000018bcfe5687b', // timeMs 1700000000123
  '002d', // body: 45 bytes
  '02', // 2 groups
  '10 4950616464723a3a31302e302e302e31 02', // "IPaddr::10.0.0.1" running
  '0c 647262646469736b3a3a7230 00', // "drbddisk::r0" released
  '01', // flags: standby requested
  '01', // view of 1 node
  '03 626f62 01 01 000000c8', // "bob" up, outdate pending, silent for 200 ms
];
const hex = (parts: readonly string[]) => Buffer.from(parts.join('').replaceAll(' ', ''), 'hex');

test('golden bytes: a heartbeat signed with sha256', () => {
  const signed = hex(goldenSigned);
  const mac = createHmac('sha256', 'k3y').update(signed).digest('hex');
  const expected = hex([...goldenSigned, '01', '04', '20', mac]); // key 1, sha256, 32 bytes
  const bytes = encodePacket(golden, { index: 1, method: 'sha256', secret: 'k3y' });
  assert.equal(bytes.toString('hex'), expected.toString('hex'));
  const d = decodePacket(expected);
  assert.deepEqual(fieldsOf(d), golden);
  assert.deepEqual(Buffer.from(d.signed), signed);
  // A plain Uint8Array (a view into a larger buffer) decodes the same.
  const larger = new Uint8Array(expected.length + 8);
  larger.set(expected, 5);
  assert.deepEqual(fieldsOf(decodePacket(larger.subarray(5, 5 + expected.length))), golden);
});

test('golden bytes: a heartbeat with crc (CRC32C of the signed bytes)', () => {
  const expected = hex([...goldenSigned, '00', '01', '04', '3e796cf4']); // key 0, crc, 4 bytes (checked with a bitwise CRC32C)
  const bytes = encodePacket(golden, { index: 0, method: 'crc', secret: undefined });
  assert.equal(bytes.toString('hex'), expected.toString('hex'));
  assert.deepEqual(verifyPacket(decodePacket(expected), [{ index: 0, method: 'crc', secret: undefined }]), {
    ok: true,
  });
});

test('keys from authkeys (secrets behind reveal()) sign and verify', () => {
  const { config } = parseAuthkeys('auth 2\n1 sha1 old-secret\n2 sha256 new-secret\n3 crc\n', 'authkeys');
  for (const key of config.keys) {
    const d = decodePacket(encodePacket(golden, key));
    assert.deepEqual(verifyPacket(d, config.keys), { ok: true }, `key ${key.index}`);
  }
  // A plain string secret makes the same MAC as the AuthSecret holding it.
  const d = decodePacket(encodePacket(golden, { index: 2, method: 'sha256', secret: 'new-secret' }));
  assert.deepEqual(verifyPacket(d, config.keys), { ok: true });
});

// ---------------------------------------------------------------------------------------
// Refusals

/** Offsets of the fields of an encoded packet, computed from its values. */
function layout(p: HaPacket, bytes: Buffer) {
  const cluster = 8;
  const from = cluster + 1 + utf8Bytes(p.cluster);
  const to = from + 1 + utf8Bytes(p.from);
  const generation = to + 1 + utf8Bytes(p.to);
  const seq = generation + 8;
  const timeMs = seq + 8;
  const bodyLength = timeMs + 8;
  const body = bodyLength + 2;
  const keyIndex = body + bytes.readUInt16BE(bodyLength);
  return { cluster, from, to, generation, seq, timeMs, bodyLength, body, keyIndex, end: bytes.length };
}

const crcKey: PacketKey = { index: 0, method: 'crc', secret: undefined };
const request: RequestPacket = {
  type: 'request',
  cluster: 'alice,bob',
  from: 'bob',
  to: 'alice',
  generation: 5,
  seq: 1,
  timeMs: 0,
  kind: 'takeover',
  requestId: 42,
  resource: 'r0',
};
const reply: ReplyPacket = {
  type: 'reply',
  cluster: 'alice,bob',
  from: 'alice',
  to: 'bob',
  generation: 9,
  seq: 3,
  timeMs: 0,
  requestId: 42,
  result: -5,
  message: 'busy',
};
const hb = encodePacket(golden, crcKey);
const hbAt = layout(golden, hb);
const rq = encodePacket(request, crcKey);
const rqAt = layout(request, rq);
const rp = encodePacket(reply, crcKey);
const rpAt = layout(reply, rp);

/** `bytes` with `hexPatch` written over it at `at`. */
function patched(bytes: Buffer, at: number, hexPatch: string): Buffer {
  const out = Buffer.from(bytes);
  Buffer.from(hexPatch.replaceAll(' ', ''), 'hex').copy(out, at);
  return out;
}

/** `bytes` with `hexInsert` inserted at `at`. */
function inserted(bytes: Buffer, at: number, hexInsert: string): Buffer {
  return Buffer.concat([bytes.subarray(0, at), Buffer.from(hexInsert, 'hex'), bytes.subarray(at)]);
}

/** The heartbeat with one more byte inside its body (the body length counts it). */
const hbBodyPlusOne = (() => {
  const b = inserted(hb, hbAt.keyIndex, '00');
  b.writeUInt16BE(b.readUInt16BE(hbAt.bodyLength) + 1, hbAt.bodyLength);
  return b;
})();

interface Case {
  readonly name: string;
  readonly bytes: Buffer;
  readonly code: string;
  readonly offset: number;
}

const cases: readonly Case[] = [
  // Size and framing
  { name: 'empty datagram', bytes: Buffer.alloc(0), code: 'HA_SHORT', offset: 0 },
  { name: 'shorter than the magic', bytes: hb.subarray(0, 3), code: 'HA_SHORT', offset: 0 },
  { name: 'ends inside the fixed header', bytes: hb.subarray(0, 7), code: 'HA_SHORT', offset: 6 },
  {
    name: 'ends inside generation',
    bytes: hb.subarray(0, hbAt.generation + 5),
    code: 'HA_SHORT',
    offset: hbAt.generation,
  },
  {
    name: 'ends inside the body',
    bytes: hb.subarray(0, hbAt.body + 10),
    code: 'HA_SHORT',
    offset: hbAt.bodyLength,
  },
  {
    name: 'ends before keyIndex',
    bytes: hb.subarray(0, hbAt.keyIndex),
    code: 'HA_SHORT',
    offset: hbAt.keyIndex,
  },
  {
    name: 'ends inside the MAC',
    bytes: hb.subarray(0, hb.length - 1),
    code: 'HA_SHORT',
    offset: hbAt.keyIndex + 2,
  },
  { name: 'over 1400 bytes', bytes: Buffer.alloc(1401), code: 'HA_TOO_LONG', offset: 1400 },
  {
    name: 'over 1400 bytes, valid packet in front',
    bytes: Buffer.concat([hb, Buffer.alloc(1401 - hb.length)]),
    code: 'HA_TOO_LONG',
    offset: 1400,
  },
  {
    name: 'trailing garbage',
    bytes: Buffer.concat([hb, Buffer.from('00', 'hex')]),
    code: 'HA_TOO_LONG',
    offset: hb.length,
  },
  // Header
  { name: 'bad magic', bytes: patched(hb, 0, '54484143'), code: 'HA_BAD_MAGIC', offset: 0 },
  { name: 'version 1 (no view)', bytes: patched(hb, 4, '01'), code: 'HA_BAD_VERSION', offset: 4 },
  { name: 'version 3', bytes: patched(hb, 4, '03'), code: 'HA_BAD_VERSION', offset: 4 },
  { name: 'version 0', bytes: patched(hb, 4, '00'), code: 'HA_BAD_VERSION', offset: 4 },
  { name: 'unknown type 4', bytes: patched(hb, 5, '04'), code: 'HA_BAD_FIELD', offset: 5 },
  { name: 'type 0', bytes: patched(hb, 5, '00'), code: 'HA_BAD_FIELD', offset: 5 },
  { name: 'unknown flag bit 0', bytes: patched(hb, 6, '0001'), code: 'HA_BAD_FIELD', offset: 6 },
  { name: 'unknown flag bit 15', bytes: patched(hb, 6, '8000'), code: 'HA_BAD_FIELD', offset: 6 },
  // Strings
  {
    name: 'cluster of 65 bytes',
    bytes: patched(hb, hbAt.cluster, '41'),
    code: 'HA_TOO_LONG',
    offset: hbAt.cluster,
  },
  {
    name: 'empty cluster',
    bytes: patched(hb, hbAt.cluster, '00'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.cluster,
  },
  { name: 'from of 65 bytes', bytes: patched(hb, hbAt.from, '41'), code: 'HA_TOO_LONG', offset: hbAt.from },
  { name: 'to of 255 bytes', bytes: patched(hb, hbAt.to, 'ff'), code: 'HA_TOO_LONG', offset: hbAt.to },
  { name: 'empty from', bytes: patched(hb, hbAt.from, '00'), code: 'HA_BAD_FIELD', offset: hbAt.from },
  {
    name: 'upper-case from',
    bytes: patched(hb, hbAt.from + 1, '41'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.from + 1,
  },
  { name: 'upper-case to', bytes: patched(rq, rqAt.to + 1, '41'), code: 'HA_BAD_FIELD', offset: rqAt.to + 1 },
  {
    name: 'invalid UTF-8 in cluster',
    bytes: patched(hb, hbAt.cluster + 1, 'ff'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.cluster + 1,
  },
  {
    name: 'cluster length past the end',
    bytes: patched(hb, hbAt.cluster, '40').subarray(0, 30),
    code: 'HA_SHORT',
    offset: hbAt.cluster,
  },
  // Counters
  {
    name: 'generation 0',
    bytes: patched(hb, hbAt.generation, '0000000000000000'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.generation,
  },
  {
    name: 'generation over 2^53 - 1',
    bytes: patched(hb, hbAt.generation, '00200000'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.generation,
  },
  { name: 'seq 0', bytes: patched(hb, hbAt.seq, '0000000000000000'), code: 'HA_BAD_FIELD', offset: hbAt.seq },
  {
    name: 'timeMs over 2^53 - 1',
    bytes: patched(hb, hbAt.timeMs, 'ffffffff'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.timeMs,
  },
  // Body framing
  {
    name: 'body of 1025 bytes',
    bytes: patched(hb, hbAt.bodyLength, '0401'),
    code: 'HA_TOO_LONG',
    offset: hbAt.bodyLength,
  },
  {
    name: 'body length beyond the packet',
    bytes: patched(hb, hbAt.bodyLength, '0100'),
    code: 'HA_SHORT',
    offset: hbAt.bodyLength,
  },
  {
    name: 'body one byte short of its fields',
    bytes: patched(hb, hbAt.bodyLength, '002c'),
    code: 'HA_SHORT',
    offset: hbAt.body + 41,
  },
  { name: 'a byte after the body fields', bytes: hbBodyPlusOne, code: 'HA_TOO_LONG', offset: hbAt.keyIndex },
  // Heartbeat body
  {
    name: 'unknown group state 6',
    bytes: patched(hb, hbAt.body + 18, '06'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.body + 18,
  },
  {
    name: 'empty group key',
    bytes: patched(hb, hbAt.body + 1, '00'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.body + 1,
  },
  {
    name: 'unknown heartbeat flag bit',
    bytes: patched(hb, hbAt.body + 33, '03'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.body + 33,
  },
  {
    name: 'a view of 9 nodes',
    bytes: patched(hb, hbAt.body + 34, '09'),
    code: 'HA_TOO_LONG',
    offset: hbAt.body + 34,
  },
  {
    name: 'a view node name in capitals',
    bytes: patched(hb, hbAt.body + 36, '42'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.body + 36,
  },
  {
    name: 'unknown view node state 3',
    bytes: patched(hb, hbAt.body + 39, '03'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.body + 39,
  },
  {
    name: 'unknown view flag bit',
    bytes: patched(hb, hbAt.body + 40, '03'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.body + 40,
  },
  // Request and reply bodies
  { name: 'request kind 0', bytes: patched(rq, rqAt.body, '00'), code: 'HA_BAD_FIELD', offset: rqAt.body },
  { name: 'request kind 5', bytes: patched(rq, rqAt.body, '05'), code: 'HA_BAD_FIELD', offset: rqAt.body },
  {
    name: 'request resource past the body',
    bytes: patched(rq, rqAt.body + 5, '03'),
    code: 'HA_SHORT',
    offset: rqAt.body + 5,
  },
  {
    name: 'reply message of 201 bytes',
    bytes: patched(rp, rpAt.body + 8, 'c9'),
    code: 'HA_TOO_LONG',
    offset: rpAt.body + 8,
  },
  {
    name: 'control character in a reply message',
    bytes: patched(rp, rpAt.body + 10, '0a'),
    code: 'HA_BAD_FIELD',
    offset: rpAt.body + 9,
  },
  // Seal
  {
    name: 'keyIndex 16',
    bytes: patched(hb, hbAt.keyIndex, '10'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.keyIndex,
  },
  {
    name: 'unknown method 5',
    bytes: patched(hb, hbAt.keyIndex + 1, '05'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.keyIndex + 1,
  },
  {
    name: 'method 0',
    bytes: patched(hb, hbAt.keyIndex + 1, '00'),
    code: 'HA_BAD_FIELD',
    offset: hbAt.keyIndex + 1,
  },
  {
    name: 'macLength not the method’s',
    bytes: patched(hb, hbAt.keyIndex + 2, '05'),
    code: 'HA_BAD_MAC',
    offset: hbAt.keyIndex + 2,
  },
  {
    name: 'method sha256 with a crc-sized MAC',
    bytes: patched(hb, hbAt.keyIndex + 1, '04'),
    code: 'HA_BAD_MAC',
    offset: hbAt.keyIndex + 2,
  },
];

test('every refusal has its code and the offset of the field at fault', () => {
  for (const c of cases) {
    const got = refusal(() => decodePacket(c.bytes));
    assert.notEqual(got, 'ok', c.name);
    if (got === 'ok') continue;
    assert.equal(got.code, c.code, c.name);
    if (c.offset >= 0) assert.equal(got.offset, c.offset, c.name);
  }
});

test('a group reported twice is refused at the second key', () => {
  // Two groups with the same key, built by hand: count 2, "k" running, "k" released, no flags.
  const body = '02 016b02 016b00 00';
  const head = hb.subarray(0, hbAt.bodyLength);
  const bytes = Buffer.concat([head, hex(['0008', body, '00 01 04 00000000'])]);
  assert.deepEqual(
    refusal(() => decodePacket(bytes)),
    { code: 'HA_BAD_FIELD', offset: hbAt.body + 4 },
  );
});

test('the encoder refuses what the decoder would, with the same codes', () => {
  const p = (over: Partial<HeartbeatPacket>): HeartbeatPacket => ({ ...golden, ...over });
  const enc = (q: HaPacket) => refusal(() => encodePacket(q, crcKey));
  assert.deepEqual(enc(p({ from: 'Alice' })), { code: 'HA_BAD_FIELD', offset: hbAt.from + 1 });
  assert.deepEqual(enc(p({ from: '' })), { code: 'HA_BAD_FIELD', offset: hbAt.from });
  assert.deepEqual(enc(p({ cluster: 'x'.repeat(65) })), { code: 'HA_TOO_LONG', offset: 8 });
  assert.deepEqual(enc(p({ to: 'n'.repeat(65) })), { code: 'HA_TOO_LONG', offset: hbAt.to });
  assert.deepEqual(enc(p({ cluster: 'a\nb' })), { code: 'HA_BAD_FIELD', offset: 9 });
  const dup = p({
    groups: [
      { key: 'k', state: 'running' },
      { key: 'k', state: 'released' },
    ],
  });
  assert.deepEqual(enc(dup), { code: 'HA_BAD_FIELD', offset: hbAt.body + 4 });
  // 256 groups in 932 bytes (94 one-byte keys, 162 two-byte keys): too many for the u8 count.
  const keys = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i < 94 ? 0x21 + i : 0xa1 + i - 94));
  const many = p({ groups: keys.map((key) => ({ key, state: 'released' as const })) });
  assert.deepEqual(enc(many), { code: 'HA_TOO_LONG', offset: hbAt.body });
  const big = p({
    groups: Array.from({ length: 5 }, (_, i) => ({ key: `${i}`.repeat(250), state: 'running' as const })),
  });
  assert.deepEqual(enc(big), { code: 'HA_TOO_LONG', offset: hbAt.bodyLength });
  assert.deepEqual(enc({ ...reply, message: 'm'.repeat(201) }), {
    code: 'HA_TOO_LONG',
    offset: rpAt.body + 8,
  });
  assert.deepEqual(enc({ ...request, resource: 'r'.repeat(256) }), {
    code: 'HA_TOO_LONG',
    offset: rqAt.body + 5,
  });
  // Numbers out of range are our bugs: assertions, not HaPacketError.
  assert.throws(() => encodePacket(p({ seq: 0 }), crcKey), assert.AssertionError);
  assert.throws(
    () => encodePacket(golden, { index: 16, method: 'crc', secret: undefined }),
    assert.AssertionError,
  );
  assert.throws(
    () => encodePacket(golden, { index: 1, method: 'sha1', secret: undefined }),
    assert.AssertionError,
  );
});

// ---------------------------------------------------------------------------------------
// Fuzzing

/** Decodes `bytes`: a packet, or an HaPacketError with an offset within the datagram (or at the limit). */
function decodeOrRefuse(bytes: Buffer): DecodedPacket | undefined {
  try {
    return decodePacket(bytes);
  } catch (e) {
    if (!(e instanceof HaPacketError)) throw e;
    assert.ok(e.offset >= 0 && e.offset <= Math.max(bytes.length, packetBytesMax), `offset ${e.offset}`);
    return undefined;
  }
}

test('random bytes: a packet or HaPacketError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1500 }), fc.boolean(), (bytes, withHeader) => {
      const b = Buffer.from(bytes);
      // Half the time past the magic and version, so the field checks get random input too.
      if (withHeader && b.length >= 8) {
        b.writeUInt32BE(packetMagic, 0);
        b[4] = packetVersion;
        b[5] = 1 + (b[5]! % 3);
        b.writeUInt16BE(0, 6);
      }
      decodeOrRefuse(b);
    }),
    { seed: fuzzSeed, numRuns: 3000 },
  );
});

test('mutated valid packets: HaPacketError, or a canonical packet whose MAC fails unless unchanged', () => {
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(
      packetArb,
      keyArb,
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      (p, key, mutations) => {
        const original = encodePacket(p, key);
        const bytes = mutate(original, mutations);
        const d = decodeOrRefuse(bytes);
        if (d === undefined) {
          refused++;
          return;
        }
        accepted++;
        // Canonical: what decodes re-encodes to the same signed bytes.
        const again = decodePacket(encodePacket(d, { index: d.keyIndex, method: d.method, secret: 'x' }));
        assert.deepEqual(Buffer.from(again.signed), Buffer.from(d.signed));
        // Authentication: only the untouched packet verifies.
        if (verifyPacket(d, [key]).ok) assert.deepEqual(bytes, original);
      },
    ),
    { seed: fuzzSeed, numRuns: 3000 },
  );
  // Both outcomes must be common, or the fuzzing is not reaching the field checks.
  assert.ok(accepted > 150 && refused > 1500, `${accepted} accepted, ${refused} refused`);
});

// ---------------------------------------------------------------------------------------
// MAC verification

test('verifyPacket: the right key verifies under every method', () => {
  for (const method of authMethods) {
    const key: PacketKey = { index: 3, method, secret: method === 'crc' ? undefined : 'secret' };
    const d = decodePacket(encodePacket(golden, key));
    assert.deepEqual(
      verifyPacket(d, [{ index: 1, method: 'sha1', secret: 'other' }, key]),
      { ok: true },
      method,
    );
  }
});

test('verifyPacket refuses a wrong secret, key index or method, and a changed byte', () => {
  const key: PacketKey = { index: 1, method: 'sha1', secret: 'right' };
  const bytes = encodePacket(golden, key);
  const d = decodePacket(bytes);
  const no = (keys: readonly PacketKey[], packet: DecodedPacket = d) => {
    const v = verifyPacket(packet, keys);
    assert.equal(v.ok, false);
    return v.ok ? '' : v.reason;
  };
  assert.match(no([{ index: 1, method: 'sha1', secret: 'wrong' }]), /does not match key 1/);
  assert.match(no([{ index: 2, method: 'sha1', secret: 'right' }]), /key 1, which authkeys does not define/);
  assert.match(
    no([{ index: 1, method: 'sha256', secret: 'right' }]),
    /as sha1, but authkeys defines key 1 as sha256/,
  );
  assert.match(no([{ index: 1, method: 'sha1', secret: undefined }]), /has no secret/);
  assert.match(no([]), /does not define/);
  // Every single bit flip in the signed part or the MAC that still decodes fails the MAC.
  let flips = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (i === hbAt.keyIndex || i === hbAt.keyIndex + 1 || i === hbAt.keyIndex + 2) continue;
    for (let bit = 0; bit < 8; bit++) {
      const m = Buffer.from(bytes);
      m[i]! ^= 1 << bit;
      const dm = decodeOrRefuse(m);
      if (dm === undefined) continue;
      flips++;
      assert.equal(verifyPacket(dm, [key]).ok, false, `byte ${i} bit ${bit}`);
    }
  }
  assert.ok(flips > 300, `${flips} decodable flips`);
  // A crc packet whose CRC was recomputed after a change verifies: crc is no security.
  const crc = decodePacket(encodePacket({ ...golden, seq: 8 }, crcKey));
  assert.deepEqual(verifyPacket(crc, [crcKey]), { ok: true });
  // A MAC of the wrong length (a hand-made DecodedPacket) is refused, not thrown on.
  assert.equal(verifyPacket({ ...d, mac: d.mac.subarray(0, 4) }, [key]).ok, false);
});

test('verifyPacket: a crc packet does not pass as an HMAC key, nor an HMAC as crc', () => {
  const viaCrc = decodePacket(encodePacket(golden, { index: 1, method: 'crc', secret: undefined }));
  assert.equal(verifyPacket(viaCrc, [{ index: 1, method: 'sha256', secret: 's' }]).ok, false);
  const viaMd5 = decodePacket(encodePacket(golden, { index: 1, method: 'md5', secret: 's' }));
  assert.equal(verifyPacket(viaMd5, [{ index: 1, method: 'crc', secret: undefined }]).ok, false);
});

// ---------------------------------------------------------------------------------------
// Replay guard

function seen(g: ReplayGuard, from: string, generation: number, seq: number): ReplayVerdict {
  const v = g.check(from, generation, seq);
  if (v === 'ok') g.accept(from, generation, seq);
  return v;
}

test('ReplayGuard refuses a replay and accepts reordering within the window', () => {
  const g = new ReplayGuard(['alice', 'bob']);
  assert.equal(seen(g, 'bob', 100, 1), 'ok');
  assert.equal(seen(g, 'bob', 100, 1), 'replayed');
  assert.equal(seen(g, 'bob', 100, 5), 'ok');
  assert.equal(seen(g, 'bob', 100, 3), 'ok', 'late but unseen');
  assert.equal(seen(g, 'bob', 100, 3), 'replayed');
  assert.equal(seen(g, 'bob', 100, 4), 'ok');
  assert.equal(seen(g, 'bob', 100, 5), 'replayed');
  assert.equal(seen(g, 'bob', 100, 2), 'ok');
  // Each sender has its own window.
  assert.equal(seen(g, 'alice', 7, 1), 'ok');
  assert.deepEqual(g.lastSeen('bob'), { generation: 100, seq: 5 });
  assert.equal(g.lastSeen('alice')?.seq, 1);
});

test('ReplayGuard refuses what fell out of the window', () => {
  const g = new ReplayGuard(['bob'], 64);
  assert.equal(seen(g, 'bob', 1, 10), 'ok');
  assert.equal(seen(g, 'bob', 1, 10 + 63), 'ok');
  assert.equal(g.check('bob', 1, 10), 'replayed', 'seen, 63 behind: still in the window');
  assert.equal(g.check('bob', 1, 11), 'ok', '62 behind and unseen');
  assert.equal(g.check('bob', 1, 9), 'replayed', '64 behind: too old to tell');
  // A jump far ahead forgets everything behind the window.
  assert.equal(seen(g, 'bob', 1, 1000), 'ok');
  assert.equal(g.check('bob', 1, 1000 - 63), 'ok');
  assert.equal(g.check('bob', 1, 73), 'replayed');
});

test('ReplayGuard: an old generation is refused, a newer one (a restart) starts afresh', () => {
  const g = new ReplayGuard(['bob']);
  for (let s = 1; s <= 100; s++) assert.equal(seen(g, 'bob', 2000, s), 'ok');
  assert.equal(seen(g, 'bob', 1999, 101), 'old-generation');
  assert.equal(seen(g, 'bob', 3000, 1), 'ok', 'restarted: seq 1 again');
  assert.equal(seen(g, 'bob', 3000, 2), 'ok');
  assert.equal(seen(g, 'bob', 3000, 1), 'replayed');
  assert.equal(seen(g, 'bob', 2000, 101), 'old-generation', 'the previous life');
  assert.deepEqual(g.lastSeen('bob'), { generation: 3000, seq: 2 });
});

test('ReplayGuard refuses unknown nodes and keeps no state for them', () => {
  const g = new ReplayGuard(['bob']);
  assert.equal(g.check('mallory', 1, 1), 'unknown-node');
  assert.equal(g.check('Bob', 1, 1), 'unknown-node', 'names are compared as configured (lower-case)');
  assert.equal(g.lastSeen('mallory'), undefined);
  assert.throws(() => g.accept('mallory', 1, 1), assert.AssertionError);
  assert.throws(() => {
    g.accept('bob', 1, 1);
    g.accept('bob', 1, 1);
  }, assert.AssertionError);
});

test('ReplayGuard agrees with a model that remembers every seq', () => {
  const window = 16;
  const op = fc.record(
    { generation: fc.integer({ min: 1, max: 3 }), seq: fc.integer({ min: 1, max: 80 }) },
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const g = new ReplayGuard(['bob'], window);
      let model: { generation: number; seqs: Set<number>; highest: number } | undefined;
      for (const { generation, seq } of ops) {
        let expected: ReplayVerdict;
        if (model === undefined || generation > model.generation) expected = 'ok';
        else if (generation < model.generation) expected = 'old-generation';
        else if (model.seqs.has(seq) || model.highest - seq >= window) expected = 'replayed';
        else expected = 'ok';
        assert.equal(g.check('bob', generation, seq), expected);
        if (expected !== 'ok') continue;
        g.accept('bob', generation, seq);
        if (model === undefined || generation > model.generation)
          model = { generation, seqs: new Set(), highest: 0 };
        model.seqs.add(seq);
        model.highest = Math.max(model.highest, seq);
      }
    }),
    { seed: fuzzSeed, numRuns: 500 },
  );
});

test('limits: the largest packet fits 1400 bytes; body limit', () => {
  assert.ok(packetBytesLargest <= packetBytesMax);
  assert.equal(bodyBytesMax, 1024);
  const methods: readonly AuthMethod[] = authMethods;
  assert.deepEqual(
    methods.map((m) => macBytesOf[m]),
    [4, 16, 20, 32],
  );
});
