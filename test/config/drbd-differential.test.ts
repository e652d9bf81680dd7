// Differential test of tandem's DRBD configuration parser against drbd-utils'
// drbdadm (DRBD 9: `drbdadm`, DRBD 8.4: /lib/drbd/drbdadm-84).
//
// For every valid fixture and every drbdadm that accepts its syntax:
//  - `drbdadm -c F dump all` is read back with tandem's own parser and resolver;
//    hosts, addresses, node-ids, volumes (device, minor, disk, meta-disk), the
//    protocol and every option must come out as tandem resolved them from F;
//  - `drbdadm -c F -d up RES` is run once per host of RES, posing as that host
//    (a UTS + network namespace with its host name and its IP addresses on lo,
//    so that drbdadm's "IP not found on this host" check and its matching of
//    `floating` hosts by local address see what a real node sees). The
//    drbdsetup/drbdmeta commands it prints must describe tandem's view of that
//    node: minors, disks, meta-data device and index, local and peer address,
//    and per command exactly the options tandem has set (drbdadm prints only
//    options that are set), values compared in DRBD's unit.
// And the other way round: a file drbdadm rejects, tandem rejects; two broken
// files drbdadm accepts (an unclosed brace at end of file), tandem rejects too.
//
// Without drbd-utils the tests are skipped (with the reason), never passed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { loadDrbdConfig, loadResolvedConfig, parseDrbdConfig } from '../../src/config/drbd-load.js';
import type {
  DrbdConfig,
  MetaDisk,
  OptionEntry,
  OptionMap,
  ResolvedConfig,
  ResolvedHost,
  ResolvedResource,
  ResolvedVolume,
} from '../../src/config/drbd-model.js';
import { type OptionSection, optionSpec, parseDrbdNumber } from '../../src/config/drbd-options.js';
import { assertRunnable, localHost, peerHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { ConfigError } from '../../src/config/errors.js';
import { fixtures } from '../helpers/paths.js';

type Variant = '8.4' | '9';

const validDir = join(fixtures, 'drbd/valid');
const invalidDir = join(fixtures, 'drbd/invalid');

/** Each valid fixture with the drbdadm variants whose syntax it uses (they must accept it). */
const validFixtures: readonly { file: string; variants: readonly Variant[] }[] = [
  { file: 'seed/drbd.conf', variants: ['8.4', '9'] },
  // `fencing` in `disk` is 8.4 syntax (DRBD 9 moved it to `net`).
  { file: 'v84/drbd.conf', variants: ['8.4'] },
  // `syncer { rate ...; after ...; }`: DRBD 9's drbdadm no longer reads them.
  { file: 'syncer83.conf', variants: ['8.4'] },
  { file: 'floating.res', variants: ['8.4', '9'] },
  // `options { auto-promote ...; }` and node-ids: DRBD 9 only.
  { file: 'v9.res', variants: ['9'] },
  { file: 'stacked.res', variants: ['8.4', '9'] },
];

// ---------------------------------------------------------------------------
// Tools and how to run them

function findDrbdadm(): string | undefined {
  const r = spawnSync('/bin/sh', ['-c', 'command -v drbdadm'], { encoding: 'utf8' });
  const path = (r.stdout ?? '').trim();
  return r.status === 0 && path !== '' ? path : undefined;
}

const drbdadm9 = findDrbdadm();
const drbdadm84 = existsSync('/lib/drbd/drbdadm-84') ? '/lib/drbd/drbdadm-84' : undefined;

// Pins each drbdadm to its DRBD generation: the DRBD 9 drbdadm would otherwise
// hand over to drbdadm-84 on a machine with an 8.4 kernel module loaded.
const driverOverride: Record<Variant, string> = { '8.4': '8.4.0', '9': '9.0.0' };

// Runs argv in a fresh UTS and network namespace: host name $1, addresses $2 on
// lo (so that drbdadm's checks of "this host" see exactly one node), then exec.
const posingScript = [
  'hostname "$1" || exit 96',
  'ip link set lo up || exit 97',
  'for a in $2; do ip addr add "$a" dev lo || exit 98; done',
  'shift 2',
  'exec "$@"',
].join('\n');

/** Why drbdadm cannot be run posing as a node here, or undefined when it can. */
const namespaceProblem: string | undefined = (() => {
  if (!drbdadm9) return 'drbd-utils not installed';
  const argv = ['--uts', '--net', 'sh', '-c', posingScript, 'sh', 'probe', '10.255.0.1/32', 'true'];
  const r = spawnSync('unshare', argv, { encoding: 'utf8' });
  if (r.error) return `unshare(1) not available: ${r.error.message}`;
  if (r.status !== 0) {
    return `cannot create a UTS+network namespace and set its host name and addresses (needs root, unshare(1) and ip(8)): ${r.stderr.trim()}`;
  }
  return undefined;
})();

interface Run {
  readonly rc: number;
  readonly stdout: string;
  /** stderr without the "modinfo: not found" noise of drbd-utils 9. */
  readonly stderr: string;
  readonly command: string;
}

/** drbdadm's messages on one line, each once (it repeats some; continuation lines start with a tab). */
function brief(stderr: string): string {
  const messages = stderr.replace(/\n\t/g, ' ').split('\n');
  return [...new Set(messages.map((m) => m.trim()).filter((m) => m !== ''))].join(' | ');
}

/** Runs drbdadm `variant` posing as host `node` with `addresses` (CIDR) on lo. */
function runDrbdadm(
  variant: Variant,
  args: readonly string[],
  node: string,
  addresses: readonly string[],
): Run {
  const drbdadm = variant === '9' ? drbdadm9 : drbdadm84;
  if (!drbdadm) throw new Error(`no drbdadm for DRBD ${variant}`);
  // __DRBD_NODE__ would override the host name drbdadm sees.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LC_ALL: 'C',
    DRBD_DRIVER_VERSION_OVERRIDE: driverOverride[variant],
  };
  delete env['__DRBD_NODE__'];
  const argv = [
    '--uts',
    '--net',
    'sh',
    '-c',
    posingScript,
    'sh',
    node,
    addresses.join(' '),
    drbdadm,
    ...args,
  ];
  const r = spawnSync('unshare', argv, { encoding: 'utf8', env, timeout: 20_000 });
  if (r.error) throw r.error;
  const stderr = r.stderr
    .split('\n')
    .filter((l) => !/modinfo: not found/.test(l))
    .join('\n')
    .trim();
  const command = `(as ${node} [${addresses.join(' ')}]) ${drbdadm} ${args.join(' ')}`;
  if (r.status !== null && r.status >= 96 && r.status <= 98) {
    throw new Error(`could not set up the namespace for ${command}: ${stderr}`);
  }
  return { rc: r.status ?? -1, stdout: r.stdout, stderr, command };
}

