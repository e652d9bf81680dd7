// The activity log: transaction codec (golden bytes, round trip, fuzz), LRU behaviour,
// and replay after crashes, including torn transaction blocks and lost context.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { ActivityLog, type AlBegin, replayActivityLog } from '../../src/meta/activity-log.js';
import {
  type AlTransaction,
  alEmpty,
  alSlotsMax,
  decodeAlTransaction,
  encodeAlTransaction,
} from '../../src/meta/al-transaction.js';
import { MetaError } from '../../src/meta/errors.js';
import { FakeRing, freshLog } from './al-ring.js';

const E = alEmpty;
const metaId = 0x0123456789abcdefn;
const sampleTx: AlTransaction = {
  type: 'update',
  seq: 3,
  metaId,
  slots: 7,
  updates: [{ slot: 2, extent: 5, evicted: 9 }],
  contextStart: 0,
  context: [E, E, 5, E, E, 1, E],
};

test('AL transaction golden bytes', () => {
  const b = encodeAlTransaction(sampleTx);
  const head = [
    '5444414c', // magic "TDAL"
    '0001', // version
    '0000', // type: update
    '0000000000000003', // seq
    '0123456789abcdef', // meta id
    '00000007', // slots
    '00000000', // context start
    '0001', // update count
    '0007', // context count
    'be742637', // CRC32C
    '00000002' + '00000005' + '00000009', // update: slot 2 <- extent 5, evicted 9
  ].join('');
  assert.equal(b.subarray(0, 52).toString('hex'), head);
  const context = 'ffffffffffffffff00000005ffffffffffffffff00000001ffffffff';
  assert.equal(b.subarray(808, 836).toString('hex'), context);
  assert.ok(b.subarray(52, 808).every((x) => x === 0));
  assert.ok(b.subarray(836).every((x) => x === 0));
  assert.deepEqual(decodeAlTransaction(b), sampleTx);
});

const arbTx: fc.Arbitrary<AlTransaction> = fc
  .integer({ min: 7, max: alSlotsMax })
  .chain((slots) =>
    fc.record({
      type: fc.constantFrom('update' as const, 'reset' as const),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      metaId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      slots: fc.constant(slots),
      updates: fc.array(
        fc.record({ slot: fc.integer({ min: 0, max: slots - 1 }), extent: fc.nat(), evicted: fc.nat() }),
        { maxLength: 64 },
      ),
      contextStart: fc.integer({ min: 0, max: slots - 1 }),
      context: fc.array(fc.nat(), { maxLength: Math.min(slots, 822) }),
    }),
  )
  .map((t) => ({ ...t, updates: t.updates.map((u) => ({ ...u })) }));

test('AL transaction round trip', () => {
  fc.assert(
    fc.property(arbTx, (t) => assert.deepEqual(decodeAlTransaction(encodeAlTransaction(t)), t)),
    { seed: 0xa101, numRuns: 300 },
  );
});

test('fuzz: AL decode of random or mutated bytes is a value or a MetaError', () => {
  const good = encodeAlTransaction(sampleTx);
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 4200 }),
    fc
      .array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 1, max: 255 })), { minLength: 1 })
      .map((edits) => {
        const b = Buffer.from(good);
        for (const [at, x] of edits) b[at]! ^= x;
        return b;
      }),
  );
  fc.assert(
    fc.property(inputs, (bytes) => {
      try {
        decodeAlTransaction(bytes);
      } catch (e) {
        assert.ok(e instanceof MetaError, String(e));
      }
    }),
    { seed: 0xa102, numRuns: 1000 },
  );
});

test('AL decode errors carry codes and offsets', () => {
  const good = encodeAlTransaction(sampleTx);
  const torn = Buffer.concat([good.subarray(0, 2048), Buffer.alloc(2048, 0xaa)]);
  const newer = Buffer.from(good);
  newer.writeUInt16BE(9, 4);
  const cases: [Uint8Array, string, number][] = [
    [good.subarray(0, 10), 'META_SHORT', 10],
    [Buffer.alloc(4096), 'META_BAD_MAGIC', 0],
    [newer, 'META_NEWER_VERSION', 4],
    [torn, 'META_BAD_CHECKSUM', 36],
  ];
  for (const [bytes, code, offset] of cases) {
    assert.throws(
      () => decodeAlTransaction(bytes),
      (e: unknown) => e instanceof MetaError && e.code === code && e.offset === offset,
    );
  }
});

