// Who runs which resource group, as a table of rules over what this node knows: its own
// groups, the peer's liveness and the group states in the peer's last heartbeat, standby
// requests and auto_failback. Pure: tandem-ha calls it after every change and carries out
// the actions; the rules are tested as a table.
//
// The invariant: while both nodes are alive, only one of them ever starts a group —
//  - a group nobody runs is started by its preferred node only, unless that node is in
//    standby or reported that its start failed (then the other node tries, as Heartbeat);
//  - a node never starts a group the peer reports as starting, running, stopping or
//    failed (a failed stop means the peer may still hold the disk or the address);
//  - failback (auto_failback on) is a stop by the holder, then a start by the preferred
//    node once the peer reports the group released.
// A dead peer (silent on every link for deadtime) holds nothing: its groups are taken.
// With a witness, "dead" means dead by the majority (quorum.ts), and a node without a
// majority starts nothing and releases what it runs: under any partition, at most one
// node serves a group.
import type { GroupState } from './groups.js';

export type PeerLiveness = 'unknown' | 'up' | 'dead';

/** A group as the peer reported it; `startFailed`: released after a start that failed there. */
export interface PeerGroup {
  readonly state: GroupState;
  readonly startFailed: boolean;
}

export interface PolicyGroup {
  readonly key: string;
  /** The preferred node (haresources' first word, lower-cased). */
  readonly preferred: string;
  readonly mine: GroupState;
  /** This node's last start of it failed (the peer may try). */
  readonly mineStartFailed: boolean;
  /** The peer's report; undefined when the peer is not up or did not mention it. */
  readonly peer: PeerGroup | undefined;
}

export interface PolicyInput {
  readonly self: string;
  readonly peerLiveness: PeerLiveness;
  /** initdead has passed (or the peer has been heard): decisions may be made. */
  readonly settled: boolean;
  /** This node was asked to give its groups away (`standby`). */
  readonly standby: boolean;
  /** The peer is in standby. */
  readonly peerStandby: boolean;
  readonly autoFailback: boolean;
  /** This node has a majority (always true without a witness). */
  readonly quorum: boolean;
  /**
   * Just started and never yet had the majority: the others' votes need a heartbeat
   * round trip. A group found running here is not released for want of a majority
   * until this ends (nothing is started either).
   */
  readonly quorumPending?: boolean;
  readonly groups: readonly PolicyGroup[];
}

/** The reason of the stop a node without a majority makes: the daemon fails its disks' I/O first. */
export const lostQuorum = 'this node lost the majority';

export type PolicyAction =
  | { readonly kind: 'start'; readonly key: string; readonly why: string }
  | { readonly kind: 'stop'; readonly key: string; readonly why: string };

const held = (s: GroupState | undefined): boolean =>
  s === 'starting' || s === 'running' || s === 'stopping' || s === 'failed';

export function decideGroups(input: PolicyInput): PolicyAction[] {
  const actions: PolicyAction[] = [];
  if (!input.settled) return actions;
  for (const g of input.groups) {
    if (!input.quorum) {
      // The others may already count this node dead and take the group: give it up.
      if (g.mine === 'running' && !input.quorumPending)
        actions.push({ kind: 'stop', key: g.key, why: lostQuorum });
      continue;
    }
    const mineHeld = held(g.mine);
    const preferredHere = g.preferred === input.self;
    // Standby gives the groups to a live peer; a dead peer's node takes them all anyway.
    if (input.standby && input.peerLiveness !== 'dead') {
      // Give everything away; the peer starts it once it sees it released.
      if (g.mine === 'running') actions.push({ kind: 'stop', key: g.key, why: 'standby' });
      continue;
    }
    if (input.peerLiveness === 'dead') {
      if (g.mine === 'released' && !g.mineStartFailed) {
        actions.push({ kind: 'start', key: g.key, why: 'the peer is dead' });
      }
      continue;
    }
    if (input.peerLiveness !== 'up') continue;
    const peerHeld = held(g.peer?.state);
    if (mineHeld) {
      // Both run it (a healed partition, a restart): the non-preferred node gives way.
      if (g.mine === 'running' && g.peer?.state === 'running' && !preferredHere) {
        actions.push({ kind: 'stop', key: g.key, why: 'both nodes run it: the preferred node keeps it' });
        continue;
      }
      // auto_failback: the preferred node is back and well; hand its group back.
      if (
        g.mine === 'running' &&
        !preferredHere &&
        input.autoFailback &&
        !input.peerStandby &&
        g.peer?.state === 'released' &&
        !g.peer.startFailed
      ) {
        actions.push({ kind: 'stop', key: g.key, why: 'auto_failback: the preferred node is back' });
      }
      continue;
    }
    if (peerHeld || g.mineStartFailed) continue;
    // Nobody holds it.
    if (preferredHere && !g.peer?.startFailed) {
      actions.push({ kind: 'start', key: g.key, why: 'this is its preferred node' });
      continue;
    }
    if (!preferredHere && (input.peerStandby || g.peer?.startFailed)) {
      actions.push({
        kind: 'start',
        key: g.key,
        why: input.peerStandby ? 'the preferred node is in standby' : 'the preferred node failed to start it',
      });
    }
  }
  return actions;
}
