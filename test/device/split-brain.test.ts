// Split brain forced the way it happens: the link goes down, both nodes are Primary
// and write, the link comes back. Each after-sb policy must do what DRBD documents,
// an unresolved split brain must stop both sides with a status that says who has
// which changes and how to resolve it, and `connect --discard-my-data` resolves it.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { type Node, syncedPair, vol, waitFor } from '../helpers/resource-pair.js';

const block = 4096;
const volumeOf = (n: Node) => n.res.volumes[0]!;

async function readBlock(n: Node, offset: number): Promise<Buffer> {
  const b = Buffer.alloc(block);
  await n.data.read(b, offset);
  return b;
}

interface Scenario {
  readonly net: string;
  readonly extraConf?: string;
  /** Blocks written on each node while apart (each block filled with its node's byte). */
  readonly writesA: number;
  readonly writesB: number;
  /** Which nodes are still Primary when the link returns. */
  readonly primaries: readonly ('a' | 'b')[];
}

/** Runs the split; returns the pair with both nodes reconnecting. */
async function split(s: Scenario) {
  const p = await syncedPair('C', s.net, s.extraConf ?? '');
  await p.a.res.disconnect();
  await p.b.res.disconnect();
  for (let i = 0; i < s.writesA; i++) await volumeOf(p.a).write(Buffer.alloc(block, 0xaa), i * block, false);
  await p.b.res.primary(false);
  // b writes from block 1 on, so block 0 is a's alone when b writes little.
  for (let i = 0; i < s.writesB; i++)
    await volumeOf(p.b).write(Buffer.alloc(block, 0xbb), (i + 1) * block, false);
  if (!s.primaries.includes('a')) await p.a.res.secondary();
  if (!s.primaries.includes('b')) await p.b.res.secondary();
  await p.a.res.connect();
  await p.b.res.connect();
  return p;
}

const settled = (n: Node) => vol(n).replication === 'Connected' && vol(n).outOfSyncBytes === 0;

test('after-sb-0pri disconnect: both stop StandAlone, status says who has what and how to resolve', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-sb-'));
  const marker = join(dir, 'split-brain-called');
  const p = await split({
    net: 'after-sb-0pri disconnect;',
    extraConf: `handlers { split-brain "touch ${marker}"; }`,
    writesA: 2,
    writesB: 3,
    primaries: [],
  });
  try {
    await waitFor(
      'StandAlone',
      () => p.a.res.status().connection === 'StandAlone' && p.b.res.status().connection === 'StandAlone',
    );
    const sb = vol(p.a).splitBrain ?? '';
    assert.match(sb, /Split-Brain detected but unresolved/);
    assert.match(sb, /8 KiB changed on this node, 12 KiB on b/);
    assert.match(sb, /tandemadm connect --discard-my-data r0/);
    assert.ok(vol(p.b).splitBrain, 'the peer says it too');
    await waitFor('handler', () => existsSync(marker));
    // Nothing was overwritten.
    assert.ok((await readBlock(p.a, 0)).equals(Buffer.alloc(block, 0xaa)));
    assert.ok((await readBlock(p.b, block)).equals(Buffer.alloc(block, 0xbb)));
    // Manual recovery: b's changes are thrown away.
    await p.b.res.connect({ discardMyData: true });
    await p.a.res.connect();
    await waitFor('resolved', () => settled(p.a) && settled(p.b));
    for (let i = 0; i < 4; i++) {
      assert.ok(
        (await readBlock(p.b, i * block)).equals(await readBlock(p.a, i * block)),
        `block ${i} differs`,
      );
    }
    assert.ok((await readBlock(p.b, 0)).equals(Buffer.alloc(block, 0xaa)));
    assert.ok((await readBlock(p.b, 3 * block)).equals(Buffer.alloc(block)), "b's own change is gone");
  } finally {
    await p.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after-sb-0pri discard-zero-changes: the node without changes becomes SyncTarget', async () => {
  const p = await split({
    net: 'after-sb-0pri discard-zero-changes;',
    writesA: 3,
    writesB: 0,
    primaries: [],
  });
  try {
    await waitFor('resolved', () => settled(p.a) && settled(p.b));
    assert.equal(vol(p.b).disk, 'UpToDate');
    assert.ok((await readBlock(p.b, 2 * block)).equals(Buffer.alloc(block, 0xaa)));
  } finally {
    await p.cleanup();
  }
});

