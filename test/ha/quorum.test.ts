// Quorum with a witness: votes are leases that run out before the others may call this
// node dead, and under every partition of three nodes (each direction of each link cut
// or not) at most one data node may serve: a node that counts its peer dead by the
// majority never faces a peer that still has a majority.
import assert from 'node:assert/strict';
import test from 'node:test';
import type { PeerView } from '../../src/ha/membership.js';
import type { NodeReport } from '../../src/ha/packet.js';
import { deadByMajority, type QuorumInput, quorumOf, voteLeftMs } from '../../src/ha/quorum.js';

const deadtimeMs = 1000;
const keepaliveMs = 200;

function peer(name: string, p: Partial<PeerView> = {}): PeerView {
  return {
    name,
    state: 'up',
    late: false,
    silentMs: 100,
    links: {},
    groups: [],
    standby: false,
    generation: '1',
    view: [],
    heartbeatAgeMs: 100,
    ...p,
  };
}
const up = (name: string, silentMs = 100): NodeReport => ({
  name,
  state: 'up',
  silentMs,
  outdatePending: false,
});
const dead = (name: string): NodeReport => ({ name, state: 'dead', silentMs: 1500, outdatePending: false });

const input = (self: string, peers: PeerView[], witness: string | null = 'w'): QuorumInput => ({
  self,
  witness: witness ?? undefined,
  peers,
  deadtimeMs,
  keepaliveMs,
});

test('two nodes without a witness: no quorum rules, a silent peer is dead', () => {
  const i = input('a', [peer('b', { state: 'dead', view: [] })], null);
  assert.equal(quorumOf(i).applies, false);
  assert.equal(quorumOf(i).has, true);
  assert.equal(deadByMajority(i, 'b'), true);
});

test('a vote is a lease: it ends 2 x keepalive before the voter may call this node dead', () => {
  // The witness heard us 100 ms before its heartbeat, which arrived 100 ms ago.
  assert.equal(voteLeftMs('a', peer('w', { view: [up('a', 100)] }), deadtimeMs, keepaliveMs), 400);
  // 400 ms later the vote is gone, though the witness would call us dead only at 1000 ms.
  assert.equal(
    voteLeftMs('a', peer('w', { heartbeatAgeMs: 500, view: [up('a', 100)] }), deadtimeMs, keepaliveMs),
    0,
  );
  // A voter that does not report us up, or is not up here, gives no vote.
  assert.equal(voteLeftMs('a', peer('w', { view: [dead('a')] }), deadtimeMs, keepaliveMs) <= 0, true);
  assert.equal(voteLeftMs('a', peer('w', { view: [] }), deadtimeMs, keepaliveMs) <= 0, true);
  assert.equal(
    voteLeftMs('a', peer('w', { state: 'dead', view: [up('a')] }), deadtimeMs, keepaliveMs) <= 0,
    true,
  );
});

test('majority and its loss', () => {
  const withWitness = input('a', [peer('b', { state: 'dead' }), peer('w', { view: [up('a'), dead('b')] })]);
  assert.equal(quorumOf(withWitness).has, true);
  assert.deepEqual(quorumOf(withWitness).votes, ['w']);
  assert.equal(deadByMajority(withWitness, 'b'), true);
  // The witness still hears b: a cut between the data nodes alone moves nothing.
  const cutBetween = input('a', [peer('b', { state: 'dead' }), peer('w', { view: [up('a'), up('b')] })]);
  assert.equal(quorumOf(cutBetween).has, true);
  assert.equal(deadByMajority(cutBetween, 'b'), false);
  // Alone: no majority, and nobody is dead by it.
  const alone = input('a', [peer('b', { state: 'dead' }), peer('w', { state: 'dead' })]);
  assert.equal(quorumOf(alone).has, false);
  assert.match(quorumOf(alone).why, /no majority/);
  assert.equal(deadByMajority(alone, 'b'), false);
});

test('under every partition of three nodes, at most one data node may serve', () => {
  const nodes = ['a', 'b', 'w'] as const;
  const edges: [string, string][] = [];
  for (const x of nodes) for (const y of nodes) if (x !== y) edges.push([x, y]);
  // Each of the 6 directions delivers or not; views are in steady state (every lease
  // fresh where packets flow, every silence past deadtime where they do not).
  for (let mask = 0; mask < 1 << edges.length; mask++) {
    const reaches = (from: string, to: string) =>
      (mask & (1 << edges.findIndex(([x, y]) => x === from && y === to))) !== 0;
    const viewOf = (self: string): PeerView[] =>
      nodes
        .filter((n) => n !== self)
        .map((n) =>
          reaches(n, self)
            ? peer(n, {
                view: nodes.filter((m) => m !== n).map((m) => (reaches(m, n) ? up(m) : dead(m))),
              })
            : peer(n, { state: 'dead', view: [], heartbeatAgeMs: undefined, silentMs: 1500 }),
        );
    const serves = (self: 'a' | 'b', other: 'a' | 'b'): { quorum: boolean; takes: boolean } => {
      const i = input(self, viewOf(self));
      return { quorum: quorumOf(i).has, takes: deadByMajority(i, other) };
    };
    const a = serves('a', 'b');
    const b = serves('b', 'a');
    // b takes a's group only when a has no majority (and so has released it), and back.
    assert.ok(!(b.takes && a.quorum), `mask ${mask.toString(2)}: b takes over while a keeps a majority`);
    assert.ok(!(a.takes && b.quorum), `mask ${mask.toString(2)}: a takes over while b keeps a majority`);
    // A node that takes over has a majority itself.
    if (a.takes) assert.ok(a.quorum);
    if (b.takes) assert.ok(b.quorum);
  }
});
