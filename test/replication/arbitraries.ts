// fast-check arbitraries for every peer-link frame body, and helpers shared by the
// replication codec tests. Sizes are kept small (payloads up to a few KiB) so runs are quick.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BitmapChunk } from '../../src/replication/bitmap-rle.js';
import { ProtocolError } from '../../src/replication/errors.js';
import {
  type Bodies,
  type Frame,
  type FrameKind,
  frameKinds,
  frameTable,
} from '../../src/replication/frames.js';
import { type ByteRange, dataFlagBits, ioBytesMax } from '../../src/replication/messages-io.js';
import { authResults, disconnectReasons, helloFeatureBits } from '../../src/replication/messages-session.js';
import {
  afterSb0priPolicies,
  afterSb1priPolicies,
  afterSb2priPolicies,
  connFlagBits,
  connStates,
  diskStates,
  protocols,
  roles,
  sizeFlagBits,
  stateChangeFlagBits,
  stateChangePhases,
  stateChanges,
  stateFlagBits,
  uuidFlagBits,
} from '../../src/replication/messages-state.js';
import { resyncDataFlagBits } from '../../src/replication/messages-sync.js';

/** Fixed, so a failure reproduces; fast-check prints the counterexample. */
export const fuzzSeed = 0x7e9d41;

/** The code of the ProtocolError `fn` throws, or 'ok'; any other exception fails the test. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${e instanceof Error ? e.stack : e}`);
    return e.code;
  }
  return 'ok';
}

/** fc.record without null-prototype objects, which deepEqual would tell apart from decoded ones. */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

const buffer = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.maxSafeNat();
const u64n = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
/** Any subset of a flag table's bits. */
const flagsOf = (bits: Readonly<Record<string, number>>) =>
  fc.subarray(Object.values(bits)).map((list) => list.reduce((a, b) => a | b, 0) >>> 0);
const text = (maxBytes: number, minLength = 0) =>
  fc.string({ unit: 'binary', minLength, maxLength: 40 }).filter((s) => Buffer.byteLength(s) <= maxBytes);
const alg = fc.stringMatching(/^[!-~]{0,63}$/);
const range: fc.Arbitrary<ByteRange> = rec({
  offset: fc.integer({ min: 0, max: 2 ** 50 }),
  length: fc.integer({ min: 1, max: ioBytesMax }),
});
const seqRange = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 52 }), fc.integer({ min: 0, max: 1 << 20 }))
  .map(([firstSeq, n]) => ({ firstSeq, lastSeq: firstSeq + n }));

const bitmapChunk: fc.Arbitrary<BitmapChunk> = fc.oneof(
  fc
    .record({
      startBit: fc.integer({ min: 0, max: 2 ** 45 }),
      bitCount: fc.integer({ min: 1, max: 2000 }),
      seed: buffer(250, 250),
    })
    .map(({ startBit, bitCount, seed }) => {
      const data = Buffer.from(seed.subarray(0, Math.ceil(bitCount / 8)));
      if (bitCount % 8 !== 0) data[data.length - 1]! &= (1 << (bitCount % 8)) - 1;
      return { startBit, bitCount, encoding: 'plain' as const, firstDirty: false, data };
    }),
  fc
    .record({
      startBit: fc.integer({ min: 0, max: 2 ** 45 }),
      runs: fc.array(fc.integer({ min: 1, max: 2 ** 24 }), { minLength: 1, maxLength: 60 }),
      firstDirty: fc.boolean(),
    })
    .map(({ startBit, runs, firstDirty }) => {
      const bytes: number[] = [];
      for (let run of runs) {
        while (run >= 128) {
          bytes.push((run & 0x7f) | 0x80);
          run = Math.floor(run / 128);
        }
        bytes.push(run);
      }
      const bitCount = runs.reduce((a, b) => a + b, 0);
      return { startBit, bitCount, encoding: 'rle' as const, firstDirty, data: Buffer.from(bytes) };
    }),
);

const dataBody = fc
  .record({
    seq: u64,
    epoch: u64,
    offset: fc.integer({ min: 0, max: 2 ** 50 }),
    flags: flagsOf(dataFlagBits),
  })
  .chain((h) =>
    (h.flags & (dataFlagBits.discard | dataFlagBits.zeroes)) !== 0
      ? fc.integer({ min: 1, max: ioBytesMax }).map((length) => ({ ...h, length, payload: Buffer.alloc(0) }))
      : buffer(1, 600).map((payload) => ({ ...h, length: payload.length, payload })),
  )
  .filter((d) => (d.flags & dataFlagBits.ackReceived) === 0 || (d.flags & dataFlagBits.ackWritten) === 0);

