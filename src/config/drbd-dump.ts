// Renders a resolved configuration the way `drbdadm dump` (DRBD 8.4) lays it
// out, with `common` already folded into each resource, and as JSON.
import type {
  Address,
  MetaDisk,
  OptionEntry,
  OptionMap,
  ResolvedConfig,
  ResolvedHost,
  ResolvedResource,
} from './drbd-model.js';
import type { OptionSection } from './drbd-options.js';
import { addressKey } from './drbd-resolve.js';

const indent = '    ';
const sectionOrder: readonly OptionSection[] = ['net', 'disk', 'startup', 'handlers', 'options'];

function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

// drbdadm prints strings quoted and other values as written.
function renderValue(e: OptionEntry): string {
  if (e.spec.type === 'flag') return '';
  if (e.spec.type === 'boolean') return e.value === true ? 'yes' : 'no';
  if (e.spec.type === 'string') return quote(String(e.value));
  return e.text;
}

function line(depth: number, key: string, value: string): string {
  const pad = key.length < 16 ? ' '.repeat(17 - key.length) : ' ';
  return `${indent.repeat(depth)}${key}${value === '' ? '' : pad + value};`;
}

function renderOptions(depth: number, name: string, options: OptionMap): string[] {
  if (options.size === 0) return [];
  const out = [`${indent.repeat(depth)}${name} {`];
  for (const [key, e] of options) out.push(line(depth + 1, key, renderValue(e)));
  out.push(`${indent.repeat(depth)}}`);
  return out;
}

export function renderAddress(a: Address): string {
  return `${a.family} ${addressKey(a)}`;
}

export function renderMetaDisk(m: MetaDisk): string {
  if (m.kind === 'internal') return 'internal';
  return m.index === undefined ? m.path : `${m.path} [${m.index}]`;
}

function renderHost(h: ResolvedHost): string[] {
  const out = [
    `${indent}${h.floating ? `floating ${renderAddress(h.address)}` : `on ${h.names.join(' ')}`} {`,
  ];
  if (h.nodeId !== undefined) out.push(line(2, 'node-id', String(h.nodeId)));
  // A lone volume 0 is printed without a `volume` wrapper, as drbdadm does.
  const implicit =
    h.volumes.length === 1 && h.volumes[0]?.number === 0 && h.volumes[0].diskOptions.size === 0;
  for (const v of h.volumes) {
    const depth = implicit ? 2 : 3;
    if (!implicit) out.push(`${indent.repeat(2)}volume ${v.number} {`);
    out.push(line(depth, 'device', `${v.device.path} minor ${v.device.minor}`));
    out.push(line(depth, 'disk', v.disk));
    if (v.disk !== 'none') out.push(line(depth, 'meta-disk', renderMetaDisk(v.metaDisk)));
    out.push(...renderOptions(depth, 'disk', v.diskOptions));
    if (!implicit) out.push(`${indent.repeat(2)}}`);
  }
  if (!h.floating) out.push(line(2, 'address', renderAddress(h.address)));
  out.push(`${indent}}`);
  return out;
}

export function renderResource(r: ResolvedResource): string {
  const out = [`# resource ${r.name} defined at ${r.pos.file}:${r.pos.line}`, `resource ${r.name} {`];
  if (r.stackedOn !== undefined)
    out.push(`${indent}# stacked on top of ${r.stackedOn}: tandem does not run this resource`);
  for (const h of r.hosts) out.push(...renderHost(h));
  for (const s of sectionOrder) out.push(...renderOptions(1, s, r.sections.get(s) ?? new Map()));
  out.push('}');
  return out.join('\n');
}

export function renderConfig(cfg: ResolvedConfig, resources: readonly ResolvedResource[]): string {
  const out = [`# ${cfg.files[0] ?? ''}`];
  if (cfg.global.size > 0) out.push(...renderOptions(0, 'global', cfg.global));
  for (const r of resources) out.push('', renderResource(r));
  return `${out.join('\n')}\n`;
}

function optionsJson(m: OptionMap | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, e] of m ?? []) out[k] = e.value;
  return out;
}

export function resourceJson(r: ResolvedResource): Record<string, unknown> {
  const sections: Record<string, unknown> = {};
  for (const s of sectionOrder) sections[s] = optionsJson(r.sections.get(s));
  return {
    name: r.name,
    definedAt: `${r.pos.file}:${r.pos.line}:${r.pos.col}`,
    protocol: r.protocol,
    stackedOn: r.stackedOn ?? null,
    hosts: r.hosts.map((h) => ({
      names: h.names,
      floating: h.floating,
      nodeId: h.nodeId ?? null,
      address: { family: h.address.family, host: h.address.host, port: h.address.port },
      volumes: h.volumes.map((v) => ({
        volume: v.number,
        device: v.device.path,
        minor: v.device.minor,
        disk: v.disk,
        metaDisk: v.metaDisk,
        diskOptions: optionsJson(v.diskOptions),
      })),
    })),
    ...sections,
  };
}

export function configJson(cfg: ResolvedConfig, resources: readonly ResolvedResource[]): string {
  return `${JSON.stringify(
    { files: cfg.files, global: optionsJson(cfg.global), resources: resources.map(resourceJson) },
    null,
    2,
  )}\n`;
}
