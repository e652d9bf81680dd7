// DRBD's state vocabulary (8.4 names) and the rules for role and disk changes
// on one node, as explicit tables. A refusal carries DRBD's own code and text
// so that operators and scripts see what they know from drbdadm.

export const roles = ['Primary', 'Secondary', 'Unknown'] as const;
export type Role = (typeof roles)[number];

export const diskStates = [
  'Diskless',
  'Attaching',
  'Failed',
  'Negotiating',
  'Inconsistent',
  'Outdated',
  'DUnknown',
  'Consistent',
  'UpToDate',
] as const;
export type DiskState = (typeof diskStates)[number];

export const connStates = [
  'StandAlone',
  'Disconnecting',
  'Unconnected',
  'Timeout',
  'BrokenPipe',
  'NetworkFailure',
  'ProtocolError',
  'TearDown',
  'WFConnection',
  'WFReportParams',
  'Connected',
  'StartingSyncS',
  'StartingSyncT',
  'WFBitMapS',
  'WFBitMapT',
  'WFSyncUUID',
  'SyncSource',
  'SyncTarget',
  'PausedSyncS',
  'PausedSyncT',
  'VerifyS',
  'VerifyT',
  'Ahead',
  'Behind',
] as const;
export type ConnState = (typeof connStates)[number];

/** The states from `first` to `last` in DRBD's order (8.4 compares cs: by that order). */
export function connStatesFrom(first: ConnState, last: ConnState = 'Behind'): ReadonlySet<ConnState> {
  return new Set(connStates.slice(connStates.indexOf(first), connStates.indexOf(last) + 1));
}

/** A state change DRBD would refuse: its SS_* code and message. */
export interface Refusal {
  readonly code: number;
  readonly text: string;
}

/** DRBD's state-change return codes that tandem uses (drbd_strings.c). */
export const refusals = {
  noUpToDateDisk: { code: -2, text: 'Need access to UpToDate data' },
  deviceInUse: { code: -12, text: 'Device is held open by someone' },
  noLocalDisk: { code: -4, text: 'Need a configured local disk' },
  peerNotOutdated: { code: -7, text: 'Refusing to be Primary while peer is not outdated' },
  twoPrimaries: { code: -1, text: 'Multiple primaries not allowed by config' },
  isPrimary: { code: -15, text: 'Refusing to detach the only UpToDate disk of a Primary' },
  outdateConnected: { code: -5, text: 'Refusing to be Outdated while Connected' },
} as const satisfies Record<string, Refusal>;

export function formatRefusal(r: Refusal): string {
  return `State change failed: (${r.code}) ${r.text}`;
}

/** What `primary [--force]` does from each local disk state, with no peer connected. */
type PrimaryRule =
  | { readonly allow: 'yes' }
  | { readonly allow: 'force'; readonly refusal: Refusal }
  | { readonly allow: 'no'; readonly refusal: Refusal };

const primaryRules: Readonly<Record<DiskState, PrimaryRule>> = {
  UpToDate: { allow: 'yes' },
  // DRBD would ask the fence-peer handler first; without a peer only --force decides.
  Consistent: { allow: 'force', refusal: refusals.peerNotOutdated },
  Outdated: { allow: 'force', refusal: refusals.noUpToDateDisk },
  // The seed's `primary --force`: Inconsistent data becomes the reference copy.
  Inconsistent: { allow: 'force', refusal: refusals.noUpToDateDisk },
  Diskless: { allow: 'no', refusal: refusals.noUpToDateDisk },
  Attaching: { allow: 'no', refusal: refusals.noUpToDateDisk },
  Failed: { allow: 'no', refusal: refusals.noUpToDateDisk },
  Negotiating: { allow: 'no', refusal: refusals.noUpToDateDisk },
  DUnknown: { allow: 'no', refusal: refusals.noUpToDateDisk },
};

export type PrimaryDecision =
  | { readonly ok: true; readonly forced: boolean }
  | { readonly ok: false; readonly refusal: Refusal };

export function decidePrimary(disk: DiskState, force: boolean): PrimaryDecision {
  const rule = primaryRules[disk];
  switch (rule.allow) {
    case 'yes':
      return { ok: true, forced: false };
    case 'force':
      return force ? { ok: true, forced: true } : { ok: false, refusal: rule.refusal };
    case 'no':
      return { ok: false, refusal: rule.refusal };
    default:
      return assertNever(rule);
  }
}

/**
 * The disk state on attach, from the metadata flags (DRBD 8.4 drbd_adm_attach):
 * consistent and was-up-to-date gives Consistent, promoted to UpToDate when the
 * peer is known to be outdated or fencing is `dont-care` (DRBD's default).
 */
export function diskStateOnAttach(
  flags: { consistent: boolean; wasUpToDate: boolean; peerOutdated: boolean },
  fencing: string,
): DiskState {
  if (!flags.consistent) return 'Inconsistent';
  if (!flags.wasUpToDate) return 'Outdated';
  if (flags.peerOutdated || fencing === 'dont-care') return 'UpToDate';
  return 'Consistent';
}

export function assertNever(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}
