// The sync handshake's decision: a table with one case per drbd_uuid_compare rule and per
// split-brain policy, then properties that both nodes, each deciding alone, reach mirror-image
// answers (one SyncSource and one SyncTarget, or both in sync, or both refusing).
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import { uuidJustCreated } from '../../src/meta/create.js';
import {
  afterSb0priPolicies,
  afterSb1priPolicies,
  afterSb2priPolicies,
  diskStates,
} from '../../src/replication/messages-state.js';
import {
  compareUuids,
  decideSync,
  formatUuid,
  policiesAsSeenByPeer,
  type SideInfo,
  type SplitBrainPolicies,
  type SyncDecision,
  uuidNewBitmapOffset,
} from '../../src/replication/sync-decision.js';

const J = uuidJustCreated;
const A = 0xa0n;
const B = 0xb0n;
const C = 0xc0n;
const D = 0xd0n;
const off = uuidNewBitmapOffset;

/** A node's report: UUIDs current:bitmap:history0:history1, UpToDate Secondary unless told. */
function node(
  current: bigint,
  bitmap = 0n,
  h0 = 0n,
  h1 = 0n,
  more: Partial<Omit<SideInfo, 'uuids'>> = {},
): SideInfo {
  return {
    uuids: { current, bitmap, history: [h0, h1] },
    crashedPrimary: false,
    disk: 'UpToDate',
    role: 'Secondary',
    dirtyBits: 0,
    discardMyData: false,
    ...more,
  };
}

const disconnect: SplitBrainPolicies = {
  afterSb0pri: 'disconnect',
  afterSb1pri: 'disconnect',
  afterSb2pri: 'disconnect',
};
const with0p = (p: SplitBrainPolicies['afterSb0pri']): SplitBrainPolicies => ({
  ...disconnect,
  afterSb0pri: p,
});

/** One line per decision, so the table reads like the handshake's outcome. */
function summary(d: SyncDecision): string {
  switch (d.kind) {
    case 'in-sync':
      return 'in-sync';
    case 'sync':
      return `${d.direction}${d.full ? ' full' : ''}${d.splitBrain ? ` by ${d.splitBrain.resolvedBy}` : ''}`;
    case 'refuse':
      return `refuse ${d.reason} [${d.handlers.join(',')}]`;
  }
}

// A split brain from generation C: both bitmap UUIDs are C (rule 90), the currents differ.
const sbSelf = (more: Partial<Omit<SideInfo, 'uuids'>> = {}): SideInfo => node(A, C, 0n, 0n, more);
const sbPeer = (more: Partial<Omit<SideInfo, 'uuids'>> = {}): SideInfo => node(B, C, 0n, 0n, more);
const primary = { role: 'Primary' } as const;
const sbRefused = 'refuse split-brain [initial-split-brain,split-brain]';
const priLost = 'refuse split-brain [initial-split-brain,pri-lost-after-sb,split-brain]';

interface Case {
  readonly name: string;
  readonly self: SideInfo;
  readonly peer: SideInfo;
  readonly policies?: SplitBrainPolicies;
  /** resolve-conflicts on this node; false unless told. */
  readonly rc?: boolean;
  readonly hg: number;
  readonly rule: number;
  readonly expect: string;
}