/** Skips the test (saying why) unless drbdadm `variant` can be run posing as a node. */
function toolsReady(t: TestContext, variant: Variant): boolean {
  if (!drbdadm9) {
    t.skip('drbd-utils not installed (no drbdadm in PATH)');
    return false;
  }
  if (variant === '8.4' && !drbdadm84) {
    t.skip('drbd-utils has no DRBD 8.4 drbdadm (/lib/drbd/drbdadm-84)');
    return false;
  }
  if (namespaceProblem) {
    t.skip(namespaceProblem);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Collecting differences: every comparison is counted, every difference listed

class Differences {
  readonly found: string[] = [];
  readonly notes: string[] = [];
  count = 0;

  eq(what: string, tandem: unknown, drbdadm: unknown): void {
    this.count++;
    const a = JSON.stringify(tandem);
    const b = JSON.stringify(drbdadm);
    if (a !== b) this.found.push(`${what}: tandem ${a}, drbdadm ${b}`);
  }

  /** Compares two name → value maps entry by entry (a missing entry is a difference). */
  maps(what: string, tandem: ReadonlyMap<string, string>, drbdadm: ReadonlyMap<string, string>): void {
    for (const k of new Set([...tandem.keys(), ...drbdadm.keys()])) {
      this.eq(`${what} '${k}'`, tandem.get(k) ?? null, drbdadm.get(k) ?? null);
    }
  }

  fail(what: string): void {
    this.count++;
    this.found.push(what);
  }

  report(t: TestContext): void {
    for (const n of this.notes) t.diagnostic(`note: ${n}`);
    t.diagnostic(`${this.count} comparisons`);
    totalComparisons += this.count;
    assert.deepEqual(this.found, [], `tandem and drbdadm differ:\n  ${this.found.join('\n  ')}`);
  }
}

let totalComparisons = 0;

// ---------------------------------------------------------------------------
// Values: both sides brought to DRBD's unit for the option

function normalizeTandem(entry: OptionEntry): string {
  const v = entry.value;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.join(' ');
  return String(v);
}

/** An option as drbdadm prints it (`--size=10G`, `--disk-barrier=no`), in the option's unit. */
function normalizeDrbdadm(name: string, text: string): string {
  const spec = optionSpec(name);
  if (!spec) return `(unknown to tandem) ${text}`;
  if (spec.type === 'numeric') {
    const n = parseDrbdNumber(text, spec.unitPrefix ?? '1');
    if (n !== undefined) return String(n);
  }
  return text;
}

function optionsOf(map: OptionMap | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, e] of map ?? []) out.set(k, normalizeTandem(e));
  return out;
}

