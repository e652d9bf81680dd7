// The status model tandemd reports over the control socket and tandemadm
// renders: plain data, JSON-safe, one entry per resource and volume.
import { type ConnState, connStatesFrom, type DiskState, type Role } from '../device/state.js';
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
  /** al: activity-log transactions written since the disk was attached. */
  readonly alWrites: number;
  /** bm: bitmap pages written since the disk was attached. */
  readonly bitmapWrites: number;
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
  /** Why application writes are held (fencing), or null. */
  readonly suspended?: string | null;
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

// ------------------------------------------------------------------ helpers

/** States in which a peer device is connected and replicating (8.4: Connected and beyond). */
const replicating = connStatesFrom('Connected');

/** The states for which DRBD 8.4's /proc/drbd prints the progress lines (drbd_seq_show). */
function showsProgress(v: VolumeStatus): boolean {
  const c = v.replication;
  return v.sync !== null && (c === 'SyncSource' || c === 'SyncTarget' || c === 'VerifyS' || c === 'VerifyT');
}

/**
 * DRBD 9's name for a peer device's replication state: the in-sync state is
 * `Established`, and a peer device without a connection is `Off` (DRBD 9 has no
 * per-volume WFConnection, StandAlone, …).
 */
function replicationName(v: VolumeStatus): string {
  if (v.replication === 'Connected') return 'Established';
  return replicating.has(v.replication) ? v.replication : 'Off';
}

/** DRBD 9's name for a connection state: it waits in `Connecting` where 8.4 said WFConnection/WFReportParams. */
function connectionName(c: ConnState): string {
  if (c === 'WFConnection' || c === 'WFReportParams') return 'Connecting';
  return replicating.has(c) ? 'Connected' : c;
}

/** Percent of the resync (or verify) done, for DRBD 9's `done:` (two decimals). */
function percentDone(v: VolumeStatus): number {
  const s = v.sync;
  if (!s || s.totalBytes <= 0) return 100;
  return (100 * Math.min(s.doneBytes, s.totalBytes)) / s.totalBytes;
}

const kib = (bytes: number): number => Math.ceil(bytes / 1024);
/** Bytes to bitmap bits: DRBD tracks 4 KiB blocks. */
const blocks = (bytes: number): number => Math.ceil(Math.max(0, bytes) / 4096);

/** DRBD's seq_printf_with_thousands_grouping: 262144 → `262,144`. */
function thousands(n: number): string {
  const v = Math.max(0, Math.floor(n));
  if (v >= 1_000_000) {
    const rest = v % 1_000_000;
    return `${Math.floor(v / 1_000_000)},${String(Math.floor(rest / 1000)).padStart(3, '0')},${String(rest % 1000).padStart(3, '0')}`;
  }
  if (v >= 1000) return `${Math.floor(v / 1000)},${String(v % 1000).padStart(3, '0')}`;
  return String(v);
}

/** Sync progress as DRBD counts it: bits left and total (4 KiB each), per mille done. */
function syncerProgress(s: NonNullable<VolumeStatus['sync']>): {
  left: number;
  total: number;
  perMille: number;
} {
  const total = blocks(s.totalBytes);
  const left = Math.min(total, blocks(s.totalBytes - s.doneBytes));
  // drbd_get_syncer_progress: 1000 - left*1000/total, i.e. the done part rounded up.
  const perMille = total === 0 ? 1000 : 1000 - Math.floor((left * 1000) / total);
  return { left, total, perMille };
}

/** DRBD's progress bar: x = permille/50; x-1 '=', the '>' head, 20-x '.' (21 cells at 0%). */
function bar(perMille: number): string {
  const x = Math.floor(perMille / 50);
  return `[${'='.repeat(Math.max(0, x - 1))}>${'.'.repeat(Math.max(0, 20 - x))}]`;
}