const cases: readonly Case[] = [
  // drbd_uuid_compare, rule by rule.
  { name: 'rule 10: both just created', self: node(J), peer: node(J), hg: 0, rule: 10, expect: 'in-sync' },
  {
    name: 'rule 20: this node just created',
    self: node(J),
    peer: node(A),
    hg: -2,
    rule: 20,
    expect: 'target full',
  },
  {
    name: 'rule 20: this node has no UUID',
    self: node(0n),
    peer: node(A),
    hg: -2,
    rule: 20,
    expect: 'target full',
  },
  {
    name: 'rule 30: the peer just created',
    self: node(A),
    peer: node(J | 1n),
    hg: 2,
    rule: 30,
    expect: 'source full',
  },
  {
    name: 'rule 34: this node was SyncSource and missed the resync finished event',
    self: node(A, B, C, D),
    peer: node(A, 0n, B, C),
    hg: 1,
    rule: 34,
    expect: 'source',
  },
  {
    name: 'rule 35: the peer was SyncSource and missed the resync finished event',
    self: node(A, 0n, B, C),
    peer: node(A, B, C, D),
    hg: -1,
    rule: 35,
    expect: 'target',
  },
  {
    name: 'rule 36: this node was SyncSource, the peer failed to write the sync UUID',
    self: node(A, B),
    peer: node(A),
    hg: 1,
    rule: 36,
    expect: 'source',
  },
  {
    name: 'rule 37: this node was SyncTarget and failed to write the sync UUID',
    self: node(A),
    peer: node(A, B),
    hg: -1,
    rule: 37,
    expect: 'target',
  },
  {
    name: 'rule 40: same generation, no crash',
    self: node(A | 1n),
    peer: node(A),
    hg: 0,
    rule: 40,
    expect: 'in-sync',
  },
  {
    name: 'rule 40: this node crashed as Primary',
    self: node(A, 0n, 0n, 0n, { crashedPrimary: true }),
    peer: node(A),
    hg: 1,
    rule: 40,
    expect: 'source',
  },
  {
    name: 'rule 40: the peer crashed as Primary',
    self: node(A),
    peer: node(A, 0n, 0n, 0n, { crashedPrimary: true }),
    hg: -1,
    rule: 40,
    expect: 'target',
  },
  {
    name: 'rule 40: both crashed as Primary, resolve-conflicts here',
    self: node(A, 0n, 0n, 0n, { crashedPrimary: true }),
    peer: node(A, 0n, 0n, 0n, { crashedPrimary: true }),
    rc: true,
    hg: -1,
    rule: 40,
    expect: 'target',
  },
  {
    name: 'rule 40: both crashed as Primary, resolve-conflicts on the peer',
    self: node(A, 0n, 0n, 0n, { crashedPrimary: true }),
    peer: node(A, 0n, 0n, 0n, { crashedPrimary: true }),
    hg: 1,
    rule: 40,
    expect: 'source',
  },
  {
    name: "rule 50: this node's current is the peer's bitmap UUID",
    self: node(A),
    peer: node(B, A | 1n),
    hg: -1,
    rule: 50,
    expect: 'target',
  },
  {
    name: "rule 51: the peer's sync UUID never arrived",
    self: node(A),
    peer: node(B, A + off, A, C),
    hg: -1,
    rule: 51,
    expect: 'target',
  },
  {
    name: "rule 60: this node's current is in the peer's history[0], no sync UUID bump",
    self: node(A),
    peer: node(B, C, A, 0n),
    hg: -2,
    rule: 60,
    expect: 'target full',
  },
  {
    name: "rule 60: this node's current is the peer's history[1]",
    self: node(A),
    peer: node(B, 0n, C, A),
    hg: -2,
    rule: 60,
    expect: 'target full',
  },
  {
    name: "rule 70: this node's bitmap UUID is the peer's current",
    self: node(B, A),
    peer: node(A),
    hg: 1,
    rule: 70,
    expect: 'source',
  },
  {
    name: "rule 71: this node's sync UUID never arrived at the peer",
    self: node(B, A + off, A, C),
    peer: node(A),
    hg: 1,
    rule: 71,
    expect: 'source',
  },
  {
    name: "rule 80: the peer's current is in this node's history",
    self: node(B, C, 0n, A),
    peer: node(A),
    hg: 2,
    rule: 80,
    expect: 'source full',
  },
  {
    name: 'rule 90: split brain from a common bitmap UUID',
    self: sbSelf(),
    peer: sbPeer(),
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },
  {
    name: 'rule 100: only the histories meet',
    self: node(A, 0n, C, 0n),
    peer: node(B, 0n, 0n, C),
    hg: -100,
    rule: 100,
    expect: sbRefused,
  },
  {
    name: 'rule 100 (-1000): unrelated data',
    self: node(A, B, C),
    peer: node(D, 0xe0n, 0xf0n),
    hg: -1000,
    rule: 100,
    expect: 'refuse unrelated-data []',
  },
  {
    name: 'empty UUIDs match nothing',
    self: node(A, 0n, 0n, 0n),
    peer: node(B, 0n, 0n, 0n),
    hg: -1000,
    rule: 100,
    expect: 'refuse unrelated-data []',
  },

  // Disk states override the UUIDs when exactly one side is Inconsistent.
  {
    name: 'disk states: Inconsistent here, so target, full as rule 30 was full',
    self: node(A, 0n, 0n, 0n, { disk: 'Inconsistent' }),
    peer: node(J),
    hg: 2,
    rule: 30,
    expect: 'target full',
  },
  {
    name: 'disk states: the peer Inconsistent turns rule 50 round',
    self: node(A),
    peer: node(B, A, 0n, 0n, { disk: 'Inconsistent' }),
    hg: -1,
    rule: 50,
    expect: 'source',
  },
  {
    name: 'disk states: a split brain (rule 90) becomes a bitmap resync, no handler',
    self: sbSelf({ disk: 'Outdated' }),
    peer: sbPeer({ disk: 'Inconsistent' }),
    hg: 100,
    rule: 90,
    expect: 'source',
  },
  {
    name: 'disk states: rule 100 becomes a full resync',
    self: node(A, 0n, C, 0n, { disk: 'Inconsistent' }),
    peer: node(B, 0n, C, 0n, { disk: 'Consistent' }),
    hg: -100,
    rule: 100,
    expect: 'target full',
  },
  {
    name: 'source-inconsistent: both Inconsistent, rule 70',
    self: node(B, A, 0n, 0n, { disk: 'Inconsistent' }),
    peer: node(A, 0n, 0n, 0n, { disk: 'Inconsistent' }),
    hg: 1,
    rule: 70,
    expect: 'refuse source-inconsistent []',
  },
  {
    name: 'source-inconsistent: Diskless would be SyncSource',
    self: node(A, 0n, 0n, 0n, { disk: 'Diskless' }),
    peer: node(J),
    hg: 2,
    rule: 30,
    expect: 'refuse source-inconsistent []',
  },

  // after-sb-0pri.
  {
    name: '0pri discard-younger-primary: this node is the older Primary, the peer loses',
    self: node(A, C | 1n),
    peer: node(B, C),
    policies: with0p('discard-younger-primary'),
    hg: 100,
    rule: 90,
    expect: 'source by discard-younger-primary',
  },
  {
    name: '0pri discard-older-primary: this node is the older Primary, it loses',
    self: node(A, C | 1n),
    peer: node(B, C),
    policies: with0p('discard-older-primary'),
    hg: 100,
    rule: 90,
    expect: 'target by discard-older-primary',
  },
  {
    name: '0pri discard-younger-primary falls through to zero changes',
    self: sbSelf({ dirtyBits: 0 }),
    peer: sbPeer({ dirtyBits: 5 }),
    policies: with0p('discard-younger-primary'),
    hg: 100,
    rule: 90,
    expect: 'target by discard-younger-primary',
  },
  {
    name: '0pri discard-older-primary falls through to least changes',
    self: sbSelf({ dirtyBits: 9 }),
    peer: sbPeer({ dirtyBits: 5 }),
    policies: with0p('discard-older-primary'),
    hg: 100,
    rule: 90,
    expect: 'source by discard-older-primary',
  },
  {
    name: '0pri discard-zero-changes: no changes here',
    self: sbSelf({ dirtyBits: 0 }),
    peer: sbPeer({ dirtyBits: 5 }),
    policies: with0p('discard-zero-changes'),
    hg: 100,
    rule: 90,
    expect: 'target by discard-zero-changes',
  },
  {
    name: '0pri discard-zero-changes: no changes anywhere, resolve-conflicts here',
    self: sbSelf(),
    peer: sbPeer(),
    policies: with0p('discard-zero-changes'),
    rc: true,
    hg: 100,
    rule: 90,
    expect: 'target by discard-zero-changes',
  },
  {
    name: '0pri discard-zero-changes: no changes anywhere, resolve-conflicts on the peer',
    self: sbSelf(),
    peer: sbPeer(),
    policies: with0p('discard-zero-changes'),
    hg: 100,
    rule: 90,
    expect: 'source by discard-zero-changes',
  },
  {
    name: '0pri discard-zero-changes: changes on both sides stay unresolved',
    self: sbSelf({ dirtyBits: 1 }),
    peer: sbPeer({ dirtyBits: 5 }),
    policies: with0p('discard-zero-changes'),
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },
  {
    name: '0pri discard-least-changes: the peer changed less',
    self: sbSelf({ dirtyBits: 7 }),
    peer: sbPeer({ dirtyBits: 3 }),
    policies: with0p('discard-least-changes'),
    hg: 100,
    rule: 90,
    expect: 'source by discard-least-changes',
  },
  {
    name: '0pri discard-least-changes: a tie, resolve-conflicts here',
    self: sbSelf({ dirtyBits: 3 }),
    peer: sbPeer({ dirtyBits: 3 }),
    policies: with0p('discard-least-changes'),
    rc: true,
    hg: 100,
    rule: 90,
    expect: 'target by discard-least-changes',
  },
  {
    name: '0pri discard-local',
    self: sbSelf(),
    peer: sbPeer(),
    policies: with0p('discard-local'),
    hg: 100,
    rule: 90,
    expect: 'target by discard-local',
  },
  {
    name: '0pri discard-remote',
    self: sbSelf(),
    peer: sbPeer(),
    policies: with0p('discard-remote'),
    hg: 100,
    rule: 90,
    expect: 'source by discard-remote',
  },

  // after-sb-1pri.
  {
    name: '1pri disconnect',
    self: sbSelf(primary),
    peer: sbPeer(),
    policies: { ...with0p('discard-remote'), afterSb1pri: 'disconnect' },
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },
  {
    name: '1pri consensus: 0pri discards this Secondary',
    self: sbSelf({ dirtyBits: 0 }),
    peer: sbPeer({ role: 'Primary', dirtyBits: 4 }),
    policies: { ...with0p('discard-zero-changes'), afterSb1pri: 'consensus' },
    hg: 100,
    rule: 90,
    expect: 'target by consensus',
  },
  {
    name: '1pri consensus: 0pri would discard the Primary, no consensus',
    self: sbSelf({ dirtyBits: 4 }),
    peer: sbPeer({ role: 'Primary', dirtyBits: 0 }),
    policies: { ...with0p('discard-zero-changes'), afterSb1pri: 'consensus' },
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },
  {
    name: '1pri discard-secondary: this Primary keeps its data',
    self: sbSelf(primary),
    peer: sbPeer(),
    policies: { ...disconnect, afterSb1pri: 'discard-secondary' },
    hg: 100,
    rule: 90,
    expect: 'source by discard-secondary',
  },
  {
    name: '1pri discard-secondary: this Secondary loses its data',
    self: sbSelf(),
    peer: sbPeer(primary),
    policies: { ...disconnect, afterSb1pri: 'discard-secondary' },
    hg: 100,
    rule: 90,
    expect: 'target by discard-secondary',
  },
  {
    name: '1pri violently-as0p: 0pri discard-least-changes discards the Primary',
    self: sbSelf({ role: 'Primary', dirtyBits: 1 }),
    peer: sbPeer({ dirtyBits: 8 }),
    policies: { ...with0p('discard-least-changes'), afterSb1pri: 'violently-as0p' },
    hg: 100,
    rule: 90,
    expect: 'target by violently-as0p',
  },
  {
    name: '1pri call-pri-lost-after-sb: this Primary loses, handler and refusal',
    self: sbSelf(primary),
    peer: sbPeer(),
    policies: { ...with0p('discard-local'), afterSb1pri: 'call-pri-lost-after-sb' },
    hg: 100,
    rule: 90,
    expect: priLost,
  },
  {
    name: '1pri call-pri-lost-after-sb: the refusal stands over discard-my-data',
    self: sbSelf({ role: 'Primary', discardMyData: true }),
    peer: sbPeer(),
    policies: { ...with0p('discard-local'), afterSb1pri: 'call-pri-lost-after-sb' },
    hg: 100,
    rule: 90,
    expect: priLost,
  },
  {
    name: '1pri call-pri-lost-after-sb: this Secondary loses, plain resync',
    self: sbSelf(),
    peer: sbPeer(primary),
    policies: { ...with0p('discard-local'), afterSb1pri: 'call-pri-lost-after-sb' },
    hg: 100,
    rule: 90,
    expect: 'target by call-pri-lost-after-sb',
  },
  {
    name: '1pri call-pri-lost-after-sb: 0pri undecided',
    self: sbSelf(primary),
    peer: sbPeer(),
    policies: { ...disconnect, afterSb1pri: 'call-pri-lost-after-sb' },
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },

  // after-sb-2pri.
  {
    name: '2pri disconnect',
    self: sbSelf(primary),
    peer: sbPeer(primary),
    policies: { ...with0p('discard-local'), afterSb1pri: 'discard-secondary' },
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },
  {
    name: '2pri violently-as0p: 0pri discard-remote',
    self: sbSelf(primary),
    peer: sbPeer(primary),
    policies: { ...with0p('discard-remote'), afterSb2pri: 'violently-as0p' },
    hg: 100,
    rule: 90,
    expect: 'source by violently-as0p',
  },
  {
    name: '2pri call-pri-lost-after-sb: this Primary loses',
    self: sbSelf(primary),
    peer: sbPeer(primary),
    policies: { ...with0p('discard-local'), afterSb2pri: 'call-pri-lost-after-sb' },
    hg: 100,
    rule: 90,
    expect: priLost,
  },
  {
    name: "2pri call-pri-lost-after-sb: the peer loses, that is the peer's refusal",
    self: sbSelf(primary),
    peer: sbPeer(primary),
    policies: { ...with0p('discard-remote'), afterSb2pri: 'call-pri-lost-after-sb' },
    hg: 100,
    rule: 90,
    expect: 'source by call-pri-lost-after-sb',
  },

  // discard-my-data.
  {
    name: 'discard-my-data here resolves rule 90',
    self: sbSelf({ discardMyData: true }),
    peer: sbPeer(),
    hg: 100,
    rule: 90,
    expect: 'target by discard-my-data',
  },
  {
    name: 'discard-my-data on the peer resolves rule 90',
    self: sbSelf(),
    peer: sbPeer({ discardMyData: true }),
    hg: 100,
    rule: 90,
    expect: 'source by discard-my-data',
  },
  {
    name: 'discard-my-data on both sides resolves nothing',
    self: sbSelf({ discardMyData: true }),
    peer: sbPeer({ discardMyData: true }),
    hg: 100,
    rule: 90,
    expect: sbRefused,
  },
  {
    name: 'discard-my-data on rule 100: full sync, the UUIDs were ambiguous',
    self: node(A, 0n, C, 0n, { discardMyData: true }),
    peer: node(B, 0n, 0n, C),
    hg: -100,
    rule: 100,
    expect: 'target full by discard-my-data',
  },
  {
    name: 'discard-my-data on the peer, rule 100',
    self: node(A, 0n, C, 0n),
    peer: node(B, 0n, 0n, C, { discardMyData: true }),
    hg: -100,
    rule: 100,
    expect: 'source full by discard-my-data',
  },
];