function addressText(a: { family: string; host: string; port: number }): string {
  return `${a.family}:${a.family === 'ipv6' ? `[${a.host}]` : a.host}:${a.port}`;
}

function metaDiskText(m: MetaDisk): string {
  if (m.kind === 'internal') return 'internal';
  return m.index === undefined ? `${m.path} flexible` : `${m.path} [${m.index}]`;
}

// ---------------------------------------------------------------------------
// Known defects of drbdadm itself, modelled so that they do not hide tandem's

/**
 * drbdadm-84 never applies `disk { }` options of a `volume` declared at resource
 * level: its inherit_volumes() (user/v84/drbdadm_parser.c) copies device, disk
 * and meta-disk into each host but not disk_options, so `-d up` attaches with
 * the resource's values and `dump` leaves them out. (Options of a volume written
 * inside an `on` section do reach drbdsetup, and drbdadm 9 applies both.)
 * tandem applies them. Returns, for a volume of host `hostIndex`, the
 * volume-level options drbdadm-84 does use and those it drops.
 */
function drbdadm84VolumeOptions(
  decl: DrbdConfig,
  r: ResolvedResource,
  hostIndex: number,
  v: ResolvedVolume,
): { used: OptionMap; dropped: string[] } {
  const rd = decl.resources.find((x) => x.name === r.name);
  const own = rd?.hosts[hostIndex]?.volumes.get(v.number)?.diskOptions ?? new Map<string, OptionEntry>();
  const dropped = [...v.diskOptions.keys()].filter((k) => !own.has(k));
  return { used: own, dropped };
}

/** drbdadm-84's `dump` adds these to `global` with their defaults. */
const drbdadm84GlobalDefaults = new Map([
  ['cmd-timeout-medium', '600'],
  ['cmd-timeout-long', '0'],
]);

// ---------------------------------------------------------------------------
// 1. `dump all`, read back by tandem

function resourceOptions(r: ResolvedResource): Map<string, string> {
  // drbdadm 9 prints some options in another section than 8.4 (fencing in net):
  // compare by name. No option name is valid in two of these sections at once.
  const out = new Map<string, string>();
  for (const s of ['disk', 'net', 'options', 'startup', 'handlers'] as OptionSection[]) {
    for (const [k, v] of optionsOf(r.sections.get(s))) out.set(k, v);
  }
  return out;
}

function hostKey(r: ResolvedResource, h: ResolvedHost): string {
  if (r.stackedOn !== undefined && h.names.length === 1 && h.names[0] === r.stackedOn) {
    return `stacked-on-top-of ${r.stackedOn}`;
  }
  return `${h.floating ? 'floating' : 'on'} ${h.names.join(' ')}`;
}

