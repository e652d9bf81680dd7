// A peer that speaks the link protocol but sends what makes no sense: frames for a
// volume that does not exist, data beyond the device, resync answers nobody asked for,
// a bitmap outside a handshake, acks for writes never sent. Each ends that connection
// (the engine drops it, the link reconnects); the resource keeps serving and nothing
// reaches its disk.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseDrbdConfig } from '../../src/config/drbd-load.js';
import { localHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { Resource } from '../../src/device/resource.js';
import type { Frame } from '../../src/replication/frames.js';
import { type LinkState, PeerLink } from '../../src/replication/link.js';
import { memoryLogger } from '../../src/util/log.js';
import { freePort } from '../helpers/cluster.js';
import { memoryVolume, waitFor } from '../helpers/resource-pair.js';

const backingBytes = 16 * 1024 * 1024;

async function victim(role: 'Primary' | 'Secondary' = 'Primary') {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-hostile-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const cfg = resolveConfig(
    parseDrbdConfig(
      `resource r0 {
  device /dev/drbd1; disk /dev/fake; meta-disk internal;
  net { connect-int 1; }
  on a { address 127.0.0.1:${pa}; }
  on b { address 127.0.0.1:${pb}; }
}`,
      'hostile.res',
    ),
  ).resources[0]!;
  const { disk, opener } = await memoryVolume(backingBytes, 'mem', (d) => d);
  const log = memoryLogger();
  const res = new Resource(cfg, localHost(cfg, 'a'), { runDir: dir, log, opener, kernelDevices: false });
  await res.bringUp();
  if (role === 'Primary') await res.primary(true);
  const states: LinkState[] = [];
  const evil = new PeerLink({
    resource: 'r0',
    nodeName: 'b',
    peerName: 'a',
    listen: { host: '127.0.0.1', port: pb },
    peer: { host: '127.0.0.1', port: pa },
    connectIntMs: 200,
    onState: (s) => states.push(s),
  });
  await evil.start();
  return {
    res,
    disk,
    log,
    evil,
    states,
    async cleanup() {
      await evil.stop();
      await res.down().catch(() => res.forceClose());
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const hostile: readonly [string, Frame][] = [
  [
    'Data for volume 7',
    {
      kind: 'Data',
      volume: 7,
      body: { seq: 1, epoch: 1, offset: 0, length: 4, flags: 0, payload: Buffer.alloc(4) },
    },
  ],
  [
    'Data beyond the device',
    {
      kind: 'Data',
      volume: 0,
      body: {
        seq: 1,
        epoch: 1,
        offset: backingBytes,
        length: 4096,
        flags: 0,
        payload: Buffer.alloc(4096, 1),
      },
    },
  ],
  [
    'a Bitmap outside a handshake',
    {
      kind: 'Bitmap',
      volume: 0,
      body: { startBit: 0, bitCount: 8, encoding: 'plain', firstDirty: false, data: Buffer.alloc(1, 0xff) },
    },
  ],
  [
    'ResyncData nobody asked for',
    {
      kind: 'ResyncData',
      volume: 0,
      body: { offset: 0, length: 4096, flags: 0, payload: Buffer.alloc(4096, 2) },
    },
  ],
  ['a SyncUuid outside a handshake', { kind: 'SyncUuid', volume: 0, body: { uuid: 42n } }],
  [
    'a VerifyRequest beyond the device',
    { kind: 'VerifyRequest', volume: 0, body: { offset: backingBytes * 2, length: 4096 } },
  ],
  [
    'an OutOfSync beyond the device',
    { kind: 'OutOfSync', volume: 0, body: { offset: backingBytes * 2, length: 4096 } },
  ],
];

test('a hostile peer: each nonsense frame ends its connection, the resource keeps serving, the disk is untouched', async () => {
  const v = await victim();
  try {
    await waitFor('connected', () => v.evil.state === 'Connected');
    const before = Buffer.alloc(1024 * 1024);
    await v.disk.read(before, 0);
    for (const [what, frame] of hostile) {
      await waitFor(`connected before ${what}`, () => v.evil.state === 'Connected', 10_000);
      const drops = v.states.length;
      assert.ok(v.evil.send(frame), `sent ${what}`);
      await waitFor(`drop after ${what}`, () => v.states.slice(drops).some((s) => s !== 'Connected'), 5000);
      assert.equal(v.res.role(), 'Primary', what);
    }
    // Acks for writes never sent are ignored, not a crash.
    await waitFor('connected again', () => v.evil.state === 'Connected', 10_000);
    v.evil.send({ kind: 'WriteAck', volume: 0, body: { firstSeq: 1, lastSeq: 2 ** 40 } });
    v.evil.send({ kind: 'BarrierAck', volume: 0, body: { epoch: 99, writes: 1 } });
    const after = Buffer.alloc(1024 * 1024);
    await v.disk.read(after, 0);
    assert.ok(before.equals(after), 'a hostile frame reached the disk');
    // Still serving: a write on the Primary completes (the peer never acks, protocol C
    // waits; so check the local disk path with the link down).
    await v.evil.stop();
    await v.res.volumes[0]!.write(Buffer.alloc(4096, 9), 0, false);
    const check = Buffer.alloc(4096);
    await v.disk.read(check, 0);
    assert.ok(check.equals(Buffer.alloc(4096, 9)));
    assert.ok(
      v.log.lines.some((l) => /protocol-error|peer:/.test(l)),
      'the drops are logged',
    );
  } finally {
    await v.cleanup();
  }
});

test('Data frames out of order end the connection: an older write never lands over a newer one', async () => {
  const v = await victim('Secondary');
  try {
    await waitFor('connected', () => v.evil.state === 'Connected');
    const data = (seq: number, fill: number): Frame => ({
      kind: 'Data',
      volume: 0,
      body: { seq, epoch: 1, offset: 8192, length: 4096, flags: 0, payload: Buffer.alloc(4096, fill) },
    });
    const drops = v.states.length;
    assert.ok(v.evil.send(data(7, 0x77)));
    assert.ok(v.evil.send(data(6, 0x66)), 'an older write, sent after');
    await waitFor('drop', () => v.states.slice(drops).some((s) => s !== 'Connected'), 5000);
    const block = Buffer.alloc(4096);
    await v.disk.read(block, 8192);
    assert.ok(block.equals(Buffer.alloc(4096, 0x77)), 'the newer write stays');
    assert.ok(
      v.log.lines.some((l) => /Data frame 6 after 7: the peer's writes came out of order/.test(l)),
      v.log.lines.join('\n'),
    );
    // A new connection starts counting again (a restarted peer numbers from 1).
    await waitFor('connected again', () => v.evil.state === 'Connected', 10_000);
    const again = v.states.length;
    assert.ok(v.evil.send(data(1, 0x11)));
    for (let i = 0; i < 200; i++) {
      await v.disk.read(block, 8192);
      if (block.equals(Buffer.alloc(4096, 0x11))) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(block.equals(Buffer.alloc(4096, 0x11)), 'written after the reconnect');
    assert.ok(!v.states.slice(again).some((s) => s !== 'Connected'), 'no drop');
  } finally {
    await v.cleanup();
  }
});
