// The streaming decoder: any split of a frame sequence into chunks yields the same frames;
// payloads inside one chunk are views of it; a header is refused before its payload is
// allocated or awaited; unknown optional frames are skipped; a cut stream is REPL_TRUNCATED.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/replication/errors.js';
import { encodeFrame, type Frame } from '../../src/replication/frames.js';
import { frameHeaderBytes } from '../../src/replication/header.js';
import { FrameDecoder } from '../../src/replication/stream.js';
import { frameArb, fuzzSeed } from './arbitraries.js';

/** Cuts `bytes` at the given points (any numbers; taken modulo the length, sorted). */
function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  return chunks;
}

function decodeAll(chunks: readonly Buffer[], decoder = new FrameDecoder()): Frame[] {
  const out: Frame[] = [];
  for (const c of chunks) out.push(...decoder.push(c));
  decoder.end();
  return out;
}

const ping: Frame = { kind: 'Ping', volume: 0, body: {} };
const write = (payload: Buffer): Frame => ({
  kind: 'Data',
  volume: 1,
  body: { seq: 9, epoch: 2, offset: 8192, length: payload.length, flags: 0, payload },
});

test('any split of a frame sequence decodes to the same frames', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (frames, cuts) => {
        const bytes = Buffer.concat(frames.map(encodeFrame));
        assert.deepEqual(decodeAll(split(bytes, cuts)), frames);
      },
    ),
    { seed: fuzzSeed, numRuns: 300 },
  );
});

test('a frame fed one byte at a time decodes, holding at most one header and one payload', () => {
  const frames = [ping, write(Buffer.alloc(3000, 7)), ping];
  const bytes = Buffer.concat(frames.map(encodeFrame));
  const decoder = new FrameDecoder();
  const out: Frame[] = [];
  let heldMax = 0;
  for (let i = 0; i < bytes.length; i++) {
    out.push(...decoder.push(bytes.subarray(i, i + 1)));
    heldMax = Math.max(heldMax, decoder.bufferedBytes);
  }
  decoder.end();
  assert.deepEqual(out, frames);
  assert.ok(heldMax <= 3000 + 32, `held ${heldMax} bytes`);
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.bytesReceived, bytes.length);
});

test('a payload inside one chunk is a view of that chunk, not a copy', () => {
  const chunk = Buffer.concat([
    encodeFrame(ping),
    encodeFrame(write(Buffer.from('hello'))),
    encodeFrame(ping),
  ]);
  const frames = new FrameDecoder().push(chunk);
  const data = frames[1];
  assert.ok(data?.kind === 'Data');
  assert.equal(data.body.payload.buffer, chunk.buffer);
  assert.equal(data.body.payload.byteOffset, chunk.byteOffset + 2 * frameHeaderBytes + 32);
});

test('a payload across chunks goes into one buffer from `allocate`, sized by the header', () => {
  const sizes: number[] = [];
  const decoder = new FrameDecoder({
    allocate: (n) => {
      sizes.push(n);
      return Buffer.alloc(n);
    },
  });
  const bytes = encodeFrame(write(Buffer.alloc(1000, 1)));
  assert.deepEqual(decoder.push(bytes.subarray(0, 100)), []);
  assert.equal(decoder.bufferedBytes, 32 + 1000);
  const frames = decoder.push(bytes.subarray(100));
  assert.equal(frames.length, 1);
  assert.deepEqual(sizes, [32 + 1000]);
  assert.equal(decoder.bufferedBytes, 0);
});

test('a header claiming 4 GiB is refused at its last byte, before any allocation', () => {
  const bytes = encodeFrame(write(Buffer.from('x')));
  bytes.writeUInt32BE(0xffffffff, 12);
  let allocations = 0;
  const decoder = new FrameDecoder({
    allocate: (n) => {
      allocations++;
      return Buffer.alloc(n);
    },
  });
  for (let i = 0; i < frameHeaderBytes - 1; i++) assert.deepEqual(decoder.push(bytes.subarray(i, i + 1)), []);
  assert.throws(() => decoder.push(bytes.subarray(15, 16)), { code: 'REPL_TOO_LONG', offset: 12 });
  assert.equal(allocations, 0);
  assert.ok(decoder.bufferedBytes <= frameHeaderBytes);
  // The stream is dead: later bytes get the same error, and end() too.
  assert.throws(() => decoder.push(Buffer.from([0])), { code: 'REPL_TOO_LONG' });
  assert.throws(() => decoder.end(), { code: 'REPL_TOO_LONG' });
});

test('a bad frame after good ones in the same chunk fails the push', () => {
  const bad = encodeFrame(ping);
  bad[0] = 0;
  const decoder = new FrameDecoder();
  assert.throws(() => decoder.push(Buffer.concat([encodeFrame(ping), bad])), {
    code: 'REPL_BAD_MAGIC',
    offset: 0,
  });
});

test('an unknown frame type flagged optional is skipped; one not flagged ends the stream', () => {
  const unknown = Buffer.alloc(frameHeaderBytes + 100, 0xee);
  encodeFrame(ping).copy(unknown, 0, 0, frameHeaderBytes);
  unknown[5] = 1; // optional
  unknown.writeUInt16BE(0x7f00, 6);
  unknown.writeUInt32BE(100, 12);
  const stream = Buffer.concat([encodeFrame(ping), unknown, encodeFrame(write(Buffer.from('ab'))), unknown]);
  fc.assert(
    fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
      const skipped: [number, number][] = [];
      const decoder = new FrameDecoder({ onSkip: (type, length) => skipped.push([type, length]) });
      const frames = decodeAll(split(stream, cuts), decoder);
      assert.deepEqual(
        frames.map((f) => f.kind),
        ['Ping', 'Data'],
      );
      assert.deepEqual(skipped, [
        [0x7f00, 100],
        [0x7f00, 100],
      ]);
    }),
    { seed: fuzzSeed, numRuns: 100 },
  );
  unknown[5] = 0;
  assert.throws(() => new FrameDecoder().push(unknown), {
    code: 'REPL_UNKNOWN_TYPE',
    offset: 6,
    frameType: 0x7f00,
  });
});

test('a stream that ends inside a frame is REPL_TRUNCATED at the byte where it stopped', () => {
  const bytes = encodeFrame(write(Buffer.alloc(10)));
  for (const cut of [1, 15, 16, 20, bytes.length - 1]) {
    const decoder = new FrameDecoder();
    decoder.push(bytes.subarray(0, cut));
    try {
      decoder.end();
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof ProtocolError);
      assert.equal(e.code, 'REPL_TRUNCATED');
      assert.equal(e.offset, cut);
    }
  }
  const decoder = new FrameDecoder();
  decoder.push(bytes);
  decoder.end(); // between frames: a clean end
});