function compareDump(
  d: Differences,
  variant: Variant,
  file: string,
  original: ResolvedConfig,
  decl: DrbdConfig,
  run: Run,
): void {
  let dumped: ResolvedConfig;
  let dumpedDecl: DrbdConfig;
  let stackedLeftOut = false;
  try {
    dumpedDecl = parseDrbdConfig(run.stdout, `dump of ${file} by drbdadm ${variant}`);
    // drbdadm 9's dump of a `stacked-on-top-of` section loses its `device`, and
    // drbdadm 9 itself rejects what it printed ("volume 0 missing"): leave
    // stacked resources out of the read-back; the 8.4 dump keeps them whole.
    if (variant === '9' && dumpedDecl.resources.some((r) => r.stackedOn !== undefined)) {
      d.notes.push(
        'drbdadm 9 dumps stacked-on-top-of without its device (and rejects its own dump): stacked resources not compared',
      );
      dumpedDecl = {
        ...dumpedDecl,
        resources: dumpedDecl.resources.filter((r) => r.stackedOn === undefined),
      };
      stackedLeftOut = true;
    }
    dumped = resolveConfig(dumpedDecl);
  } catch (e) {
    d.fail(`tandem cannot read back drbdadm ${variant}'s dump of ${file}: ${(e as Error).message}`);
    return;
  }

  // Global options, but for the defaults drbdadm-84 adds.
  const g0 = optionsOf(original.global);
  const g1 = optionsOf(dumped.global);
  if (variant === '8.4') {
    for (const [k, v] of drbdadm84GlobalDefaults) if (!g0.has(k) && g1.get(k) === v) g1.delete(k);
  }
  d.maps('global', g0, g1);

  // drbdadm prints `resync-after` only when the named resource is on this host
  // (we dump as a host of no resource) and says so: "resource 'X' mentioned in
  // 'resync-after' option is not known on this host". -d up checks it instead.
  const resyncAfterUnknown = new Set(
    [...run.stderr.matchAll(/in resource (\S+?):\s*resource '[^']*' mentioned in 'resync-after'/g)].map(
      (m) => m[1] as string,
    ),
  );

  const expectedResources = original.resources.filter((r) => !stackedLeftOut || r.stackedOn === undefined);
  d.eq(
    'resources',
    expectedResources.map((r) => r.name),
    dumped.resources.map((r) => r.name),
  );
  for (const r0 of expectedResources) {
    const r1 = dumped.resources.find((x) => x.name === r0.name);
    if (!r1) continue;
    const at = `resource ${r0.name}`;
    d.eq(`${at}: protocol`, r0.protocol, r1.protocol);
    d.eq(`${at}: stacked-on-top-of`, r0.stackedOn ?? null, r1.stackedOn ?? null);
    const o0 = resourceOptions(r0);
    const o1 = resourceOptions(r1);
    if (resyncAfterUnknown.has(r0.name) && o0.has('resync-after') && !o1.has('resync-after')) {
      d.notes.push(`${at}: drbdadm ${variant} left out 'resync-after' (target not on the dumping host)`);
      o0.delete('resync-after');
    }
    d.maps(`${at}: option`, o0, o1);

    const keys0 = r0.hosts.map((h) => hostKey(r0, h));
    const keys1 = r1.hosts.map((h) => hostKey(r1, h));
    d.eq(`${at}: hosts`, [...keys0].sort(), [...keys1].sort());
    r0.hosts.forEach((h0, hi) => {
      const h1 = r1.hosts.find((x) => hostKey(r1, x) === hostKey(r0, h0));
      if (!h1) return;
      const ht = `${at}, ${hostKey(r0, h0)}`;
      d.eq(`${ht}: floating`, h0.floating, h1.floating);
      d.eq(`${ht}: address`, addressText(h0.address), addressText(h1.address));
      // drbdadm 9 invents node-ids where the file has none.
      if (h0.nodeId !== undefined) d.eq(`${ht}: node-id`, h0.nodeId, h1.nodeId ?? null);
      d.eq(
        `${ht}: volumes`,
        h0.volumes.map((v) => v.number),
        h1.volumes.map((v) => v.number),
      );
      for (const v0 of h0.volumes) {
        const v1 = h1.volumes.find((x) => x.number === v0.number);
        if (!v1) continue;
        const vt = `${ht}, volume ${v0.number}`;
        d.eq(`${vt}: device`, v0.device.path, v1.device.path);
        d.eq(`${vt}: minor`, v0.device.minor, v1.device.minor);
        d.eq(`${vt}: disk`, v0.disk, v1.disk);
        d.eq(`${vt}: meta-disk`, metaDiskText(v0.metaDisk), metaDiskText(v1.metaDisk));
        let expected = v0.diskOptions;
        if (variant === '8.4') {
          const { used, dropped } = drbdadm84VolumeOptions(decl, r0, hi, v0);
          if (dropped.length > 0) {
            d.notes.push(`${vt}: drbdadm-84 drops resource-level volume disk options ${dropped.join(', ')}`);
          }
          expected = used;
        }
        d.maps(`${vt}: disk option`, optionsOf(expected), optionsOf(v1.diskOptions));
      }
    });
  }
}

