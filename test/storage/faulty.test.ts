// FaultyStorage: the same seed gives the same faults; each fault kind does what
// it says, with the right StorageError code, and is counted. Also the PRNG under it.
import assert from 'node:assert/strict';
import test from 'node:test';
import { FaultyStorage, type FaultyStorageOptions, sectorBytes } from '../../src/storage/faulty.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageError, type StorageErrorCode } from '../../src/storage/storage.js';
import { Prng } from '../../src/util/prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function faulty(options: FaultyStorageOptions = {}, sizeBytes = 4 * MiB) {
  const base = new MemoryStorage(sizeBytes);
  return { base, f: new FaultyStorage(base, options) };
}

function isCode(code: StorageErrorCode) {
  return (e: unknown) => e instanceof StorageError && e.code === code;
}

/** Settles `p`: 'ok' or the StorageError code. */
async function outcome(p: Promise<void>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof StorageError, `not a StorageError: ${e}`);
    return e.code;
  }
}

/** A fixed mix of operations; returns each one's outcome and the storage's final bytes. */
async function runWorkload(
  f: FaultyStorage,
  base: MemoryStorage,
  ops = 400,
): Promise<{ outcomes: string[]; image: Buffer }> {
  const shape = new Prng(7);
  const outcomes: string[] = [];
  for (let i = 0; i < ops; i++) {
    const offset = shape.int(f.sizeBytes / sectorBytes - 16) * sectorBytes;
    const length = (1 + shape.int(16)) * sectorBytes;
    switch (shape.int(4)) {
      case 0:
        outcomes.push(await outcome(f.read(Buffer.alloc(length), offset)));
        break;
      case 1:
        outcomes.push(await outcome(f.flush()));
        break;
      default:
        outcomes.push(await outcome(f.write(Buffer.alloc(length, 1 + (i % 255)), offset)));
    }
  }
  const image = Buffer.alloc(base.sizeBytes);
  await base.read(image, 0);
  return { outcomes, image };
}

const rates: FaultyStorageOptions = {
  errorRates: { read: 0.1, write: 0.2, flush: 0.3 },
  tornWriteRate: 0.1,
};

test('prng: mulberry32, the same sequence for the same seed, in range', () => {
  const a = new Prng(1);
  // mulberry32(1): the published first outputs (0.6270739405881613 as a float).
  assert.deepEqual([a.uint32(), a.uint32(), a.uint32()], [2693262067, 11749833, 2265367787]);
  const b = new Prng(12345);
  const c = new Prng(12345);
  for (let i = 0; i < 1000; i++) assert.equal(b.uint32(), c.uint32());
  assert.notEqual(new Prng(1).uint32(), new Prng(2).uint32());
  const r = new Prng(3);
  for (let i = 0; i < 1000; i++) {
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    const n = r.int(10);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 10);
    assert.equal(r.chance(0), false);
    assert.equal(r.chance(1), true);
  }
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => new Prng(1.5), RangeError);
});

test('the same seed and calls give the same faults and the same disk image; another seed does not', async () => {
  const x = faulty({ seed: 99, ...rates });
  const y = faulty({ seed: 99, ...rates });
  const z = faulty({ seed: 100, ...rates });
  const rx = await runWorkload(x.f, x.base);
  const ry = await runWorkload(y.f, y.base);
  const rz = await runWorkload(z.f, z.base);
  assert.deepEqual(rx.outcomes, ry.outcomes);
  assert.ok(rx.image.equals(ry.image), 'identical disk images');
  assert.deepEqual(x.f.injected, y.f.injected);
  assert.notDeepEqual(rx.outcomes, rz.outcomes);
  // The rates are rates: roughly the asked share of each operation fails.
  const failed = rx.outcomes.filter((o) => o !== 'ok').length;
  assert.ok(failed > 40 && failed < 160, `${failed} of 400 failed`);
  assert.ok(x.f.injected.tornWrites > 0);
  assert.equal(x.f.faultCount, failed);
});

