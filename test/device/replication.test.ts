// Two Resources in one process on loopback (test/helpers/resource-pair.ts): when a
// write completes under protocols A, B and C, flushes that reach the peer's disk, what
// a lost connection marks out of sync, ordering of overlapping writes, and verify.
import assert from 'node:assert/strict';
import test from 'node:test';
import { type Node, pair, settlesWithin, syncedPair, vol, waitFor } from '../helpers/resource-pair.js';

const volumeOf = (n: Node) => n.res.volumes[0]!;

test('fresh pair: connected, both Inconsistent; primary --force makes a full sync to UpToDate', async () => {
  const p = await pair('C');
  try {
    await waitFor('connected', () => p.a.res.status().connection === 'Connected');
    await waitFor('peer disk', () => vol(p.a).peerDisk === 'Inconsistent');
    assert.equal(vol(p.a).disk, 'Inconsistent');
    await p.a.res.primary(true);
    await waitFor(
      'UpToDate/UpToDate',
      () => vol(p.b).disk === 'UpToDate' && vol(p.a).peerDisk === 'UpToDate',
    );
    assert.equal(vol(p.b).outOfSyncBytes, 0);
    assert.equal(vol(p.a).outOfSyncBytes, 0);
    assert.equal(p.b.res.status().peerRole, 'Primary');
    // The full sync moved little: the memory disks are all zeroes, sent as "all zeroes".
    const sent = vol(p.a).counters.sentBytes;
    assert.ok(sent < 1024 * 1024, `a full sync of zeroes sent ${sent} bytes`);
  } finally {
    await p.cleanup();
  }
});

test('protocol C: a write completes only when the peer has written it', async () => {
  const p = await syncedPair('C');
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 7), 8192, false);
    assert.equal(await settlesWithin(w, 200), false, 'completed before the peer wrote it');
    p.b.data.release();
    await w;
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 8192);
    assert.ok(check.equals(Buffer.alloc(4096, 7)));
    // Acks held: still not complete.
    p.proxy.hold('backward');
    const w2 = volumeOf(p.a).write(Buffer.alloc(4096, 8), 16384, false);
    assert.equal(await settlesWithin(w2, 200), false, 'completed without the WriteAck');
    p.proxy.release('backward');
    await w2;
  } finally {
    await p.cleanup();
  }
});

test('protocol B: a write completes when the peer has received it, before its disk write', async () => {
  const p = await syncedPair('B');
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 9), 8192, false);
    assert.equal(await settlesWithin(w, 500), true, 'B waited for the peer disk');
    p.proxy.hold('backward');
    const w2 = volumeOf(p.a).write(Buffer.alloc(4096, 10), 16384, false);
    assert.equal(await settlesWithin(w2, 200), false, 'B completed without the RecvAck');
    p.proxy.release('backward');
    await w2;
    p.b.data.release();
  } finally {
    await p.cleanup();
  }
});

for (const protocol of ['A', 'B'] as const) {
  test(`protocol ${protocol}: a write submitted after another completed reaches the peer's disk after it`, async () => {
    // The peer orders by the epoch of each Data frame: the second write is in a later
    // epoch, so it waits for the first before it goes to the disk (Barriers, and the
    // peer's flushes, come from the timer: a minute here).
    const p = await syncedPair(protocol, '', '', { barrierIntervalMs: 60_000 });
    try {
      p.b.data.hold();
      await volumeOf(p.a).write(Buffer.alloc(4096, 1), 8192, false);
      await waitFor('the first write at the peer disk', () => p.b.data.held === 1);
      const received = vol(p.b).counters.receivedBytes;
      await volumeOf(p.a).write(Buffer.alloc(4096, 2), 65536, false);
      await waitFor(
        'the second write at the peer',
        () => vol(p.b).counters.receivedBytes === received + 4096,
      );
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(p.b.data.held, 1, 'the second write went to the disk beside the first');
      const written = p.b.data.writes;
      const flushes = p.b.data.flushes;
      p.b.data.release();
      await waitFor('both writes on the peer disk', () => p.b.data.writes === written + 2);
      const block = Buffer.alloc(4096);
      await p.b.data.read(block, 65536);
      assert.equal(block[0], 2);
      // A new epoch is no Barrier: the peer does not flush after every write.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(p.b.data.flushes, flushes, 'the peer flushed for a new epoch');
    } finally {
      await p.cleanup();
    }
  });
}