// ---------------------------------------------------------------------------
// 2. `-d up RES` posing as each node

/** Splits one line of drbdadm's `-d` output into words as sh(1) would. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unbalanced ' in ${line}`);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && '"\\$`'.includes(line[i + 1] ?? '')) i++;
        cur += line[i];
        i++;
      }
      if (i >= line.length) throw new Error(`unbalanced " in ${line}`);
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

interface SetupCommand {
  /** drbdsetup subcommand, or `drbdmeta` (its `apply-al` on a minor). */
  readonly sub: string;
  readonly args: readonly string[];
  readonly opts: ReadonlyMap<string, string>;
  readonly line: string;
}

function parseUpOutput(stdout: string): SetupCommand[] {
  const out: SetupCommand[] = [];
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const words = shellWords(line);
    const tool = (words[0] ?? '').split('/').pop() ?? '';
    if (tool === 'drbdmeta') {
      out.push({ sub: 'drbdmeta', args: words.slice(1), opts: new Map(), line });
      continue;
    }
    if (!tool.startsWith('drbdsetup')) {
      out.push({ sub: `?${tool}`, args: words.slice(1), opts: new Map(), line });
      continue;
    }
    const args: string[] = [];
    const opts = new Map<string, string>();
    for (const w of words.slice(2)) {
      if (!w.startsWith('--')) {
        args.push(w);
        continue;
      }
      const eq = w.indexOf('=');
      if (eq < 0) opts.set(w.slice(2), 'yes');
      else opts.set(w.slice(2, eq), w.slice(eq + 1));
    }
    out.push({ sub: words[1] ?? '', args, opts, line });
  }
  return out;
}

type UpCommand = 'new-resource' | 'attach' | 'connect' | 'new-peer' | 'peer-device-options';

// Found by running both drbdadm on the fixtures: 8.4 passes `disk` to attach,
// `net` to connect and `options` to new-resource. 9 takes the resync
// controller (and bitmap) per peer device, and `fencing` per peer.
const peerDeviceOptions9 = new Set([
  'resync-rate',
  'c-plan-ahead',
  'c-delay-target',
  'c-fill-target',
  'c-max-rate',
  'c-min-rate',
  'bitmap',
]);
const netOptions9 = new Set(['fencing']);

function commandOf(variant: Variant, section: OptionSection, name: string): UpCommand | undefined {
  if (variant === '8.4') {
    return ({ disk: 'attach', net: 'connect', options: 'new-resource' } as const)[
      section as 'disk' | 'net' | 'options'
    ];
  }
  if (peerDeviceOptions9.has(name)) return 'peer-device-options';
  if (netOptions9.has(name)) return 'new-peer';
  return ({ disk: 'attach', net: 'new-peer', options: 'new-resource' } as const)[
    section as 'disk' | 'net' | 'options'
  ];
}

/** A node of a fixture: the host name drbdadm sees and the addresses it has. */
interface Node {
  readonly name: string;
  readonly floatingAddress: string | undefined;
  readonly addresses: readonly string[];
}

function nodesOf(cfg: ResolvedConfig): Node[] {
  const nodes = new Map<string, Node>();
  const cidr = (a: { family: string; host: string }) => `${a.host}/${a.family === 'ipv6' ? 128 : 32}`;
  for (const r of cfg.resources) {
    if (r.stackedOn !== undefined) continue;
    for (const h of r.hosts) {
      if (h.floating) {
        // Matched by address alone; the host name is then irrelevant.
        const name = `floating-${h.address.host.replace(/[^0-9a-zA-Z]/g, '-')}`;
        nodes.set(name, { name, floatingAddress: h.address.host, addresses: [cidr(h.address)] });
        continue;
      }
      for (const n of h.names) {
        const prev = nodes.get(n)?.addresses ?? [];
        const a = cidr(h.address);
        nodes.set(n, {
          name: n,
          floatingAddress: undefined,
          addresses: prev.includes(a) ? prev : [...prev, a],
        });
      }
    }
  }
  return [...nodes.values()];
}

