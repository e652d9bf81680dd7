// Fuzzing the decoders: random bytes and mutations of valid frames give frames or a
// ProtocolError, never another exception; whatever is accepted re-encodes to the same
// bytes (decoding is canonical); and no accepted header lets a peer make us hold more
// than the largest frame the table allows.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/replication/errors.js';
import {
  checkHeader,
  decodeFrame,
  encodeFrame,
  frameKinds,
  frameTable,
  unknownPayloadBytesMax,
} from '../../src/replication/frames.js';
import { frameHeaderBytes, frameMagic, readHeader, wireFormatVersion } from '../../src/replication/header.js';
import { FrameDecoder } from '../../src/replication/stream.js';
import { type Mutation, mutate, mutationArb } from '../helpers/byte-mutate.js';
import { codeOf, frameArb, fuzzSeed } from './arbitraries.js';

const payloadBytesMaxOfAll = Math.max(
  unknownPayloadBytesMax,
  ...frameKinds.map((k) => frameTable[k].codec.payloadBytesMax),
);

/** Mutations that keep the header's length field true, so payload checks get exercised too. */
function mutatePayload(original: Buffer, mutations: readonly Mutation[]): Buffer {
  const head = original.subarray(0, frameHeaderBytes);
  const payload = mutate(original.subarray(frameHeaderBytes), mutations);
  const out = Buffer.concat([head, payload]);
  out.writeUInt32BE(payload.length, 12);
  return out;
}

/** Returns whether `bytes` were accepted as a frame. */
function checkOne(bytes: Buffer): boolean {
  let frame: ReturnType<typeof decodeFrame>;
  try {
    frame = decodeFrame(bytes);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    assert.ok(e.offset >= 0 && e.offset <= bytes.length, `offset ${e.offset} outside ${bytes.length} bytes`);
    return false;
  }
  // Canonical: an accepted frame is exactly what the encoder makes of its decoding.
  assert.deepEqual(encodeFrame(frame), bytes);
  return true;
}

test('random bytes: frames or ProtocolError, bounded buffering', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      // Give the random bytes a valid magic and version half of the time, to get past them.
      const b = Buffer.from(bytes);
      if (b.length >= 5 && (cuts.length & 1) === 1) {
        b.writeUInt32BE(frameMagic, 0);
        b[4] = wireFormatVersion;
      }
      const decoder = new FrameDecoder();
      const points = [...cuts.map((c) => c % (b.length + 1)), b.length].sort((x, y) => x - y);
      let from = 0;
      try {
        for (const p of points) {
          decoder.push(b.subarray(from, p));
          from = p;
          assert.ok(decoder.bufferedBytes <= frameHeaderBytes + payloadBytesMaxOfAll);
        }
        decoder.end();
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
      }
    }),
    { seed: fuzzSeed, numRuns: 2000 },
  );
});

test('mutated valid frames: ProtocolError or a frame that re-encodes to the same bytes', () => {
  let accepted = 0;
  const runs = 3000;
  fc.assert(
    fc.property(frameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (frame, mutations) => {
      const bytes = encodeFrame(frame);
      if (checkOne(mutate(bytes, mutations))) accepted++;
      if (checkOne(mutatePayload(bytes, mutations))) accepted++;
    }),
    { seed: fuzzSeed, numRuns: runs },
  );
  // Both outcomes must be common, or the fuzzing is not reaching the field checks.
  assert.ok(accepted > runs / 10 && accepted < runs * 1.5, `${accepted} of ${2 * runs} accepted`);
});

test('mutated frame streams through the streaming decoder: frames or ProtocolError', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 6 }),
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (frames, mutations, cuts) => {
        const bytes = mutate(Buffer.concat(frames.map(encodeFrame)), mutations);
        const decoder = new FrameDecoder();
        const points = [...cuts.map((c) => c % (bytes.length + 1)), bytes.length].sort((x, y) => x - y);
        let from = 0;
        try {
          for (const p of points) {
            for (const f of decoder.push(bytes.subarray(from, p))) assert.ok(frameKinds.includes(f.kind));
            from = p;
          }
          decoder.end();
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
      },
    ),
    { seed: fuzzSeed, numRuns: 1000 },
  );
});

test('every header the table accepts names a payload within the largest frame', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 1 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 200 })),
      (type, flags, volume, length) => {
        const h = Buffer.alloc(frameHeaderBytes);
        h.writeUInt32BE(frameMagic, 0);
        h[4] = wireFormatVersion;
        h[5] = flags;
        h.writeUInt16BE(type, 6);
        h.writeUInt16BE(volume, 8);
        h.writeUInt32BE(length, 12);
        const code = codeOf(() => checkHeader(readHeader(h)));
        if (code === 'ok') assert.ok(length <= payloadBytesMaxOfAll);
        else
          assert.ok(
            ['REPL_UNKNOWN_TYPE', 'REPL_TOO_LONG', 'REPL_BAD_LENGTH', 'REPL_BAD_FIELD'].includes(code),
            code,
          );
      },
    ),
    { seed: fuzzSeed, numRuns: 5000 },
  );
  assert.equal(payloadBytesMaxOfAll, 32 + 32 * 1024 * 1024);
});
