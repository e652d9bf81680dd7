// Combines what the files declare into what holds for each resource: `common`
// under the resource's own sections, resource-level volumes under each host's,
// and the checks that need the whole picture (two hosts, unique ports and minors).
import type {
  DrbdConfig,
  HostDecl,
  OptionEntry,
  OptionMap,
  ResolvedConfig,
  ResolvedHost,
  ResolvedResource,
  ResolvedVolume,
  ResourceDecl,
  SectionMaps,
  VolumeDecl,
} from './drbd-model.js';
import type { OptionSection } from './drbd-options.js';
import { ConfigError, formatPos, type SourcePos } from './errors.js';

const sectionOrder: readonly OptionSection[] = ['disk', 'net', 'startup', 'handlers', 'options'];

export function resolveConfig(cfg: DrbdConfig): ResolvedConfig {
  const resources = cfg.resources.map((r) => resolveResource(r, cfg.common));
  checkAcrossResources(resources);
  checkResyncAfter(resources);
  return { files: cfg.files, global: cfg.global, resources, warnings: cfg.warnings };
}

function overlay(...maps: (OptionMap | undefined)[]): Map<string, OptionEntry> {
  const out = new Map<string, OptionEntry>();
  for (const m of maps) for (const [k, v] of m ?? []) out.set(k, v);
  return out;
}

function resolveResource(r: ResourceDecl, common: SectionMaps): ResolvedResource {
  const sections = new Map<OptionSection, OptionMap>();
  for (const s of sectionOrder) {
    const merged = overlay(common.get(s), r.sections.get(s));
    if (merged.size > 0) sections.set(s, merged);
  }
  const protocolEntry = sections.get('net')?.get('protocol');
  const protocol = (protocolEntry?.value ?? 'C') as 'A' | 'B' | 'C';

  const stacked = r.stackedOn !== undefined;
  if (!stacked) {
    if (r.hosts.length < 2) {
      const names = r.hosts.map((h) => h.names.join(' ')).join(', ') || 'none';
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `resource '${r.name}' has ${r.hosts.length} host (${names}); tandem mirrors between two: add a second 'on' section`,
        r.pos,
      );
    }
    if (r.hosts.length > 2) {
      throw new ConfigError(
        'CONFIG_UNSUPPORTED',
        `resource '${r.name}' has ${r.hosts.length} hosts; tandem mirrors between exactly two`,
        (r.hosts[2] as HostDecl).pos,
      );
    }
  }
  const hosts = r.hosts.map((h) => resolveHost(r, h, stacked));
  checkHostPair(r, hosts);
  return { name: r.name, pos: r.pos, hosts, sections, protocol, stackedOn: r.stackedOn?.resource };
}

function resolveHost(r: ResourceDecl, h: HostDecl, stacked: boolean): ResolvedHost {
  const label = `${h.floating ? 'floating' : stacked && h === r.hosts.find((x) => x.names[0] === r.stackedOn?.resource) ? 'stacked-on-top-of' : 'on'} ${h.names.join(' ')}`;
  if (!h.address) {
    throw new ConfigError('CONFIG_SEMANTIC', `'${label}' in resource '${r.name}' has no 'address'`, h.pos);
  }
  const numbers = [...new Set([...r.volumes.keys(), ...h.volumes.keys()])].sort((a, b) => a - b);
  if (numbers.length === 0) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `'${label}' in resource '${r.name}' has no 'device', 'disk' or 'meta-disk' (set them in 'on' or at resource level)`,
      h.pos,
    );
  }
  const volumes: ResolvedVolume[] = [];
  for (const n of numbers) {
    const own = h.volumes.get(n);
    const inherited = r.volumes.get(n);
    const pick = <K extends 'device' | 'disk' | 'metaDisk'>(k: K): VolumeDecl[K] =>
      own?.[k] ?? inherited?.[k];
    const device = pick('device');
    const disk = pick('disk');
    const metaDisk = pick('metaDisk');
    const missing = (what: string) =>
      new ConfigError(
        'CONFIG_SEMANTIC',
        `'${label}' in resource '${r.name}' has no '${what}' for volume ${n} (set it in 'on' or at resource level)`,
        h.pos,
      );
    if (!device) throw missing('device');
    if (!disk && !stacked) throw missing('disk');
    if (!metaDisk && disk?.path !== 'none' && !stacked) throw missing('meta-disk');
    volumes.push({
      number: n,
      device,
      disk: disk?.path ?? 'none',
      metaDisk: metaDisk?.value ?? { kind: 'internal' },
      diskOptions: overlay(inherited?.diskOptions, own?.diskOptions),
    });
  }
  return { names: h.names, floating: h.floating, address: h.address, nodeId: h.nodeId, volumes, pos: h.pos };
}