test('a Primary whose epochs start again at 1 (its daemon restarted) gets BarrierAcks from a Secondary that flushed later epochs before', async () => {
  const p = await syncedPair('A', '', '', { barrierIntervalMs: 5 });
  // The replicator's transfer log and epoch: what a restarted tandemd starts afresh.
  const engine = (n: Node) =>
    (n.res as unknown as { replicator: { epoch: number; tl: Map<number, unknown> } }).replicator;
  try {
    for (let i = 0; i < 20; i++) await volumeOf(p.a).write(Buffer.alloc(4096, i), 4096 * i, false);
    await waitFor('the first writes confirmed', () => engine(p.a).tl.size === 0);
    assert.ok(engine(p.a).epoch > 5);
    await p.a.res.disconnect();
    engine(p.a).epoch = 1;
    await p.a.res.connect();
    await waitFor('connected again', () => vol(p.a).replication === 'Connected');
    for (let i = 0; i < 3; i++) await volumeOf(p.a).write(Buffer.alloc(4096, 9), 4096 * i, false);
    // Before, the Secondary took Barrier(1..) for epochs it had flushed already: no
    // BarrierAck, and the Primary's transfer log (and activity log) never let go.
    await waitFor('the new writes confirmed', () => engine(p.a).tl.size === 0, 3_000);
  } finally {
    await p.cleanup();
  }
});

test('protocol A: a write completes with no answer from the peer; a FLUSH waits for the peer disk', async () => {
  const p = await syncedPair('A');
  try {
    p.proxy.hold('backward');
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 11), 8192, false);
    assert.equal(await settlesWithin(w, 500), true, 'A waited for the peer');
    const f = volumeOf(p.a).flush();
    assert.equal(await settlesWithin(f, 200), false, 'FLUSH completed before the peer disk was stable');
    p.b.data.release();
    assert.equal(await settlesWithin(f, 200), false, 'FLUSH completed without the FlushAck');
    p.proxy.release('backward');
    await f;
    assert.ok(p.b.data.flushes > 0, 'the peer flushed its disk');
  } finally {
    await p.cleanup();
  }
});

test('a lost connection completes pending writes locally and marks them out of sync', async () => {
  const p = await syncedPair('C');
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(8192, 12), 1024 * 1024, false);
    assert.equal(await settlesWithin(w, 100), false);
    p.proxy.cut();
    await w;
    assert.equal(vol(p.a).outOfSyncBytes, 8192);
    // While disconnected every write is out of sync.
    await volumeOf(p.a).write(Buffer.alloc(4096, 13), 2 * 1024 * 1024, false);
    assert.equal(vol(p.a).outOfSyncBytes, 8192 + 4096);
    p.b.data.release();
    // Reconnect (connect-int 1 s): a bitmap resync, a SyncSource, only those blocks.
    await waitFor(
      'resynced',
      () =>
        vol(p.a).replication === 'Connected' &&
        vol(p.a).outOfSyncBytes === 0 &&
        vol(p.b).outOfSyncBytes === 0,
      15_000,
    );
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 2 * 1024 * 1024);
    assert.ok(check.equals(Buffer.alloc(4096, 13)));
    await p.b.data.read(check, 1024 * 1024 + 4096);
    assert.ok(check.equals(Buffer.alloc(4096, 12)));
  } finally {
    await p.cleanup();
  }
});

test('overlapping writes in flight reach both disks in submission order', async () => {
  const p = await syncedPair('C');
  try {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      const off = 65536 + (i % 5) * 2048;
      writes.push(volumeOf(p.a).write(Buffer.alloc(8192, i + 1), off, false));
    }
    await Promise.all(writes);
    const mine = Buffer.alloc(96 * 1024);
    const theirs = Buffer.alloc(96 * 1024);
    await p.a.data.read(mine, 65536);
    await p.b.data.read(theirs, 65536);
    assert.ok(mine.equals(theirs), 'the replicas differ');
  } finally {
    await p.cleanup();
  }
});

test('verify finds exactly a corrupted block on the Secondary; reconnecting resyncs it', async () => {
  const p = await syncedPair('C', 'verify-alg crc32c;');
  try {
    await volumeOf(p.a).write(Buffer.alloc(1024 * 1024, 0x42), 4 * 1024 * 1024, false);
    // Corrupt one 4 KiB block of the Secondary's disk behind tandem's back.
    await p.b.disk.write(Buffer.alloc(4096, 0xee), 4 * 1024 * 1024 + 12 * 4096);
    await p.a.res.verify();
    await waitFor('verify', () => vol(p.a).verify?.done === true);
    assert.equal(vol(p.a).verify?.outOfSyncBytes, 4096);
    assert.equal(vol(p.a).outOfSyncBytes, 4096);
    await p.a.res.disconnect();
    await p.a.res.connect();
    await waitFor(
      'resync',
      () =>
        vol(p.a).replication === 'Connected' &&
        vol(p.a).outOfSyncBytes === 0 &&
        vol(p.b).outOfSyncBytes === 0,
    );
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 4 * 1024 * 1024 + 12 * 4096);
    assert.ok(check.equals(Buffer.alloc(4096, 0x42)));
  } finally {
    await p.cleanup();
  }
});

