// Live fuzzing: two real tandemd in sync, a well-behaved NBD client writing on the
// Primary, and meanwhile garbage, truncated and oversized frames sent at the Primary's
// NBD socket (before and after a valid handshake) and at both replication ports (raw
// bytes, mutated Hello frames, headers announcing huge payloads). Afterwards both daemons
// still run, the pair is still connected, the client's data reads back intact and
// online verify finds the replicas identical.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import test from 'node:test';
import fc from 'fast-check';
import { encodeRequest } from '../../src/daemon/control-protocol.js';
import { Cmd } from '../../src/nbd/protocol.js';
import { encodeFrame } from '../../src/replication/frames.js';
import { protocolVersionMax, protocolVersionMin } from '../../src/replication/header.js';
import { helloFeaturesKnown } from '../../src/replication/messages-session.js';
import { mutate, mutationArb } from '../helpers/byte-mutate.js';
import { Cluster } from '../helpers/cluster.js';
import { TestNbdClient } from '../helpers/nbd-client.js';
import type { TandemNode } from '../helpers/tandem-node.js';
import { verifyResult } from '../helpers/verify.js';

const seed = 20261125;
const blockBytes = 4096;

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

function block(i: number): Buffer {
  const b = Buffer.alloc(blockBytes);
  for (let at = 0; at < blockBytes; at += 4) b.writeUInt32BE(i * 7919 + at, at);
  return b;
}

async function openNbd(n: TandemNode): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(join(n.runDir, 'r0.nbd'));
  await c.handshake();
  await c.go('r0');
  return c;
}

/** Sends `bytes` on a fresh TCP connection and waits (at most 0.5 s) for the daemon to close it. */
function tcpShot(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(done, 500);
    s.on('error', done);
    s.on('close', done);
    s.resume();
    s.on('connect', () => s.end(bytes));
  });
}

/**
 * Garbage on the control socket: what answers come back (at most 0.3 s). Mutations of a
 * harmless request (status), so a mutant cannot become a command that changes state.
 */
function controlShot(n: TandemNode, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(join(n.runDir, 'tandemd.sock'));
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 300);
    s.on('error', done);
    s.on('close', done);
    s.on('data', (d) => {
      got += d.toString('utf8');
    });
    s.on('connect', () => s.write(bytes));
  });
}

/** Garbage on the NBD socket: raw, or after a valid handshake and GO. */
async function nbdShot(n: TandemNode, bytes: Buffer, afterGo: boolean): Promise<void> {
  let c: TestNbdClient | undefined;
  try {
    if (afterGo) c = await openNbd(n);
    else c = await TestNbdClient.connect(join(n.runDir, 'r0.nbd'));
    c.write(bytes);
    await c.waitClosed(300);
  } catch {
    // Refused or closed: what a daemon may do with garbage.
  } finally {
    c?.close();
  }
}

