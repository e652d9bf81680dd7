// The vocabulary of DRBD's option sections (disk, net, options, startup, handlers,
// global) and how their values are read. The drbdsetup-backed part is generated
// (drbd-options.generated.ts); what drbdadm alone knows is written here.
import { isIPv4, isIPv6 } from 'node:net';
import { busyPollUsDefault } from '../util/busy-poll.js';
import { generatedOptions } from './drbd-options.generated.js';
import { ConfigError, type SourcePos } from './errors.js';

export type OptionSection = 'disk' | 'net' | 'options' | 'startup' | 'handlers' | 'global';

export interface GeneratedOption {
  readonly name: string;
  /** Where DRBD 8.4 keeps it (and where `tandemadm dump` prints it). */
  readonly section: 'disk' | 'net' | 'options';
  /** Every section DRBD 8.4 or 9 accepts it in. */
  readonly sections: readonly ('disk' | 'net' | 'options')[];
  readonly type: 'boolean' | 'numeric' | 'enum' | 'string';
  /** Enum values, or the symbols a numeric option also takes (`quorum majority`). */
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly default?: string;
  /** The unit a bare number is in: '1' as is, 'k' KiB, 's' 512-byte sectors. */
  readonly unitPrefix?: '1' | 'k' | 's';
  readonly unit?: string;
  readonly versions: readonly ('8.4' | '9')[];
}

export interface OptionSpec extends Omit<GeneratedOption, 'section' | 'sections' | 'type' | 'versions'> {
  readonly section: OptionSection;
  readonly sections: readonly OptionSection[];
  readonly type: GeneratedOption['type'] | 'flag' | 'hosts' | 'address';
  /** The DRBD versions that know it; 'tandem' for tandem's own extensions (drbdadm rejects those). */
  readonly versions: readonly ('8.4' | '9' | 'tandem')[];
  /** tandem acts on it; otherwise it is parsed, kept, and warned about. */
  readonly implemented: boolean;
}

// Options the design commits tandem to honour (shared/DESIGN.md). Everything else
// DRBD knows is parsed, shown by `dump`, and reported as not implemented.
const implemented = new Set([
  // net
  'protocol',
  'timeout',
  'connect-int',
  'ping-int',
  'ping-timeout',
  'ko-count',
  'max-buffers',
  'allow-two-primaries',
  'cram-hmac-alg',
  'shared-secret',
  'after-sb-0pri',
  'after-sb-1pri',
  'after-sb-2pri',
  'csums-alg',
  'verify-alg',
  'fencing',
  // disk
  'on-io-error',
  'resync-rate',
  'c-plan-ahead',
  'c-min-rate',
  'c-max-rate',
  'al-extents',
  'size',
  'disk-flushes',
  'md-flushes',
  // tandem's own
  'nbd-address',
  'metrics-address',
  'busy-poll',
  'tls',
  'tls-certificate',
  'tls-privkey',
  'tls-ca',
  // startup
  'wfc-timeout',
  'degr-wfc-timeout',
  // handlers
  'split-brain',
  'initial-split-brain',
  'pri-lost-after-sb',
  'fence-peer',
  'unfence-peer',
  'local-io-error',
]);

