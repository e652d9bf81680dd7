// The sync handshake's decision, from one node's point of view: DRBD 8.4's drbd_uuid_compare
// (which data generation is older, rule by rule), drbd_sync_handshake (disk states, split-brain
// policies, discard-my-data) and drbd_asb_recover_0p/1p/2p, all in drbd_receiver.c.
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

/** DRBD handlers (drbdadm's `handlers {}` section) the handshake asks to run. */
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
      /**
       * DRBD handlers to call: 'split-brain' when a split brain stays unresolved; 'pri-lost-after-sb'
       * when the policy says this Primary must lose its data (call-pri-lost-after-sb): then the
       * refusal stands too.
       */
      readonly handlers: readonly SyncHandler[];
    };

/**
 * DRBD's UUID_NEW_BM_OFFSET: a SyncSource's new bitmap UUID (the sync UUID it sends) is its old
 * bitmap UUID plus this, so rules 51/71 recognise a sync UUID that never arrived.
 */
export const uuidNewBitmapOffset = 0x0001_0000_0000_0000n;

const u64Mask = (1n << 64n) - 1n;

/** 16 upper-case hex digits, as drbdadm shows UUIDs. */
export function formatUuid(u: bigint): string {
  return (u & u64Mask).toString(16).toUpperCase().padStart(16, '0');
}

/**
 * The policies as the peer states them. DRBD's convert_after_sb: the peer's discard-local is this
 * node's discard-remote and the other way round; everything else reads the same on both nodes.
 * Two nodes agree on their policies when one's equal this of the other's.
 */
export function policiesAsSeenByPeer(p: SplitBrainPolicies): SplitBrainPolicies {
  const swap = (x: AfterSb0pri): AfterSb0pri =>
    x === 'discard-local' ? 'discard-remote' : x === 'discard-remote' ? 'discard-local' : x;
  return { afterSb0pri: swap(p.afterSb0pri), afterSb1pri: p.afterSb1pri, afterSb2pri: p.afterSb2pri };
}

/** DRBD's enum drbd_disk_state order. */
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

// Bit 0 of a UUID only says whether a Primary made it; DRBD masks it off in every comparison.
const masked = (u: bigint): bigint => u & u64Mask & ~1n;
/** Same generation; 0 is "no UUID" and matches nothing. */
const same = (a: bigint, b: bigint): boolean => masked(a) !== 0n && masked(a) === masked(b);
/** `bitmap` is `base` moved on by a SyncSource's UUID_NEW_BM_OFFSET. */
const bumped = (base: bigint, bitmap: bigint): boolean =>
  masked(base) !== 0n && masked((masked(base) + uuidNewBitmapOffset) & u64Mask) === masked(bitmap);

interface Comparison {
  readonly hg: number;
  readonly rule: number;
  /** What rule `rule` compared, for the operator. */
  readonly detail: string;
}

function describe(u: UuidSet): string {
  return `${formatUuid(u.current)}:${formatUuid(u.bitmap)}:${formatUuid(u.history[0])}:${formatUuid(u.history[1])}`;
}