test('ko-count: a peer whose disk hangs (but whose daemon answers pings) is dropped after ko-count × timeout', async () => {
  const p = await syncedPair('C', 'timeout 3; ko-count 2;');
  try {
    p.b.data.hold();
    const t0 = Date.now();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 14), 3 * 1024 * 1024, false);
    assert.equal(await settlesWithin(w, 300), false, 'completed before ko-count × timeout (600 ms)');
    await w;
    const waited = Date.now() - t0;
    assert.ok(waited >= 600 && waited < 3000, `dropped after ${waited} ms`);
    assert.equal(vol(p.a).outOfSyncBytes, 4096);
    assert.ok(
      p.a.log.lines.some((l) => /unanswered .*ko-count 2/.test(l)),
      'the log says why',
    );
  } finally {
    await p.cleanup();
  }
});

test('csums-alg: out-of-sync blocks whose checksums match are not sent', async () => {
  const p = await syncedPair('C', 'csums-alg sha256;');
  try {
    const data = Buffer.alloc(2 * 1024 * 1024, 0x61);
    await volumeOf(p.a).write(data, 0, false);
    await p.a.res.disconnect();
    // The same bytes again while disconnected: out of sync by the bitmap, equal in fact.
    await volumeOf(p.a).write(data, 0, false);
    // And one block that really differs.
    await volumeOf(p.a).write(Buffer.alloc(4096, 0x62), 4 * 1024 * 1024, false);
    assert.equal(vol(p.a).outOfSyncBytes, 2 * 1024 * 1024 + 4096);
    const before = vol(p.a).counters.sentBytes;
    await p.a.res.connect();
    await waitFor(
      'resync',
      () =>
        vol(p.a).replication === 'Connected' &&
        vol(p.a).outOfSyncBytes === 0 &&
        vol(p.b).outOfSyncBytes === 0,
    );
    const sent = vol(p.a).counters.sentBytes - before;
    assert.ok(sent <= 64 * 1024, `sent ${sent} bytes for 4 KiB that differed`);
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 4 * 1024 * 1024);
    assert.ok(check.equals(Buffer.alloc(4096, 0x62)));
  } finally {
    await p.cleanup();
  }
});

test('resync-rate with c-plan-ahead 0: the resync keeps to the fixed rate', async () => {
  // 32 MiB/s (resync-rate is in KiB/s) for 8 MiB out of sync: at least ~0.25 s.
  const p = await pair('C', '', 'disk { c-plan-ahead 0; resync-rate 32768; }');
  try {
    await waitFor('connected', () => p.a.res.status().connection === 'Connected');
    await p.a.res.primary(true);
    // The rate counts requested bytes, zeroes too: the initial full sync of 32 MiB takes ~1 s.
    await waitFor('sync', () => vol(p.b).disk === 'UpToDate', 15_000);
    await p.a.res.disconnect();
    await volumeOf(p.a).write(Buffer.alloc(8 * 1024 * 1024, 0x63), 0, false);
    const t0 = Date.now();
    await p.a.res.connect();
    await waitFor(
      'resync',
      () =>
        vol(p.a).replication === 'Connected' &&
        vol(p.b).outOfSyncBytes === 0 &&
        vol(p.a).outOfSyncBytes === 0,
      15_000,
    );
    const ms = Date.now() - t0;
    assert.ok(ms >= 180, `8 MiB resynced in ${ms} ms at 32 MiB/s`);
  } finally {
    await p.cleanup();
  }
});

test('invalidate: this node fetches everything from the peer; invalidate-remote: the peer does', async () => {
  const p = await syncedPair('C');
  try {
    await volumeOf(p.a).write(Buffer.alloc(1024 * 1024, 0x64), 0, false);
    // Corrupt b behind tandem's back, then b invalidates itself: a full sync repairs it.
    await p.b.disk.write(Buffer.alloc(4096, 0xee), 8192);
    await p.b.res.invalidate();
    await waitFor(
      'full sync to b',
      () =>
        vol(p.b).disk === 'UpToDate' && vol(p.b).outOfSyncBytes === 0 && vol(p.a).replication === 'Connected',
    );
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, 8192);
    assert.ok(check.equals(Buffer.alloc(4096, 0x64)));
    // A Primary cannot throw its own data away.
    await assert.rejects(p.a.res.invalidate(), /invalidate needs a Secondary/);
    await p.b.disk.write(Buffer.alloc(4096, 0xef), 12288);
    await p.a.res.invalidateRemote();
    await waitFor(
      'full sync again',
      () =>
        vol(p.b).disk === 'UpToDate' && vol(p.b).outOfSyncBytes === 0 && vol(p.a).replication === 'Connected',
    );
    await p.b.data.read(check, 12288);
    assert.ok(check.equals(Buffer.alloc(4096, 0x64)));
  } finally {
    await p.cleanup();
  }
});

