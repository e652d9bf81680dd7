// Round trips of every frame type over fast-check arbitraries: decode(encode(f)) is f,
// the zero-copy parts are the same bytes, and the size is known before encoding.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import {
  decodeFrame,
  encodeFrame,
  encodeFrameParts,
  frameBytes,
  frameKinds,
  frameTable,
} from '../../src/replication/frames.js';
import { frameHeaderBytes } from '../../src/replication/header.js';
import { frameArbOf, fuzzSeed } from './arbitraries.js';

for (const kind of frameKinds) {
  test(`round trip: ${kind}`, () => {
    fc.assert(
      fc.property(frameArbOf(kind), (frame) => {
        const bytes = encodeFrame(frame);
        assert.equal(bytes.length, frameBytes(frame));
        const { payloadBytesMin, payloadBytesMax } = frameTable[kind].codec;
        assert.ok(bytes.length - frameHeaderBytes >= payloadBytesMin);
        assert.ok(bytes.length - frameHeaderBytes <= payloadBytesMax);
        assert.deepEqual(decodeFrame(bytes), frame);
        assert.deepEqual(Buffer.concat(encodeFrameParts(frame)), bytes);
      }),
      { seed: fuzzSeed, numRuns: 150 },
    );
  });
}

test('Data and ResyncData hand their payload on without copying it', () => {
  const payload = Buffer.from('0123456789abcdef');
  const data = encodeFrameParts({
    kind: 'Data',
    volume: 0,
    body: { seq: 1, epoch: 1, offset: 0, length: payload.length, flags: 0, payload },
  });
  assert.equal(data.length, 2);
  assert.equal(data[1], payload);
  assert.equal(data[0]!.length, frameHeaderBytes + 32);
  const resync = encodeFrameParts({
    kind: 'ResyncData',
    volume: 0,
    body: { offset: 0, length: payload.length, flags: 0, payload },
  });
  assert.equal(resync[1], payload);
});

test('encoding a frame that breaks the table is our bug: an assertion, not bytes', () => {
  assert.throws(
    () =>
      encodeFrame({
        kind: 'Hello',
        volume: 1,
        body: {
          protocolMin: 1,
          protocolMax: 1,
          features: 0,
          nodeName: 'a',
          resourceName: 'r',
          tandemVersion: '',
          authAlg: '',
        },
      }),
    { code: 'ERR_ASSERTION' },
  );
  assert.throws(() => encodeFrame({ kind: 'Barrier', volume: 0, body: { epoch: -1 } }), {
    code: 'ERR_ASSERTION',
  });
  assert.throws(
    () => encodeFrame({ kind: 'Disconnect', volume: 0, body: { reason: 'user', message: 'x'.repeat(256) } }),
    { code: 'ERR_ASSERTION' },
  );
});
