// The status model tandemd reports over the control socket and tandemadm
// renders: plain data, JSON-safe, one entry per resource and volume.
import type { ConnState, DiskState, Role } from '../device/state.js';
import type { KernelDeviceKind } from '../nbd/kernel.js';

export interface VolumeStatus {
  readonly volume: number;
  readonly minor: number;
  readonly device: string;
  readonly disk: DiskState;
  readonly peerDisk: DiskState;
  /** Usable size in bytes (0 while diskless). */
  readonly sizeBytes: number;
  readonly outOfSyncBytes: number;
  readonly nbdExport: string;
  readonly kernelDevice: {
    readonly kind: KernelDeviceKind;
    readonly blockDevice: string | null;
    readonly reason: string | null;
  } | null;
  /** Why the disk is not attached or failed, for the operator. */
  readonly diskReason: string | null;
  /** This volume's replication state (DRBD 8.4 per-minor cs: Connected, SyncSource, …). */
  readonly replication: ConnState;
  /** Resync or verify under way. */
  readonly sync: {
    readonly totalBytes: number;
    readonly doneBytes: number;
    readonly speedBytesPerSecond: number;
  } | null;
  /** The last online verify: bytes found out of sync, and whether it finished. */
  readonly verify: { readonly outOfSyncBytes: number; readonly done: boolean } | null;
  /** Why the last sync handshake refused (split brain: who has which changes, how to resolve). */
  readonly splitBrain: string | null;
  readonly counters: VolumeCounters;
}

/** The /proc/drbd counters, in bytes (renderers show KiB). */
export interface VolumeCounters {
  /** ns: sent to the peer. */
  readonly sentBytes: number;
  /** nr: received from the peer. */
  readonly receivedBytes: number;
  /** dw: written to the local disk. */
  readonly diskWrittenBytes: number;
  /** dr: read from the local disk. */
  readonly diskReadBytes: number;
  /** pe: requests sent to the peer, not yet answered. */
  readonly pending: number;
  /** ua: requests from the peer, not yet answered. */
  readonly unacked: number;
  /** ap: application requests under way. */
  readonly appPending: number;
  /** ep: epochs (write-ordering barriers). */
  readonly epochs: number;
}

export interface ResourceStatus {
  readonly name: string;
  readonly role: Role;
  readonly peerRole: Role;
  readonly connection: ConnState;
  /** Why the connection is not Connected (the last failure), or null. */
  readonly connectionReason: string | null;
  readonly peer: string;
  readonly protocol: 'A' | 'B' | 'C';
  /** A shared-secret is configured: the peer link is authenticated. */
  readonly authenticated: boolean;
  readonly nbdSocket: string;
  /** The TCP address of the NBD export (`options { nbd-address }`), or null. */
  readonly nbdTcp: string | null;
  readonly nbdClients: number;
  readonly volumes: readonly VolumeStatus[];
}

export interface NodeStatus {
  readonly node: string;
  readonly pid: number;
  readonly resources: readonly ResourceStatus[];
}

/** `drbdadm status` (DRBD 9 layout): resource and role, disk per volume, then the peer. */
export function renderStatus(resources: readonly ResourceStatus[]): string {
  const out: string[] = [];
  for (const r of resources) {
    out.push(`${r.name} role:${r.role}`);
    const single = r.volumes.length === 1;
    for (const v of r.volumes) {
      const extra =
        v.disk === 'Inconsistent' || v.outOfSyncBytes > 0
          ? ` out-of-sync:${Math.ceil(v.outOfSyncBytes / 1024)}k`
          : '';
      out.push(`  ${single ? '' : `volume:${v.volume} `}disk:${v.disk}${extra}`);
    }
    out.push(`  ${r.peer} connection:${r.connection}`);
    if (r.connection === 'Connected' || r.connection.startsWith('Sync')) {
      out.push(`    role:${r.peerRole}`);
      for (const v of r.volumes)
        out.push(`    ${single ? '' : `volume:${v.volume} `}peer-disk:${v.peerDisk}`);
    }
    out.push('');
  }
  return out.join('\n');
}