function hostFor(r: ResolvedResource, node: Node): ResolvedHost | undefined {
  try {
    return localHost(r, node.name, node.floatingAddress ? [node.floatingAddress] : []);
  } catch {
    return undefined;
  }
}

/** `resync-after RES[/VOL]` as drbdadm passes it: the minor of that volume on this node. */
function resyncAfterMinor(cfg: ResolvedConfig, node: Node, value: string): string {
  const [name, vol] = value.split('/');
  const target = cfg.resources.find((x) => x.name === name);
  const h = target && hostFor(target, node);
  if (!h) return `(${value}: not on this node)`;
  const v = vol !== undefined ? h.volumes.find((x) => x.number === Number(vol)) : h.volumes[0];
  if (!v || (vol === undefined && h.volumes.length !== 1)) {
    return `(${value}: names no single volume, ${h.volumes.length} volumes)`;
  }
  return String(v.device.minor);
}

function expectedUpOptions(
  variant: Variant,
  cfg: ResolvedConfig,
  decl: DrbdConfig,
  r: ResolvedResource,
  node: Node,
  local: ResolvedHost,
  v: ResolvedVolume | undefined,
  command: UpCommand,
  d: Differences,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const section of ['disk', 'net', 'options'] as OptionSection[]) {
    let entries: OptionMap | undefined = r.sections.get(section);
    if (section === 'disk' && v) {
      let volumeOptions: OptionMap = v.diskOptions;
      if (variant === '8.4') {
        const { used, dropped } = drbdadm84VolumeOptions(decl, r, r.hosts.indexOf(local), v);
        if (dropped.length > 0 && command === 'attach') {
          d.notes.push(
            `${r.name} volume ${v.number}: drbdadm-84 drops resource-level volume disk options ${dropped.join(', ')}`,
          );
        }
        volumeOptions = used;
      }
      entries = new Map([...(entries ?? []), ...volumeOptions]);
    }
    for (const [name, entry] of entries ?? []) {
      if (commandOf(variant, section, name) !== command) continue;
      out.set(
        name,
        name === 'resync-after' ? resyncAfterMinor(cfg, node, String(entry.value)) : normalizeTandem(entry),
      );
    }
  }
  return out;
}

function drbdadmOptions(c: SetupCommand | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of c?.opts ?? []) {
    if (k.startsWith('_')) continue; // --_name=PEER: compared on its own
    out.set(k, normalizeDrbdadm(k, v));
  }
  return out;
}

function metaDiskArgs(v: ResolvedVolume): { attach: [string, string]; drbdmeta: [string, string] } {
  const m = v.metaDisk;
  if (m.kind === 'internal') return { attach: [v.disk, 'internal'], drbdmeta: [v.disk, 'internal'] };
  if (m.index === undefined) return { attach: [m.path, 'flexible'], drbdmeta: [m.path, 'flex-external'] };
  return { attach: [m.path, String(m.index)], drbdmeta: [m.path, String(m.index)] };
}