function expectTransaction(r: AlBegin) {
  assert.equal(r.kind, 'transaction');
  return (r as Extract<AlBegin, { kind: 'transaction' }>).write;
}

test('AL: a new extent needs a transaction, one at a time, then is active', () => {
  const ring = new FakeRing();
  const al = freshLog(7, metaId, ring);
  const w = expectTransaction(al.begin([3]));
  assert.equal(w.seq, 2);
  assert.equal(w.ringIndex, 2);
  // Until the block is durable neither a new extent nor extent 3 may go ahead.
  assert.equal(al.begin([3]).kind, 'wait');
  assert.equal(al.begin([4]).kind, 'wait');
  // beginActive takes only what is active and not being written, and otherwise changes nothing.
  assert.equal(al.beginActive([3]), false, 'extent 3 is in the transaction still being written');
  assert.equal(al.refs(3), 1);
  ring.write(w);
  al.committed(w.seq);
  assert.equal(al.begin([3]).kind, 'active');
  assert.equal(al.refs(3), 2);
  assert.equal(al.beginActive([3, 4]), false, 'extent 4 is not active');
  assert.equal(al.refs(3), 2);
  assert.equal(al.has(4), false);
  assert.equal(al.beginActive([3]), true);
  assert.equal(al.refs(3), 3);
  assert.throws(() => al.beginActive([3, 3]), /distinct/);
  al.complete(3);
  al.complete(3);
  al.complete(3);
  assert.equal(al.refs(3), 0);
  assert.throws(() => al.complete(3));
});

test('AL: least recently used idle extents are evicted; busy ones never', () => {
  const ring = new FakeRing();
  const al = freshLog(7, metaId, ring);
  const run = (extents: number[]) => {
    const r = al.begin(extents);
    if (r.kind === 'transaction') {
      ring.write(r.write);
      al.committed(r.write.seq);
      return r.write.evicted;
    }
    assert.equal(r.kind, 'active');
    return [];
  };
  for (let e = 0; e < 7; e++) run([e]);
  for (let e = 1; e < 7; e++) al.complete(e); // extent 0 keeps a write in flight
  run([1]); // touch 1: now 2 is the least recently used idle extent
  assert.deepEqual(run([10]), [2]);
  assert.deepEqual(run([11, 12]), [3, 4]);
  assert.ok(al.has(0) && !al.has(2));
  // Everything busy: no slot for a new extent.
  for (const e of al.active()) if (al.refs(e) === 0) run([e]);
  assert.equal(al.begin([99]).kind, 'full');
  assert.ok(!al.has(99));
  assert.deepEqual(
    replayActivityLog(ring.blocks, metaId).extents,
    [...al.active()].sort((a, b) => a - b),
  );
});

interface Op {
  readonly extent: number;
  readonly completeSome: number;
  readonly crash: 'none' | 'torn' | 'lost';
}

/** Random workloads: after every durable transaction, and after a torn one, replay gives the committed set. */
function workload(slots: number, extentRange: number, seed: number, numRuns: number) {
  const op: fc.Arbitrary<Op> = fc.record({
    extent: fc.integer({ min: 0, max: extentRange - 1 }),
    completeSome: fc.integer({ min: 0, max: 3 }),
    crash: fc.constantFrom(
      'none' as const,
      'none' as const,
      'none' as const,
      'torn' as const,
      'lost' as const,
    ),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 1, max: 4095 }), (ops, tornBytes) => {
      const ring = new FakeRing();
      const al = freshLog(slots, metaId, ring);
      const inFlight: number[] = [];
      let committed = new Set<number>();
      for (const o of ops) {
        for (let i = 0; i < o.completeSome && inFlight.length > 0; i++) al.complete(inFlight.shift()!);
        const r = al.begin([o.extent]);
        if (r.kind === 'full') continue;
        if (r.kind === 'transaction') {
          if (o.crash !== 'none') {
            // Crash while writing: the ring holds the committed state, perhaps a torn block too.
            const copy = new FakeRing();
            ring.blocks.forEach((b, i) => {
              b.copy(copy.blocks[i]!);
            });
            if (o.crash === 'torn') copy.tear(r.write, tornBytes);
            const replay = replayActivityLog(copy.blocks, metaId);
            assert.ok(replay.complete);
            // A torn block can only be taken if it landed whole enough to check out: then it is the new state.
            const got = new Set(replay.extents);
            const after = new Set(al.active());
            assert.ok(
              sameSet(got, committed) || (o.crash === 'torn' && sameSet(got, after)),
              `replay ${[...got]} vs committed ${[...committed]}`,
            );
          }
          ring.write(r.write);
          al.committed(r.write.seq);
        }
        inFlight.push(o.extent);
        committed = new Set(al.active());
        const replay = replayActivityLog(ring.blocks, metaId);
        assert.ok(replay.complete);
        assert.deepEqual(new Set(replay.extents), committed);
      }
    }),
    { seed, numRuns },
  );
}