function hms(seconds: number): string {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * The bar and percent line of drbd_syncer_progress, without the tab:
 * `[=====>..............] sync'ed: 32.1% (6952/10240)M` (`verified:` for an online
 * verify; MiB above 4 GiB to sync, KiB below, as DRBD switches).
 */
function progressBarLine(v: VolumeStatus): string | null {
  const s = v.sync;
  if (!s) return null;
  const { left, total, perMille } = syncerProgress(s);
  const verb = v.replication === 'VerifyS' || v.replication === 'VerifyT' ? 'verified:' : "sync'ed:";
  const pct = `${String(Math.floor(perMille / 10)).padStart(3)}.${perMille % 10}%`;
  // Bit2KB(bits >> 10) in MiB when more than 4 GiB (1 << 20 bits), else Bit2KB(bits) in KiB.
  const amounts =
    total > 1 << 20
      ? `(${Math.floor(left / 1024) * 4}/${Math.floor(total / 1024) * 4})M`
      : `(${left * 4}/${total * 4})K`;
  return `${bar(perMille)} ${verb}${pct} ${amounts}`;
}

/** The two progress lines /proc/drbd shows during a resync or verify. */
function progressLines(v: VolumeStatus): string[] {
  const s = v.sync;
  const first = progressBarLine(v);
  if (!s || first === null || !showsProgress(v)) return [];
  const speed = Math.floor(s.speedBytesPerSecond / 1024);
  const leftBytes = Math.max(0, s.totalBytes - s.doneBytes);
  const finish = s.speedBytesPerSecond > 0 ? hms(leftBytes / s.speedBytesPerSecond) : '--:--:--';
  return [`\t${first}`, `\tfinish: ${finish} speed: ${thousands(speed)} (${thousands(speed)}) K/sec`];
}

interface Minor {
  readonly r: ResourceStatus;
  readonly v: VolumeStatus;
}

function byMinor(resources: readonly ResourceStatus[]): Minor[] {
  return resources.flatMap((r) => r.volumes.map((v) => ({ r, v }))).sort((x, y) => x.v.minor - y.v.minor);
}

// ---------------------------------------------------------------- renderers

/**
 * `drbdadm status` (DRBD 9 layout): resource and role, disk per volume, then the
 * peer with its role and, per volume, the peer disk — with `replication:` when not
 * plainly in sync and `done:` while a resync or verify runs. A refused handshake
 * adds `split-brain:` with the reason.
 */
export function renderStatus(resources: readonly ResourceStatus[]): string {
  const out: string[] = [];
  for (const r of resources) {
    out.push(`${r.name} role:${r.role}${r.suspended ? ` suspended:${r.suspended}` : ''}`);
    const single = r.volumes.length === 1;
    const vol = (v: VolumeStatus) => (single ? '' : `volume:${v.volume} `);
    for (const v of r.volumes) {
      const extra =
        v.disk === 'Inconsistent' || v.outOfSyncBytes > 0
          ? ` out-of-sync:${Math.ceil(v.outOfSyncBytes / 1024)}k`
          : '';
      out.push(`  ${vol(v)}disk:${v.disk}${extra}`);
    }
    // tandem's addition to DRBD's layout: a link without a shared-secret says so.
    const unauth = r.connection === 'Connected' && !r.authenticated ? ' unauthenticated' : '';
    out.push(`  ${r.peer} connection:${r.connection}${unauth}`);
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

/**
 * The text of DRBD 8.4's /proc/drbd (drbd_seq_show): the version, then one block per
 * minor in minor order — a blank line wherever the minors are not contiguous from 0,
 * `cs:Unconfigured` alone for a StandAlone Diskless Secondary, no protocol letter
 * without a network configuration (StandAlone) — counters in KiB, and the two
 * progress lines while SyncSource, SyncTarget, VerifyS or VerifyT.
 */
export function renderProc(resources: readonly ResourceStatus[], version = '8.4.11 (tandem)'): string {
  const out = [`version: ${version}`];
  let prev = -1;
  for (const { r, v } of byMinor(resources)) {
    if (prev !== v.minor - 1) out.push('');
    prev = v.minor;
    const minor = String(v.minor).padStart(2);
    if (v.replication === 'StandAlone' && v.disk === 'Diskless' && r.role === 'Secondary') {
      out.push(`${minor}: cs:Unconfigured`);
      continue;
    }
    const protocol = r.connection === 'StandAlone' ? ' ' : r.protocol;
    const c = v.counters;
    out.push(
      `${minor}: cs:${v.replication} ro:${r.role}/${r.peerRole} ds:${v.disk}/${v.peerDisk} ${protocol} r-----`,
    );
    out.push(
      `    ns:${kib(c.sentBytes)} nr:${kib(c.receivedBytes)} dw:${kib(c.diskWrittenBytes)} dr:${kib(c.diskReadBytes)} al:${c.alWrites} bm:${c.bitmapWrites} lo:0 pe:${c.pending} ua:${c.unacked} ap:${c.appPending} ep:${c.epochs + 1} wo:f oos:${kib(v.outOfSyncBytes)}`,
    );
    out.push(...progressLines(v));
  }
  return `${out.join('\n')}\n`;
}

/**
 * drbd-overview: one line per volume in minor order, `  1:r0/0  Connected
 * Primary/Secondary UpToDate/UpToDate`, the state columns aligned, and during a
 * resync or verify the progress bar and percent appended.
 */
export function renderOverview(resources: readonly ResourceStatus[]): string {
  const rows = byMinor(resources).map(({ r, v }) => [
    `${String(v.minor).padStart(3)}:${r.name}/${v.volume}`,
    v.replication,
    `${r.role}/${r.peerRole}`,
    `${v.disk}/${v.peerDisk}`,
    showsProgress(v) ? (progressBarLine(v) ?? '') : '',
  ]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(0, ...rows.map((row) => row[i]!.length)));
  return rows
    .map((row) => {
      const [name, cs, ro, ds, progress] = row.map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell));
      return `${`${name}  ${cs} ${ro} ${ds} ${progress}`.trimEnd()}\n`;
    })
    .join('');
}

type Field = readonly [key: string, value: string];
interface EventEntity {
  readonly entity: 'resource' | 'connection' | 'device' | 'peer-device';
  /** The identifying fields (`name:r0 volume:0 …`), what `change` and `destroy` name. */
  readonly key: string;
  readonly fields: readonly Field[];
}

/**
 * The entities `drbdsetup events2` reports for one snapshot, in its order: per
 * resource the resource, its connection, its devices, then its peer devices.
 */
function eventEntities(resources: readonly ResourceStatus[]): EventEntity[] {
  const out: EventEntity[] = [];
  for (const r of resources) {
    const conn = `name:${r.name} peer-node-id:1 conn-name:${r.peer}`;
    out.push({
      entity: 'resource',
      key: `name:${r.name}`,
      fields: [
        ['role', r.role],
        ['suspended', 'no'],
      ],
    });
    out.push({
      entity: 'connection',
      key: conn,
      fields: [
        ['connection', connectionName(r.connection)],
        ['role', r.peerRole],
      ],
    });
    for (const v of r.volumes) {
      out.push({
        entity: 'device',
        key: `name:${r.name} volume:${v.volume} minor:${v.minor}`,
        fields: [['disk', v.disk]],
      });
    }
    for (const v of r.volumes) {
      const fields: Field[] = [
        ['replication', replicationName(v)],
        ['peer-disk', v.peerDisk],
        ['resync-suspended', 'no'],
      ];
      if (v.sync) fields.push(['done', percentDone(v).toFixed(2)]);
      out.push({ entity: 'peer-device', key: `${conn} volume:${v.volume}`, fields });
    }
  }
  return out;
}

const fieldText = (fields: readonly Field[]): string => fields.map(([k, v]) => `${k}:${v}`).join(' ');

/**
 * `drbdsetup events2 --now`: every entity as it is (`exists resource …`, `exists
 * connection …`, `exists device …`, `exists peer-device …`), then `exists -`.
 */
export function renderEventsNow(resources: readonly ResourceStatus[]): string {
  const lines = eventEntities(resources).map((e) => `exists ${e.entity} ${e.key} ${fieldText(e.fields)}`);
  return `${[...lines, 'exists -'].join('\n')}\n`;
}

/**
 * The events2 lines between two snapshots: `destroy …` for what went away (peer
 * devices first, the resource last), then in snapshot order `create …` with all
 * fields for what is new and `change …` with only the changed fields for what
 * changed. `done:` alone is progress, not a state change: it makes no line. No
 * difference, no lines.
 */
export function diffEvents(before: readonly ResourceStatus[], after: readonly ResourceStatus[]): string[] {
  const id = (e: EventEntity) => `${e.entity} ${e.key}`;
  const was = eventEntities(before);
  const now = eventEntities(after);
  const old = new Map(was.map((e) => [id(e), new Map(e.fields)]));
  const still = new Set(now.map(id));
  const lines: string[] = [];
  for (const e of [...was].reverse()) if (!still.has(id(e))) lines.push(`destroy ${e.entity} ${e.key}`);
  for (const e of now) {
    const prev = old.get(id(e));
    if (prev === undefined) {
      lines.push(`create ${e.entity} ${e.key} ${fieldText(e.fields)}`);
      continue;
    }
    const changed = e.fields.filter(([k, v]) => k !== 'done' && prev.get(k) !== v);
    if (changed.length > 0) lines.push(`change ${e.entity} ${e.key} ${fieldText(changed)}`);
  }
  return lines;
}