test('writeSync injects the same faults as write for the same seed, and leaves the same disk image', async () => {
  const x = faulty({ seed: 5, ...rates });
  const y = faulty({ seed: 5, ...rates });
  const rx = await runWorkload(x.f, x.base);
  // The same workload with every write taken at once.
  const sync = Object.assign(Object.create(y.f) as FaultyStorage, {
    write: async (buf: Uint8Array, offset: number) => {
      assert.ok(y.f.writesSync(buf.length));
      y.f.writeSync(buf, offset);
    },
  });
  const ry = await runWorkload(sync, y.base);
  assert.deepEqual(rx.outcomes, ry.outcomes);
  assert.ok(rx.image.equals(ry.image), 'identical disk images');
  assert.deepEqual(x.f.injected, y.f.injected);
  assert.ok(x.f.injected.tornWrites > 0 && x.f.injected.writeErrors > 0);
  // A delayed disk needs the event loop: it takes no writes at once.
  y.f.setDelay('write', 0);
  assert.equal(y.f.writesSync(4096), false);
});

test('faults are decided when an operation is called, not when it completes; delays do not move them', async () => {
  // Same seed, one with random delays that complete out of order: the same operations fail.
  const pending: (() => void)[] = [];
  const slow = faulty({
    seed: 5,
    errorRates: { write: 0.5 },
    delays: { write: { minMs: 1, maxMs: 50 } },
    sleep: () => new Promise<void>((resolve) => pending.push(resolve)),
  });
  const fast = faulty({ seed: 5, errorRates: { write: 0.5 } });
  const calls = (f: FaultyStorage) =>
    Array.from({ length: 64 }, (_, i) => outcome(f.write(Buffer.alloc(4096, i), i * 4096)));
  const slowAll = Promise.all(calls(slow.f));
  assert.equal(pending.length, 64, 'every write waits on the injected sleep');
  // Wake them last first.
  for (const wake of pending.reverse()) wake();
  assert.deepEqual(await slowAll, await Promise.all(calls(fast.f)));
  assert.equal(slow.f.injected.delays, 64);
});

test('failNthWrite: exactly that write fails with EIO and stores nothing', async () => {
  const { base, f } = faulty();
  f.failNthWrite(3);
  const results: string[] = [];
  for (let i = 0; i < 5; i++) results.push(await outcome(f.write(Buffer.alloc(4096, 0x10 + i), i * 4096)));
  assert.deepEqual(results, ['ok', 'ok', 'EIO', 'ok', 'ok']);
  const b = Buffer.alloc(4096, 0xff);
  await base.read(b, 2 * 4096);
  assert.ok(
    b.every((x) => x === 0),
    'the failed write left nothing',
  );
  assert.equal(f.injected.writeErrors, 1);
  assert.equal(f.ops.writes, 5);
  // Counted from the call: after 5 writes, failNthWrite(1) is the 6th.
  f.failNthWrite(1);
  await assert.rejects(f.write(Buffer.alloc(1), 0), isCode('EIO'));
  await f.write(Buffer.alloc(1), 0);
  assert.throws(() => f.failNthWrite(0), RangeError);
});

test('failRange: operations overlapping a bad range fail, neighbours work; reads only when asked', async () => {
  const { f } = faulty();
  f.failRange(1 * MiB, 8192);
  await f.write(Buffer.alloc(4096), 1 * MiB - 4096);
  await f.write(Buffer.alloc(4096), 1 * MiB + 8192);
  await assert.rejects(f.write(Buffer.alloc(4096), 1 * MiB - 100), isCode('EIO'));
  await assert.rejects(f.write(Buffer.alloc(1), 1 * MiB + 8191), isCode('EIO'));
  await f.read(Buffer.alloc(8192), 1 * MiB);
  await f.discard(1 * MiB, 8192);
  f.failRange(2 * MiB, 512, ['read', 'discard']);
  await assert.rejects(f.read(Buffer.alloc(1024), 2 * MiB - 512), isCode('EIO'));
  await assert.rejects(f.discard(2 * MiB, 512), isCode('EIO'));
  await f.write(Buffer.alloc(512), 2 * MiB);
  // An empty access touches no sector.
  await f.write(Buffer.alloc(0), 1 * MiB);
  assert.deepEqual(
    { r: f.injected.readErrors, w: f.injected.writeErrors, d: f.injected.discardErrors },
    { r: 1, w: 2, d: 1 },
  );
  assert.throws(() => f.failRange(4 * MiB, 1), isCode('EINVAL'));
});