function compareUp(
  d: Differences,
  variant: Variant,
  cfg: ResolvedConfig,
  decl: DrbdConfig,
  r: ResolvedResource,
  node: Node,
  run: Run,
): void {
  const local = hostFor(r, node);
  if (!local) {
    d.fail(`tandem finds no host for node ${node.name} in ${r.name}`);
    return;
  }
  const peer = peerHost(r, local);
  const cmds = parseUpOutput(run.stdout);
  const used = new Set<SetupCommand>();
  const take = (what: string, pred: (c: SetupCommand) => boolean): SetupCommand | undefined => {
    const found = cmds.filter((c) => !used.has(c) && pred(c));
    d.eq(`${what}: commands`, 1, found.length);
    for (const c of found) used.add(c);
    return found[0];
  };
  const opts = (what: string, command: UpCommand, c: SetupCommand | undefined, v?: ResolvedVolume) =>
    d.maps(
      `${what} option`,
      expectedUpOptions(variant, cfg, decl, r, node, local, v, command, d),
      drbdadmOptions(c),
    );
  const args = (what: string, expected: readonly unknown[], c: SetupCommand | undefined) => {
    if (c) d.eq(`${what} arguments`, expected.map(String), c.args);
  };

  if (variant === '8.4') {
    const nr = take('new-resource', (c) => c.sub === 'new-resource' && c.args[0] === r.name);
    args('new-resource', [r.name], nr);
    opts('new-resource', 'new-resource', nr);
  } else {
    const nr = take('new-resource', (c) => c.sub === 'new-resource' && c.args[0] === r.name);
    if (nr && local.nodeId !== undefined) args('new-resource', [r.name, local.nodeId], nr);
    opts('new-resource', 'new-resource', nr);
  }

  d.eq(
    'new-minor (minor volume)',
    local.volumes.map((v) => `${v.device.minor} ${v.number}`).sort(),
    cmds
      .filter((c) => c.sub === 'new-minor' && c.args[0] === r.name)
      .map((c) => {
        used.add(c);
        return `${c.args[1]} ${c.args[2]}`;
      })
      .sort(),
  );

  let peerId: string | undefined;
  if (variant === '8.4') {
    const cn = take('connect', (c) => c.sub === 'connect' && c.args[0] === r.name);
    args('connect', [r.name, addressText(local.address), addressText(peer.address)], cn);
    opts('connect', 'connect', cn);
  } else {
    const np = take('new-peer', (c) => c.sub === 'new-peer' && c.args[0] === r.name);
    peerId = np?.args[1];
    if (peer.nodeId !== undefined) d.eq('new-peer node-id', String(peer.nodeId), peerId ?? null);
    if (peer.names.length === 1) d.eq('new-peer --_name', peer.names[0], np?.opts.get('_name') ?? null);
    opts('new-peer', 'new-peer', np);
    const path = take('new-path', (c) => c.sub === 'new-path' && c.args[0] === r.name);
    args('new-path', [r.name, peerId, addressText(local.address), addressText(peer.address)], path);
    const cn = take('connect', (c) => c.sub === 'connect' && c.args[0] === r.name);
    args('connect', [r.name, peerId], cn);
    opts('connect', 'connect', cn); // DRBD 9 passes nothing here
  }

  for (const v of local.volumes) {
    const minor = String(v.device.minor);
    const vt = `volume ${v.number} (minor ${minor})`;
    if (variant === '9') {
      const pdo = cmds.find(
        (c) => c.sub === 'peer-device-options' && c.args[0] === r.name && c.args[2] === String(v.number),
      );
      if (pdo) {
        used.add(pdo);
        args(`${vt} peer-device-options`, [r.name, peerId, v.number], pdo);
      }
      // Without options drbdadm 9 leaves the command out.
      opts(`${vt} peer-device-options`, 'peer-device-options', pdo, v);
    }
    if (v.disk === 'none') continue;
    const md = metaDiskArgs(v);
    const meta = take(`${vt} drbdmeta`, (c) => c.sub === 'drbdmeta' && c.args[0] === minor);
    args(`${vt} drbdmeta`, [minor, variant === '9' ? 'v09' : 'v08', ...md.drbdmeta, 'apply-al'], meta);
    const at = take(`${vt} attach`, (c) => c.sub === 'attach' && c.args[0] === minor);
    args(`${vt} attach`, [minor, v.disk, ...md.attach], at);
    opts(`${vt} attach`, 'attach', at, v);
  }

  for (const c of cmds)
    if (!used.has(c)) d.fail(`drbdadm runs a command tandem has no counterpart for: ${c.line}`);
}

// ---------------------------------------------------------------------------
// The tests

test('differential: the fixture table covers every valid fixture', () => {
  const found = readdirSync(validDir)
    .map((f) => (statSync(join(validDir, f)).isDirectory() ? `${f}/drbd.conf` : f))
    .sort();
  assert.deepEqual(validFixtures.map((f) => f.file).sort(), found);
});

