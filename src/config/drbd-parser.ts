// Gives DRBD's keywords their meaning: turns the statement tree of drbd-syntax.ts
// into the declared model of drbd-model.ts, checking every keyword and value.
// Pure: includes are expanded by drbd-load.ts before this runs.
import { isIPv4, isIPv6 } from 'node:net';
import type {
  Address,
  AddressFamily,
  DeviceDecl,
  DrbdConfig,
  HostDecl,
  MetaDisk,
  OptionEntry,
  ResourceDecl,
  VolumeDecl,
} from './drbd-model.js';
import {
  negativeFlags,
  type OptionSection,
  optionSpec,
  optionsOfSection,
  parseOptionValue,
  quoteList,
  syncerObsolete,
  syncerRenames,
} from './drbd-options.js';
import type { Statement } from './drbd-syntax.js';
import type { Token } from './drbd-tokens.js';
import { ConfigError, type ConfigWarning, type SourcePos } from './errors.js';

/** Largest minor number DRBD allows (MINORMASK of its kernel module). */
export const minorMax = 1048575;
/** Volume numbers DRBD 8.4 and 9 allow. */
export const volumeNumberMax = 65534;
/** DRBD 9 node ids. */
export const nodeIdMax = 31;

type MutableSections = Map<OptionSection, Map<string, OptionEntry>>;

interface VolumeBuilder {
  number: number;
  device: DeviceDecl | undefined;
  disk: { path: string; pos: SourcePos } | undefined;
  metaDisk: { value: MetaDisk; pos: SourcePos } | undefined;
  diskOptions: Map<string, OptionEntry>;
  pos: SourcePos;
}

const topKeywords = ['global', 'common', 'resource', 'skip'];
const sectionKeywords = ['disk', 'net', 'syncer', 'startup', 'handlers', 'options'];
const volumeKeywords = ['device', 'disk', 'meta-disk', 'flexible-meta-disk'];
const resourceKeywords = [
  'protocol',
  'on',
  'floating',
  'volume',
  'stacked-on-top-of',
  ...volumeKeywords,
  ...sectionKeywords,
  'connection-mesh',
  'skip',
];
const hostKeywords = ['address', 'node-id', 'volume', ...volumeKeywords, 'skip'];
const addressFamilies: readonly AddressFamily[] = ['ipv4', 'ipv6', 'ssocks', 'sdp'];

export function interpret(statements: readonly Statement[], files: readonly string[]): DrbdConfig {
  const warnings: ConfigWarning[] = [];
  const warn = (code: ConfigWarning['code'], message: string, pos: SourcePos) =>
    warnings.push({ code, message, pos });

  const global = new Map<string, OptionEntry>();
  const common: MutableSections = new Map();
  const resources: ResourceDecl[] = [];
  let seenGlobal: Token | undefined;
  let seenCommon: Token | undefined;

  for (const st of statements) {
    const kw = st.keyword;
    switch (kw.text) {
      case 'skip':
        // drbd.conf(5): "skip { ... }" comments out what it encloses.
        requireBlock(st);
        break;
      case 'global':
        requireBlock(st);
        noArgs(st);
        if (seenGlobal) throw duplicate(kw, seenGlobal.pos);
        seenGlobal = kw;
        readOptionSection(st, 'global', global, warn);
        break;
      case 'common':
        requireBlock(st);
        noArgs(st);
        if (seenCommon) throw duplicate(kw, seenCommon.pos);
        seenCommon = kw;
        readCommon(st, common, warn);
        break;
      case 'resource':
        resources.push(readResource(st, warn));
        break;
      default:
        throw unknownKeyword(kw, topKeywords, 'at top level');
    }
  }

  const byName = new Map<string, ResourceDecl>();
  for (const r of resources) {
    const prev = byName.get(r.name);
    if (prev) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `resource '${r.name}' is defined twice (first at ${prev.pos.file}:${prev.pos.line}:${prev.pos.col})`,
        r.pos,
      );
    }
    byName.set(r.name, r);
  }
  return { files, global, common, resources, warnings };
}

