// Renders a loaded Heartbeat configuration for people (`tandem-ha check`): nodes, timings with
// units and where each came from, links, authentication (never a secret) and resource groups.
import type { HaConfig } from '../config/ha.js';
import type { HaLink, Timing } from '../config/hacf.js';
import { formatMs } from '../config/hacf-timing.js';

function timingLine(name: string, t: Timing): string {
  const origin =
    t.source === 'file'
      ? `line ${t.pos?.line ?? '?'}`
      : t.source === 'default'
        ? "Heartbeat's default"
        : `derived: ${t.rule ?? ''}`;
  return `  ${name.padEnd(10)}${formatMs(t.ms).padEnd(10)}(${origin})`;
}

function linkLine(l: HaLink): string {
  switch (l.kind) {
    case 'bcast':
      return `  bcast  ${l.iface}  udp port ${l.port}`;
    case 'mcast':
      return `  mcast  ${l.iface}  group ${l.group} udp port ${l.port} ttl ${l.ttl} loop ${l.loop ? 'on' : 'off'}`;
    case 'ucast':
      return `  ucast  ${l.iface}  to ${l.host} udp port ${l.port}`;
  }
}

function showArg(arg: string): string {
  return arg === '' ? "''" : arg;
}

export function renderHaConfig(cfg: HaConfig, localNode: string): string {
  const { hacf, authkeys, resources } = cfg;
  const out: string[] = [];
  out.push(`tandem-ha configuration in ${cfg.dir} (this node: ${localNode})`);
  out.push('', 'nodes');
  for (const n of hacf.nodes) out.push(`  ${n.name}${n.name === localNode ? '  (this node)' : ''}`);
  out.push('', 'timing');
  out.push(timingLine('keepalive', hacf.keepalive));
  out.push(timingLine('warntime', hacf.warntime));
  out.push(timingLine('deadtime', hacf.deadtime));
  out.push(timingLine('initdead', hacf.initdead));
  out.push('', 'links');
  for (const l of hacf.links) out.push(linkLine(l));
  const fb = hacf.autoFailback;
  out.push(
    '',
    `auto_failback ${fb.mode}${fb.literal === undefined ? " (Heartbeat's default)" : ''}: ` +
      (fb.failsBack
        ? 'groups move back to their preferred node when it returns'
        : 'groups stay where they run until that node fails'),
  );
  if (hacf.logfile) out.push(`logfile ${hacf.logfile}`);
  if (hacf.debugfile) out.push(`debugfile ${hacf.debugfile}`);
  out.push('', 'authentication');
  const a = authkeys.active;
  out.push(`  signs with key ${a.index} (${a.method}${a.method === 'crc' ? ', no security' : ''})`);
  out.push(`  accepts keys ${authkeys.keys.map((k) => `${k.index} (${k.method})`).join(', ')}`);
  out.push('', 'resource groups');
  if (resources.groups.length === 0) out.push('  (none)');
  resources.groups.forEach((g, i) => {
    out.push(`  ${i + 1}. ${g.key}  preferred node ${g.node}`);
    for (const r of g.resources) {
      out.push(`       ${[r.name.padEnd(12), ...r.args.map(showArg)].join(' ').trimEnd()}`);
    }
  });
  if (hacf.notImplemented.length > 0) {
    // Names only: stonith_host and friends can carry device passwords.
    out.push('', 'accepted but not acted on');
    for (const k of hacf.notImplemented) out.push(`  ${k.name}  (line ${k.pos.line})`);
  }
  return `${out.join('\n')}\n`;
}
