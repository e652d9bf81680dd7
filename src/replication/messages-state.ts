// Frames of the sync handshake and of state changes: ReportParams (net options both
// sides must agree on), ReportUuids (generation UUIDs for the sync decision),
// ReportSizes, ReportState, and the two-phase StateChangeRequest/Reply. Numbers on
// the wire follow DRBD's enums where DRBD has one, so a dump reads familiar.
import type { ConnState, DiskState, Role } from '../device/state.js';
import { algNameBytesMax } from './messages-session.js';
import { type BodyCodec, maskOf, strBytes, wireCodes } from './wire.js';

// ---------------------------------------------------------------- ReportParams
// The `net` options that must be equal on both sides (DRBD: P_PROTOCOL + P_SYNC_PARAM89).
//   0  u8   protocol            (protocols: A=1, B=2, C=3 as DRBD_PROT_*)
//   1  u8   afterSb0pri         (afterSbPolicies, DRBD's enum drbd_after_sb_p)
//   2  u8   afterSb1pri
//   3  u8   afterSb2pri
//   4  u8   allowTwoPrimaries   (0 or 1)
//   5  u8   connFlags           (connFlagBits)
//   6  str  integrityAlg        (printable ASCII, 0..63 bytes; '' = none)
//      str  csumsAlg
//      str  verifyAlg

export const protocols = wireCodes({ A: 1, B: 2, C: 3 });
export type Protocol = (typeof protocols.all)[number];

/** Every after-sb policy with DRBD's number; which ones each field allows is below. */
const afterSbNumbers = {
  disconnect: 0,
  'discard-younger-primary': 1,
  'discard-older-primary': 2,
  'discard-zero-changes': 3,
  'discard-least-changes': 4,
  'discard-local': 5,
  'discard-remote': 6,
  consensus: 7,
  'discard-secondary': 8,
  'call-pri-lost-after-sb': 9,
  'violently-as0p': 10,
} as const;
type AfterSbName = keyof typeof afterSbNumbers;

function afterSbSubset<N extends AfterSbName>(names: readonly N[]) {
  const numbers = {} as Record<N, number>;
  for (const n of names) numbers[n] = afterSbNumbers[n];
  return wireCodes(numbers);
}

/** `after-sb-0pri`: no node is Primary when split brain is detected. */
export const afterSb0priPolicies = afterSbSubset([
  'disconnect',
  'discard-younger-primary',
  'discard-older-primary',
  'discard-zero-changes',
  'discard-least-changes',
  'discard-local',
  'discard-remote',
]);
/** `after-sb-1pri`: one node is Primary. */
export const afterSb1priPolicies = afterSbSubset([
  'disconnect',
  'consensus',
  'discard-secondary',
  'call-pri-lost-after-sb',
  'violently-as0p',
]);
/** `after-sb-2pri`: both nodes are Primary. */
export const afterSb2priPolicies = afterSbSubset(['disconnect', 'call-pri-lost-after-sb', 'violently-as0p']);
export type AfterSb0pri = (typeof afterSb0priPolicies.all)[number];
export type AfterSb1pri = (typeof afterSb1priPolicies.all)[number];
export type AfterSb2pri = (typeof afterSb2priPolicies.all)[number];

export const connFlagBits = {
  /** `connect --discard-my-data`: the sender volunteers as split-brain victim (CF_DISCARD_MY_DATA). */
  discardMyData: 1 << 0,
  /** `connect --dry-run`: report what the handshake would do, change nothing (CF_DRY_RUN). */
  dryRun: 1 << 1,
} as const;
const connFlagsKnown = maskOf(connFlagBits);

export interface ReportParams {
  /** Replication protocol: when a write counts as complete (A: sent, B: received, C: written on the peer). */
  readonly protocol: Protocol;
  /** Split-brain recovery policies; both sides must have the same ones. */
  readonly afterSb0pri: AfterSb0pri;
  readonly afterSb1pri: AfterSb1pri;
  readonly afterSb2pri: AfterSb2pri;
  /** `allow-two-primaries yes`. */
  readonly allowTwoPrimaries: boolean;
  /** connFlagBits for this connection attempt. */
  readonly connFlags: number;
  /** `data-integrity-alg`: digest over every Data payload, '' for none. */
  readonly integrityAlg: string;
  /** `csums-alg`: resync sends a digest first and skips blocks that match, '' for none. */
  readonly csumsAlg: string;
  /** `verify-alg`: digest online verify compares, '' when verify is not configured. */
  readonly verifyAlg: string;
}