test('garbage at a running tandemd: it keeps serving the well-behaved client and replicating', async () => {
  const c = await Cluster.create({ net: 'verify-alg crc32c;', diskBytes: 32 * 1024 * 1024 });
  try {
    await c.upBoth();
    for (const n of c.nodes) ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), 'wait-connect');
    ok(await c.a.adm('primary', '--force', 'r0'), 'primary --force');
    for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), 'wait-sync');
    const ports = [...readFileSync(c.conf, 'utf8').matchAll(/address 127\.0\.0\.1:(\d+)/g)].map((m) =>
      Number(m[1]),
    );
    assert.equal(ports.length, 2);
    const hello = encodeFrame({
      kind: 'Hello',
      volume: 0,
      body: {
        protocolMin: protocolVersionMin,
        protocolMax: protocolVersionMax,
        features: helloFeaturesKnown,
        nodeName: 'bravo',
        resourceName: 'r0',
        tandemVersion: '0.0.0',
        authAlg: '',
      },
    });

    // The well-behaved client writes its blocks while the fuzz runs.
    const good = await openNbd(c.a);
    const writing = (async () => {
      for (let i = 0; i < 512; i++) {
        good.send(Cmd.WRITE, i * blockBytes, blockBytes, 0, block(i));
        const r = await good.reply();
        assert.equal(r.error, 0, `write ${i} failed`);
      }
    })();

    const rand = fc.sample(
      fc.record({
        target: fc.constantFrom('nbd-raw', 'nbd-after-go', 'repl-raw', 'repl-hello', 'control'),
        port: fc.constantFrom(...ports),
        raw: fc.uint8Array({ minLength: 0, maxLength: 2048 }),
        mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      }),
      { seed, numRuns: 120 },
    );
    let shots = 0;
    let controlAnswers = 0;
    const statusLine = Buffer.from(encodeRequest({ id: 9, cmd: 'status', resource: 'r0', force: false }));
    for (const s of rand) {
      const raw = Buffer.from(s.raw);
      if (s.target === 'nbd-raw') await nbdShot(c.a, raw, false);
      else if (s.target === 'nbd-after-go') {
        // A request header with a random type and a huge length, then the random tail.
        const h = Buffer.alloc(28);
        h.writeUInt32BE(0x25609513, 0);
        h.writeUInt16BE(raw[0] ?? 1, 6);
        h.writeBigUInt64BE(0xdeadbeefn, 8);
        h.writeBigUInt64BE(BigInt(raw[1] ?? 0) << 20n, 16);
        h.writeUInt32BE(0xfffffff0, 24);
        await nbdShot(c.a, Buffer.concat([raw.length % 2 ? h : Buffer.alloc(0), raw]), true);
      } else if (s.target === 'control') {
        const answer = await controlShot(
          c.a,
          Buffer.concat([mutate(statusLine, s.mutations), raw.subarray(0, 256), Buffer.from('\n')]),
        );
        // Every line gets an answer: a result or BAD_REQUEST, never silence or a crash.
        if (answer.length > 0) controlAnswers++;
      } else if (s.target === 'repl-raw') await tcpShot(s.port, raw);
      else await tcpShot(s.port, Buffer.concat([mutate(hello, s.mutations), raw.subarray(0, 64)]));
      shots++;
    }
    await writing;
    assert.equal(shots, 120);
    const controlShots = rand.filter((s) => s.target === 'control').length;
    assert.ok(controlShots > 10, `only ${controlShots} shots at the control socket`);
    assert.equal(controlAnswers, controlShots, 'a control-socket shot went unanswered');
    // The control socket still serves tandemadm.
    ok(await c.a.adm('role', 'r0'), 'role after the fuzz');

    // Both daemons alive, still a connected pair.
    for (const n of c.nodes) assert.equal(n.crashed, false, `tandemd on ${n.name} died`);
    for (const n of c.nodes) ok(await n.adm('--timeout', '20', 'wait-connect', 'r0'), 'wait-connect');
    for (const n of c.nodes) ok(await n.adm('--timeout', '60', 'wait-sync', 'r0'), 'wait-sync');
    // The client's data reads back intact.
    for (let i = 0; i < 512; i++) {
      good.send(Cmd.READ, i * blockBytes, blockBytes);
      const r = await good.reply(blockBytes);
      assert.equal(r.error, 0);
      assert.ok(r.data.equals(block(i)), `block ${i} differs`);
    }
    good.close();
    // And the replicas are identical.
    ok(await c.a.adm('verify', 'r0'), 'verify');
    const differ = await verifyResult(
      async () => JSON.parse(ok(await c.a.adm('status', '--json', 'r0'), 'status')).resources[0].volumes[0],
      30_000,
    );
    assert.equal(differ, 0, 'verify found differences');
    for (const n of c.nodes) assert.equal(n.crashed, false, `tandemd on ${n.name} died`);
  } finally {
    await c.cleanup();
  }
});