for (const c of cases) {
  test(`decideSync: ${c.name}`, () => {
    const rc = c.rc ?? false;
    assert.deepEqual(compareUuids(c.self, c.peer, rc), { hg: c.hg, rule: c.rule });
    const d = decideSync(c.self, c.peer, c.policies ?? disconnect, rc);
    assert.equal(summary(d), c.expect, d.message);
    assert.equal(d.rule, c.rule);
    assert.ok(d.message.length > 0);
  });
}

test('decideSync: messages name the rule, the UUIDs compared and, on split brain, the changes', () => {
  const d = decideSync(node(B, A), node(A), disconnect, false);
  assert.match(d.message, /by rule 70/);
  assert.match(d.message, /00000000000000A0/);
  const sb = decideSync(sbSelf({ dirtyBits: 12 }), sbPeer({ dirtyBits: 34 }), disconnect, false);
  assert.match(sb.message, /^Split-Brain detected but unresolved, dropping connection!/);
  assert.match(sb.message, /this node 12 bits, the peer 34 bits/);
  const fell = decideSync(
    sbSelf({ dirtyBits: 2 }),
    sbPeer({ dirtyBits: 5 }),
    with0p('discard-younger-primary'),
    false,
  );
  assert.match(fell.message, /fell through to discard-zero-changes\/discard-least-changes/);
  const unrelated = decideSync(node(A), node(B), disconnect, false);
  assert.match(unrelated.message, /^Unrelated data, aborting!/);
});