export const reportParamsCodec: BodyCodec<ReportParams> = {
  payloadBytesMin: 6 + 3,
  payloadBytesMax: 6 + 3 * (1 + algNameBytesMax),
  size: (p) => 6 + strBytes(p.integrityAlg) + strBytes(p.csumsAlg) + strBytes(p.verifyAlg),
  write(p, w) {
    w.u8(protocols.numbers[p.protocol]);
    w.u8(afterSb0priPolicies.numbers[p.afterSb0pri]);
    w.u8(afterSb1priPolicies.numbers[p.afterSb1pri]);
    w.u8(afterSb2priPolicies.numbers[p.afterSb2pri]);
    w.bool(p.allowTwoPrimaries);
    w.u8(p.connFlags);
    w.str(p.integrityAlg);
    w.str(p.csumsAlg);
    w.str(p.verifyAlg);
  },
  read(r) {
    const p: ReportParams = {
      protocol: r.code('protocol', protocols.names),
      afterSb0pri: r.code('afterSb0pri', afterSb0priPolicies.names),
      afterSb1pri: r.code('afterSb1pri', afterSb1priPolicies.names),
      afterSb2pri: r.code('afterSb2pri', afterSb2priPolicies.names),
      allowTwoPrimaries: r.bool('allowTwoPrimaries'),
      connFlags: r.flags8('connFlags', connFlagsKnown),
      integrityAlg: r.algName('integrityAlg', algNameBytesMax),
      csumsAlg: r.algName('csumsAlg', algNameBytesMax),
      verifyAlg: r.algName('verifyAlg', algNameBytesMax),
    };
    r.finish();
    return p;
  },
};

// ---------------------------------------------------------------- ReportUuids
// The generation UUIDs the sync handshake compares (DRBD: P_UUIDS).
//   0  u64  current
//   8  u64  bitmap
//  16  u64  history0
//  24  u64  history1
//  32  u64  dirtyBits
//  40  u32  flags (uuidFlagBits)

/** Bit positions as DRBD's UUID_FLAG_* (8.4-compatible subset). */
export const uuidFlagBits = {
  /** The sender was told to discard its data in a split brain (UUID_FLAG_DISCARD_MY_DATA). */
  discardMyData: 1 << 0,
  /** The sender crashed while Primary; its activity log extents must be resynced (UUID_FLAG_CRASHED_PRIMARY). */
  crashedPrimary: 1 << 1,
  /** The sender's data is Inconsistent (UUID_FLAG_INCONSISTENT). */
  inconsistent: 1 << 2,
  /** `new-current-uuid --clear-bitmap`: both sides start in sync without a full sync (UUID_FLAG_SKIP_INITIAL_SYNC). */
  skipInitialSync: 1 << 3,
} as const;
const uuidFlagsKnown = maskOf(uuidFlagBits);

export interface ReportUuids {
  /** The current data generation (UI_CURRENT). */
  readonly current: bigint;
  /** The generation when the bitmap started recording, 0 when it is empty (UI_BITMAP). */
  readonly bitmap: bigint;
  /** The two generations before that, newest first (UI_HISTORY_START/END). */
  readonly history: readonly [bigint, bigint];
  /** Bits set in the sender's bitmap: the size of its changes, for `discard-least-changes`. */
  readonly dirtyBits: number;
  /** uuidFlagBits. */
  readonly flags: number;
}

export const reportUuidsCodec: BodyCodec<ReportUuids> = {
  payloadBytesMin: 44,
  payloadBytesMax: 44,
  size: () => 44,
  write(u, w) {
    w.u64n(u.current);
    w.u64n(u.bitmap);
    w.u64n(u.history[0]);
    w.u64n(u.history[1]);
    w.u64(u.dirtyBits);
    w.u32(u.flags);
  },
  read(r) {
    const u: ReportUuids = {
      current: r.u64n('current'),
      bitmap: r.u64n('bitmap'),
      history: [r.u64n('history0'), r.u64n('history1')],
      dirtyBits: r.u64('dirtyBits'),
      flags: r.flags32('flags', uuidFlagsKnown),
    };
    r.finish();
    return u;
  },
};

// ---------------------------------------------------------------- SyncUuid
// Before a resync starts, the SyncSource gives the SyncTarget a fresh bitmap UUID to
// adopt (DRBD: P_SYNC_UUID; the target waits for it in WFSyncUUID).
//   0  u64  uuid

export interface SyncUuid {
  /** The UUID the SyncTarget takes as its current UUID for the resync. */
  readonly uuid: bigint;
}

export const syncUuidCodec: BodyCodec<SyncUuid> = {
  payloadBytesMin: 8,
  payloadBytesMax: 8,
  size: () => 8,
  write: (m, w) => w.u64n(m.uuid),
  read(r) {
    const m = { uuid: r.u64n('uuid') };
    r.finish();
    return m;
  },
};

// ---------------------------------------------------------------- ReportSizes
// What each side can hold, so both agree on the device size (DRBD: P_SIZES).
//   0  u64  backingBytes
//   8  u64  usableBytes
//  16  u64  requestedBytes
//  24  u64  currentBytes
//  32  u32  ioBytesMax
//  36  u32  flags (sizeFlagBits)

