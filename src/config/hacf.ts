// Heartbeat's ha.cf: cluster nodes, timings (with Heartbeat's defaults and checks), heartbeat
// links and auto_failback, plus the directives tandem-ha keeps but does not act on (warned).
// parseHaCf() is pure; loadHaCf() reads the file and hands its text to it.
import { ConfigError } from './errors.js';
import { readTextFile } from './ha-file.js';
import { filePos, quote, splitLines, splitWords, type Word } from './ha-lexer.js';
import { type Builder, type Directive, type DirectiveSpec, newBuilder, warn } from './hacf-builder.js';
import { actedDirectives } from './hacf-directives.js';
import { keptDirectives } from './hacf-kept.js';
import type { HaCf, HaCfResult, HaNode } from './hacf-model.js';
import { finishTimings } from './hacf-timing.js';

export * from './hacf-model.js';

/** Every directive tandem-ha understands; Heartbeat spells them in lower case. */
const directives: ReadonlyMap<string, DirectiveSpec> = new Map([...actedDirectives, ...keptDirectives]);

/** The names `tandem-ha check` accepts in ha.cf, sorted. */
export const haCfDirectiveNames: readonly string[] = [...directives.keys()].sort();

function applyDirective(b: Builder, d: Directive, spec: DirectiveSpec): void {
  if (d.args.length < spec.min) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected ${spec.expects} after ${d.name.text}, found end of line`,
      d.line.end,
    );
  }
  if (d.args.length > spec.max) {
    const extra = d.args[spec.max]!;
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected end of line after ${spec.max === 1 ? 'the value' : `${spec.max} values`} of ${d.name.text}, found ${quote(extra.text)}`,
      extra.pos,
    );
  }
  spec.apply(b, d);
  if (!spec.acted) {
    warn(
      b,
      'NOT_IMPLEMENTED',
      `${d.name.text} is accepted but tandem-ha does not act on it (yet)`,
      d.name.pos,
    );
  }
}

function unknownDirective(w: Word): ConfigError {
  const lower = w.text.toLowerCase();
  const hint = lower !== w.text && directives.has(lower) ? ' (directives are written in lower case)' : '';
  return new ConfigError(
    'CONFIG_SYNTAX',
    `expected a directive (${haCfDirectiveNames.join(', ')}), found ${quote(w.text)}${hint}`,
    w.pos,
  );
}

function finish(b: Builder): HaCf {
  if (b.nodes.length === 0) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      'expected node directives naming the cluster nodes (node NAME …), found none',
      filePos(b.file),
    );
  }
  if (b.links.length === 0) {
    const serial = b.kept.some((k) => k.name === 'serial' || k.name === 'mcast6');
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected at least one heartbeat link (bcast, mcast or ucast), found none${serial ? ' tandem-ha can use (serial and mcast6 are not implemented)' : ''}`,
      filePos(b.file),
    );
  }
  const witness = b.witness;
  if (witness && !b.nodes.some((n) => n.name === witness.name)) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected the witness to be one of the nodes (${b.nodes.map((n) => n.name).join(', ')}), found ${quote(witness.name)}`,
      witness.pos,
    );
  }
  if (witness && b.nodes.length !== 3) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected three nodes with a witness (two with disks and the witness), found ${b.nodes.length}`,
      witness.pos,
    );
  }
  const timings = finishTimings(b);
  let autoFailback = b.autoFailback;
  if (!autoFailback) {
    warn(
      b,
      'DEPRECATED',
      "auto_failback is not set, so Heartbeat's deprecated default 'legacy' applies (fails back like 'on'): write auto_failback on or off",
      filePos(b.file),
    );
    autoFailback = { mode: 'legacy', literal: undefined, pos: undefined, failsBack: true };
  }
  return {
    file: b.file,
    nodes: b.nodes,
    ...timings,
    udpPort: b.udpPort,
    links: b.links,
    autoFailback,
    witness,
    onStopFailure: b.onStopFailure,
    metricsAddress: b.metricsAddress,
    dashboardAddress: b.dashboardAddress,
    dashboardTokenFile: b.dashboardTokenFile,
    logfile: b.logfile,
    debugfile: b.debugfile,
    notImplemented: b.kept,
  };
}

/** Parses ha.cf text; `file` is only used in positions. Throws ConfigError. */
export function parseHaCf(text: string, file: string): HaCfResult {
  const b = newBuilder(file);
  const lines = splitLines(text, file);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const blank = splitWords(raw, i + 1, file, { comment: 'anywhere' });
    if (!blank) continue;
    const name = blank.words[0]!;
    const spec = directives.get(name.text);
    if (!spec) throw unknownDirective(name);
    const line =
      spec.split === 'list'
        ? splitWords(raw, i + 1, file, { comment: 'anywhere', extraSeparators: ',' })!
        : blank;
    // The directive word has no comma (it ends at a blank), so it is the first word either way.
    applyDirective(b, { name, args: line.words.slice(1), line }, spec);
  }
  return { config: finish(b), warnings: b.warnings };
}

/** Reads and parses an ha.cf file. */
export async function loadHaCf(path: string): Promise<HaCfResult> {
  return parseHaCf((await readTextFile(path)).text, path);
}

/**
 * Heartbeat refuses to start on a node its ha.cf does not list ("Current node [x] not in
 * configuration!"); tandem-ha does the same. Node names compare lower-cased, as in Heartbeat.
 */
export function checkNodeMembership(cfg: HaCf, nodeName: string): HaNode {
  const wanted = nodeName.toLowerCase();
  const found = cfg.nodes.find((n) => n.name === wanted);
  if (found) return found;
  throw new ConfigError(
    'CONFIG_SEMANTIC',
    `expected a node directive naming this node ${quote(wanted)} (its \`uname -n\`, or --node / TANDEM_NODE), ` +
      `found only ${cfg.nodes.map((n) => n.name).join(', ')}`,
    cfg.nodes[0]?.pos ?? filePos(cfg.file),
  );
}