test('failAll: every operation fails with EIO until heal(), then the data written before is still there', async () => {
  const { f } = faulty({ seed: 3 });
  await f.write(Buffer.alloc(4096, 0xab), 0);
  f.failAll();
  await assert.rejects(f.read(Buffer.alloc(4096), 0), isCode('EIO'));
  await assert.rejects(f.write(Buffer.alloc(4096), 0), isCode('EIO'));
  await assert.rejects(f.flush(), isCode('EIO'));
  await assert.rejects(f.discard(0, 4096), isCode('EIO'));
  assert.deepEqual(
    [f.injected.readErrors, f.injected.writeErrors, f.injected.flushErrors, f.injected.discardErrors],
    [1, 1, 1, 1],
  );
  f.heal();
  const b = Buffer.alloc(4096);
  await f.read(b, 0);
  assert.ok(b.every((x) => x === 0xab));
  await f.flush();
});

test('heal() clears rates, torn writes, triggers, ranges and disk full; counters stay', async () => {
  const { f } = faulty({
    errorRates: { read: 1, write: 1, flush: 1, discard: 1 },
    tornWriteRate: 1,
    fullAtBytes: 0,
  });
  f.failRange(0, 4096);
  f.failNthWrite(1);
  await assert.rejects(f.flush(), isCode('EIO'));
  f.heal();
  await f.write(Buffer.alloc(4096), 0);
  await f.read(Buffer.alloc(4096), 0);
  await f.flush();
  await f.discard(0, 4096);
  assert.equal(f.injected.flushErrors, 1);
});

test('torn write: a prefix of whole sectors is stored, then EIO', async () => {
  const { base, f } = faulty({ seed: 11 });
  f.failNthWrite(1, 'torn');
  const data = Buffer.alloc(64 * KiB, 0xaa);
  await assert.rejects(f.write(data, 1 * MiB), (e: unknown) => {
    assert.ok(e instanceof StorageError);
    assert.equal(e.code, 'EIO');
    assert.equal(e.offset, 1 * MiB);
    assert.equal(e.length, data.length);
    assert.match(e.message, /torn after \d+ bytes/);
    return true;
  });
  const back = Buffer.alloc(data.length);
  await base.read(back, 1 * MiB);
  const stored = back.indexOf(0);
  assert.ok(stored >= 0 && stored < data.length, 'only a prefix');
  assert.equal(stored % sectorBytes, 0, 'whole sectors');
  assert.ok(
    back.subarray(stored).every((x) => x === 0),
    'nothing after the cut',
  );
  assert.equal(f.injected.tornWrites, 1);
  assert.equal(f.injected.writeErrors, 1);
  // The same seed tears at the same place.
  const again = faulty({ seed: 11 });
  again.f.failNthWrite(1, 'torn');
  await assert.rejects(again.f.write(data, 1 * MiB), isCode('EIO'));
  const back2 = Buffer.alloc(data.length);
  await again.base.read(back2, 1 * MiB);
  assert.ok(back.equals(back2));
});

test('torn writes cut at device sector boundaries, also for unaligned writes, at every possible place', async () => {
  const offset = 700;
  const length = 3000;
  // Boundaries strictly inside [700, 3700), plus "nothing stored".
  const allowed = [700, 1024, 1536, 2048, 2560, 3072, 3584];
  const seen = new Set<number>();
  for (let seed = 0; seed < 200; seed++) {
    const { base, f } = faulty({ seed, tornWriteRate: 1 }, 64 * KiB);
    await assert.rejects(f.write(Buffer.alloc(length, 0xcc), offset), isCode('EIO'));
    const back = Buffer.alloc(length);
    await base.read(back, offset);
    const i = back.indexOf(0);
    const cut = offset + (i < 0 ? length : i);
    assert.ok(allowed.includes(cut), `cut at ${cut}`);
    seen.add(cut);
  }
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    allowed,
  );
});

test('disk full: a write reaching past fullAtBytes fails with ENOSPC and stores nothing; reads work', async () => {
  const { base, f } = faulty({ fullAtBytes: 1 * MiB });
  await f.write(Buffer.alloc(4096, 1), 1 * MiB - 4096);
  await assert.rejects(f.write(Buffer.alloc(4096, 2), 1 * MiB - 2048), isCode('ENOSPC'));
  await assert.rejects(f.write(Buffer.alloc(1, 2), 3 * MiB), isCode('ENOSPC'));
  await f.read(Buffer.alloc(4096), 2 * MiB);
  const b = Buffer.alloc(2048);
  await base.read(b, 1 * MiB);
  assert.ok(b.every((x) => x === 0));
  assert.equal(f.injected.noSpace, 2);
  assert.equal(f.injected.writeErrors, 2);
  f.setFullAt(undefined);
  await f.write(Buffer.alloc(4096, 2), 1 * MiB - 2048);
  assert.throws(() => f.setFullAt(-1), RangeError);
});