export const sizeFlagBits = {
  /** `resize --assume-peer-has-space`/`--force`: shrink or grow even if data would be lost (DDSF_FORCED). */
  forced: 1 << 0,
  /** `resize --assume-clean`: the grown area needs no resync (DDSF_NO_RESYNC). */
  noResync: 1 << 1,
} as const;
const sizeFlagsKnown = maskOf(sizeFlagBits);

export interface ReportSizes {
  /** Size of the sender's backing disk; 0 when it is diskless. */
  readonly backingBytes: number;
  /** What is left of it for data after internal metadata: the most the sender can replicate. */
  readonly usableBytes: number;
  /** The `disk { size }` the sender is configured with, 0 when none. */
  readonly requestedBytes: number;
  /** The size the sender's device has now, 0 before the first agreement. */
  readonly currentBytes: number;
  /** Largest single write or resync request the sender accepts. */
  readonly ioBytesMax: number;
  /** sizeFlagBits. */
  readonly flags: number;
}

export const reportSizesCodec: BodyCodec<ReportSizes> = {
  payloadBytesMin: 40,
  payloadBytesMax: 40,
  size: () => 40,
  write(s, w) {
    w.u64(s.backingBytes);
    w.u64(s.usableBytes);
    w.u64(s.requestedBytes);
    w.u64(s.currentBytes);
    w.u32(s.ioBytesMax);
    w.u32(s.flags);
  },
  read(r) {
    const backingBytes = r.u64('backingBytes');
    const at = r.position;
    const usableBytes = r.u64('usableBytes');
    if (usableBytes > backingBytes) {
      throw r.fail(
        'REPL_BAD_FIELD',
        'usableBytes',
        `${usableBytes} exceeds the backing size ${backingBytes}`,
        at,
      );
    }
    const requestedBytes = r.u64('requestedBytes');
    const currentBytes = r.u64('currentBytes');
    const ioAt = r.position;
    const ioBytesMax = r.u32('ioBytesMax');
    if (ioBytesMax === 0) throw r.fail('REPL_BAD_FIELD', 'ioBytesMax', 'is 0', ioAt);
    const flags = r.flags32('flags', sizeFlagsKnown);
    r.finish();
    return { backingBytes, usableBytes, requestedBytes, currentBytes, ioBytesMax, flags };
  },
};

// ---------------------------------------------------------------- ReportState
// The sender's state of one volume (DRBD: P_STATE), with the names of src/device/state.ts.
//   0  u8  role       (roles: DRBD's enum drbd_role)
//   1  u8  peerRole   (the sender's view of the receiver)
//   2  u8  disk       (diskStates: DRBD's enum drbd_disk_state)
//   3  u8  peerDisk
//   4  u8  conn       (connStates: DRBD 8.4's enum drbd_conns)
//   5  u8  flags      (stateFlagBits)

export const roles = wireCodes({ Unknown: 0, Primary: 1, Secondary: 2 } satisfies Record<Role, number>);
export const diskStates = wireCodes({
  Diskless: 0,
  Attaching: 1,
  Failed: 2,
  Negotiating: 3,
  Inconsistent: 4,
  Outdated: 5,
  DUnknown: 6,
  Consistent: 7,
  UpToDate: 8,
} satisfies Record<DiskState, number>);
export const connStates = wireCodes({
  StandAlone: 0,
  Disconnecting: 1,
  Unconnected: 2,
  Timeout: 3,
  BrokenPipe: 4,
  NetworkFailure: 5,
  ProtocolError: 6,
  TearDown: 7,
  WFConnection: 8,
  WFReportParams: 9,
  Connected: 10,
  StartingSyncS: 11,
  StartingSyncT: 12,
  WFBitMapS: 13,
  WFBitMapT: 14,
  WFSyncUUID: 15,
  SyncSource: 16,
  SyncTarget: 17,
  VerifyS: 18,
  VerifyT: 19,
  PausedSyncS: 20,
  PausedSyncT: 21,
  Ahead: 22,
  Behind: 23,
} satisfies Record<ConnState, number>);

export const stateFlagBits = {
  /** I/O on the sender's device is suspended (DRBD's susp). */
  suspended: 1 << 0,
  /** Resync paused by `pause-sync` on this node (user_isp). */
  userPaused: 1 << 1,
  /** Resync paused by the peer (peer_isp). */
  peerPaused: 1 << 2,
  /** Resync paused until a `resync-after` dependency finishes (aftr_isp). */
  dependencyPaused: 1 << 3,
} as const;
const stateFlagsKnown = maskOf(stateFlagBits);