for (const { file, variants } of validFixtures) {
  for (const variant of variants) {
    test(`differential: ${file}, drbdadm ${variant} dump all reads back to tandem's model`, (t) => {
      if (!toolsReady(t, variant)) return;
      const path = join(validDir, file);
      const original = loadResolvedConfig(path);
      const decl = loadDrbdConfig(path);
      const run = runDrbdadm(variant, ['-c', path, 'dump', 'all'], 'tandem-difftest-nonode', []);
      assert.equal(run.rc, 0, `${run.command} failed: ${brief(run.stderr)}`);
      const d = new Differences();
      compareDump(d, variant, file, original, decl, run);
      d.report(t);
    });

    test(`differential: ${file}, drbdadm ${variant} -d up on each node matches tandem's view of it`, async (t) => {
      if (!toolsReady(t, variant)) return;
      const path = join(validDir, file);
      const cfg = loadResolvedConfig(path);
      const decl = loadDrbdConfig(path);
      for (const r of cfg.resources) {
        if (r.stackedOn !== undefined) {
          // tandem parses stacked resources but refuses to run them: nothing to compare.
          await t.test(`${r.name}: stacked, refused by tandem`, () => {
            assert.throws(
              () => assertRunnable(r),
              (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_UNSUPPORTED',
            );
          });
          continue;
        }
        for (const node of nodesOf(cfg)) {
          if (!hostFor(r, node)) continue;
          await t.test(`${r.name} on ${node.name}`, (tt) => {
            const run = runDrbdadm(variant, ['-c', path, '-d', 'up', r.name], node.name, node.addresses);
            const d = new Differences();
            if (run.rc !== 0) {
              d.fail(
                `drbdadm ${variant} rejects ${file} on node ${node.name} (rc ${run.rc}) but tandem accepts it: ${brief(run.stderr)}`,
              );
            } else {
              compareUp(d, variant, cfg, decl, r, node, run);
            }
            d.report(tt);
          });
        }
      }
    });
  }
}

function expectRejected(file: string): ConfigError {
  try {
    loadResolvedConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  assert.fail(`tandem accepts ${file}`);
}

for (const file of ['unclosed-brace.res', 'include-missing-close.conf']) {
  test(`differential: at least as strict: tandem rejects ${file} (an unclosed brace at end of file)`, () => {
    const e = expectRejected(join(invalidDir, file));
    assert.equal(e.code, 'CONFIG_SYNTAX', e.message);
    assert.ok(e.pos && e.pos.line > 0 && e.pos.col > 0, `no position in: ${e.message}`);
    assert.match(e.detail, /never closed|end of file/, e.message);
  });

  test(`differential: at least as strict: drbdadm-84 accepts ${file} (what tandem's check is for)`, (t) => {
    if (!toolsReady(t, '8.4')) return;
    const run = runDrbdadm(
      '8.4',
      ['-c', join(invalidDir, file), 'dump', 'all'],
      'tandem-difftest-nonode',
      [],
    );
    assert.equal(run.rc, 0, `drbdadm-84 now rejects ${file}: ${brief(run.stderr)}`);
  });
}

test('differential: every invalid fixture that drbdadm rejects, tandem rejects', async (t) => {
  if (!toolsReady(t, '9')) return;
  const files = readdirSync(invalidDir)
    .filter((f) => /\.(res|conf)$/.test(f))
    .sort();
  let n = 0;
  for (const f of files) {
    const path = join(invalidDir, f);
    const rejectedBy = (['8.4', '9'] as Variant[]).filter(
      (v) =>
        (v === '9' || drbdadm84) &&
        runDrbdadm(v, ['-c', path, 'dump', 'all'], 'tandem-difftest-nonode', []).rc !== 0,
    );
    if (rejectedBy.length === 0) continue;
    n++;
    await t.test(`${f} (drbdadm ${rejectedBy.join(', ')} rejects it)`, () => {
      expectRejected(path);
    });
  }
  t.diagnostic(`${n} files rejected by drbdadm`);
  totalComparisons += n;
});

test('differential: total', (t) => {
  t.diagnostic(`${totalComparisons} comparisons in all`);
});