function compare(self: SideInfo, peer: SideInfo, resolveConflicts: boolean): Comparison {
  const s = self.uuids;
  const p = peer.uuids;
  const selfCur = masked(s.current);
  const peerCur = masked(p.current);
  const jc = uuidJustCreated;
  const f = formatUuid;
  if (selfCur === jc && peerCur === jc) {
    return { hg: 0, rule: 10, detail: `both current UUIDs are ${f(jc)} (just created)` };
  }
  if ((selfCur === jc || selfCur === 0n) && peerCur !== jc) {
    const what = selfCur === 0n ? 'empty' : 'just created';
    return {
      hg: -2,
      rule: 20,
      detail: `this node's current UUID ${f(s.current)} is ${what}, the peer's is ${f(p.current)}`,
    };
  }
  if (selfCur !== jc && (peerCur === jc || peerCur === 0n)) {
    const what = peerCur === 0n ? 'empty' : 'just created';
    return {
      hg: 2,
      rule: 30,
      detail: `the peer's current UUID ${f(p.current)} is ${what}, this node's is ${f(s.current)}`,
    };
  }
  if (selfCur === peerCur) return compareSameCurrent(self, peer, resolveConflicts);

  const cur = f(s.current);
  if (same(s.current, p.bitmap)) {
    return {
      hg: -1,
      rule: 50,
      detail: `this node's current UUID ${cur} is the peer's bitmap UUID: the peer's bitmap holds the changes`,
    };
  }
  // drbd_uuid_compare: "The last P_SYNC_UUID did not get though." The peer started a resync as
  // SyncSource (moved its bitmap UUID to the history and bumped it); its bitmap still holds the changes.
  if (same(s.current, p.history[0]) && bumped(p.history[0], p.bitmap)) {
    return {
      hg: -1,
      rule: 51,
      detail: `this node's current UUID ${cur} is the peer's history[0] and the peer's bitmap UUID ${f(p.bitmap)} is its sync UUID: the last sync UUID did not get through`,
    };
  }
  for (const [i, h] of p.history.entries()) {
    if (same(s.current, h)) {
      return {
        hg: -2,
        rule: 60,
        detail: `this node's current UUID ${cur} is the peer's history[${i}]: the peer's bitmap does not cover all changes`,
      };
    }
  }
  const pcur = f(p.current);
  if (same(s.bitmap, p.current)) {
    return {
      hg: 1,
      rule: 70,
      detail: `the peer's current UUID ${pcur} is this node's bitmap UUID: this node's bitmap holds the changes`,
    };
  }
  if (same(s.history[0], p.current) && bumped(s.history[0], s.bitmap)) {
    return {
      hg: 1,
      rule: 71,
      detail: `the peer's current UUID ${pcur} is this node's history[0] and this node's bitmap UUID ${f(s.bitmap)} is its sync UUID: the last sync UUID did not get through`,
    };
  }
  for (const [i, h] of s.history.entries()) {
    if (same(h, p.current)) {
      return {
        hg: 2,
        rule: 80,
        detail: `the peer's current UUID ${pcur} is this node's history[${i}]: this node's bitmap does not cover all changes`,
      };
    }
  }
  if (same(s.bitmap, p.bitmap)) {
    return {
      hg: 100,
      rule: 90,
      detail: `both bitmap UUIDs are ${f(s.bitmap)}: both nodes changed data since that generation`,
    };
  }
  for (const [i, a] of s.history.entries()) {
    for (const [j, b] of p.history.entries()) {
      if (same(a, b)) {
        return {
          hg: -100,
          rule: 100,
          detail: `only this node's history[${i}] and the peer's history[${j}] are equal (${f(a)}): both changed data, from no common bitmap base`,
        };
      }
    }
  }
  // DRBD reports -1000 with the rule number it reached last, 100.
  return {
    hg: -1000,
    rule: 100,
    detail: `no UUID in common (this node ${describe(s)}, the peer ${describe(p)})`,
  };
}

/** Equal current UUIDs: a resync that ended on one side only, or a crash (rules 34–40). */
function compareSameCurrent(self: SideInfo, peer: SideInfo, resolveConflicts: boolean): Comparison {
  const s = self.uuids;
  const p = peer.uuids;
  const cur = `current UUIDs equal (${formatUuid(s.current)})`;
  if (masked(p.bitmap) === 0n && masked(s.bitmap) !== 0n) {
    // DRBD numbers the two cases apart: 34 when the UUIDs show a resync finished on the target.
    const missedEnd =
      masked(s.bitmap) === masked(p.history[0]) && masked(s.history[0]) === masked(p.history[1]);
    return missedEnd
      ? { hg: 1, rule: 34, detail: `${cur}; this node was SyncSource and missed the resync finished event` }
      : {
          hg: 1,
          rule: 36,
          detail: `${cur}; this node was SyncSource (bitmap UUID ${formatUuid(s.bitmap)}), the peer failed to write the sync UUID`,
        };
  }
  if (masked(s.bitmap) === 0n && masked(p.bitmap) !== 0n) {
    const missedEnd =
      masked(s.history[0]) === masked(p.bitmap) && masked(s.history[1]) === masked(p.history[0]);
    return missedEnd
      ? {
          hg: -1,
          rule: 35,
          detail: `${cur}; this node was SyncTarget and the peer missed the resync finished event`,
        }
      : {
          hg: -1,
          rule: 37,
          detail: `${cur}; this node was SyncTarget (the peer's bitmap UUID is ${formatUuid(p.bitmap)}) and failed to write the sync UUID`,
        };
  }
  // Roles at crash time: bit 0 this node crashed as Primary, bit 1 the peer did.
  const rct = (self.crashedPrimary ? 1 : 0) + (peer.crashedPrimary ? 2 : 0);
  switch (rct) {
    case 0:
      return { hg: 0, rule: 40, detail: `${cur}, neither crashed as Primary` };
    case 1:
      return {
        hg: 1,
        rule: 40,
        detail: `${cur}, this node crashed as Primary: its activity log needs resync`,
      };
    case 2:
      return {
        hg: -1,
        rule: 40,
        detail: `${cur}, the peer crashed as Primary: its activity log needs resync`,
      };
    default:
      return {
        hg: resolveConflicts ? -1 : 1,
        rule: 40,
        detail: `${cur}, both crashed as Primary; resolve-conflicts (${resolveConflicts ? 'this node' : 'the peer'}) makes this node Sync${resolveConflicts ? 'Target' : 'Source'}`,
      };
  }
}