const resyncDataBody = fc
  .record({ offset: fc.integer({ min: 0, max: 2 ** 50 }), allZeroes: fc.boolean() })
  .chain(({ offset, allZeroes }) =>
    allZeroes
      ? fc.integer({ min: 1, max: ioBytesMax }).map((length) => ({
          offset,
          length,
          flags: resyncDataFlagBits.allZeroes,
          payload: Buffer.alloc(0),
        }))
      : buffer(1, 600).map((payload) => ({ offset, length: payload.length, flags: 0, payload })),
  );

const digestOfRange = range.chain((r) => buffer(4, 64).map((digest) => ({ ...r, digest })));

/** One arbitrary per frame kind; the type makes sure none is missing. */
export const bodyArbs: { readonly [K in FrameKind]: fc.Arbitrary<Bodies[K]> } = {
  Hello: fc
    .record({ protocolMin: fc.integer({ min: 1, max: 0xffff }), span: fc.integer({ min: 0, max: 0xffff }) })
    .chain(({ protocolMin, span }) =>
      rec({
        protocolMin: fc.constant(protocolMin),
        protocolMax: fc.constant(Math.min(0xffff, protocolMin + span)),
        features: fc.oneof(flagsOf(helloFeatureBits), u32),
        nodeName: text(255, 1),
        resourceName: text(255, 1),
        tandemVersion: text(64),
        authAlg: alg,
      }),
    ),
  AuthChallenge: rec({ challenge: buffer(64, 128) }),
  AuthResponse: rec({ response: buffer(16, 64) }),
  AuthResult: rec({ result: fc.constantFrom(...authResults.all) }),
  Ping: fc.constant({}),
  PingAck: fc.constant({}),
  Disconnect: rec({ reason: fc.constantFrom(...disconnectReasons.all), message: text(255) }),
  ReportParams: rec({
    protocol: fc.constantFrom(...protocols.all),
    afterSb0pri: fc.constantFrom(...afterSb0priPolicies.all),
    afterSb1pri: fc.constantFrom(...afterSb1priPolicies.all),
    afterSb2pri: fc.constantFrom(...afterSb2priPolicies.all),
    allowTwoPrimaries: fc.boolean(),
    connFlags: flagsOf(connFlagBits),
    integrityAlg: alg,
    csumsAlg: alg,
    verifyAlg: alg,
  }),
  ReportUuids: rec({
    current: u64n,
    bitmap: u64n,
    history: fc.tuple(u64n, u64n),
    dirtyBits: u64,
    flags: flagsOf(uuidFlagBits),
  }),
  ReportSizes: fc
    .record({
      backingBytes: u64,
      usableFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      requestedBytes: u64,
      currentBytes: u64,
      ioBytesMax: fc.integer({ min: 1, max: 0xffffffff }),
      flags: flagsOf(sizeFlagBits),
    })
    .map(({ usableFraction, ...s }) => ({ ...s, usableBytes: Math.floor(s.backingBytes * usableFraction) })),
  ReportState: rec({
    role: fc.constantFrom(...roles.all),
    peerRole: fc.constantFrom(...roles.all),
    disk: fc.constantFrom(...diskStates.all),
    peerDisk: fc.constantFrom(...diskStates.all),
    conn: fc.constantFrom(...connStates.all),
    flags: flagsOf(stateFlagBits),
  }),
  StateChangeRequest: rec({
    txId: u32,
    phase: fc.constantFrom(...stateChangePhases.all),
    change: fc.constantFrom(...stateChanges.all),
    flags: flagsOf(stateChangeFlagBits),
  }),
  StateChangeReply: rec({ txId: u32, result: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
  Bitmap: bitmapChunk,
  SyncUuid: rec({ uuid: u64n }),
  Data: dataBody,
  RecvAck: seqRange,
  WriteAck: seqRange,
  NegAck: seqRange.chain((r) => u32.map((error) => ({ ...r, error }))),
  Barrier: rec({ epoch: u64 }),
  BarrierAck: rec({ epoch: u64, writes: u32 }),
  Flush: rec({ flushId: u64 }),
  FlushAck: rec({ flushId: u64 }),
  OutOfSync: range,
  ResyncRequest: range,
  ResyncChecksumRequest: digestOfRange,
  ResyncData: resyncDataBody,
  ResyncInSync: range,
  ResyncAck: range,
  ResyncFailed: range.chain((r) => u32.map((error) => ({ ...r, error }))),
  VerifyRequest: range,
  VerifyReply: digestOfRange,
  VerifyResult: range.chain((r) => fc.boolean().map((inSync) => ({ ...r, inSync }))),
};

export function frameArbOf(kind: FrameKind): fc.Arbitrary<Frame> {
  const volume = frameTable[kind].scope === 'volume' ? fc.integer({ min: 0, max: 0xffff }) : fc.constant(0);
  const body: fc.Arbitrary<unknown> = bodyArbs[kind];
  return rec({ kind: fc.constant(kind), volume, body }) as fc.Arbitrary<Frame>;
}

export const frameArb: fc.Arbitrary<Frame> = fc.oneof(...frameKinds.map(frameArbOf));
