// The bounded field reader and writer under the codecs: u64 at the safe-integer edge,
// strings at their byte limit, and code tables that refuse duplicate numbers.
import assert from 'node:assert/strict';
import test from 'node:test';
import { WireReader, WireWriter, wireCodes } from '../../src/replication/wire.js';

function reader(hex: string): WireReader {
  const b = Buffer.from(hex, 'hex');
  return new WireReader(b, 0, b.length, 16, 0x99, 'Test');
}

test('u64 reads up to 2^53 - 1 and refuses beyond, naming the field offset in the frame', () => {
  assert.equal(reader('001fffffffffffff').u64('x'), Number.MAX_SAFE_INTEGER);
  assert.throws(() => reader('0020000000000000').u64('x'), {
    code: 'REPL_BAD_FIELD',
    offset: 16,
    frameType: 0x99,
  });
  assert.equal(reader('ffffffffffffffff').u64n('x'), 2n ** 64n - 1n);
  const b = Buffer.alloc(8);
  new WireWriter(b, 0).u64(Number.MAX_SAFE_INTEGER);
  assert.equal(b.toString('hex'), '001fffffffffffff');
});

test('a field past the end of the payload is REPL_BAD_LENGTH at the field', () => {
  const r = reader('0102');
  r.u8('a');
  assert.throws(() => r.u16('b'), { code: 'REPL_BAD_LENGTH', offset: 17 });
});

test('strings: 255 bytes of UTF-8 at most, written and read back', () => {
  const s = 'é'.repeat(127) + 'x';
  const b = Buffer.alloc(256);
  const w = new WireWriter(b, 0);
  w.str(s);
  assert.equal(w.position, 256);
  assert.equal(new WireReader(b, 0, 256, 0, 0, 'T').str('s'), s);
  assert.throws(() => new WireWriter(Buffer.alloc(300), 0).str('x'.repeat(256)), { code: 'ERR_ASSERTION' });
  // A byte-order mark is data, not something to strip.
  const bom = Buffer.from('03efbbbf', 'hex');
  assert.equal(new WireReader(bom, 0, 4, 0, 0, 'T').str('s'), '\ufeff');
});

test('a code table refuses a number used twice', () => {
  assert.throws(() => wireCodes({ a: 1, b: 1 }), { code: 'ERR_ASSERTION' });
  const t = wireCodes({ z: 2, y: 0 });
  assert.deepEqual(t.all, ['y', 'z']);
  assert.equal(t.names.get(2), 'z');
});
