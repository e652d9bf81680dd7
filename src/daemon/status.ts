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
}

export interface ResourceStatus {
  readonly name: string;
  readonly role: Role;
  readonly peerRole: Role;
  readonly connection: ConnState;
  readonly peer: string;
  readonly protocol: 'A' | 'B' | 'C';
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
