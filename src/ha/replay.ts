// Replay protection for heartbeat packets, as IPsec's anti-replay window (RFC 4303 §3.4.3):
// per configured sender, the highest boot generation seen and, within it, a sliding window
// of the last sequence numbers accepted. A recorded packet played back later is refused,
// while UDP's reordering across links (the same seq arrives on every link) stays harmless.
import assert from 'node:assert/strict';

/** Sequence numbers remembered below the highest one; older ones are refused unseen. */
export const replayWindowDefault = 64;
export const replayWindowMax = 1024;
/** Far above any Heartbeat cluster; bounds the guard's memory. */
export const replayNodesMax = 256;

/**
 * ok: new, may be accepted once the MAC verified; replayed: seen already in this
 * generation, or too far below the highest seq to tell; old-generation: the sender has
 * restarted since (a packet from its previous life); unknown-node: not a configured node.
 */
export type ReplayVerdict = 'ok' | 'replayed' | 'old-generation' | 'unknown-node';

interface Seen {
  readonly generation: number;
  /** The highest seq accepted in this generation. */
  highest: number;
  /** Bit i set: seq `highest - i` was accepted; bit 0 is `highest`. */
  window: bigint;
}

export class ReplayGuard {
  readonly windowSize: number;
  private readonly full: bigint;
  /** One entry per configured node, undefined until it was first heard: bounded by the node list. */
  private readonly nodes = new Map<string, Seen | undefined>();

  /** `nodes`: the senders to expect (the cluster's node names, lower-case). */
  constructor(nodes: readonly string[], windowSize = replayWindowDefault) {
    assert.ok(nodes.length <= replayNodesMax, 'too many nodes');
    assert.ok(
      Number.isInteger(windowSize) && windowSize >= 1 && windowSize <= replayWindowMax,
      'window size',
    );
    for (const n of nodes) {
      assert.ok(n.length > 0 && n === n.toLowerCase(), `node name ${n}`);
      this.nodes.set(n, undefined);
    }
    this.windowSize = windowSize;
    this.full = (1n << BigInt(windowSize)) - 1n;
  }

  /** Whether a packet from `from` with this generation and seq may be accepted. Changes nothing. */
  check(from: string, generation: number, seq: number): ReplayVerdict {
    if (!this.nodes.has(from)) return 'unknown-node';
    const s = this.nodes.get(from);
    if (s === undefined || generation > s.generation) return 'ok';
    if (generation < s.generation) return 'old-generation';
    if (seq > s.highest) return 'ok';
    const behind = s.highest - seq;
    if (behind >= this.windowSize) return 'replayed';
    return (s.window >> BigInt(behind)) & 1n ? 'replayed' : 'ok';
  }

  /**
   * Records the packet as seen. Only for packets whose MAC verified (else a forger could
   * advance the window or the generation) and which check() calls ok.
   */
  accept(from: string, generation: number, seq: number): void {
    assert.equal(this.check(from, generation, seq), 'ok', 'accept() of a packet check() refuses');
    const s = this.nodes.get(from);
    if (s === undefined || generation > s.generation) {
      // A restarted sender: its previous generation's window means nothing now.
      this.nodes.set(from, { generation, highest: seq, window: 1n });
      return;
    }
    if (seq > s.highest) {
      const ahead = seq - s.highest;
      s.window = ahead >= this.windowSize ? 1n : ((s.window << BigInt(ahead)) | 1n) & this.full;
      s.highest = seq;
      return;
    }
    s.window |= 1n << BigInt(s.highest - seq);
  }

  /** The last generation and highest seq accepted from `from`, for status; undefined if never heard. */
  lastSeen(from: string): { readonly generation: number; readonly seq: number } | undefined {
    const s = this.nodes.get(from);
    return s === undefined ? undefined : { generation: s.generation, seq: s.highest };
  }
}