function readCommon(st: Statement, common: MutableSections, warn: Warn): void {
  for (const s of st.block ?? []) {
    const kw = s.keyword;
    if (kw.text === 'skip') {
      requireBlock(s);
      continue;
    }
    if (kw.text === 'protocol') {
      setProtocol(s, common, warn);
      continue;
    }
    if (sectionKeywords.includes(kw.text) && s.block) {
      readSection(s, common, warn);
      continue;
    }
    throw unknownKeyword(kw, [...sectionKeywords, 'protocol', 'skip'], "in 'common'");
  }
}

type Warn = (code: ConfigWarning['code'], message: string, pos: SourcePos) => void;

function readResource(st: Statement, warn: Warn): ResourceDecl {
  requireBlock(st);
  const nameTok = st.args[0];
  if (!nameTok || st.args.length !== 1) {
    const at = st.args[1]?.pos ?? st.keyword.pos;
    throw new ConfigError('CONFIG_SYNTAX', `'resource' takes one name, then '{'`, at);
  }
  checkName(nameTok, 'resource name');
  const sections: MutableSections = new Map();
  const volumes = new Map<number, VolumeBuilder>();
  const hosts: HostDecl[] = [];
  let stackedOn: ResourceDecl['stackedOn'];

  for (const s of st.block ?? []) {
    const kw = s.keyword;
    switch (kw.text) {
      case 'skip':
        requireBlock(s);
        break;
      case 'protocol':
        setProtocol(s, sections, warn);
        break;
      case 'on':
        hosts.push(readHost(s, false, warn));
        break;
      case 'floating':
        hosts.push(readHost(s, true, warn));
        break;
      case 'stacked-on-top-of': {
        requireBlock(s);
        const lower = s.args[0];
        if (!lower || s.args.length !== 1) {
          throw new ConfigError('CONFIG_SYNTAX', `'stacked-on-top-of' takes one resource name`, kw.pos);
        }
        stackedOn = { resource: lower.text, pos: kw.pos };
        hosts.push(readHost({ keyword: kw, args: [lower], block: s.block }, false, warn));
        break;
      }
      case 'volume':
        readVolume(s, volumes, warn);
        break;
      case 'connection-mesh':
        readConnectionMesh(s, sections, warn);
        break;
      case 'disk':
        if (s.block) readSection(s, sections, warn);
        else readVolumeStatement(s, implicitVolume(volumes, kw.pos));
        break;
      case 'device':
      case 'meta-disk':
      case 'flexible-meta-disk':
        readVolumeStatement(s, implicitVolume(volumes, kw.pos));
        break;
      default:
        if (sectionKeywords.includes(kw.text) && s.block) {
          readSection(s, sections, warn);
          break;
        }
        if (kw.text === 'connection') {
          throw new ConfigError(
            'CONFIG_UNSUPPORTED',
            "'connection' sections are not supported: tandem mirrors between two hosts; give each 'on' section its 'address'",
            kw.pos,
          );
        }
        throw unknownKeyword(kw, resourceKeywords, `in resource '${nameTok.text}'`);
    }
  }
  return {
    name: nameTok.text,
    pos: nameTok.pos,
    hosts,
    volumes: freezeVolumes(volumes),
    sections,
    stackedOn,
  };
}

