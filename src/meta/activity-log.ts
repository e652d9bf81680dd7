// DRBD's activity log: the bounded set of "hot" 4 MiB extents that may have writes in
// flight. A write to an extent outside the set first needs a durable transaction; replay
// of the ring after a crash gives the set, and those extents are resynced. Pure logic.
import assert from 'node:assert/strict';
import {
  type AlTransaction,
  type AlUpdate,
  alContextPerTransaction,
  alEmpty,
  alUpdatesPerTransaction,
  decodeAlTransaction,
  encodeAlTransaction,
  ringIndexForSeq,
} from './al-transaction.js';
import { MetaError } from './errors.js';
import { alRingBlocks } from './layout.js';

/** A transaction for the caller to write at ring block `ringIndex`, flush, then `committed(seq)`. */
export interface AlWrite {
  readonly seq: number;
  readonly ringIndex: number;
  readonly block: Buffer;
  /** Extents that left the set: their bitmap pages must be durable before this block is written. */
  readonly evicted: readonly number[];
}

export type AlBegin =
  /** Every extent is in the set and on disk: the write may go ahead. */
  | { readonly kind: 'active' }
  /** Write `write` first; the data write may go ahead once it is durable and committed. */
  | { readonly kind: 'transaction'; readonly write: AlWrite }
  /** A transaction is in flight (they are written one at a time, in order): retry after it commits. */
  | { readonly kind: 'wait' }
  /** No slot is free of in-flight writes: retry after a `complete`. */
  | { readonly kind: 'full' };

interface Slot {
  readonly slot: number;
  refs: number;
}

export class ActivityLog {
  readonly slots: number;
  readonly metaId: bigint;
  private nextSeq: number;
  private contextStart = 0;
  /** The on-disk slot table: extent per slot, alEmpty for a free slot. */
  private readonly table: Uint32Array;
  /** Active extents in least- to most-recently used order (a Map keeps insertion order). */
  private readonly lru = new Map<number, Slot>();
  private pending: { readonly seq: number; readonly added: ReadonlySet<number> } | undefined;

  /** An empty log; `lastSeq` is the newest sequence found on disk, so the ring keeps its order. */
  constructor(slots: number, metaId: bigint, lastSeq: number) {
    this.slots = slots;
    this.metaId = metaId;
    this.nextSeq = lastSeq + 1;
    this.table = new Uint32Array(slots).fill(alEmpty);
  }

  /** Active extents, least recently used first. */
  active(): number[] {
    return [...this.lru.keys()];
  }

  has(extent: number): boolean {
    return this.lru.has(extent);
  }

  /** Writes in flight in `extent` (0 when not active). */
  refs(extent: number): number {
    return this.lru.get(extent)?.refs ?? 0;
  }

  /** Declares writes to `extents` (distinct; at most alUpdatesPerTransaction new ones). */
  begin(extents: readonly number[]): AlBegin {
    // Nearly every write: all active, nothing allocated.
    if (this.beginActive(extents)) return { kind: 'active' };
    const added: number[] = [];
    for (let i = 0; i < extents.length; i++) {
      const e = extents[i]!;
      for (let j = 0; j < i; j++) assert.notEqual(e, extents[j], 'extents must be distinct');
      if (!this.lru.has(e)) added.push(e);
    }
    // An extent is new, or in the transaction being written: that transaction goes first.
    if (this.pending) return { kind: 'wait' };
    assert.ok(added.length <= alUpdatesPerTransaction, 'too many new extents for one transaction');
    const victims = this.chooseSlots(added.length, extents);
    if (!victims) return { kind: 'full' };
    const updates: AlUpdate[] = [];
    const evicted: number[] = [];
    added.forEach((extent, i) => {
      const slot = victims[i]!;
      const old = this.table[slot]!;
      if (old !== alEmpty) {
        this.lru.delete(old);
        evicted.push(old);
      }
      this.table[slot] = extent;
      this.lru.set(extent, { slot, refs: 0 });
      updates.push({ slot, extent, evicted: old });
    });
    this.acquire(extents);
    const write = this.transaction('update', updates, evicted);
    this.pending = { seq: write.seq, added: new Set(added) };
    return { kind: 'transaction', write };
  }

  /**
   * begin() where it needs neither a transaction nor a wait: takes `extents` (distinct)
   * and returns true when every one is active and none is in the transaction being
   * written; otherwise changes nothing and returns false.
   */
  beginActive(extents: readonly number[]): boolean {
    const pending = this.pending?.added;
    for (let i = 0; i < extents.length; i++) {
      const e = extents[i]!;
      for (let j = 0; j < i; j++) assert.notEqual(e, extents[j], 'extents must be distinct');
      if (!this.lru.has(e) || pending?.has(e)) return false;
    }
    this.acquire(extents);
    return true;
  }

  /** One write in `extent` finished. */
  complete(extent: number): void {
    const s = this.lru.get(extent);
    assert.ok(s && s.refs > 0, `complete(${extent}) without begin`);
    s.refs--;
  }

  /** The transaction `seq` is durable. */
  committed(seq: number): void {
    assert.equal(this.pending?.seq, seq, 'commit out of order');
    this.pending = undefined;
  }