/**
 * drbd_uuid_compare: hg > 0 this node is SyncSource, < 0 SyncTarget, 0 in sync; |hg| = 2 a full
 * sync; 100 split brain (policies may resolve it); -100 split brain with only a common ancestor
 * in the histories; -1000 unrelated data. `rule` is DRBD's rule number, as in its log line
 * "uuid_compare()=hg by rule N".
 */
export function compareUuids(
  self: SideInfo,
  peer: SideInfo,
  resolveConflicts: boolean,
): { hg: number; rule: number } {
  const c = compare(self, peer, resolveConflicts);
  return { hg: c.hg, rule: c.rule };
}

/** What a recovery policy decided: hg ±1, or -100 for "not resolved". */
interface Recovery {
  readonly hg: number;
  readonly why: string;
  /** call-pri-lost-after-sb: this Primary is the one to lose its data. */
  readonly priLost?: boolean;
}

/** drbd_asb_recover_0p: after-sb-0pri, also used by the 1pri and 2pri policies that defer to it. */
function recover0p(policy: AfterSb0pri, self: SideInfo, peer: SideInfo, resolveConflicts: boolean): Recovery {
  const chSelf = self.dirtyBits;
  const chPeer = peer.dirtyBits;
  const changes = `changes: this node ${chSelf} bits, the peer ${chPeer} bits`;
  const tie = resolveConflicts ? -1 : 1;
  const tieWhy = `resolve-conflicts (${resolveConflicts ? 'this node' : 'the peer'}) discards ${resolveConflicts ? "this node's" : "the peer's"} data`;
  const zeroChanges = (): Recovery | undefined => {
    if (chSelf === 0 && chPeer === 0) return { hg: tie, why: `neither node has changes; ${tieWhy}` };
    if (chPeer === 0) return { hg: 1, why: `the peer has no changes (this node ${chSelf} bits)` };
    if (chSelf === 0) return { hg: -1, why: `this node has no changes (the peer ${chPeer} bits)` };
    return undefined;
  };
  const leastChanges = (): Recovery => {
    if (chSelf < chPeer) return { hg: -1, why: `this node has fewer changes (${changes})` };
    if (chSelf > chPeer) return { hg: 1, why: `the peer has fewer changes (${changes})` };
    return { hg: tie, why: `equal changes (${chSelf} bits each); ${tieWhy}` };
  };
  switch (policy) {
    case 'disconnect':
      return { hg: -100, why: changes };
    case 'discard-local':
      return { hg: -1, why: "this node's data is discarded" };
    case 'discard-remote':
      return { hg: 1, why: "the peer's data is discarded" };
    case 'discard-zero-changes':
      return zeroChanges() ?? { hg: -100, why: `both nodes have changes (${changes})` };
    case 'discard-least-changes':
      return leastChanges();
    case 'discard-younger-primary':
    case 'discard-older-primary': {
      // Bit 0 of the bitmap UUID (the common generation both started from): that node was Primary
      // then, so it is the older Primary; the other one was promoted during the split brain.
      const s = self.uuids.bitmap & 1n;
      const p = peer.uuids.bitmap & 1n;
      const younger = policy === 'discard-younger-primary';
      const selfYounger =
        'only the peer was Primary at the common generation, this node became Primary later';
      const peerYounger =
        'only this node was Primary at the common generation, the peer became Primary later';
      if (s === 0n && p === 1n) return { hg: younger ? -1 : 1, why: selfYounger };
      if (s === 1n && p === 0n) return { hg: younger ? 1 : -1, why: peerYounger };
      // drbd_asb_recover_0p falls through: "Using discard-least-changes instead", via discard-zero-changes.
      const r = zeroChanges() ?? leastChanges();
      return {
        hg: r.hg,
        why: `bitmap UUIDs do not tell the Primary apart, fell through to discard-zero-changes/discard-least-changes: ${r.why}`,
      };
    }
  }
}

