// Quorum with a witness: three nodes, two with disks and one without, and a node acts
// only with a majority (itself and one more). Pure: tandem-ha computes it from its
// membership views after every change and on every tick.
//
// A vote is a lease. Node X's vote counts for this node while X is up here and X's last
// heartbeat said it heard this node recently enough: X last heard us at about
// now - heartbeatAge - silence, declares us dead deadtime after that, and our lease ends
// 2 x keepalive before then. So a node whose packets stop reaching the others loses its
// majority (and releases its groups) before any of them may call it dead and take over,
// even when it still hears them (a one-way cut).
//
// A peer is dead by the majority when it is dead here and another node whose vote
// counts reports it dead too. Only then are its groups taken: with the witness seeing
// both data nodes, a cut between the two alone moves nothing.
import type { PeerView } from './membership.js';

export interface QuorumInput {
  readonly self: string;
  /** The witness's name; undefined in a two-node cluster (no quorum rules). */
  readonly witness: string | undefined;
  /** Every other node's view, as membership keeps it. */
  readonly peers: readonly PeerView[];
  readonly deadtimeMs: number;
  readonly keepaliveMs: number;
}

export interface Quorum {
  /** False in a two-node cluster: every node acts on its own view, as Heartbeat. */
  readonly applies: boolean;
  /** This node has a majority (always true when quorum does not apply). */
  readonly has: boolean;
  /** The nodes whose vote counts for this node now. */
  readonly votes: readonly string[];
  /** For logs and status: why the majority is held or lost. */
  readonly why: string;
}

/** How long `peer`'s vote for `self` still holds, in ms (≤ 0: it does not). */
export function voteLeftMs(self: string, peer: PeerView, deadtimeMs: number, keepaliveMs: number): number {
  if (peer.state !== 'up' || peer.heartbeatAgeMs === undefined) return 0;
  const me = peer.view.find((v) => v.name === self);
  if (me === undefined || me.state !== 'up' || me.silentMs === undefined) return 0;
  return deadtimeMs - 2 * keepaliveMs - (peer.heartbeatAgeMs + me.silentMs);
}

export function quorumOf(input: QuorumInput): Quorum {
  if (input.witness === undefined) {
    return { applies: false, has: true, votes: [], why: 'two nodes, no witness: no quorum rules' };
  }
  const votes = input.peers
    .filter((p) => voteLeftMs(input.self, p, input.deadtimeMs, input.keepaliveMs) > 0)
    .map((p) => p.name);
  const total = input.peers.length + 1;
  const has = 2 * (votes.length + 1) > total;
  const why = has
    ? `majority: ${[input.self, ...votes].join(', ')} of ${total} nodes`
    : `no majority: only ${input.self} of ${total} nodes (no vote from ${input.peers.map((p) => p.name).join(' or ')})`;
  return { applies: true, has, votes, why };
}

/**
 * Whether `node` is dead by the majority: dead here, this node has a majority, and a
 * node whose vote counts reports it dead too. In a two-node cluster: dead here.
 */
export function deadByMajority(input: QuorumInput, node: string): boolean {
  const here = input.peers.find((p) => p.name === node);
  if (here === undefined || here.state !== 'dead') return false;
  const q = quorumOf(input);
  if (!q.applies) return true;
  if (!q.has) return false;
  return input.peers.some(
    (p) =>
      p.name !== node &&
      q.votes.includes(p.name) &&
      p.view.some((v) => v.name === node && v.state === 'dead'),
  );
}
