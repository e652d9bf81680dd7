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

/** DRBD 9 calls the in-sync replication state of a peer device `Established`. */
function replicationName(v: VolumeStatus): string {
  return v.replication === 'Connected' ? 'Established' : v.replication;
}

function percentDone(v: VolumeStatus): number {
  const s = v.sync;
  if (!s || s.totalBytes === 0) return 100;
  return (100 * s.doneBytes) / s.totalBytes;
}

/** `drbdadm status` (DRBD 9 layout): resource and role, disk per volume, then the peer. */
export function renderStatus(resources: readonly ResourceStatus[]): string {
  const out: string[] = [];
  for (const r of resources) {
    out.push(`${r.name} role:${r.role}`);
    const single = r.volumes.length === 1;
    const vol = (v: VolumeStatus) => (single ? '' : `volume:${v.volume} `);
    for (const v of r.volumes) {
      const extra =
        v.disk === 'Inconsistent' || v.outOfSyncBytes > 0
          ? ` out-of-sync:${Math.ceil(v.outOfSyncBytes / 1024)}k`
          : '';
      out.push(`  ${vol(v)}disk:${v.disk}${extra}`);
    }
    out.push(`  ${r.peer} connection:${r.connection}`);
    if (r.connection === 'Connected') {
      out.push(`    role:${r.peerRole}`);
      for (const v of r.volumes) {
        const repl = v.replication === 'Connected' ? '' : `replication:${replicationName(v)} `;
        const done = v.sync ? ` done:${percentDone(v).toFixed(2)}` : '';
        out.push(`    ${vol(v)}${repl}peer-disk:${v.peerDisk}${done}`);
      }
    }
    for (const v of r.volumes) if (v.splitBrain) out.push(`  ${vol(v)}split-brain: ${v.splitBrain}`);
    out.push('');
  }
  return out.join('\n');
}

const kib = (bytes: number): number => Math.ceil(bytes / 1024);
const mib = (bytes: number): number => Math.floor(bytes / (1024 * 1024));

/** DRBD's progress bar: 20 cells, '=' done, '>' the head, '.' to go. */
function bar(percent: number): string {
  const filled = Math.min(19, Math.floor((percent / 100) * 20));
  return `[${'='.repeat(filled)}>${'.'.repeat(19 - filled)}]`;
}

function hms(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The two progress lines /proc/drbd shows during a resync or verify. */
function progressLines(v: VolumeStatus): string[] {
  const s = v.sync;
  if (!s) return [];
  const pct = percentDone(v);
  const left = s.totalBytes - s.doneBytes;
  const verb = v.replication === 'VerifyS' || v.replication === 'VerifyT' ? 'verified' : "sync'ed";
  const speed = Math.round(s.speedBytesPerSecond / 1024);
  const finish = speed > 0 ? hms(left / s.speedBytesPerSecond) : '--:--:--';
  return [
    `\t${bar(pct)} ${verb}: ${(Math.floor(pct * 10 + 1e-6) / 10).toFixed(1)}% (${mib(left)}/${mib(s.totalBytes)})M`,
    `\tfinish: ${finish} speed: ${speed.toLocaleString('en-US')} (${speed.toLocaleString('en-US')}) K/sec`,
  ];
}

/** The text of DRBD 8.4's /proc/drbd: one block per minor with its counters. */
export function renderProc(resources: readonly ResourceStatus[], version = '8.4.11 (tandem)'): string {
  const out = [`version: ${version}`];
  const volumes = resources
    .flatMap((r) => r.volumes.map((v) => ({ r, v })))
    .sort((x, y) => x.v.minor - y.v.minor);
  for (const { r, v } of volumes) {
    const c = v.counters;
    out.push(
      `${String(v.minor).padStart(2)}: cs:${v.replication} ro:${r.role}/${r.peerRole} ds:${v.disk}/${v.peerDisk} ${r.protocol} r-----`,
    );
    out.push(
      `    ns:${kib(c.sentBytes)} nr:${kib(c.receivedBytes)} dw:${kib(c.diskWrittenBytes)} dr:${kib(c.diskReadBytes)} al:0 bm:0 lo:0 pe:${c.pending} ua:${c.unacked} ap:${c.appPending} ep:${c.epochs + 1} wo:f oos:${kib(v.outOfSyncBytes)}`,
    );
    out.push(...progressLines(v));
  }
  return `${out.join('\n')}\n`;
}

/** drbd-overview: one line per volume. */
export function renderOverview(resources: readonly ResourceStatus[]): string {
  const rows = resources.flatMap((r) =>
    r.volumes.map((v) => {
      const progress = progressLines(v)[0]?.trim() ?? '';
      return [
        `${String(v.minor).padStart(3)}:${r.name}/${v.volume}`,
        v.replication,
        `${r.role}/${r.peerRole}`,
        `${v.disk}/${v.peerDisk}`,
        progress,
      ];
    }),
  );
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell))
        .join('  ')
        .trimEnd(),
    )
    .map((l) => `${l}\n`)
    .join('');
}

type EventFields = [entity: string, key: string, fields: [string, string][]];

/** The entities `drbdsetup events2` reports and their fields, for one snapshot. */
function eventEntities(resources: readonly ResourceStatus[]): EventFields[] {
  const out: EventFields[] = [];
  for (const r of resources) {
    const conn = `name:${r.name} peer-node-id:1 conn-name:${r.peer}`;
    out.push([
      'resource',
      `name:${r.name}`,
      [
        ['role', r.role],
        ['suspended', 'no'],
      ],
    ]);
    out.push([
      'connection',
      conn,
      [
        ['connection', r.connection],
        ['role', r.peerRole],
      ],
    ]);
    for (const v of r.volumes) {
      out.push(['device', `name:${r.name} volume:${v.volume} minor:${v.minor}`, [['disk', v.disk]]]);
      const pd: [string, string][] = [
        ['replication', replicationName(v)],
        ['peer-disk', v.peerDisk],
        ['resync-suspended', 'no'],
      ];
      if (v.sync) pd.push(['done', percentDone(v).toFixed(2)]);
      out.push(['peer-device', `${conn} volume:${v.volume}`, pd]);
    }
  }
  return out;
}

/** `drbdsetup events2 --now`: every entity as it is, then `exists -`. */
export function renderEventsNow(resources: readonly ResourceStatus[]): string {
  const lines = eventEntities(resources).map(
    ([entity, key, fields]) => `exists ${entity} ${key} ${fields.map(([k, v]) => `${k}:${v}`).join(' ')}`,
  );
  return `${[...lines, 'exists -'].join('\n')}\n`;
}

/** `change …` lines for what differs between two snapshots (only the changed fields). */
export function diffEvents(before: readonly ResourceStatus[], after: readonly ResourceStatus[]): string[] {
  const old = new Map(eventEntities(before).map(([e, k, f]) => [`${e} ${k}`, new Map(f)]));
  const lines: string[] = [];
  for (const [entity, key, fields] of eventEntities(after)) {
    const was = old.get(`${entity} ${key}`);
    const changed = fields.filter(([k, v]) => k !== 'done' && was?.get(k) !== v);
    if (was === undefined)
      lines.push(`create ${entity} ${key} ${fields.map(([k, v]) => `${k}:${v}`).join(' ')}`);
    else if (changed.length > 0)
      lines.push(`change ${entity} ${key} ${changed.map(([k, v]) => `${k}:${v}`).join(' ')}`);
  }
  return lines;
}
