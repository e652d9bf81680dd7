// CRC32C against the published check value and RFC 3720's test vectors.
import assert from 'node:assert/strict';
import test from 'node:test';
import { crc32c } from '../../src/meta/crc32c.js';

test('crc32c check value of "123456789" is 0xE3069283', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('crc32c RFC 3720 B.4 vectors', () => {
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test('crc32c continues over pieces', () => {
  const all = Buffer.from('the quick brown fox jumps over the lazy dog');
  assert.equal(crc32c(all.subarray(10), crc32c(all.subarray(0, 10))), crc32c(all));
  assert.equal(crc32c(new Uint8Array(0)), 0);
});