function readHost(st: Statement, floating: boolean, warn: Warn): HostDecl {
  // `floating ADDR;` may stand without a section: everything else is inherited.
  if (!floating) requireBlock(st);
  const kw = st.keyword;
  let names: string[];
  let address: Address | undefined;
  if (floating) {
    address = parseAddress(st.args, kw);
    warnFamily(address, warn);
    names = [
      address.family === 'ipv6' ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`,
    ];
  } else {
    if (st.args.length === 0)
      throw new ConfigError('CONFIG_SYNTAX', `'${kw.text}' needs a host name`, kw.pos);
    for (const a of st.args) checkName(a, 'host name');
    names = st.args.map((a) => a.text);
  }
  const volumes = new Map<number, VolumeBuilder>();
  let nodeId: number | undefined;
  let nodeIdPos: SourcePos | undefined;
  let addressPos: SourcePos | undefined;
  for (const s of st.block ?? []) {
    const k = s.keyword;
    switch (k.text) {
      case 'skip':
        requireBlock(s);
        break;
      case 'address':
        noBlock(s);
        if (floating)
          throw unknownKeyword(
            k,
            hostKeywords.filter((h) => h !== 'address'),
            "in 'floating'",
          );
        if (addressPos) throw duplicate(k, addressPos);
        addressPos = k.pos;
        address = parseAddress(s.args, k);
        warnFamily(address, warn);
        break;
      case 'node-id': {
        noBlock(s);
        if (nodeIdPos) throw duplicate(k, nodeIdPos);
        nodeIdPos = k.pos;
        nodeId = parseInteger(oneArg(s), 0, nodeIdMax, "'node-id'");
        break;
      }
      case 'volume':
        readVolume(s, volumes, warn);
        break;
      case 'device':
      case 'disk':
      case 'meta-disk':
      case 'flexible-meta-disk':
        if (s.block)
          throw unknownKeyword(
            k,
            hostKeywords,
            `in '${kw.text} ${names.join(' ')}' (option sections belong to the resource)`,
          );
        readVolumeStatement(s, implicitVolume(volumes, k.pos));
        break;
      default:
        throw unknownKeyword(k, hostKeywords, `in '${kw.text} ${names.join(' ')}'`);
    }
  }
  return {
    names,
    floating,
    address,
    nodeId,
    volumes: freezeVolumes(volumes),
    pos: st.args[0]?.pos ?? kw.pos,
  };
}

// DRBD can run over SDP (InfiniBand) and SuperSockets; tandem speaks TCP only.
function warnFamily(a: Address, warn: Warn): void {
  if (a.family === 'sdp' || a.family === 'ssocks') {
    warn(
      'NOT_IMPLEMENTED',
      `address family '${a.family}' is not supported: tandem connects over TCP to ${a.host}:${a.port}`,
      a.pos,
    );
  }
}

function readConnectionMesh(st: Statement, sections: MutableSections, warn: Warn): void {
  requireBlock(st);
  for (const s of st.block ?? []) {
    if (s.keyword.text === 'hosts') {
      noBlock(s);
      continue;
    }
    if (s.keyword.text === 'net' && s.block) {
      readSection(s, sections, warn);
      continue;
    }
    throw unknownKeyword(s.keyword, ['hosts', 'net'], "in 'connection-mesh'");
  }
}

function implicitVolume(volumes: Map<number, VolumeBuilder>, pos: SourcePos): VolumeBuilder {
  return getOrMakeVolume(volumes, 0, pos);
}

function readVolume(st: Statement, volumes: Map<number, VolumeBuilder>, warn: Warn): void {
  requireBlock(st);
  const numTok = st.args[0];
  if (!numTok || st.args.length !== 1) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      "'volume' takes one number, then '{'",
      st.args[1]?.pos ?? st.keyword.pos,
    );
  }
  const number = parseInteger(numTok, 0, volumeNumberMax, 'volume number');
  // `volume 0 { }` and volume-0 statements outside any volume name the same volume.
  const vol = getOrMakeVolume(volumes, number, numTok.pos);
  for (const s of st.block ?? []) {
    const k = s.keyword;
    if (k.text === 'skip') {
      requireBlock(s);
      continue;
    }
    if (k.text === 'disk' && s.block) {
      const tmp: MutableSections = new Map([['disk', vol.diskOptions]]);
      readSection(s, tmp, warn, ['disk']);
      continue;
    }
    if (volumeKeywords.includes(k.text)) {
      readVolumeStatement(s, vol);
      continue;
    }
    throw unknownKeyword(k, [...volumeKeywords, 'skip'], `in 'volume ${number}'`);
  }
}

function getOrMakeVolume(volumes: Map<number, VolumeBuilder>, number: number, pos: SourcePos): VolumeBuilder {
  let v = volumes.get(number);
  if (!v) {
    v = { number, device: undefined, disk: undefined, metaDisk: undefined, diskOptions: new Map(), pos };
    volumes.set(number, v);
  }
  return v;
}

function freezeVolumes(volumes: Map<number, VolumeBuilder>): ReadonlyMap<number, VolumeDecl> {
  return new Map([...volumes.entries()].sort((a, b) => a[0] - b[0]));
}

function readVolumeStatement(st: Statement, vol: VolumeBuilder): void {
  noBlock(st);
  const kw = st.keyword;
  switch (kw.text) {
    case 'device':
      if (vol.device) throw duplicate(kw, vol.device.pos);
      vol.device = parseDevice(st);
      return;
    case 'disk': {
      if (vol.disk) throw duplicate(kw, vol.disk.pos);
      const arg = oneArg(st);
      if (arg.text !== 'none' && !arg.text.startsWith('/')) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `'disk' expects an absolute path or 'none' but got '${arg.text}'`,
          arg.pos,
        );
      }
      vol.disk = { path: arg.text, pos: kw.pos };
      return;
    }
    case 'meta-disk':
    case 'flexible-meta-disk':
      if (vol.metaDisk) throw duplicate(kw, vol.metaDisk.pos);
      vol.metaDisk = { value: parseMetaDisk(st), pos: kw.pos };
      return;
    default:
      throw new Error(`unreachable volume keyword ${kw.text}`);
  }
}

function parseDevice(st: Statement): DeviceDecl {
  const args = st.args;
  let path: string | undefined;
  let minor: number | undefined;
  let i = 0;
  const first = args[0];
  if (first && first.text !== 'minor') {
    if (!first.text.startsWith('/')) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `'device' expects a path like /dev/drbd1 or 'minor N' but got '${first.text}'`,
        first.pos,
      );
    }
    path = first.text;
    i = 1;
  }
  const m = args[i];
  if (m) {
    if (m.text !== 'minor') {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected 'minor' or ';' after '${path}' but got '${m.text}'`,
        m.pos,
      );
    }
    const n = args[i + 1];
    if (!n) throw new ConfigError('CONFIG_SYNTAX', "'minor' needs a number", m.pos);
    minor = parseInteger(n, 0, minorMax, 'minor');
    const extra = args[i + 2];
    if (extra)
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected ';' after 'minor ${n.text}' but got '${extra.text}'`,
        extra.pos,
      );
  }
  if (path === undefined && minor === undefined) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      "'device' needs a path like /dev/drbd1, 'minor N', or both",
      st.keyword.pos,
    );
  }
  if (minor === undefined) {
    // drbd.conf(5): without `minor`, the device must be named /dev/drbdN.
    const m2 = /^\/dev\/drbd(\d+)$/.exec(path as string);
    if (!m2) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `device '${path}' does not end in a minor number (/dev/drbdN): add 'minor N'`,
        args[0]?.pos ?? st.keyword.pos,
      );
    }
    minor = parseInteger(
      { kind: 'word', text: m2[1] as string, pos: args[0]?.pos ?? st.keyword.pos },
      0,
      minorMax,
      'minor',
    );
  }
  return { path: path ?? `/dev/drbd${minor}`, minor, pos: st.keyword.pos };
}

function parseMetaDisk(st: Statement): MetaDisk {
  const args = st.args;
  const first = args[0];
  if (!first)
    throw new ConfigError('CONFIG_SYNTAX', `'${st.keyword.text}' needs 'internal' or a path`, st.keyword.pos);
  if (first.text === 'internal') {
    if (args[1])
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected ';' after 'internal' but got '${args[1].text}'`,
        args[1].pos,
      );
    return { kind: 'internal' };
  }
  if (!first.text.startsWith('/')) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `'${st.keyword.text}' expects 'internal' or an absolute path but got '${first.text}'`,
      first.pos,
    );
  }
  const idx = args[1];
  if (!idx) return { kind: 'external', path: first.text, index: undefined };
  if (st.keyword.text === 'flexible-meta-disk') {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected ';' after '${first.text}' but got '${idx.text}'`,
      idx.pos,
    );
  }
  const m = /^\[(\d+)\]$/.exec(idx.text);
  if (!m)
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected '[INDEX]' or ';' after '${first.text}' but got '${idx.text}'`,
      idx.pos,
    );
  if (args[2])
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected ';' after '${idx.text}' but got '${args[2].text}'`,
      args[2].pos,
    );
  const index = parseInteger({ kind: 'word', text: m[1] as string, pos: idx.pos }, 0, 255, 'meta-disk index');
  return { kind: 'external', path: first.text, index };
}

/** `address [ipv4|ipv6|ssocks|sdp] ADDR:PORT`, IPv6 in brackets. */
export function parseAddress(args: readonly Token[], kw: Token): Address {
  let i = 0;
  let family: AddressFamily | undefined;
  const a0 = args[0];
  if (a0 && (addressFamilies as readonly string[]).includes(a0.text)) {
    family = a0.text as AddressFamily;
    i = 1;
  }
  const a = args[i];
  if (!a) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `'${kw.text}' needs an address like 10.0.0.1:7789 or ipv6 [fd00::1]:7789`,
      kw.pos,
    );
  }
  if (args[i + 1]) {
    const extra = args[i + 1] as Token;
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected ';' after '${a.text}' but got '${extra.text}'`,
      extra.pos,
    );
  }
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(a.text);
  const plain = /^([^:[\]]*):([^:]*)$/.exec(a.text);
  const m = bracketed ?? plain;
  if (!m) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected an address ADDR:PORT (IPv6 as [ADDR]:PORT) but got '${a.text}'`,
      a.pos,
    );
  }
  const host = m[1] as string;
  const port = parseInteger(
    { kind: 'word', text: m[2] as string, pos: a.pos },
    1,
    65535,
    `port in '${a.text}'`,
  );
  if (bracketed) {
    if (!isIPv6(host))
      throw new ConfigError('CONFIG_VALUE', `'${host}' is not an IPv6 address (in '${a.text}')`, a.pos);
    if (family !== undefined && family !== 'ipv6') {
      throw new ConfigError('CONFIG_VALUE', `a bracketed IPv6 address needs 'ipv6', not '${family}'`, a.pos);
    }
    return { family: 'ipv6', host, port, pos: a.pos };
  }
  if (family === 'ipv6')
    throw new ConfigError(
      'CONFIG_VALUE',
      `an IPv6 address goes in brackets: ipv6 [ADDR]:PORT, got '${a.text}'`,
      a.pos,
    );
  if (!isIPv4(host))
    throw new ConfigError('CONFIG_VALUE', `'${host}' is not an IPv4 address (in '${a.text}')`, a.pos);
  return { family: family ?? 'ipv4', host, port, pos: a.pos };
}

function setProtocol(st: Statement, sections: MutableSections, warn: Warn): void {
  // `protocol X;` outside `net` is 8.3/8.4 style; it is the same option.
  readSection({ keyword: { ...st.keyword, text: 'net' }, args: [], block: [st] }, sections, warn, ['net']);
}

/** Reads one `disk|net|syncer|startup|handlers|options { }` section into `sections`. */
function readSection(
  st: Statement,
  sections: MutableSections,
  warn: Warn,
  only?: readonly OptionSection[],
): void {
  noArgs(st);
  const name = st.keyword.text;
  const syncer = name === 'syncer';
  if (syncer) {
    warn(
      'DEPRECATED',
      "the 'syncer' section is obsolete since DRBD 8.4; its options now live in 'disk' and 'net'",
      st.keyword.pos,
    );
  }
  const section = (syncer ? undefined : name) as OptionSection | undefined;
  for (const s of st.block ?? []) {
    const kw = s.keyword;
    if (kw.text === 'skip') {
      requireBlock(s);
      continue;
    }
    noBlock(s);
    let optName = kw.text;
    let args = s.args;
    const negated = negativeFlags.get(optName);
    if (negated && section !== 'handlers') {
      if (args.length) throw new ConfigError('CONFIG_VALUE', `'${optName}' takes no value`, args[0]?.pos);
      warn('DEPRECATED', `'${optName}' is DRBD 8.3 syntax for '${negated} no'`, kw.pos);
      optName = negated;
      args = [{ kind: 'word', text: 'no', pos: kw.pos }];
    }
    if (syncer) {
      if (syncerObsolete.has(optName)) {
        warn('NOT_IMPLEMENTED', `'${optName}' was dropped in DRBD 8.4 and is ignored`, kw.pos);
        continue;
      }
      const renamed = syncerRenames.get(optName);
      if (renamed) {
        warn('DEPRECATED', `syncer '${optName}' is now '${renamed}'`, kw.pos);
        optName = renamed;
      }
    }
    const spec = optionSpec(optName);
    const allowed = only ?? (section ? [section] : ['disk', 'net', 'options']);
    if (!spec?.sections.some((sec) => (allowed as readonly string[]).includes(sec))) {
      const choices = [...new Set(allowed.flatMap((sec) => optionsOfSection(sec).map((o) => o.name)))];
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `unknown option '${kw.text}' in '${name}'${didYouMean(kw.text, choices)}: expected one of ${quoteList(choices)}`,
        kw.pos,
      );
    }
    const value = parseOptionValue(spec, args, kw.pos);
    // Keep it where DRBD 8.4 keeps it, whichever section (8.4's or 9's) it was written in.
    const home = spec.section;
    let map = sections.get(home);
    if (!map) {
      map = new Map();
      sections.set(home, map);
    }
    const prev = map.get(spec.name);
    if (prev) throw duplicate(kw, prev.pos, spec.name);
    map.set(spec.name, { spec, value, text: args.map((a) => a.text).join(' '), pos: kw.pos });
    // tandem never reports usage anywhere: `usage-count no` asks for exactly that.
    const alreadyTrue = spec.name === 'usage-count' && value === 'no';
    if (!spec.implemented && !alreadyTrue) {
      warn(
        'NOT_IMPLEMENTED',
        `option '${spec.name}' is parsed but not implemented by tandem; it has no effect`,
        kw.pos,
      );
    }
  }
}

function readOptionSection(
  st: Statement,
  section: OptionSection,
  into: Map<string, OptionEntry>,
  warn: Warn,
): void {
  const tmp: MutableSections = new Map([[section, into]]);
  readSection({ ...st, keyword: { ...st.keyword, text: section } }, tmp, warn, [section]);
}

function parseInteger(t: Token, min: number, max: number, what: string): number {
  if (!/^\d{1,10}$/.test(t.text))
    throw new ConfigError('CONFIG_VALUE', `${what} expects a number but got '${t.text}'`, t.pos);
  const n = Number(t.text);
  if (n < min || n > max)
    throw new ConfigError('CONFIG_VALUE', `${what} ${n} is out of range: expected ${min} ... ${max}`, t.pos);
  return n;
}

function checkName(t: Token, what: string): void {
  if (t.kind !== 'word' || !/^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$/.test(t.text)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `invalid ${what} '${t.text}': use letters, digits, '.', '_', '-'`,
      t.pos,
    );
  }
}

function oneArg(st: Statement): Token {
  const a = st.args[0];
  if (!a) throw new ConfigError('CONFIG_SYNTAX', `'${st.keyword.text}' needs a value`, st.keyword.pos);
  const extra = st.args[1];
  if (extra)
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected ';' after '${st.keyword.text} ${a.text}' but got '${extra.text}'`,
      extra.pos,
    );
  return a;
}