export interface ReportState {
  /** The sender's role. */
  readonly role: Role;
  /** The role the sender believes the receiver has. */
  readonly peerRole: Role;
  /** The sender's disk state. */
  readonly disk: DiskState;
  /** The disk state the sender believes the receiver has. */
  readonly peerDisk: DiskState;
  /** The sender's connection state. */
  readonly conn: ConnState;
  /** stateFlagBits. */
  readonly flags: number;
}

export const reportStateCodec: BodyCodec<ReportState> = {
  payloadBytesMin: 6,
  payloadBytesMax: 6,
  size: () => 6,
  write(s, w) {
    w.u8(roles.numbers[s.role]);
    w.u8(roles.numbers[s.peerRole]);
    w.u8(diskStates.numbers[s.disk]);
    w.u8(diskStates.numbers[s.peerDisk]);
    w.u8(connStates.numbers[s.conn]);
    w.u8(s.flags);
  },
  read(r) {
    const s: ReportState = {
      role: r.code('role', roles.names),
      peerRole: r.code('peerRole', roles.names),
      disk: r.code('disk', diskStates.names),
      peerDisk: r.code('peerDisk', diskStates.names),
      conn: r.code('conn', connStates.names),
      flags: r.flags8('flags', stateFlagsKnown),
    };
    r.finish();
    return s;
  },
};

// ---------------------------------------------------------------- StateChangeRequest
// A change that needs the peer's consent, in two phases: `prepare` asks whether the peer
// can accept it (two Primaries? an UpToDate disk left?), `commit` or `abort` ends it.
// Each phase is answered by a StateChangeReply with the same txId.
//   0  u32  txId
//   4  u8   phase   (stateChangePhases)
//   5  u8   change  (stateChanges)
//   6  u8   flags   (stateChangeFlagBits)

export const stateChangePhases = wireCodes({ prepare: 1, commit: 2, abort: 3 });
export type StateChangePhase = (typeof stateChangePhases.all)[number];

export const stateChanges = wireCodes({
  /** The sender wants to become Primary. */
  promote: 0,
  /** The sender becomes Secondary. */
  demote: 1,
  /** The receiver is asked to mark its disk Outdated (fencing, `outdate-peer`). */
  'outdate-peer': 2,
  /** The sender is going to disconnect cleanly (both sides leave Connected together). */
  disconnect: 3,
  /** `invalidate-remote`: the sender becomes SyncSource of a full sync. */
  'start-sync-source': 4,
  /** `invalidate`: the sender becomes SyncTarget of a full sync. */
  'start-sync-target': 5,
  /** `pause-sync` on the sender. */
  'pause-sync': 6,
  /** `resume-sync` on the sender. */
  'resume-sync': 7,
});
export type StateChange = (typeof stateChanges.all)[number];

export const stateChangeFlagBits = {
  /** `--force` was given (e.g. `primary --force`). */
  force: 1 << 0,
} as const;
const stateChangeFlagsKnown = maskOf(stateChangeFlagBits);

export interface StateChangeRequest {
  /** Chosen by the sender, unique among its open requests; the reply carries it back. */
  readonly txId: number;
  /** Which step of the two-phase change this is. */
  readonly phase: StateChangePhase;
  /** What is to change. */
  readonly change: StateChange;
  /** stateChangeFlagBits. */
  readonly flags: number;
}

export const stateChangeRequestCodec: BodyCodec<StateChangeRequest> = {
  payloadBytesMin: 7,
  payloadBytesMax: 7,
  size: () => 7,
  write(m, w) {
    w.u32(m.txId);
    w.u8(stateChangePhases.numbers[m.phase]);
    w.u8(stateChanges.numbers[m.change]);
    w.u8(m.flags);
  },
  read(r) {
    const m: StateChangeRequest = {
      txId: r.u32('txId'),
      phase: r.code('phase', stateChangePhases.names),
      change: r.code('change', stateChanges.names),
      flags: r.flags8('flags', stateChangeFlagsKnown),
    };
    r.finish();
    return m;
  },
};

// ---------------------------------------------------------------- StateChangeReply
//   0  u32  txId
//   4  i32  result

/** DRBD's SS_SUCCESS; refusals are DRBD's negative SS_* codes (refusals in src/device/state.ts). */
export const stateChangeSuccess = 1;

export interface StateChangeReply {
  /** The request this answers. */
  readonly txId: number;
  /** `stateChangeSuccess`, or a refusal's negative code (e.g. -1: "Multiple primaries not allowed by config"). */
  readonly result: number;
}

export const stateChangeReplyCodec: BodyCodec<StateChangeReply> = {
  payloadBytesMin: 8,
  payloadBytesMax: 8,
  size: () => 8,
  write(m, w) {
    w.u32(m.txId);
    w.i32(m.result);
  },
  read(r) {
    const m: StateChangeReply = { txId: r.u32('txId'), result: r.i32('result') };
    r.finish();
    return m;
  },
};