/** Both replicas, byte for byte. */
async function sameReplicas(p: { a: Node; b: Node }): Promise<boolean> {
  const size = volumeOf(p.a).sizeBytes;
  const x = Buffer.alloc(1024 * 1024);
  const y = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < size; at += x.length) {
    const n = Math.min(x.length, size - at);
    await p.a.data.read(x.subarray(0, n), at);
    await p.b.data.read(y.subarray(0, n), at);
    if (!x.subarray(0, n).equals(y.subarray(0, n))) return false;
  }
  return true;
}

/** Random overlapping writes (seeded) at `depth` until `stop` resolves. */
async function churn(n: Node, seed: number, depth: number, stop: Promise<void>): Promise<number> {
  let s = seed;
  let running = true;
  void stop.then(() => {
    running = false;
  });
  let writes = 0;
  const size = volumeOf(n).sizeBytes;
  const worker = async (): Promise<void> => {
    while (running) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const len = 512 * (1 + (s % 64));
      const off = Math.floor(((s >>> 8) % Math.floor((size - len) / 512)) * 512);
      await volumeOf(n).write(Buffer.alloc(len, s & 0xff), off, false);
      writes++;
      // Memory disks complete in microtasks: let timers and sockets run.
      await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return writes;
}

test('application writes during a resync: both replicas end identical', async () => {
  const p = await syncedPair('C');
  // The writers stop in the finally too: a failed wait must fail the test, not leave
  // them writing for ever (the file then never ends).
  let done: () => void = () => {};
  let writing: Promise<number> | undefined;
  try {
    await p.a.res.disconnect();
    await churn(p.a, 1, 8, new Promise((r) => setTimeout(r, 300)));
    assert.ok(vol(p.a).outOfSyncBytes > 1024 * 1024, 'enough to resync');
    // Write before, while and after the resync runs, into the same regions.
    const stop = new Promise<void>((r) => {
      done = r;
    });
    const w = churn(p.a, 2, 8, stop);
    writing = w;
    await p.a.res.connect();
    await waitFor(
      'resync started',
      () => vol(p.a).replication === 'SyncSource' || vol(p.a).outOfSyncBytes === 0,
    );
    await waitFor(
      'resync done',
      () => vol(p.a).replication === 'Connected' && vol(p.a).outOfSyncBytes === 0,
      20_000,
    );
    done();
    const writes = await w;
    assert.ok(writes > 50, `only ${writes} writes around the resync`);
    await waitFor('settled', () => vol(p.b).outOfSyncBytes === 0 && vol(p.b).counters.unacked === 0);
    assert.ok(await sameReplicas(p), 'the replicas differ after a resync under load');
  } finally {
    done();
    await writing?.catch(() => 0);
    await p.cleanup();
  }
});

test('application writes during the initial full sync: both replicas end identical', async () => {
  const p = await pair('C');
  let done: () => void = () => {};
  let writing: Promise<number> | undefined;
  try {
    await waitFor(
      'connected',
      () => p.a.res.status().connection === 'Connected' && vol(p.a).peerDisk === 'Inconsistent',
    );
    await p.a.res.primary(true);
    const stop = new Promise<void>((r) => {
      done = r;
    });
    const w = churn(p.a, 3, 8, stop);
    writing = w;
    await waitFor(
      'full sync done',
      () => vol(p.b).disk === 'UpToDate' && vol(p.a).replication === 'Connected',
      20_000,
    );
    done();
    await w;
    await waitFor('settled', () => vol(p.b).outOfSyncBytes === 0 && vol(p.b).counters.unacked === 0);
    assert.ok(await sameReplicas(p), 'the replicas differ after the initial sync under load');
  } finally {
    done();
    await writing?.catch(() => 0);
    await p.cleanup();
  }
});

test('fencing resource-only: a Primary that loses its peer holds writes until fence-peer answers', async () => {
  const p = await syncedPair(
    'C',
    '',
    'disk { fencing resource-only; } handlers { fence-peer "sleep 0.4; exit 4"; }',
  );
  try {
    p.proxy.cut();
    await waitFor('disconnected', () => p.a.res.status().connection !== 'Connected');
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 15), 5 * 1024 * 1024, false);
    assert.equal(await settlesWithin(w, 150), false, 'a write completed while the peer was being fenced');
    assert.equal(p.a.res.status().suspended, 'fencing');
    await w;
    assert.equal(p.a.res.status().suspended, null);
    assert.equal(volumeOf(p.a).meta?.flags().peerOutdated, true, 'the peer is recorded as outdated');
  } finally {
    await p.cleanup();
  }
});