test('error rates per operation: 1 fails every such operation with EIO, others untouched', async () => {
  const { f } = faulty({ errorRates: { flush: 1 } });
  await f.write(Buffer.alloc(512), 0);
  await f.read(Buffer.alloc(512), 0);
  await assert.rejects(f.flush(), isCode('EIO'));
  f.setErrorRate('flush', 0);
  f.setErrorRate('read', 1);
  await f.flush();
  await assert.rejects(f.read(Buffer.alloc(512), 0), isCode('EIO'));
  assert.throws(() => f.setErrorRate('write', 1.5), RangeError);
  assert.throws(() => new FaultyStorage(new MemoryStorage(4096), { tornWriteRate: -0.1 }), RangeError);
  assert.throws(() => f.setErrorRate('write', Number.NaN), RangeError);
});

test('delays: fixed and random per operation, through the injected sleep, before the operation runs', async () => {
  const slept: number[] = [];
  let wake: (() => void) | undefined;
  const { base, f } = faulty({
    seed: 8,
    delays: { write: 5, read: { minMs: 2, maxMs: 4 } },
    sleep: (ms) => {
      slept.push(ms);
      return new Promise<void>((resolve) => {
        wake = resolve;
      });
    },
  });
  let done = false;
  const w = f.write(Buffer.alloc(512, 7), 0).then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'still sleeping');
  const b = Buffer.alloc(512);
  await base.read(b, 0);
  assert.equal(b[0], 0, 'not written before the delay is over');
  wake?.();
  await w;
  await base.read(b, 0);
  assert.equal(b[0], 7);
  for (let i = 0; i < 20; i++) {
    const r = f.read(Buffer.alloc(512), 0);
    wake?.();
    await r;
  }
  await f.flush(); // no delay configured: no sleep
  assert.equal(slept[0], 5);
  assert.equal(slept.length, 21);
  for (const ms of slept.slice(1)) assert.ok(ms >= 2 && ms <= 4, `${ms} ms`);
  assert.ok(new Set(slept.slice(1)).size > 1, 'random, not fixed');
  assert.equal(f.injected.delays, 21);
  assert.ok(Math.abs(f.injected.delayMsTotal - slept.reduce((a, x) => a + x, 0)) < 1e-9);
  assert.throws(() => f.setDelay('flush', { minMs: 3, maxMs: 1 }), RangeError);
});

test('the default sleep is a real timer', async () => {
  const { f } = faulty({ delays: { flush: 20 } });
  const t0 = performance.now();
  await f.flush();
  assert.ok(performance.now() - t0 >= 15);
});

test('closed and out-of-range calls are refused with ECLOSED / EINVAL before any fault, and not counted', async () => {
  const { f } = faulty();
  f.failAll();
  await assert.rejects(f.write(Buffer.alloc(4096), f.sizeBytes - 100), isCode('EINVAL'));
  await assert.rejects(f.read(Buffer.alloc(1), -1), isCode('EINVAL'));
  await assert.rejects(f.discard(0, f.sizeBytes + 1), isCode('EINVAL'));
  assert.equal(f.faultCount, 0);
  assert.equal(f.ops.writes, 0);
  await f.close();
  await assert.rejects(f.read(Buffer.alloc(1), 0), isCode('ECLOSED'));
  await assert.rejects(f.write(Buffer.alloc(1), 0), isCode('ECLOSED'));
  await assert.rejects(f.flush(), isCode('ECLOSED'));
  await assert.rejects(f.discard(0, 1), isCode('ECLOSED'));
  assert.equal(f.faultCount, 0);
});

test('without faults it is the storage it wraps: name, size, data, discard, flush', async () => {
  const { base, f } = faulty();
  assert.equal(f.name, base.name);
  assert.equal(f.sizeBytes, base.sizeBytes);
  await f.write(Buffer.alloc(3 * 64 * KiB, 0x42), 100);
  await f.discard(1000, 1000);
  const b = Buffer.alloc(3 * 64 * KiB);
  await f.read(b, 100);
  assert.ok(b.subarray(0, 900).every((x) => x === 0x42));
  assert.ok(b.subarray(900, 1900).every((x) => x === 0));
  assert.ok(b.subarray(1900).every((x) => x === 0x42));
  await f.flush();
  assert.equal(base.flushes, 1);
  assert.deepEqual(f.ops, { reads: 1, writes: 1, flushes: 1, discards: 1 });
  assert.equal(f.faultCount, 0);
});