function checkHostPair(r: ResourceDecl, hosts: readonly ResolvedHost[]): void {
  const seenNames = new Map<string, SourcePos>();
  const seenAddr = new Map<string, SourcePos>();
  const seenIds = new Map<number, SourcePos>();
  for (const h of hosts) {
    for (const n of h.names) {
      const prev = seenNames.get(n);
      if (prev)
        throw new ConfigError(
          'CONFIG_SEMANTIC',
          `host '${n}' appears twice in resource '${r.name}' (first at ${formatPos(prev)})`,
          h.pos,
        );
      seenNames.set(n, h.pos);
    }
    const key = addressKey(h.address);
    const prevAddr = seenAddr.get(key);
    if (prevAddr) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `address ${key} is used twice in resource '${r.name}' (first at ${formatPos(prevAddr)})`,
        h.address.pos,
      );
    }
    seenAddr.set(key, h.address.pos);
    if (h.nodeId !== undefined) {
      const prevId = seenIds.get(h.nodeId);
      if (prevId)
        throw new ConfigError(
          'CONFIG_SEMANTIC',
          `node-id ${h.nodeId} is used twice in resource '${r.name}' (first at ${formatPos(prevId)})`,
          h.pos,
        );
      seenIds.set(h.nodeId, h.pos);
    }
  }
  const [a, b] = hosts;
  if (a && b) {
    const va = a.volumes.map((v) => v.number).join(',');
    const vb = b.volumes.map((v) => v.number).join(',');
    if (va !== vb) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `hosts of resource '${r.name}' have different volumes: '${a.names[0]}' has ${va}, '${b.names[0]}' has ${vb}`,
        b.pos,
      );
    }
  }
}

export function addressKey(a: { family: string; host: string; port: number }): string {
  return a.family === 'ipv6' ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

// Two resources on one host must not share a port, a minor or a device path:
// drbdadm refuses that too, and at run time the second one could not start.
function checkAcrossResources(resources: readonly ResolvedResource[]): void {
  const used = new Map<string, { resource: string; pos: SourcePos }>();
  const claim = (key: string, what: string, resource: string, pos: SourcePos) => {
    const prev = used.get(key);
    if (prev && prev.resource !== resource) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `${what} is used by resource '${prev.resource}' (${formatPos(prev.pos)}) and resource '${resource}'`,
        pos,
      );
    }
    if (!prev) used.set(key, { resource, pos });
  };
  for (const r of resources) {
    for (const h of r.hosts) {
      for (const name of h.names) {
        claim(
          `addr|${name}|${addressKey(h.address)}`,
          `address ${addressKey(h.address)} on host '${name}'`,
          r.name,
          h.address.pos,
        );
        for (const v of h.volumes) {
          claim(
            `minor|${name}|${v.device.minor}`,
            `minor ${v.device.minor} on host '${name}'`,
            r.name,
            v.device.pos,
          );
          claim(
            `dev|${name}|${v.device.path}`,
            `device ${v.device.path} on host '${name}'`,
            r.name,
            v.device.pos,
          );
        }
      }
    }
  }
}

// `resync-after RES[/VOL]`: RES must exist, and name a volume when it has
// several (drbdadm: "ambiguous, since it contains 2 volumes").
function checkResyncAfter(resources: readonly ResolvedResource[]): void {
  const byName = new Map(resources.map((r) => [r.name, r]));
  for (const r of resources) {
    const e = r.sections.get('disk')?.get('resync-after');
    if (!e) continue;
    const [target = '', volText] = String(e.value).split('/');
    if (target === r.name)
      throw new ConfigError('CONFIG_SEMANTIC', `resource '${r.name}' cannot resync after itself`, e.pos);
    const t = byName.get(target);
    if (!t)
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `'resync-after' names resource '${target}', which is not defined`,
        e.pos,
      );
    const volumes = t.hosts[0]?.volumes.map((v) => v.number) ?? [];
    if (volText === undefined) {
      if (volumes.length > 1) {
        throw new ConfigError(
          'CONFIG_SEMANTIC',
          `'resync-after ${target}' is ambiguous: '${target}' has ${volumes.length} volumes; write '${target}/VOLUME'`,
          e.pos,
        );
      }
    } else if (!/^\d+$/.test(volText) || !volumes.includes(Number(volText))) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `'resync-after' names volume '${volText}' of '${target}', which has volumes ${volumes.join(', ')}`,
        e.pos,
      );
    }
  }
}

/** The names a node may go by: `--node`, then TANDEM_NODE, then the host name (uname -n). */
export function hostMatches(h: ResolvedHost, node: string, localAddresses: readonly string[] = []): boolean {
  if (h.floating) return localAddresses.includes(h.address.host) || h.names.includes(node);
  return h.names.includes(node);
}

/** This node's host section in `r`, or a ConfigError naming the hosts there are. */
export function localHost(
  r: ResolvedResource,
  node: string,
  localAddresses: readonly string[] = [],
): ResolvedHost {
  const h = r.hosts.find((x) => hostMatches(x, node, localAddresses));
  if (h) return h;
  const names = r.hosts.map((x) => x.names.join(' ')).join(', ');
  throw new ConfigError(
    'CONFIG_SEMANTIC',
    `resource '${r.name}' has no 'on' section for this node '${node}' (its hosts: ${names}); pass --node NAME or set TANDEM_NODE`,
    r.pos,
  );
}

/** The other host of a two-host resource. */
export function peerHost(r: ResolvedResource, local: ResolvedHost): ResolvedHost {
  const p = r.hosts.find((h) => h !== local);
  if (!p) throw new Error(`resource ${r.name} has no peer host`);
  return p;
}

/** Refuses what tandem parses but will not run. */
export function assertRunnable(r: ResolvedResource): void {
  if (r.stackedOn !== undefined) {
    throw new ConfigError(
      'CONFIG_UNSUPPORTED',
      `resource '${r.name}' is stacked on top of '${r.stackedOn}': tandem does not run stacked resources`,
      r.pos,
    );
  }
}

/** The value set for an option (after `common` inheritance), or undefined when it is left at its default. */
export function optionValue(
  r: ResolvedResource,
  section: OptionSection,
  name: string,
): OptionEntry['value'] | undefined {
  return r.sections.get(section)?.get(name)?.value;
}