test('formatUuid: 16 upper-case hex digits', () => {
  assert.equal(formatUuid(4n), '0000000000000004');
  assert.equal(formatUuid(0xdeadbeefn), '00000000DEADBEEF');
  assert.equal(formatUuid(2n ** 64n - 1n), 'FFFFFFFFFFFFFFFF');
});

test('policiesAsSeenByPeer: discard-local and discard-remote swap (DRBD convert_after_sb)', () => {
  assert.equal(policiesAsSeenByPeer(with0p('discard-local')).afterSb0pri, 'discard-remote');
  assert.equal(policiesAsSeenByPeer(with0p('discard-remote')).afterSb0pri, 'discard-local');
  assert.deepEqual(policiesAsSeenByPeer(with0p('discard-zero-changes')), with0p('discard-zero-changes'));
});

// ---------------------------------------------------------------------------------------------
// Properties. UUIDs come from a small pool so that they collide often: 0, just-created, values
// with and without the Primary bit, and sync UUIDs (a base plus UUID_NEW_BM_OFFSET) for rules 51/71.

const pool = [0n, 1n, J, J | 1n, A, A | 1n, B, C | 1n, D, A + off, (B + off) | 1n, C + off];
const uuid = fc.constantFrom(...pool);
const side = (uuids: fc.Arbitrary<SideInfo['uuids']>): fc.Arbitrary<SideInfo> =>
  fc.record({
    uuids,
    crashedPrimary: fc.boolean(),
    disk: fc.constantFrom(...diskStates.all),
    // A node in the handshake is Primary or Secondary; 'Unknown' is only what it knows of a
    // peer it is not connected to (with it, 'consensus' would have no Secondary to discard).
    role: fc.constantFrom('Primary' as const, 'Secondary' as const),
    dirtyBits: fc.integer({ min: 0, max: 3 }),
    discardMyData: fc.boolean(),
  });
