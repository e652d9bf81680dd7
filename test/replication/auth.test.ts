// cram-hmac authentication: a known HMAC vector, both directions of the handshake through
// real frames, a wrong secret, a reflected challenge, responses of the wrong length, and
// the configuration mismatches both sides must be able to explain.
import assert from 'node:assert/strict';
import test from 'node:test';
import { AuthError, authMismatch, CramHmac, cramHmacAlgs } from '../../src/replication/auth.js';
import { decodeFrame, encodeFrame, type Frame } from '../../src/replication/frames.js';

/** Deterministic "random" bytes for tests: a counter. */
function counter(seed: number): (n: number) => Buffer {
  return (n) => Buffer.from(Array.from({ length: n }, (_, i) => (seed + i) & 0xff));
}

/** Sends a frame across: encode, decode. */
function wire(frame: Frame): Frame {
  return decodeFrame(encodeFrame(frame));
}

/** Runs the exchange both ways through frames; returns each side's verdict on the other. */
function handshake(a: CramHmac, b: CramHmac): { aSaysOfB: string; bSaysOfA: string } {
  const chA = wire({ kind: 'AuthChallenge', volume: 0, body: { challenge: a.challenge } });
  const chB = wire({ kind: 'AuthChallenge', volume: 0, body: { challenge: b.challenge } });
  assert.ok(chA.kind === 'AuthChallenge' && chB.kind === 'AuthChallenge');
  const answerA = a.respond(chB.body.challenge);
  const answerB = b.respond(chA.body.challenge);
  assert.ok(answerA.ok && answerB.ok);
  const respA = wire({ kind: 'AuthResponse', volume: 0, body: { response: answerA.response } });
  const respB = wire({ kind: 'AuthResponse', volume: 0, body: { response: answerB.response } });
  assert.ok(respA.kind === 'AuthResponse' && respB.kind === 'AuthResponse');
  const aSaysOfB = wire({ kind: 'AuthResult', volume: 0, body: { result: a.verify(respB.body.response) } });
  const bSaysOfA = wire({ kind: 'AuthResult', volume: 0, body: { result: b.verify(respA.body.response) } });
  assert.ok(aSaysOfB.kind === 'AuthResult' && bSaysOfA.kind === 'AuthResult');
  return { aSaysOfB: aSaysOfB.body.result, bSaysOfA: bSaysOfA.body.result };
}

test('the response is HMAC(secret, challenge): RFC 2202 HMAC-SHA1 test case 2', () => {
  const side = new CramHmac('sha1', 'Jefe', counter(0));
  const answer = side.respond(Buffer.from('what do ya want for nothing?'));
  assert.ok(answer.ok);
  assert.equal(answer.response.toString('hex'), 'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79');
  assert.equal(side.responseBytes, 20);
});

test('the same secret authenticates both directions, for every algorithm', () => {
  for (const alg of Object.keys(cramHmacAlgs)) {
    const a = new CramHmac(alg, 'dXs3cr3t');
    const b = new CramHmac(alg, 'dXs3cr3t');
    assert.deepEqual(handshake(a, b), { aSaysOfB: 'ok', bSaysOfA: 'ok' }, alg);
  }
});

test('a different secret is refused on both sides', () => {
  const a = new CramHmac('sha256', 'secret-a', counter(1));
  const b = new CramHmac('sha256', 'secret-b', counter(2));
  assert.deepEqual(handshake(a, b), { aSaysOfB: 'wrong-response', bSaysOfA: 'wrong-response' });
});

test('a peer that sends our own challenge back gets no answer', () => {
  const a = new CramHmac('sha1', 'x', counter(7));
  assert.deepEqual(a.respond(a.challenge), { ok: false, result: 'reflected-challenge' });
  // DRBD compares the first 64 bytes: a longer echo is a reflection too.
  assert.deepEqual(a.respond(Buffer.concat([a.challenge, Buffer.from([1])])), {
    ok: false,
    result: 'reflected-challenge',
  });
});

test('a response of the wrong length is wrong, not an exception', () => {
  const a = new CramHmac('sha1', 'x');
  assert.equal(a.verify(Buffer.alloc(0)), 'wrong-response');
  assert.equal(a.verify(Buffer.alloc(64)), 'wrong-response');
  assert.equal(a.verify(Buffer.alloc(20)), 'wrong-response');
});

test('challenges are fresh 64-byte randoms', () => {
  const a = new CramHmac('sha1', 'x');
  const b = new CramHmac('sha1', 'x');
  assert.equal(a.challenge.length, 64);
  assert.notDeepEqual(a.challenge, b.challenge);
});

test('unsupported algorithms and unusable secrets are configuration errors', () => {
  for (const alg of ['crc32c', 'sha2', '', 'constructor', '__proto__', 'toString']) {
    assert.throws(
      () => new CramHmac(alg, 'x'),
      (e) => e instanceof AuthError && e.code === 'REPL_AUTH_ALG',
      alg,
    );
  }
  assert.throws(() => new CramHmac('sha1', ''), { code: 'REPL_AUTH_SECRET' });
  assert.throws(() => new CramHmac('sha1', 'x'.repeat(65)), { code: 'REPL_AUTH_SECRET' });
  assert.doesNotThrow(() => new CramHmac('sha1', 'x'.repeat(64)));
});

test('mismatched auth settings are explained from either side', () => {
  assert.equal(authMismatch('', ''), undefined);
  assert.equal(authMismatch('sha1', 'sha1'), undefined);
  assert.match(authMismatch('', 'sha1') ?? '', /no shared-secret is configured here/);
  assert.match(authMismatch('sha1', '') ?? '', /the peer has no shared-secret/);
  assert.match(authMismatch('sha1', 'md5') ?? '', /sha1 here, md5 on the peer/);
});
