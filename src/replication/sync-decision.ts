// The sync handshake's decision, from one node's point of view: DRBD 8.4's
// drbd_uuid_compare (which generation is older, rule by rule), drbd_sync_handshake
// (disk states, split-brain policies, discard-my-data) and drbd_asb_recover_0p/1p/2p.
// Pure: both nodes run it on the same two reports and reach mirror-image answers.

import type { DiskState, Role } from '../device/state.js';
import { uuidJustCreated } from '../meta/create.js';
import type { AfterSb0pri, AfterSb1pri, AfterSb2pri } from './messages-state.js';

export interface UuidSet {
  readonly current: bigint;
  readonly bitmap: bigint;
  readonly history: readonly [bigint, bigint];
}

export interface SideInfo {
  readonly uuids: UuidSet;
  /** Crashed while Primary (its activity log extents need resync). */
  readonly crashedPrimary: boolean;
  readonly disk: DiskState;
  readonly role: Role;
  /** Bits set in its out-of-sync bitmap ("changes"). */
  readonly dirtyBits: number;
  /** `connect --discard-my-data` was given on that node. */
  readonly discardMyData: boolean;
}

export interface SplitBrainPolicies {
  readonly afterSb0pri: AfterSb0pri;
  readonly afterSb1pri: AfterSb1pri;
  readonly afterSb2pri: AfterSb2pri;
}

export type SyncHandler = 'split-brain' | 'pri-lost-after-sb' | 'initial-split-brain';

export type SyncDecision =
  | { readonly kind: 'in-sync'; readonly rule: number; readonly message: string }
  | {
      readonly kind: 'sync';
      readonly direction: 'source' | 'target';
      readonly full: boolean;
      readonly rule: number;
      readonly message: string;
      /** Set when a split brain was detected and resolved (by which policy or by discard-my-data). */
      readonly splitBrain?: { readonly resolvedBy: string };
    }
  | {
      readonly kind: 'refuse';
      readonly reason: 'split-brain' | 'unrelated-data' | 'source-inconsistent' | 'config-error';
      readonly rule: number;
      readonly message: string;
      readonly handlers: readonly SyncHandler[];
    };

/** 16 upper-case hex digits, as drbdadm shows UUIDs. */
export function formatUuid(u: bigint): string {
  return u.toString(16).toUpperCase().padStart(16, '0');
}

const m = (u: bigint): bigint => u & ~1n;

/** DRBD's UUID_NEW_BM_OFFSET: a SyncSource's new bitmap UUID is the old one plus this. */
export const uuidNewBitmapOffset = 0x10000n;

/** DRBD's disk state order (enum drbd_disk_state). */
const diskRank: Readonly<Record<DiskState, number>> = {
  Diskless: 0,
  Attaching: 1,
  Failed: 2,
  Negotiating: 3,
  Inconsistent: 4,
  Outdated: 5,
  DUnknown: 6,
  Consistent: 7,
  UpToDate: 8,
};

/**
 * drbd_uuid_compare: hg > 0 this node is SyncSource, < 0 SyncTarget, 0 in sync;
 * |hg| = 2 a full sync; 100 split brain (policies may resolve it); -100 split brain
 * with only a common ancestor in the history; -1000 unrelated data.
 */