test('fencing: a peer that is Primary itself (exit 6) keeps writes held until resume-io', async () => {
  const p = await syncedPair('C', '', 'disk { fencing resource-only; } handlers { fence-peer "exit 6"; }');
  try {
    p.proxy.cut();
    await waitFor('disconnected', () => p.a.res.status().connection !== 'Connected');
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 16), 5 * 1024 * 1024, false);
    assert.equal(await settlesWithin(w, 500), false, 'a write completed though the peer is Primary');
    await p.a.res.resumeIo();
    await w;
  } finally {
    await p.cleanup();
  }
});

test('fencing: a write in flight when the link drops is not acknowledged while the peer is being fenced', async () => {
  const p = await syncedPair(
    'C',
    '',
    'disk { fencing resource-and-stonith; } handlers { fence-peer "sleep 0.6; exit 4"; }',
  );
  try {
    p.b.data.hold();
    const w = volumeOf(p.a).write(Buffer.alloc(4096, 17), 8192, false);
    assert.equal(await settlesWithin(w, 100), false);
    p.proxy.cut();
    assert.equal(await settlesWithin(w, 300), false, 'acknowledged before the peer was fenced');
    await w;
    assert.equal(vol(p.a).outOfSyncBytes >= 4096, true);
  } finally {
    await p.cleanup();
  }
});

test('secondary --force (a node without the majority): held and in-flight writes fail with EIO, no new data generation', async () => {
  const p = await syncedPair('C', '', 'disk { fencing resource-only; } handlers { fence-peer "exit 6"; }');
  try {
    const generation = volumeOf(p.a).meta?.uuids().current;
    // One write waits for the peer's ack when the link is cut; one arrives while fencing holds.
    p.b.data.hold();
    const inFlight = volumeOf(p.a).write(Buffer.alloc(4096, 21), 8192, false);
    assert.equal(await settlesWithin(inFlight, 100), false);
    p.proxy.cut();
    await waitFor('disconnected', () => p.a.res.status().connection !== 'Connected');
    const held = volumeOf(p.a).write(Buffer.alloc(4096, 22), 5 * 1024 * 1024, false);
    assert.equal(await settlesWithin(held, 300), false, 'completed while the peer could not be fenced');
    await p.a.res.secondary(true);
    assert.equal(p.a.res.role(), 'Secondary');
    await assert.rejects(inFlight, (e: Error & { nbdErrno?: number }) => e.nbdErrno === 5);
    await assert.rejects(held, (e: Error & { nbdErrno?: number }) => e.nbdErrno !== undefined);
    await assert.rejects(volumeOf(p.a).write(Buffer.alloc(4096, 23), 0, false));
    assert.equal(p.a.res.status().suspended, null);
    // Nothing was acknowledged here: the data generation stays, so the node that takes
    // over (a new generation of its own) resyncs this one without a split brain.
    assert.equal(volumeOf(p.a).meta?.uuids().current, generation);
  } finally {
    p.b.data.release();
    await p.cleanup();
  }
});

test('fencing that ends in resume-io starts the new data generation only then', async () => {
  const p = await syncedPair('C', '', 'disk { fencing resource-only; } handlers { fence-peer "exit 6"; }');
  try {
    const generation = volumeOf(p.a).meta?.uuids().current;
    p.proxy.cut();
    await waitFor('suspended', () => p.a.res.status().suspended === 'fencing');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(volumeOf(p.a).meta?.uuids().current, generation, 'a new generation while writes are held');
    await p.a.res.resumeIo();
    assert.notEqual(volumeOf(p.a).meta?.uuids().current, generation);
    assert.equal(volumeOf(p.a).meta?.uuids().bitmap, generation);
  } finally {
    await p.cleanup();
  }
});