function sameSet(a: Set<number>, b: Set<number>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

test('AL replay matches the committed set (7 slots, random workload with crashes)', () => {
  workload(7, 20, 0xa103, 150);
});

test('AL replay matches the committed set (1237 slots: context spans transactions)', () => {
  workload(1237, 3000, 0xa104, 15);
});

test('AL replay at the largest size: 5754 slots need the seven older blocks after a torn newest', () => {
  const ring = new FakeRing();
  const al = freshLog(alSlotsMax, metaId, ring);
  let next = 0;
  for (let round = 0; round < 100; round++) {
    const extents = Array.from({ length: 64 }, () => next++);
    const r = al.begin(extents);
    const w = expectTransaction(r);
    ring.write(w);
    al.committed(w.seq);
    for (const e of extents) al.complete(e);
  }
  const before = new Set(al.active());
  assert.equal(before.size, alSlotsMax);
  const replay = replayActivityLog(ring.blocks, metaId);
  assert.ok(replay.complete);
  assert.deepEqual(new Set(replay.extents), before);
  // The next transaction is torn: the seven others still hold every slot.
  const w = expectTransaction(al.begin(Array.from({ length: 64 }, () => next++)));
  ring.tear(w, 1000);
  const afterTear = replayActivityLog(ring.blocks, metaId);
  assert.ok(afterTear.complete);
  assert.deepEqual(new Set(afterTear.extents), before);
  assert.equal(afterTear.invalid.length, 1);
  // Two more blocks lost: the slots cannot all be accounted for, and replay says so.
  ring.blocks[(w.ringIndex + 1) % 8]!.fill(0);
  const lost = replayActivityLog(ring.blocks, metaId);
  assert.equal(lost.complete, false);
});

test('AL replay ignores blocks of another create-md and treats an empty ring as incomplete', () => {
  const ring = new FakeRing();
  const old = freshLog(7, 0xdeadn, ring);
  const w = expectTransaction(old.begin([42]));
  ring.write(w);
  const replay = replayActivityLog(ring.blocks, metaId);
  assert.deepEqual(replay.extents, []);
  assert.equal(replay.complete, false);
  assert.equal(replay.invalid.length, 8);
  assert.equal(replayActivityLog(new FakeRing().blocks, metaId).complete, false);
});

test('AL reset empties the set and replay stops at it', () => {
  const ring = new FakeRing();
  const al = freshLog(7, metaId, ring);
  const w = expectTransaction(al.begin([1, 2, 3]));
  ring.write(w);
  al.committed(w.seq);
  assert.throws(() => al.reset(), /in flight/);
  for (const e of [1, 2, 3]) al.complete(e);
  const r = al.reset();
  ring.write(r);
  al.committed(r.seq);
  const replay = replayActivityLog(ring.blocks, metaId);
  assert.deepEqual(replay.extents, []);
  assert.ok(replay.complete);
  assert.equal(replay.lastSeq, 3);
  // A log resumed after the replay continues the sequence in the ring.
  const resumed = new ActivityLog(7, metaId, replay.lastSeq);
  assert.equal(expectTransaction(resumed.begin([9])).seq, 4);
});

test('begin refuses extents named twice and changes nothing', () => {
  const log = new ActivityLog(7, 1n, 0);
  assert.equal(log.begin([2]).kind, 'transaction');
  assert.throws(() => log.begin([2, 5, 2]), /extents must be distinct/);
  assert.deepEqual(log.active(), [2]);
  assert.equal(log.refs(2), 1);
});