export function compareUuids(
  self: SideInfo,
  peer: SideInfo,
  resolveConflicts: boolean,
): { hg: number; rule: number } {
  const s = self.uuids;
  const p = peer.uuids;
  const selfCur = m(s.current);
  const peerCur = m(p.current);
  const jc = uuidJustCreated;
  if (selfCur === jc && peerCur === jc) return { hg: 0, rule: 10 };
  if ((selfCur === jc || selfCur === 0n) && peerCur !== jc) return { hg: -2, rule: 20 };
  if (selfCur !== jc && (peerCur === jc || peerCur === 0n)) return { hg: 2, rule: 30 };
  if (selfCur === peerCur) {
    // One side missed the end of the resync it was SyncSource of.
    if (p.bitmap === 0n && s.bitmap !== 0n) return { hg: 1, rule: 34 };
    if (s.bitmap === 0n && p.bitmap !== 0n) return { hg: -1, rule: 36 };
    const rct = (self.crashedPrimary ? 1 : 0) + (peer.crashedPrimary ? 2 : 0);
    switch (rct) {
      case 0:
        return { hg: 0, rule: 40 };
      case 1:
        return { hg: 1, rule: 40 };
      case 2:
        return { hg: -1, rule: 40 };
      default:
        return { hg: resolveConflicts ? -1 : 1, rule: 40 };
    }
  }
  const eq = (a: bigint, b: bigint): boolean => a !== 0n && m(a) === m(b);
  if (eq(p.bitmap, s.current)) return { hg: -1, rule: 50 };
  // The peer started a resync as SyncSource but its SyncUuid never arrived here.
  if (
    eq(p.history[0], s.current) &&
    m(p.bitmap) === m((p.history[0] + uuidNewBitmapOffset) & 0xffffffffffffffffn)
  )
    return { hg: -1, rule: 51 };
  if (eq(p.history[0], s.current) || eq(p.history[1], s.current)) return { hg: -2, rule: 60 };
  if (eq(s.bitmap, p.current)) return { hg: 1, rule: 70 };
  if (
    eq(s.history[0], p.current) &&
    m(s.bitmap) === m((s.history[0] + uuidNewBitmapOffset) & 0xffffffffffffffffn)
  )
    return { hg: 1, rule: 71 };
  if (eq(s.history[0], p.current) || eq(s.history[1], p.current)) return { hg: 2, rule: 80 };
  if (eq(s.bitmap, p.bitmap)) return { hg: 100, rule: 90 };
  for (const a of s.history) for (const b of p.history) if (eq(a, b)) return { hg: -100, rule: 100 };
  return { hg: -1000, rule: 110 };
}

type Recovery = { hg: number; handler?: SyncHandler };

function recover0p(policy: AfterSb0pri, self: SideInfo, peer: SideInfo, rc: boolean): number {
  const chSelf = self.dirtyBits;
  const chPeer = peer.dirtyBits;
  const leastChanges = (): number => (chSelf < chPeer ? -1 : chSelf > chPeer ? 1 : rc ? -1 : 1);
  const zeroChanges = (): number | undefined => {
    if (chSelf === 0 && chPeer === 0) return rc ? -1 : 1;
    if (chPeer === 0) return 1;
    if (chSelf === 0) return -1;
    return undefined;
  };
  switch (policy) {
    case 'disconnect':
      return -100;
    case 'discard-local':
      return -1;
    case 'discard-remote':
      return 1;
    case 'discard-zero-changes':
      return zeroChanges() ?? -100;
    case 'discard-least-changes':
      return leastChanges();
    case 'discard-younger-primary':
    case 'discard-older-primary': {
      // Bit 0 of the bitmap UUID: that generation was started by a Primary.
      const s = self.uuids.bitmap & 1n;
      const p = peer.uuids.bitmap & 1n;
      const younger = policy === 'discard-younger-primary';
      if (s === 0n && p === 1n) return younger ? -1 : 1;
      if (s === 1n && p === 0n) return younger ? 1 : -1;
      // DRBD falls through to discard-zero-changes, then discard-least-changes.
      return zeroChanges() ?? leastChanges();
    }
  }
}

function recover1p(policies: SplitBrainPolicies, self: SideInfo, peer: SideInfo, rc: boolean): Recovery {
  switch (policies.afterSb1pri) {
    case 'disconnect':
      return { hg: -100 };
    case 'consensus': {
      const hg = recover0p(policies.afterSb0pri, self, peer, rc);
      if (hg === -1 && self.role === 'Secondary') return { hg };
      if (hg === 1 && self.role === 'Primary') return { hg };
      return { hg: -100 };
    }
    case 'violently-as0p':
      return { hg: recover0p(policies.afterSb0pri, self, peer, rc) };
    case 'discard-secondary':
      return { hg: self.role === 'Primary' ? 1 : -1 };
    case 'call-pri-lost-after-sb': {
      const hg = recover0p(policies.afterSb0pri, self, peer, rc);
      if (hg === -1 && self.role === 'Primary') return { hg: -100, handler: 'pri-lost-after-sb' };
      return Math.abs(hg) === 1 ? { hg } : { hg: -100 };
    }
  }
}

function recover2p(policies: SplitBrainPolicies, self: SideInfo, peer: SideInfo, rc: boolean): Recovery {
  switch (policies.afterSb2pri) {
    case 'disconnect':
      return { hg: -100 };
    case 'violently-as0p':
      return { hg: recover0p(policies.afterSb0pri, self, peer, rc) };
    case 'call-pri-lost-after-sb': {
      const hg = recover0p(policies.afterSb0pri, self, peer, rc);
      if (hg === -1) return { hg: -100, handler: 'pri-lost-after-sb' };
      return hg === 1 ? { hg } : { hg: -100 };
    }
  }
}