test('after-sb-0pri discard-zero-changes with changes on both sides: disconnect', async () => {
  const p = await split({
    net: 'after-sb-0pri discard-zero-changes;',
    writesA: 1,
    writesB: 1,
    primaries: [],
  });
  try {
    await waitFor('StandAlone', () => p.a.res.status().connection === 'StandAlone');
    assert.match(vol(p.a).splitBrain ?? '', /Split-Brain/);
  } finally {
    await p.cleanup();
  }
});

test('after-sb-0pri discard-least-changes: the node with fewer changes loses them', async () => {
  const p = await split({
    net: 'after-sb-0pri discard-least-changes;',
    writesA: 1,
    writesB: 4,
    primaries: [],
  });
  try {
    await waitFor('resolved', () => settled(p.a) && settled(p.b));
    // a changed 1 block, b 4: a is the target, b's blocks 1..4 win, a's block 0 is overwritten.
    assert.ok((await readBlock(p.a, 0)).equals(Buffer.alloc(block)), "a's change was discarded");
    assert.ok((await readBlock(p.a, 4 * block)).equals(Buffer.alloc(block, 0xbb)));
  } finally {
    await p.cleanup();
  }
});

test('after-sb-1pri discard-secondary: the Secondary loses its changes to the Primary', async () => {
  const p = await split({
    net: 'after-sb-0pri disconnect; after-sb-1pri discard-secondary;',
    writesA: 1,
    writesB: 3,
    primaries: ['a'],
  });
  try {
    await waitFor('resolved', () => settled(p.a) && settled(p.b));
    assert.ok((await readBlock(p.b, 0)).equals(Buffer.alloc(block, 0xaa)));
    assert.ok((await readBlock(p.b, 2 * block)).equals(Buffer.alloc(block)), "b's change was discarded");
    assert.equal(p.a.res.role(), 'Primary');
  } finally {
    await p.cleanup();
  }
});

test('after-sb-2pri disconnect: two Primaries stay apart', async () => {
  const p = await split({
    net: 'allow-two-primaries no; after-sb-2pri disconnect;',
    writesA: 1,
    writesB: 1,
    primaries: ['a', 'b'],
  });
  try {
    await waitFor(
      'StandAlone',
      () => p.a.res.status().connection === 'StandAlone' && p.b.res.status().connection === 'StandAlone',
    );
    assert.equal(p.a.res.role(), 'Primary');
    assert.equal(p.b.res.role(), 'Primary');
  } finally {
    await p.cleanup();
  }
});

test('a node promoted and demoted while apart, without writing, is no side of a split brain (the generation starts with the first write)', async () => {
  const p = await syncedPair('C', 'after-sb-0pri disconnect; after-sb-1pri disconnect;');
  try {
    await p.a.res.disconnect();
    await p.b.res.disconnect();
    // a is Primary and writes on; b is promoted (a failover that is undone at once) and
    // demoted again before writing anything.
    for (let i = 0; i < 3; i++) await volumeOf(p.a).write(Buffer.alloc(block, 0xaa), i * block, false);
    const before = volumeOf(p.b).meta!.uuids().current;
    await p.b.res.primary(false);
    assert.equal(volumeOf(p.b).meta!.uuids().current, before, 'no new generation at the promotion');
    await p.b.res.secondary();
    await p.a.res.connect();
    await p.b.res.connect();
    await waitFor('a resync from a, no split brain', () => settled(p.a) && settled(p.b));
    assert.equal(vol(p.b).splitBrain ?? null, null);
    assert.ok((await readBlock(p.b, 0)).equals(Buffer.alloc(block, 0xaa)), "a's write reached b");
    // Promoted apart and written: the first write starts a new generation first.
    await p.a.res.secondary();
    await p.b.res.disconnect();
    await p.b.res.primary(false);
    const kept = volumeOf(p.b).meta!.uuids().current;
    await volumeOf(p.b).write(Buffer.alloc(block, 0xbb), 0, false);
    const u = volumeOf(p.b).meta!.uuids();
    assert.notEqual(u.current, kept, 'the first write started a new generation');
    assert.equal(u.bitmap, kept, 'the old generation is the bitmap UUID');
  } finally {
    await p.cleanup();
  }
});