function requireBlock(st: Statement): void {
  if (!st.block)
    throw new ConfigError('CONFIG_SYNTAX', `'${st.keyword.text}' must be followed by '{'`, st.keyword.pos);
}

function noBlock(st: Statement): void {
  if (st.block)
    throw new ConfigError('CONFIG_SYNTAX', `'${st.keyword.text}' takes no '{ }' section`, st.keyword.pos);
}

function noArgs(st: Statement): void {
  const a = st.args[0];
  if (a)
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected '{' after '${st.keyword.text}' but got '${a.text}'`,
      a.pos,
    );
}

function duplicate(kw: Token, first: SourcePos, name = kw.text): ConfigError {
  return new ConfigError(
    'CONFIG_SEMANTIC',
    `'${name}' is set twice (first at line ${first.line}:${first.col})`,
    kw.pos,
  );
}

function unknownKeyword(kw: Token, expected: readonly string[], where: string): ConfigError {
  const choices = [...new Set(expected)];
  return new ConfigError(
    'CONFIG_SYNTAX',
    `expected one of ${quoteList(choices)} ${where}, but got '${kw.text}'${didYouMean(kw.text, choices)}`,
    kw.pos,
  );
}

/** A hint for a misspelt keyword: the closest known one within a few edits. */
export function didYouMean(word: string, choices: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of choices) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best !== undefined) return ` (did you mean '${best}'?)`;
  // A lost space, as in the seed's `meta-diskinternal;` or `address172.25.137.6:7789`.
  for (const c of choices) {
    const rest = word.slice(c.length);
    if (c.length >= 4 && word.startsWith(c) && (/^[^A-Za-z]/.test(rest) || gluedWords.has(rest))) {
      return ` (did you mean '${c} ${rest}'?)`;
    }
  }
  return '';
}

const gluedWords = new Set(['internal', 'none', 'minor', 'yes', 'no', 'ipv4', 'ipv6']);

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}