function recover1p(policies: SplitBrainPolicies, self: SideInfo, peer: SideInfo, rc: boolean): Recovery {
  const zero = (): Recovery => recover0p(policies.afterSb0pri, self, peer, rc);
  const via = (r: Recovery): string => `after-sb-0pri ${policies.afterSb0pri}: ${r.why}`;
  switch (policies.afterSb1pri) {
    case 'disconnect':
      return { hg: -100, why: `changes: this node ${self.dirtyBits} bits, the peer ${peer.dirtyBits} bits` };
    case 'consensus': {
      // Accept after-sb-0pri's verdict only when it discards the Secondary's data.
      const r = zero();
      if (r.hg === -1 && self.role === 'Secondary') return { hg: -1, why: via(r) };
      if (r.hg === 1 && self.role === 'Primary') return { hg: 1, why: via(r) };
      return { hg: -100, why: `no consensus, ${via(r)}` };
    }
    case 'violently-as0p': {
      const r = zero();
      return { hg: r.hg, why: via(r) };
    }
    case 'discard-secondary':
      return self.role === 'Primary'
        ? { hg: 1, why: 'the peer is Secondary, its data is discarded' }
        : { hg: -1, why: 'this node is Secondary, its data is discarded' };
    case 'call-pri-lost-after-sb': {
      const r = zero();
      // DRBD demotes this Primary (or calls pri-lost-after-sb when it can't); tandem refuses.
      if (r.hg === -1 && self.role === 'Primary') return { hg: -100, priLost: true, why: via(r) };
      return Math.abs(r.hg) === 1 ? { hg: r.hg, why: via(r) } : { hg: -100, why: via(r) };
    }
  }
}

function recover2p(policies: SplitBrainPolicies, self: SideInfo, peer: SideInfo, rc: boolean): Recovery {
  const zero = (): Recovery => recover0p(policies.afterSb0pri, self, peer, rc);
  const via = (r: Recovery): string => `after-sb-0pri ${policies.afterSb0pri}: ${r.why}`;
  switch (policies.afterSb2pri) {
    case 'disconnect':
      return { hg: -100, why: `changes: this node ${self.dirtyBits} bits, the peer ${peer.dirtyBits} bits` };
    case 'violently-as0p': {
      const r = zero();
      return { hg: r.hg, why: via(r) };
    }
    case 'call-pri-lost-after-sb': {
      const r = zero();
      if (r.hg === -1) return { hg: -100, priLost: true, why: via(r) };
      // hg 1: the peer is the Primary to lose its data, its own handshake refuses.
      return r.hg === 1 ? { hg: 1, why: via(r) } : { hg: -100, why: via(r) };
    }
  }
}

/** The policy for `pcount` Primaries, and what it decided. */
function recover(
  pcount: number,
  policies: SplitBrainPolicies,
  self: SideInfo,
  peer: SideInfo,
  rc: boolean,
): { option: string; policy: string; r: Recovery } {
  if (pcount === 0) {
    return {
      option: 'after-sb-0pri',
      policy: policies.afterSb0pri,
      r: recover0p(policies.afterSb0pri, self, peer, rc),
    };
  }
  if (pcount === 1)
    return { option: 'after-sb-1pri', policy: policies.afterSb1pri, r: recover1p(policies, self, peer, rc) };
  return { option: 'after-sb-2pri', policy: policies.afterSb2pri, r: recover2p(policies, self, peer, rc) };
}