const anySide = side(fc.record({ current: uuid, bitmap: uuid, history: fc.tuple(uuid, uuid) }));
const policies: fc.Arbitrary<SplitBrainPolicies> = fc.record({
  afterSb0pri: fc.constantFrom(...afterSb0priPolicies.all),
  afterSb1pri: fc.constantFrom(...afterSb1priPolicies.all),
  afterSb2pri: fc.constantFrom(...afterSb2priPolicies.all),
});

const masked = (u: bigint): bigint => u & ~1n;
/** `a`'s current generation is in `b`'s past (its bitmap UUID or history). */
const inPastOf = (a: SideInfo, b: SideInfo): boolean =>
  masked(a.uuids.current) !== 0n &&
  [b.uuids.bitmap, ...b.uuids.history].some((u) => masked(u) === masked(a.uuids.current));

/**
 * Pairs no two real nodes can report, on which drbd_uuid_compare is not antisymmetric:
 * - both current UUIDs empty: rule 20 makes each node SyncTarget;
 * - each current UUID in the other's past (a cycle: A older than B older than A): rules 50–60
 *   (this node is older) are tried before 70–80 (the peer is older), so each node finds
 *   itself the older one. UUIDs are random and a node's current one is its newest, so real
 *   histories never form such a cycle.
 */
