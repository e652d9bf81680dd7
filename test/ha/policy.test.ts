// The rules of who runs which group, as a table, and the invariant that matters: two
// live nodes never both decide to start the same group.
import assert from 'node:assert/strict';
import test from 'node:test';
import fc from 'fast-check';
import type { GroupState } from '../../src/ha/groups.js';
import { decideGroups, type PeerLiveness, type PolicyGroup, type PolicyInput } from '../../src/ha/policy.js';

const g = (p: Partial<PolicyGroup> = {}): PolicyGroup => ({
  key: 'IPaddr::10.0.0.100/24',
  preferred: 'server6',
  mine: 'released',
  mineStartFailed: false,
  peer: { state: 'released', startFailed: false },
  ...p,
});
const input = (p: Partial<PolicyInput> = {}, groups = [g()]): PolicyInput => ({
  self: 'server6',
  peerLiveness: 'up',
  settled: true,
  standby: false,
  peerStandby: false,
  autoFailback: false,
  quorum: true,
  groups,
  ...p,
});
const kinds = (i: PolicyInput) => decideGroups(i).map((a) => `${a.kind} ${a.key}`);
const K = 'IPaddr::10.0.0.100/24';

const cases: [string, PolicyInput, string[]][] = [
  ['not settled (initdead): nothing', input({ settled: false }), []],
  ['preferred node, nobody holds it: start', input(), [`start ${K}`]],
  ['other node, nobody holds it, preferred alive: wait', input({ self: 'server7' }), []],
  ['peer unknown: nothing yet', input({ peerLiveness: 'unknown' }), []],
  ['no majority: release what runs here', input({ quorum: false }, [g({ mine: 'running' })]), [`stop ${K}`]],
  [
    'no majority yet, just started (votes on their way): keep what was found running, start nothing',
    input({ quorum: false, quorumPending: true }, [g({ mine: 'running' }), g({ key: 'other' })]),
    [],
  ],
  [
    'no majority, peer dead: start nothing',
    input({ quorum: false, self: 'server7', peerLiveness: 'dead', peerStandby: false }),
    [],
  ],
  ['no majority, preferred node, nobody holds it: start nothing', input({ quorum: false }), []],
  [
    'peer dead: take it',
    input({ self: 'server7', peerLiveness: 'dead', groups: [g({ peer: undefined })] }),
    [`start ${K}`],
  ],
  [
    'peer runs it: do not start',
    input({ groups: [g({ peer: { state: 'running', startFailed: false } })] }),
    [],
  ],
  [
    'peer failed to stop it (may hold it): do not start',
    input({
      self: 'server7',
      peerLiveness: 'up',
      groups: [g({ peer: { state: 'failed', startFailed: false } })],
    }),
    [],
  ],
  [
    'preferred failed to start it: the other node tries',
    input({ self: 'server7', groups: [g({ peer: { state: 'released', startFailed: true } })] }),
    [`start ${K}`],
  ],
  ['our own start failed: not again', input({ groups: [g({ mineStartFailed: true })] }), []],
  ['standby: stop what runs here', input({ standby: true, groups: [g({ mine: 'running' })] }), [`stop ${K}`]],
  ['standby, but the peer died: take it', input({ standby: true, peerLiveness: 'dead' }), [`start ${K}`]],
  ['peer in standby: take it', input({ self: 'server7', peerStandby: true }), [`start ${K}`]],
  [
    'auto_failback on, preferred back: the holder stops',
    input({ self: 'server7', autoFailback: true, groups: [g({ mine: 'running' })] }),
    [`stop ${K}`],
  ],
  [
    'auto_failback off, preferred back: keep it',
    input({ self: 'server7', groups: [g({ mine: 'running' })] }),
    [],
  ],
  ['running here already: nothing', input({ groups: [g({ mine: 'running' })] }), []],
  [
    'both run it, preferred: keep it',
    input({ groups: [g({ mine: 'running', peer: { state: 'running', startFailed: false } })] }),
    [],
  ],
  [
    'both run it, not preferred: give way',
    input({
      self: 'server7',
      groups: [g({ mine: 'running', peer: { state: 'running', startFailed: false } })],
    }),
    [`stop ${K}`],
  ],
];

for (const [name, i, expected] of cases) {
  test(`policy: ${name}`, () => {
    assert.deepEqual(kinds(i), expected);
  });
}

const state = fc.constantFrom<GroupState>('released', 'starting', 'running', 'stopping', 'failed');

test('policy: two live nodes never both start a group, whatever they report', () => {
  fc.assert(
    fc.property(
      state,
      state,
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom('server6', 'server7'),
      (a, b, aFailed, bFailed, aStandby, bStandby, failback, preferred) => {
        const view = (
          self: string,
          mine: GroupState,
          mineFailed: boolean,
          peer: GroupState,
          peerFailed: boolean,
          sb: boolean,
          psb: boolean,
        ) =>
          decideGroups({
            self,
            peerLiveness: 'up' as PeerLiveness,
            settled: true,
            quorum: true,
            standby: sb,
            peerStandby: psb,
            autoFailback: failback,
            groups: [
              {
                key: 'k',
                preferred,
                mine,
                mineStartFailed: mineFailed,
                peer: { state: peer, startFailed: peerFailed },
              },
            ],
          });
        const x = view(
          'server6',
          a,
          aFailed && a === 'released',
          b,
          bFailed && b === 'released',
          aStandby,
          bStandby,
        );
        const y = view(
          'server7',
          b,
          bFailed && b === 'released',
          a,
          aFailed && a === 'released',
          bStandby,
          aStandby,
        );
        const startsX = x.some((act) => act.kind === 'start');
        const startsY = y.some((act) => act.kind === 'start');
        assert.ok(!(startsX && startsY), 'both start');
        // And nobody starts what the other holds.
        if (startsX) assert.equal(b, 'released');
        if (startsY) assert.equal(a, 'released');
      },
    ),
    { seed: 5, numRuns: 3000 },
  );
});