test('a Secondary whose disk falls behind stops reading (max-buffers), stays connected, and catches up', async () => {
  // max-buffers 256: 1 MiB of peer data may wait for the disk; pings every 0.2 s.
  const p = await syncedPair('A', 'max-buffers 256; ping-int 1; ping-timeout 2;');
  try {
    p.b.data.hold();
    const chunk = 256 * 1024;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 48; i++)
      writes.push(volumeOf(p.a).write(Buffer.alloc(chunk, i + 1), i * chunk, false));
    let most = 0;
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      most = Math.max(most, p.b.res.replicator?.receivePendingBytes ?? 0);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Bounded: the limit, plus the frame that crossed it.
    assert.ok(most > 0, 'nothing reached the Secondary');
    assert.ok(most <= 1024 * 1024 + chunk, `the Secondary held ${most} bytes of peer data`);
    // The link survived 2.5 s without the Secondary reading (pings unanswered meanwhile).
    assert.equal(p.a.res.status().connection, 'Connected');
    assert.equal(p.b.res.status().connection, 'Connected');
    p.b.data.release();
    await Promise.all(writes);
    // Protocol A completed the writes when sent; the last ones reach the Secondary's disk
    // once it reads again.
    let same = false;
    for (let i = 0; i < 100 && !same; i++) {
      same = vol(p.a).outOfSyncBytes === 0 && (await sameReplicas(p));
      if (!same) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(same, 'the replicas differ');
    assert.equal(p.b.res.replicator?.receivePendingBytes, 0);
  } finally {
    p.b.data.release();
    await p.cleanup();
  }
});

test('an ack from the previous connection never completes a write of the next one', async () => {
  const p = await syncedPair('C');
  try {
    const at = 1024 * 1024;
    // The peer's disk stalls with write 1 pending; the link drops and comes back.
    p.b.data.hold();
    const w1 = volumeOf(p.a).write(Buffer.alloc(4096, 1), at, false);
    await new Promise((r) => setTimeout(r, 100));
    p.proxy.cut();
    await w1;
    await waitFor('reconnected', () => p.a.res.status().connection === 'Connected', 15_000);
    const w2 = volumeOf(p.a).write(Buffer.alloc(4096, 2), at, false);
    // The old write finishes on the peer; its ack must not complete w2.
    p.b.data.release();
    p.b.data.hold();
    const early = await settlesWithin(w2, 300);
    const check = Buffer.alloc(4096);
    await p.b.data.read(check, at);
    assert.ok(!early || check[0] === 2, 'w2 was acknowledged under protocol C before the peer wrote it');
    p.b.data.release();
    await w2;
  } finally {
    await p.cleanup();
  }
});

test('protocol C: a written write stays unconfirmed until the peer has flushed it (a peer power loss would find it out of sync)', async () => {
  const p = await syncedPair('C');
  try {
    // Flushed by the peer: forgotten, no resync needed after a cut.
    await volumeOf(p.a).write(Buffer.alloc(4096, 18), 6 * 1024 * 1024, false);
    await new Promise((r) => setTimeout(r, 300));
    // The peer's flush hangs: the next write completes (it is written there), but is not forgotten.
    p.b.data.holdFlushes();
    await volumeOf(p.a).write(Buffer.alloc(4096, 19), 7 * 1024 * 1024, false);
    await new Promise((r) => setTimeout(r, 300));
    p.proxy.cut();
    await waitFor('disconnected', () => p.a.res.status().connection !== 'Connected');
    assert.equal(vol(p.a).outOfSyncBytes, 4096, 'exactly the unflushed write is out of sync');
    p.b.data.release();
  } finally {
    await p.cleanup();
  }
});

test('a Secondary that detaches and attaches again under a live connection gets what it missed', async () => {
  const p = await syncedPair('C');
  try {
    await p.b.res.detach();
    await waitFor('peer diskless', () => vol(p.a).peerDisk === 'Diskless');
    await volumeOf(p.a).write(Buffer.alloc(8192, 20), 9 * 1024 * 1024, false);
    assert.equal(vol(p.a).outOfSyncBytes, 8192);
    await p.b.res.attach();
    await waitFor(
      'resynced',
      () =>
        vol(p.b).disk === 'UpToDate' &&
        vol(p.a).outOfSyncBytes === 0 &&
        vol(p.b).outOfSyncBytes === 0 &&
        vol(p.a).replication === 'Connected',
    );
    const check = Buffer.alloc(8192);
    await p.b.data.read(check, 9 * 1024 * 1024);
    assert.ok(check.equals(Buffer.alloc(8192, 20)));
  } finally {
    await p.cleanup();
  }
});

// Both ways the Secondary writes (at once on its event loop, or through the promise path).
test("protocol B: a write the Secondary's disk fails after its RecvAck left is marked out of sync on the Primary", async () => {
  // The RecvAck goes before the write (ackReceivedAtOnce), so the write completes first
  // and the NegAck comes after it: the block must still end out of sync, the transfer
  // log must let the write go, and nothing stays pending.
  const p = await syncedPair('B');
  try {
    p.b.data.failWrites = true;
    await volumeOf(p.a).write(Buffer.alloc(4096, 23), 10 * 1024 * 1024, false);
    await waitFor('the NegAck marks the block', () => vol(p.a).outOfSyncBytes === 4096);
    assert.ok(
      p.b.log.lines.some((l) => /^error .*peer write at 10485760\+4096: .*injected write error/.test(l)),
      p.b.log.lines.join('\n'),
    );
    assert.equal(vol(p.a).counters.pending, 0);
  } finally {
    p.b.data.failWrites = false;
    await p.cleanup();
  }
});