  /** Empties the set (no writes may be in flight); the block records it. */
  reset(): AlWrite {
    assert.ok(!this.pending, 'reset with a transaction in flight');
    for (const [extent, s] of this.lru) assert.equal(s.refs, 0, `reset with writes in flight in ${extent}`);
    const evicted = this.active();
    this.lru.clear();
    this.table.fill(alEmpty);
    const write = this.transaction('reset', [], evicted);
    this.pending = { seq: write.seq, added: new Set() };
    return write;
  }

  private acquire(extents: readonly number[]): void {
    for (const e of extents) {
      const s = this.lru.get(e)!;
      s.refs++;
      // Most recently used goes last.
      this.lru.delete(e);
      this.lru.set(e, s);
    }
  }

  /** `count` slots: free ones first, then those of idle extents, least recently used first. */
  private chooseSlots(count: number, keep: readonly number[]): number[] | undefined {
    const out: number[] = [];
    for (let slot = 0; slot < this.slots && out.length < count; slot++) {
      if (this.table[slot] === alEmpty) out.push(slot);
    }
    for (const [extent, s] of this.lru) {
      if (out.length >= count) break;
      if (s.refs === 0 && !keep.includes(extent)) out.push(s.slot);
    }
    return out.length >= count ? out : undefined;
  }

  private transaction(type: AlTransaction['type'], updates: AlUpdate[], evicted: number[]): AlWrite {
    const seq = this.nextSeq++;
    const count = Math.min(this.slots, alContextPerTransaction);
    const context: number[] = [];
    for (let i = 0; i < count; i++) context.push(this.table[(this.contextStart + i) % this.slots]!);
    const t: AlTransaction = {
      type,
      seq,
      metaId: this.metaId,
      slots: this.slots,
      updates,
      contextStart: this.contextStart,
      context,
    };
    this.contextStart = (this.contextStart + count) % this.slots;
    return { seq, ringIndex: ringIndexForSeq(seq), block: encodeAlTransaction(t), evicted };
  }
}

export interface AlReplay {
  /** Extents that may have had writes in flight at the crash, ascending. */
  readonly extents: readonly number[];
  /** False when some slot could not be recovered: the caller must resync everything. */
  readonly complete: boolean;
  /** The newest valid sequence number (0 when none): new transactions continue after it. */
  readonly lastSeq: number;
  /** How many transactions the replay used. */
  readonly transactions: number;
  /** Blocks that failed to decode or belong to another metadata instance, with why. */
  readonly invalid: readonly { readonly ringIndex: number; readonly error: MetaError }[];
}

/**
 * Rebuilds the active set from the ring's blocks (in ring order). It walks back from
 * the newest valid transaction through consecutive sequence numbers, to a reset or until
 * the context windows have covered every slot, then applies them oldest first.
 */
export function replayActivityLog(blocks: readonly Uint8Array[], metaId: bigint): AlReplay {
  const valid = new Map<number, AlTransaction>();
  const invalid: { ringIndex: number; error: MetaError }[] = [];
  assert.equal(blocks.length, alRingBlocks, 'one entry per ring block');
  blocks.forEach((bytes, ringIndex) => {
    try {
      const t = decodeAlTransaction(bytes);
      if (t.metaId !== metaId) throw new MetaError('META_BAD_FIELD', 'block of another create-md', 16);
      if (ringIndexForSeq(t.seq) !== ringIndex) {
        throw new MetaError('META_BAD_FIELD', `sequence ${t.seq} in the wrong ring block`, 8);
      }
      valid.set(t.seq, t);
    } catch (e) {
      if (!(e instanceof MetaError)) throw e;
      invalid.push({ ringIndex, error: e });
    }
  });
  const newest = Math.max(0, ...valid.keys());
  const chain: AlTransaction[] = [];
  const covered = new Set<number>();
  let base: 'reset' | 'unknown' = 'unknown';
  for (let seq = newest; valid.has(seq); seq--) {
    const t = valid.get(seq)!;
    if (chain.length > 0 && t.slots !== chain[0]!.slots) break;
    chain.unshift(t);
    if (t.type === 'reset') {
      base = 'reset';
      break;
    }
    for (let i = 0; i < t.context.length; i++) covered.add((t.contextStart + i) % t.slots);
    for (const u of t.updates) covered.add(u.slot);
    if (covered.size === t.slots) break;
  }
  const slots = chain[0]?.slots ?? 0;
  const table = new Uint32Array(slots).fill(alEmpty);
  for (const t of chain) {
    for (const u of t.updates) table[u.slot] = u.extent;
    t.context.forEach((extent, i) => {
      table[(t.contextStart + i) % t.slots] = extent;
    });
  }
  const extents = [...new Set(table)].filter((e) => e !== alEmpty).sort((a, b) => a - b);
  // No valid block at all cannot be a ring we wrote (create-md writes a reset first).
  const complete = chain.length > 0 && (base === 'reset' || covered.size === slots);
  return { extents, complete, lastSeq: newest, transactions: chain.length, invalid };
}