/** drbd_sync_handshake: what this node does after both reported their UUIDs. */
export function decideSync(
  self: SideInfo,
  peer: SideInfo,
  policies: SplitBrainPolicies,
  resolveConflicts: boolean,
): SyncDecision {
  const cmp = compareUuids(self, peer, resolveConflicts);
  let hg = cmp.hg;
  const rule = cmp.rule;
  const handlers: SyncHandler[] = [];
  const notes: string[] = [`rule ${rule}`];
  if (hg === -1000) {
    return {
      kind: 'refuse',
      reason: 'unrelated-data',
      rule,
      handlers,
      message: 'Unrelated data, aborting! (no generation UUID in common)',
    };
  }
  const mine = diskRank[self.disk];
  const theirs = diskRank[peer.disk];
  const inc = diskRank.Inconsistent;
  if ((mine === inc && theirs > inc) || (theirs === inc && mine > inc)) {
    const full = hg === -100 || Math.abs(hg) === 2;
    hg = mine > inc ? 1 : -1;
    if (full) hg *= 2;
    notes.push(
      `becoming sync ${hg > 0 ? 'source' : 'target'} due to disk states (${self.disk}/${peer.disk})`,
    );
  }
  if (Math.abs(hg) === 100) handlers.push('initial-split-brain');
  let resolvedBy: string | undefined;
  const ambiguous = hg === -100;
  if (hg === 100) {
    const primaries = (self.role === 'Primary' ? 1 : 0) + (peer.role === 'Primary' ? 1 : 0);
    const r: Recovery =
      primaries === 0
        ? { hg: recover0p(policies.afterSb0pri, self, peer, resolveConflicts) }
        : primaries === 1
          ? recover1p(policies, self, peer, resolveConflicts)
          : recover2p(policies, self, peer, resolveConflicts);
    if (r.handler) handlers.push(r.handler);
    const policy = [policies.afterSb0pri, policies.afterSb1pri, policies.afterSb2pri][primaries]!;
    if (Math.abs(r.hg) < 100) {
      resolvedBy = `after-sb-${primaries}pri ${policy}`;
      notes.push(`split brain with ${primaries} primaries, automatically solved by ${policy}`);
    }
    hg = r.hg === 100 ? -100 : r.hg;
    if (r.handler === 'pri-lost-after-sb') {
      return {
        kind: 'refuse',
        reason: 'split-brain',
        rule,
        handlers,
        message: `Split-Brain detected, after-sb-${primaries}pri ${policy}: this Primary's changes are to be discarded; the pri-lost-after-sb handler was called and the connection dropped.`,
      };
    }
  }
  if (hg === -100) {
    if (self.discardMyData && !peer.discardMyData) hg = -1;
    if (!self.discardMyData && peer.discardMyData) hg = 1;
    if (Math.abs(hg) < 100) {
      resolvedBy = 'discard-my-data';
      notes.push('split brain, manually solved (discard-my-data)');
    }
    // DRBD: "Doing a full sync, since UUIDs where ambiguous."
    if (ambiguous && Math.abs(hg) < 100) hg *= 2;
  }
  if (hg === -100) {
    handlers.push('split-brain');
    return {
      kind: 'refuse',
      reason: 'split-brain',
      rule,
      handlers,
      message: `Split-Brain detected but unresolved, dropping connection! (${notes.join('; ')}; changes: ${self.dirtyBits * 4} KiB here, ${peer.dirtyBits * 4} KiB on the peer)`,
    };
  }
  if (hg > 0 && mine <= inc) {
    return {
      kind: 'refuse',
      reason: 'source-inconsistent',
      rule,
      handlers,
      message: `I shall become SyncSource, but I am ${self.disk}! (${notes.join('; ')})`,
    };
  }
  if (hg === 0) {
    return { kind: 'in-sync', rule, message: `no resync needed (${notes.join('; ')})` };
  }
  const direction = hg > 0 ? 'source' : 'target';
  const full = Math.abs(hg) >= 2;
  return {
    kind: 'sync',
    direction,
    full,
    rule,
    message: `${full ? 'full' : 'bitmap'} resync, this node is Sync${direction === 'source' ? 'Source' : 'Target'} (${notes.join('; ')})`,
    ...(resolvedBy === undefined ? {} : { splitBrain: { resolvedBy } }),
  };
}