for (const atOnce of [true, false]) {
  test(`a write the Secondary's disk fails (${atOnce ? 'at once' : 'promise path'}): the Primary's write completes, the block is out of sync, the Secondary detaches`, async () => {
    const p = await syncedPair('C');
    try {
      p.b.data.atOnce = atOnce;
      p.b.data.failWrites = true;
      await volumeOf(p.a).write(Buffer.alloc(4096, 21), 10 * 1024 * 1024, false);
      assert.equal(vol(p.a).outOfSyncBytes, 4096, 'the NegAck marked the block on the Primary');
      assert.ok(
        p.b.log.lines.some((l) => /^error .*peer write at 10485760\+4096: .*injected write error/.test(l)),
        p.b.log.lines.join('\n'),
      );
      await waitFor(
        'the peer reports its disk gone',
        () => vol(p.a).peerDisk === 'Diskless' || vol(p.a).peerDisk === 'Failed',
      );
      // Later writes are not sent to a peer without a disk: out of sync, completed locally.
      await volumeOf(p.a).write(Buffer.alloc(4096, 22), 11 * 1024 * 1024, false);
      assert.equal(vol(p.a).outOfSyncBytes, 8192);
      assert.equal(p.a.res.role(), 'Primary');
    } finally {
      p.b.data.failWrites = false;
      await p.cleanup();
    }
  });
}

// Review finding: the peer's confirmation used to end the write's hold on its
// activity-log extent even while our own disk write was still queued (a large write in
// the thread pool). The extent could then be evicted, and a crash lose the write here
// while the peer had it, with nothing left to resync it.
for (const protocol of ['A', 'C'] as const) {
  test(`protocol ${protocol}: a write keeps its activity-log extent until our disk has it, even once the peer confirmed it`, async () => {
    const p = await syncedPair(protocol);
    try {
      const meta = volumeOf(p.a).meta!;
      const ended: number[] = [];
      const endWrite = meta.endWrite.bind(meta);
      meta.endWrite = (offset: number, length: number) => {
        ended.push(offset);
        endWrite(offset, length);
      };
      const at = 6 * 1024 * 1024;
      const before = p.b.data.writes;
      p.a.data.hold(); // our disk stalls; the peer's does not
      const w = volumeOf(p.a).write(Buffer.alloc(4096, 0x71), at, false);
      await waitFor('the peer wrote it', () => p.b.data.writes > before);
      // A FLUSH: the peer flushes and confirms every write sent before it (FlushAck),
      // while our part of the FLUSH waits behind the stalled disk too.
      const flushes = p.b.data.flushes;
      const f = volumeOf(p.a).flush();
      await waitFor('the peer flushed', () => p.b.data.flushes > flushes);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(ended, [], 'the extent is still held while our write waits');
      p.a.data.release();
      await w;
      await f;
      assert.deepEqual(ended, [at], 'given back once, when both parts are done');
    } finally {
      p.a.data.release();
      await p.cleanup();
    }
  });
}

// Review finding: a write whose local part failed was rejected at once, while its Data
// frame (sent without a copy) could still be reading the caller's buffer; the NBD
// session then reuses that buffer, and the peer could write another request's bytes.
for (const way of ['write', 'writeFast'] as const) {
  test(`a write that fails on our disk is answered only once its Data frame has left (${way})`, async () => {
    const p = await syncedPair('C');
    try {
      const at = 7 * 1024 * 1024;
      await volumeOf(p.a).write(Buffer.alloc(4096, 0x70), at + 4096, false); // the extent is active
      p.a.data.atOnce = way === 'writeFast';
      p.a.data.failWrites = true;
      p.proxy.hold('forward'); // the frame waits in the proxy
      const buf = Buffer.alloc(4096, 0x72);
      const w =
        way === 'write'
          ? volumeOf(p.a).write(buf, at, false)
          : (volumeOf(p.a).writeFast(buf, at, false) ?? Promise.resolve());
      const outcome = w.then(
        () => 'ok',
        (e: Error) => e.message,
      );
      assert.equal(
        await settlesWithin(outcome, 300),
        false,
        'not answered while the frame may still be read',
      );
      p.proxy.release('forward');
      assert.match(await outcome, /injected write error/);
    } finally {
      p.a.data.failWrites = false;
      p.proxy.release('forward');
      await p.cleanup();
    }
  });
}