function reachable(a: SideInfo, b: SideInfo): boolean {
  const ca = masked(a.uuids.current);
  const cb = masked(b.uuids.current);
  if (ca === 0n && cb === 0n) return false;
  return ca === cb || !(inPastOf(a, b) && inPastOf(b, a));
}
const pair = fc.tuple(anySide, anySide).filter(([a, b]) => reachable(a, b));

// Split brains for sure (rule 90): one shared bitmap UUID, fresh current UUIDs, so that every
// policy and role combination is reached often.
const sbPair = fc
  .tuple(
    uuid.filter((u) => masked(u) !== 0n),
    fc.boolean(),
    fc.boolean(),
  )
  .chain(([bm, sPri, pPri]) =>
    fc.tuple(
      side(fc.constant({ current: 0x1000n, bitmap: bm | (sPri ? 1n : 0n), history: [0n, 0n] as const })),
      side(fc.constant({ current: 0x2000n, bitmap: bm | (pPri ? 1n : 0n), history: [0n, 0n] as const })),
    ),
  );

const mirrorRule: Readonly<Record<number, number>> = {
  20: 30,
  30: 20,
  34: 35,
  35: 34,
  36: 37,
  37: 36,
  50: 70,
  70: 50,
  51: 71,
  71: 51,
  60: 80,
  80: 60,
};

