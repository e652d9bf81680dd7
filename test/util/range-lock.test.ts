// The range lock that orders overlapping writes: an operation waits for every earlier
// overlapping one and for nothing else, releases are idempotent, and any order of
// releases lets each operation go only after its earlier overlapping ones are gone.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { RangeLock } from '../../src/util/range-lock.js';

/** Whether `p` has settled once pending callbacks ran. */
async function settled(p: Promise<void> | undefined): Promise<boolean> {
  if (p === undefined) return true;
  let done = false;
  void p.then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  return done;
}

test('overlapping operations wait for the earlier ones; disjoint ones do not wait at all', async () => {
  const l = new RangeLock();
  const a = l.acquire(0, 4096);
  const b = l.acquire(4096, 4096); // touches a's end: disjoint
  const c = l.acquire(2048, 4096); // overlaps a and b
  const d = l.acquire(8192, 1);
  assert.equal(a.ready, undefined);
  assert.equal(b.ready, undefined);
  assert.equal(d.ready, undefined);
  assert.equal(l.size, 4);
  assert.equal(await settled(c.ready), false);
  a.release();
  assert.equal(await settled(c.ready), false, 'b still holds part of it');
  b.release();
  b.release(); // twice is fine
  assert.equal(await settled(c.ready), true);
  c.release();
  d.release();
  assert.equal(l.size, 0);
  assert.equal(await settled(l.drained()), true);
});

test('a zero-length operation still orders against one covering its offset', async () => {
  const l = new RangeLock();
  const a = l.acquire(100, 10);
  const b = l.acquire(105, 0);
  assert.equal(await settled(b.ready), false);
  a.release();
  assert.equal(await settled(b.ready), true);
  b.release();
});

test('drained settles once everything registered so far has released', async () => {
  const l = new RangeLock();
  const a = l.acquire(0, 10);
  const b = l.acquire(100, 10);
  const drained = l.drained();
  assert.equal(await settled(drained), false);
  b.release();
  assert.equal(await settled(drained), false);
  a.release();
  assert.equal(await settled(drained), true);
});

test('any acquires and any release order: each goes only after its earlier overlapping operations released', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({ offset: fc.integer({ min: 0, max: 64 }), length: fc.integer({ min: 0, max: 16 }) }),
        {
          minLength: 1,
          maxLength: 20,
        },
      ),
      fc.func(fc.integer()),
      async (ops, pick) => {
        const l = new RangeLock();
        // overlaps() says beforehand whether an acquire would have to wait.
        const locks = ops.map((o) => {
          const wouldWait = l.overlaps(o.offset, o.length);
          const lock = l.acquire(o.offset, o.length);
          assert.equal(wouldWait, lock.ready !== undefined);
          return lock;
        });
        const released = new Set<number>();
        const overlaps = (i: number, j: number): boolean => {
          const [a, b] = [ops[i]!, ops[j]!];
          return a.offset < b.offset + Math.max(b.length, 1) && b.offset < a.offset + Math.max(a.length, 1);
        };
        let turn = 0;
        while (released.size < ops.length) {
          // Of those whose `ready` has settled, release one chosen by the property.
          const runnable: number[] = [];
          for (let i = 0; i < ops.length; i++) {
            if (!released.has(i) && (await settled(locks[i]!.ready))) runnable.push(i);
          }
          assert.ok(runnable.length > 0, 'no operation can go: a deadlock');
          for (const i of runnable) {
            for (let j = 0; j < i; j++) {
              if (overlaps(i, j))
                assert.ok(released.has(j), `op ${i} went before earlier overlapping op ${j}`);
            }
          }
          const i = runnable[Math.abs(pick(turn++)) % runnable.length]!;
          locks[i]!.release();
          released.add(i);
        }
        assert.equal(l.size, 0);
      },
    ),
    { numRuns: 100 },
  );
});