/** drbd_sync_handshake: what this node does once both nodes have reported UUIDs and states. */
export function decideSync(
  self: SideInfo,
  peer: SideInfo,
  policies: SplitBrainPolicies,
  resolveConflicts: boolean,
): SyncDecision {
  const c = compare(self, peer, resolveConflicts);
  const rule = c.rule;
  const notes: string[] = [`uuid_compare()=${c.hg} by rule ${rule}: ${c.detail}`];
  const said = (): string => notes.join('; ');
  const changes = `changes: this node ${self.dirtyBits} bits, the peer ${peer.dirtyBits} bits`;
  let hg = c.hg;
  if (hg === -1000) {
    return {
      kind: 'refuse',
      reason: 'unrelated-data',
      rule,
      handlers: [],
      message: `Unrelated data, aborting! (${said()})`,
    };
  }

  const mine = diskRank[self.disk];
  const theirs = diskRank[peer.disk];
  const inconsistent = diskRank.Inconsistent;
  if ((mine === inconsistent && theirs > inconsistent) || (theirs === inconsistent && mine > inconsistent)) {
    const full = hg === -100 || Math.abs(hg) === 2;
    hg = (mine > inconsistent ? 1 : -1) * (full ? 2 : 1);
    notes.push(
      `Becoming sync ${hg > 0 ? 'source' : 'target'} due to disk states (this node ${self.disk}, the peer ${peer.disk})`,
    );
  }

  const handlers: SyncHandler[] = [];
  if (Math.abs(hg) === 100) handlers.push('initial-split-brain');
  // Rule 100: no common bitmap base, so neither bitmap covers all changes.
  const ambiguous = hg === -100;
  let resolvedBy: string | undefined;

  // DRBD also lets always-asbp apply the policies to -100; tandem has no such option.
  if (hg === 100) {
    const pcount = (self.role === 'Primary' ? 1 : 0) + (peer.role === 'Primary' ? 1 : 0);
    const { option, policy, r } = recover(pcount, policies, self, peer, resolveConflicts);
    if (r.priLost === true) {
      handlers.push('pri-lost-after-sb', 'split-brain');
      return {
        kind: 'refuse',
        reason: 'split-brain',
        rule,
        handlers,
        message: `Split-Brain detected, ${pcount} primaries, ${option} ${policy}: this Primary's data is to be discarded (${r.why}); calling pri-lost-after-sb and dropping the connection (${said()}; ${changes})`,
      };
    }
    hg = r.hg;
    if (Math.abs(hg) < 100) {
      resolvedBy = policy;
      notes.push(
        `Split-Brain detected, ${pcount} primaries, automatically solved by ${option} ${policy} (${r.why}). Sync from ${hg < 0 ? 'peer' : 'this'} node`,
      );
    } else {
      notes.push(
        `Split-Brain detected, ${pcount} primaries, ${option} ${policy} did not solve it (${r.why})`,
      );
    }
  }

  if (hg === -100) {
    if (self.discardMyData && !peer.discardMyData) hg = -1;
    if (!self.discardMyData && peer.discardMyData) hg = 1;
    if (Math.abs(hg) < 100) {
      resolvedBy = 'discard-my-data';
      notes.push(
        `Split-Brain detected, manually solved by discard-my-data on ${hg < 0 ? 'this' : 'the peer'} node. Sync from ${hg < 0 ? 'peer' : 'this'} node`,
      );
      // DRBD does this only for policies with always-asbp; a bitmap-based resync here would
      // miss the blocks changed between the common ancestor and either bitmap's base.
      if (ambiguous) {
        hg *= 2;
        notes.push('Doing a full sync, since UUIDs were ambiguous');
      }
    }
  }

  if (hg === -100) {
    handlers.push('split-brain');
    return {
      kind: 'refuse',
      reason: 'split-brain',
      rule,
      handlers,
      message: `Split-Brain detected but unresolved, dropping connection! (${said()}; ${changes})`,
    };
  }
  if (hg > 0 && mine <= inconsistent) {
    return {
      kind: 'refuse',
      reason: 'source-inconsistent',
      rule,
      handlers,
      message: `I shall become SyncSource, but I am inconsistent! (disk ${self.disk}; ${said()})`,
    };
  }
  if (hg === 0) return { kind: 'in-sync', rule, message: `No resync needed (${said()})` };

  const direction = hg > 0 ? 'source' : 'target';
  const full = Math.abs(hg) >= 2;
  const message = `Becoming Sync${hg > 0 ? 'Source' : 'Target'}, ${full ? 'full' : 'bitmap-based'} resync (${said()})`;
  return resolvedBy === undefined
    ? { kind: 'sync', direction, full, rule, message }
    : { kind: 'sync', direction, full, rule, message, splitBrain: { resolvedBy } };
}