test('compareUuids: antisymmetric, split brain and unrelated data alike on both nodes', () => {
  fc.assert(
    fc.property(pair, fc.boolean(), ([a, b], rc) => {
      const x = compareUuids(a, b, rc);
      const y = compareUuids(b, a, !rc);
      if (Math.abs(x.hg) >= 100) assert.equal(y.hg, x.hg);
      else assert.equal(y.hg, -x.hg || 0);
      assert.equal(y.rule, mirrorRule[x.rule] ?? x.rule);
    }),
    { numRuns: 3000 },
  );
});

function isPriLost(d: SyncDecision): boolean {
  return d.kind === 'refuse' && d.handlers.includes('pri-lost-after-sb');
}

/** What node a decides against what node b decides, each alone, as one connection would. */
function assertMirror(a: SideInfo, b: SideInfo, p: SplitBrainPolicies): void {
  const da = decideSync(a, b, p, true);
  const db = decideSync(b, a, policiesAsSeenByPeer(p), false);
  assert.ok(da.message.length > 0 && db.message.length > 0);
  // call-pri-lost-after-sb: DRBD runs the handler only on the Primary that loses; the other
  // node sees a plain resync (or its own refusal). The losing node drops the connection.
  if (isPriLost(da) || isPriLost(db)) {
    const other = isPriLost(da) ? db : da;
    assert.ok(
      other.kind === 'refuse' || (other.kind === 'sync' && other.direction === 'source'),
      other.message,
    );
    return;
  }
  // Only the would-be SyncSource checks its own disk (DRBD: "I shall become SyncSource, but I am
  // inconsistent!"); the other node would be SyncTarget. The refusal drops the connection.
  for (const [x, y] of [
    [da, db],
    [db, da],
  ] as const) {
    if (x.kind === 'refuse' && x.reason === 'source-inconsistent') {
      assert.ok(y.kind === 'sync' && y.direction === 'target', y.message);
      return;
    }
  }
  assert.equal(db.kind, da.kind, `${da.message} / ${db.message}`);
  if (da.kind === 'sync' && db.kind === 'sync') {
    assert.notEqual(db.direction, da.direction);
    assert.equal(db.full, da.full);
    assert.equal(db.splitBrain === undefined, da.splitBrain === undefined);
  }
  if (da.kind === 'refuse' && db.kind === 'refuse') {
    assert.equal(db.reason, da.reason);
    assert.deepEqual(db.handlers, da.handlers);
  }
}

test('decideSync: both nodes reach mirror-image decisions', () => {
  fc.assert(
    fc.property(pair, policies, ([a, b], p) => assertMirror(a, b, p)),
    { numRuns: 3000 },
  );
});

test('decideSync: split brains reach mirror-image decisions under every policy', () => {
  fc.assert(
    fc.property(sbPair, policies, ([a, b], p) => {
      assert.equal(compareUuids(a, b, true).hg, 100);
      assertMirror(a, b, p);
    }),
    { numRuns: 3000 },
  );
});
