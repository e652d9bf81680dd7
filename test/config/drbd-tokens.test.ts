import assert from 'node:assert/strict';
import test from 'node:test';
import { tokenize } from '../../src/config/drbd-tokens.js';
import { ConfigError } from '../../src/config/errors.js';

test('words, punctuation, strings and comments carry their line and column', () => {
  const toks = tokenize('resource r0 { # comment\n\tnet { shared-secret "a \\"b\\" c"; }\n}', 'f.res');
  const shape = toks.map((t) => [t.kind, t.text, t.pos.line, t.pos.col]);
  assert.deepEqual(shape, [
    ['word', 'resource', 1, 1],
    ['word', 'r0', 1, 10],
    ['{', '', 1, 13],
    ['word', 'net', 2, 2],
    ['{', '', 2, 6],
    ['word', 'shared-secret', 2, 8],
    ['string', 'a "b" c', 2, 22],
    [';', '', 2, 33],
    ['}', '', 2, 35],
    ['}', '', 3, 1],
    ['eof', '', 3, 2],
  ]);
});

test('a word runs until whitespace or punctuation, as in drbdadm (the seed typo stays one word)', () => {
  const toks = tokenize('address172.25.137.6:7789;', 'f');
  assert.equal(toks[0]?.text, 'address172.25.137.6:7789');
  assert.equal(toks[1]?.kind, ';');
});

test('an unterminated string is an error at its opening quote', () => {
  for (const text of ['x "abc\n";', 'x "abc', 'x "ab\\']) {
    assert.throws(
      () => tokenize(text, 'f.res'),
      (e: unknown) =>
        e instanceof ConfigError && e.code === 'CONFIG_SYNTAX' && e.pos?.line === 1 && e.pos.col === 3,
    );
  }
});

test('overlong words are refused before they are kept', () => {
  assert.throws(
    () => tokenize('x'.repeat(5000), 'f'),
    (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_SYNTAX',
  );
});