// drbdadm-only options: they never reach drbdsetup, so xml-help does not list them.
const handwritten: readonly Omit<OptionSpec, 'implemented'>[] = [
  // In drbd.conf `resync-after` names a resource (drbdadm turns it into a minor).
  { name: 'resync-after', section: 'disk', sections: ['disk'], type: 'string', versions: ['8.4', '9'] },
  {
    name: 'wfc-timeout',
    section: 'startup',
    sections: ['startup'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    default: '0',
    unitPrefix: '1',
    unit: 'seconds',
    versions: ['8.4', '9'],
  },
  {
    name: 'degr-wfc-timeout',
    section: 'startup',
    sections: ['startup'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    default: '60',
    unitPrefix: '1',
    unit: 'seconds',
    versions: ['8.4', '9'],
  },
  {
    name: 'outdated-wfc-timeout',
    section: 'startup',
    sections: ['startup'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    default: '0',
    unitPrefix: '1',
    unit: 'seconds',
    versions: ['8.4', '9'],
  },
  { name: 'wait-after-sb', section: 'startup', sections: ['startup'], type: 'flag', versions: ['8.4', '9'] },
  {
    name: 'stacked-timeouts',
    section: 'startup',
    sections: ['startup'],
    type: 'flag',
    versions: ['8.4', '9'],
  },
  {
    name: 'become-primary-on',
    section: 'startup',
    sections: ['startup'],
    type: 'hosts',
    versions: ['8.4', '9'],
  },
  // tandem extension: also serve the resource's NBD export on TCP (off unless set).
  { name: 'nbd-address', section: 'options', sections: ['options'], type: 'address', versions: ['tandem'] },
  // tandem extension: tandemd serves Prometheus metrics at http://ADDRESS/metrics (off unless set).
  { name: 'metrics-address', section: 'global', sections: ['global'], type: 'address', versions: ['tandem'] },
  // tandem extension: after bytes arrive, tandemd keeps polling for up to this many
  // microseconds before it sleeps (src/util/busy-poll.ts); 0 turns it off.
  {
    name: 'busy-poll',
    section: 'global',
    sections: ['global'],
    type: 'numeric',
    min: 0,
    max: 10000,
    default: String(busyPollUsDefault),
    unitPrefix: '1',
    unit: 'microseconds',
    versions: ['tandem'],
  },
  // tandem extensions, named as DRBD 9.2's: TLS on the replication link (mutual, with
  // node certificates signed by `tls-ca`, a tandem addition where DRBD uses a keyring).
  { name: 'tls', section: 'net', sections: ['net'], type: 'boolean', default: 'no', versions: ['tandem'] },
  { name: 'tls-certificate', section: 'net', sections: ['net'], type: 'string', versions: ['tandem'] },
  { name: 'tls-privkey', section: 'net', sections: ['net'], type: 'string', versions: ['tandem'] },
  { name: 'tls-ca', section: 'net', sections: ['net'], type: 'string', versions: ['tandem'] },
  {
    name: 'usage-count',
    section: 'global',
    sections: ['global'],
    type: 'enum',
    values: ['yes', 'no', 'ask'],
    versions: ['8.4', '9'],
  },
  {
    name: 'minor-count',
    section: 'global',
    sections: ['global'],
    type: 'numeric',
    min: 1,
    max: 1048576,
    unitPrefix: '1',
    versions: ['8.4', '9'],
  },
  {
    name: 'dialog-refresh',
    section: 'global',
    sections: ['global'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    unitPrefix: '1',
    unit: 'seconds',
    versions: ['8.4', '9'],
  },
  {
    name: 'disable-ip-verification',
    section: 'global',
    sections: ['global'],
    type: 'flag',
    versions: ['8.4', '9'],
  },
  {
    name: 'udev-always-use-vnr',
    section: 'global',
    sections: ['global'],
    type: 'flag',
    versions: ['8.4', '9'],
  },
  {
    name: 'cmd-timeout-short',
    section: 'global',
    sections: ['global'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    unitPrefix: '1',
    versions: ['8.4', '9'],
  },
  {
    name: 'cmd-timeout-medium',
    section: 'global',
    sections: ['global'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    unitPrefix: '1',
    versions: ['8.4', '9'],
  },
  {
    name: 'cmd-timeout-long',
    section: 'global',
    sections: ['global'],
    type: 'numeric',
    min: 0,
    max: 2147483647,
    unitPrefix: '1',
    versions: ['8.4', '9'],
  },
];

/** Handler names drbd.conf(5) documents; each takes one command string. */
export const handlerNames: readonly string[] = [
  'pri-on-incon-degr',
  'pri-lost-after-sb',
  'pri-lost',
  'fence-peer',
  'unfence-peer',
  'local-io-error',
  'initial-split-brain',
  'split-brain',
  'before-resync-target',
  'after-resync-target',
  'before-resync-source',
  'out-of-sync',
  'quorum-lost',
  'disconnected',
];

const specs = new Map<string, OptionSpec>();
for (const o of generatedOptions) specs.set(o.name, { ...o, implemented: implemented.has(o.name) });
for (const o of handwritten) specs.set(o.name, { ...o, implemented: implemented.has(o.name) });
for (const name of handlerNames) {
  specs.set(name, {
    name,
    section: 'handlers',
    sections: ['handlers'],
    type: 'string',
    versions: ['8.4', '9'],
    implemented: implemented.has(name),
  });
}

export function optionSpec(name: string): OptionSpec | undefined {
  return specs.get(name);
}

/** Every option accepted in `section`, in a stable order (for error messages). */
export function optionsOfSection(section: OptionSection): OptionSpec[] {
  return [...specs.values()]
    .filter((s) => s.sections.includes(section))
    .sort((a, b) => a.name.localeCompare(b.name));
}

// The 8.3 `syncer` section's options live elsewhere since 8.4 (drbd.conf(5), "syncer
// section ... obsolete"); `rate` and `after` were also renamed.
export const syncerRenames: ReadonlyMap<string, string> = new Map([
  ['rate', 'resync-rate'],
  ['after', 'resync-after'],
]);
/** 8.3 syncer options that 8.4 dropped; accepted and warned about. */
export const syncerObsolete: ReadonlySet<string> = new Set(['delay-probe-volume', 'delay-probe-interval']);

// 8.3 spelled some boolean options as negative flags (`no-disk-flushes;`).
export const negativeFlags: ReadonlyMap<string, string> = new Map([
  ['no-disk-barrier', 'disk-barrier'],
  ['no-disk-flushes', 'disk-flushes'],
  ['no-disk-drain', 'disk-drain'],
  ['no-md-flushes', 'md-flushes'],
  ['no-tcp-cork', 'tcp-cork'],
]);

export type OptionValue = boolean | number | string | readonly string[];

/**
 * Reads a number the way drbdadm does (drbd-utils m_strtoll): digits with an
 * optional K, M, G (powers of 1024) or s (512-byte sectors) suffix, then
 * expressed in the option's own unit ('k': KiB, 's': sectors, '1': as is).
 * Returns undefined for text that is not such a number.
 */
export function parseDrbdNumber(text: string, unitPrefix: '1' | 'k' | 's'): bigint | undefined {
  const m = /^(-?\d+)([kKmMgGs]?)$/.exec(text);
  if (!m) return undefined;
  const digits = m[1] as string;
  if (digits.length > 20) return undefined;
  let n = BigInt(digits);
  const suffix = (m[2] as string).toLowerCase();
  if (suffix === '') return n;
  const suffixShift = { k: 10n, m: 20n, g: 30n, s: 9n }[suffix] ?? 0n;
  const unitShift = { '1': 0n, k: 10n, s: 9n }[unitPrefix];
  n <<= suffixShift;
  return n >> unitShift;
}

/**
 * Checks and converts the words given to an option. Numbers come back in the
 * option's unit, booleans as true/false, enums and strings as written.
 */
export function parseOptionValue(
  spec: OptionSpec,
  args: readonly { text: string; pos: SourcePos }[],
  at: SourcePos,
): OptionValue {
  const name = spec.name;
  if (spec.type === 'flag') {
    if (args.length > 0) {
      throw new ConfigError(
        'CONFIG_VALUE',
        `'${name}' takes no value but got '${args[0]?.text}'`,
        args[0]?.pos,
      );
    }
    return true;
  }
  if (spec.type === 'hosts') {
    if (args.length === 0)
      throw new ConfigError('CONFIG_VALUE', `'${name}' needs one or more host names or 'both'`, at);
    return args.map((a) => a.text);
  }
  // DRBD accepts a boolean option without a value, meaning yes (drbd.conf(5)).
  if (spec.type === 'boolean' && args.length === 0) return true;
  if (args.length !== 1) {
    const where = args.length === 0 ? at : (args[1]?.pos ?? at);
    const got = args.length === 0 ? 'nothing' : `'${args[1]?.text}'`;
    throw new ConfigError('CONFIG_VALUE', `'${name}' takes one value but got ${got}`, where);
  }
  const arg = args[0] as { text: string; pos: SourcePos };
  const text = arg.text;
  switch (spec.type) {
    case 'boolean':
      if (text === 'yes') return true;
      if (text === 'no') return false;
      throw new ConfigError('CONFIG_VALUE', `'${name}' expects 'yes' or 'no' but got '${text}'`, arg.pos);
    case 'enum':
      if (spec.values?.includes(text)) return text;
      throw new ConfigError(
        'CONFIG_VALUE',
        `'${name}' expects one of ${quoteList(spec.values ?? [])} but got '${text}'`,
        arg.pos,
      );
    case 'string':
      if (text === '') throw new ConfigError('CONFIG_VALUE', `'${name}' needs a non-empty value`, arg.pos);
      return text;
    case 'address': {
      const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
      const host = m?.[1] ?? m?.[2] ?? '';
      const port = Number(m?.[3]);
      if (!m || !(m[1] ? isIPv6(host) : isIPv4(host)) || port < 1 || port > 65535) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `'${name}' expects ADDR:PORT (IPv6 as [ADDR]:PORT) but got '${text}'`,
          arg.pos,
        );
      }
      return text;
    }
    case 'numeric': {
      if (spec.values?.includes(text)) return text;
      const unit = spec.unitPrefix ?? '1';
      const n = parseDrbdNumber(text, unit);
      const unitHelp =
        unit === 'k' ? ' (KiB; suffixes K, M, G)' : unit === 's' ? ' (sectors; suffixes K, M, G)' : '';
      const symbols = spec.values?.length ? ` or one of ${quoteList(spec.values)}` : '';
      if (n === undefined) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `'${name}' expects a number${unitHelp}${symbols} but got '${text}'`,
          arg.pos,
        );
      }
      if (
        (spec.min !== undefined && n < BigInt(spec.min)) ||
        (spec.max !== undefined && n > BigInt(spec.max))
      ) {
        throw new ConfigError(
          'CONFIG_VALUE',
          `'${name}' ${text} is out of range: expected ${spec.min} ... ${spec.max}${spec.unit ? ` ${describeUnit(unit, spec.unit)}` : ''}`,
          arg.pos,
        );
      }
      return Number(n);
    }
    default:
      throw new Error(`unreachable option type ${spec.type}`);
  }
}

function describeUnit(prefix: '1' | 'k' | 's', unit: string): string {
  if (prefix === 'k') return `K${unit}`;
  if (prefix === 's') return `sectors`;
  return unit;
}

export function quoteList(items: readonly string[]): string {
  return items.map((s) => `'${s}'`).join(', ');
}

/** Splits an 'address'-typed option value (checked at parse time) into host and port. */
export function splitHostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(text.slice(i + 1)) };
}
