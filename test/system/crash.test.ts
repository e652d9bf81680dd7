// What a Primary's crash may lose, per protocol: a writer keeps every write the
// NBD server acknowledged, tandemd on the Primary is killed with SIGKILL at a random
// moment, the Secondary is promoted, and every acknowledged write must be there
// (protocol C). Under protocol A the loss is bounded by what was in flight.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Cmd } from '../../src/nbd/protocol.js';
import { Cluster } from '../helpers/cluster.js';
import { TestNbdClient } from '../helpers/nbd-client.js';
import { sh, type TandemNode } from '../helpers/tandem-node.js';
import { verifyResult } from '../helpers/verify.js';

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

const blockBytes = 4096;

/** The content of write number i: its number in every 8 bytes, so a wrong block is recognisable. */
function pattern(i: number): Buffer {
  const b = Buffer.alloc(blockBytes);
  for (let at = 0; at < blockBytes; at += 8) b.writeUInt32BE(i, at);
  return b;
}

async function open(n: TandemNode): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(join(n.runDir, 'r0.nbd'));
  await c.handshake();
  await c.go('r0');
  return c;
}

interface WriterResult {
  /** Block index → write number, for every acknowledged write. */
  readonly acked: Map<number, number>;
  /** Writes sent and not acknowledged when the connection died. */
  readonly inFlight: number;
}

/**
 * Writes distinct 4 KiB blocks (a fixed random permutation), `depth` at a time,
 * until the server goes away; records what was acknowledged.
 */
async function writeUntilDeath(
  c: TestNbdClient,
  blocks: number,
  depth: number,
  seed: number,
): Promise<WriterResult> {
  const order = Array.from({ length: blocks }, (_, i) => i);
  let s = seed;
  for (let i = order.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const acked = new Map<number, number>();
  const pending = new Map<bigint, { block: number; n: number }>();
  let next = 0;
  const send = (): void => {
    const block = order[next % blocks]!;
    const n = next++;
    pending.set(c.send(Cmd.WRITE, block * blockBytes, blockBytes, 0, pattern(n)), { block, n });
  };
  for (let i = 0; i < depth; i++) send();
  try {
    for (;;) {
      const r = await c.reply();
      const w = pending.get(r.cookie);
      assert.ok(w, 'a reply for a request we did not send');
      pending.delete(r.cookie);
      assert.equal(r.error, 0, `write ${w.n} failed with ${r.error}`);
      acked.set(w.block, w.n);
      if (next < blocks) send();
      else if (pending.size === 0) break;
    }
  } catch {
    // The server died: what is pending was never acknowledged.
  }
  return { acked, inFlight: pending.size };
}

async function crashRun(protocol: 'A' | 'C', seed: number) {
  const c = await Cluster.create({ protocol, diskBytes: 64 * 1024 * 1024 });
  try {
    await c.upBoth();
    for (const n of c.nodes) ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), 'wait-connect');
    ok(await c.a.adm('primary', '--force', 'r0'), 'primary --force');
    for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), 'wait-sync');
    const client = await open(c.a);
    const writing = writeUntilDeath(client, 8192, 16, seed);
    // A random moment within the first ~0.8 s of writing.
    await new Promise((r) => setTimeout(r, 150 + (seed % 700)));
    await c.a.stop('SIGKILL');
    const result = await writing;
    client.close();
    assert.ok(result.acked.size > 50, `only ${result.acked.size} writes were acknowledged before the kill`);
    // The Secondary notices the loss (ping-timeout or the closed socket) and may be promoted.
    ok(await c.b.adm('primary', 'r0'), 'primary on the survivor');
    const reader = await open(c.b);
    let missing = 0;
    for (const [block, n] of result.acked) {
      reader.send(Cmd.READ, block * blockBytes, blockBytes);
      const r = await reader.reply(blockBytes);
      assert.equal(r.error, 0);
      if (!r.data.equals(pattern(n))) missing++;
    }
    reader.close();
    return { acked: result.acked.size, inFlight: result.inFlight, missing };
  } finally {
    await c.cleanup();
  }
}

describe('tandemd killed with SIGKILL', () => {
  test('protocol C: every acknowledged write is on the survivor', async (t) => {
    for (const seed of [11, 4242]) {
      const r = await crashRun('C', seed);
      t.diagnostic(
        `protocol C, seed ${seed}: ${r.acked} writes acknowledged, ${r.inFlight} in flight at the kill, ${r.missing} missing`,
      );
      assert.equal(r.missing, 0, `seed ${seed}: ${r.missing} of ${r.acked} acknowledged writes missing`);
    }
  });

  test('protocol A: what is lost is bounded by what was in flight on the link', async (t) => {
    const r = await crashRun('A', 77);
    t.diagnostic(
      `protocol A: ${r.acked} writes acknowledged, ${r.inFlight} in flight at the kill, ${r.missing} missing`,
    );
    // Protocol A acknowledges once the data is in the local kernel's send queue; a crash
    // can lose what the peer had not received yet. The bound: the send queue (8 MiB).
    assert.ok(r.missing * blockBytes <= 8 * 1024 * 1024 + 16 * blockBytes, `${r.missing} lost`);
  });

  test('a SyncTarget killed during the initial sync resumes where it stopped, and the replicas end equal', async (t) => {
    const mib = 1024 * 1024;
    const c = await Cluster.create({
      diskBytes: 0,
      net: 'verify-alg crc32c;',
      extraConf: 'disk { c-plan-ahead 0; resync-rate 40M; }',
    });
    try {
      ok(await sh('dd', ['if=/dev/urandom', `of=${c.a.disk}`, 'bs=1M', 'count=128']), 'dd alpha');
      ok(await sh('dd', ['if=/dev/zero', `of=${c.b.disk}`, 'bs=1M', 'count=128']), 'dd bravo');
      await c.upBoth();
      for (const n of c.nodes) ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), 'wait-connect');
      ok(await c.a.adm('primary', '--force', 'r0'), 'primary --force');
      // 40 MiB/s for ~124 MiB: kill the target about half-way (after a checkpoint).
      await new Promise((r) => setTimeout(r, 1600));
      await c.b.stop('SIGKILL');
      const left = JSON.parse(ok(await c.a.adm('status', '--json', 'r0'), 'status')).resources[0].volumes[0]
        .outOfSyncBytes as number;
      await c.b.start(['--no-kernel-device']);
      ok(await c.b.adm('up', 'r0'), 'up again');
      for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), 'wait-sync');
      const st = JSON.parse(ok(await c.b.adm('status', '--json', 'r0'), 'status')).resources[0].volumes[0];
      const resent = st.counters.receivedBytes as number;
      t.diagnostic(
        `killed with ${Math.round(left / mib)} MiB left of ${Math.round(st.sizeBytes / mib)} MiB; ${Math.round(resent / mib)} MiB resynced after the restart`,
      );
      assert.equal(st.disk, 'UpToDate');
      assert.ok(resent < st.sizeBytes * 0.8, `the restarted target fetched ${resent} bytes: it started over`);
      ok(await c.a.adm('verify', 'r0'), 'verify');
      const differ = await verifyResult(
        async () => JSON.parse(ok(await c.a.adm('status', '--json', 'r0'), 'status')).resources[0].volumes[0],
        30_000,
      );
      assert.equal(differ, 0, 'verify found differences');
    } finally {
      await c.cleanup();
    }
  });
});