// A write's activity-log extent stays held until the peer confirms its epoch
// (BarrierAck): that is what lets the log forget it. A write that found every slot
// held waited for the barrier timer; now it closes the epoch at once. These pairs
// have seven slots and a one-minute timer, so only that closes an epoch in time.
const extentBytes = 4 * 1024 * 1024;

async function withStarvedLog(
  extraConf: string,
  body: (p: Awaited<ReturnType<typeof syncedPair>>, v: ReturnType<typeof volumeOf>) => Promise<void>,
): Promise<void> {
  const p = await syncedPair('C', '', extraConf, { alSlots: 7, barrierIntervalMs: 60_000 });
  try {
    await body(p, volumeOf(p.a));
  } finally {
    p.proxy.release('backward');
    await p.cleanup();
  }
}

/** Seven writes, one in each of the first seven extents: every slot is held. */
async function fillLog(v: ReturnType<typeof volumeOf>): Promise<void> {
  for (let e = 0; e < 7; e++) await v.write(Buffer.alloc(4096, e + 1), e * extentBytes, false);
}

test('a write that finds the activity log full closes the epoch at once, not at the barrier timer', async () => {
  await withStarvedLog('', async (p, v) => {
    await fillLog(v);
    const w = v.write(Buffer.alloc(4096, 0x88), 7 * extentBytes, false);
    assert.ok(await settlesWithin(w, 5000), 'the eighth extent waited for the barrier timer');
    await w;
    const back = Buffer.alloc(4096);
    await p.b.data.read(back, 7 * extentBytes);
    assert.ok(back.equals(Buffer.alloc(4096, 0x88)), 'the peer has the eighth write');
    assert.equal(vol(p.a).outOfSyncBytes, 0);
  });
});

// Eight writes at once into eight new extents, seven slots: the eighth waits for
// the transaction of the first seven, then finds the log full behind their Data
// frames. (It also fails without the late release tested below.)
test('eight writes at once into eight new extents with seven slots: the last one does not wait for the timer', async () => {
  await withStarvedLog('', async (_p, v) => {
    const writes = [0, 1, 2, 3, 4, 5, 6, 7].map((e) =>
      v.write(Buffer.alloc(4096, e + 1), e * extentBytes, false),
    );
    assert.ok(await settlesWithin(Promise.all(writes), 5000), 'a write waited for the barrier timer');
    await Promise.all(writes);
  });
});

// And a BarrierAck can overtake the WriteAcks of its own epoch: the peer answers a
// barrier of writes it did at once before the acks it sends a turn later. Those
// writes must still let go of their extents when their acks arrive.
test("a BarrierAck ahead of its writes' acks: their extents are released when the acks come", async () => {
  await withStarvedLog('disk { disk-flushes no; }', async (_p, v) => {
    await fillLog(v);
    await v.flush(); // the seven extents stay active, held by no write
    // Seven writes into them leave at once; the eighth starves and sends the Barrier
    // right behind them.
    const writes = [0, 1, 2, 3, 4, 5, 6].map((e) =>
      v.write(Buffer.alloc(4096, 0x40 + e), e * extentBytes + 4096, false),
    );
    const eighth = v.write(Buffer.alloc(4096, 0x88), 7 * extentBytes, false);
    assert.ok(
      await settlesWithin(Promise.all([...writes, eighth]), 5000),
      'the eighth write never got a slot',
    );
    await Promise.all([...writes, eighth]);
  });
});

// The peer vanishes while a write waits for a slot: the unconfirmed writes are
// marked out of sync and let go of their extents, the waiting write completes on
// our disk, and the reconnect's resync carries all of it.
test('the link drops while a write waits for an activity-log slot: it completes, and the resync carries it', async () => {
  await withStarvedLog('', async (p, v) => {
    await fillLog(v);
    p.proxy.hold('backward'); // no BarrierAck comes back
    const w = v.write(Buffer.alloc(4096, 0x99), 7 * extentBytes, false);
    assert.equal(await settlesWithin(w, 300), false, 'completed without a free slot');
    p.proxy.cut();
    assert.ok(await settlesWithin(w, 5000), 'the write still waits after the link dropped');
    await w;
    p.proxy.release('backward');
    await waitFor(
      'resynced',
      () => vol(p.a).replication === 'Connected' && vol(p.a).outOfSyncBytes === 0,
      15_000,
    );
    const back = Buffer.alloc(4096);
    await p.b.data.read(back, 7 * extentBytes);
    assert.ok(back.equals(Buffer.alloc(4096, 0x99)), 'the peer has the write after the resync');
  });
});
