// The state of one ha.cf parse and the shape of a directive's handler, shared by the tables
// of directives tandem-ha acts on (hacf-directives.ts) and keeps only (hacf-kept.ts).
import type { ConfigWarning, SourcePos } from './errors.js';
import type { Word, WordLine } from './ha-lexer.js';
import {
  type AutoFailback,
  defaultUdpPort,
  type HaLink,
  type HaNode,
  type KeptDirective,
  type TimingName,
} from './hacf-model.js';

export interface Directive {
  readonly name: Word;
  readonly args: readonly Word[];
  readonly line: WordLine;
}

export interface Builder {
  readonly file: string;
  readonly warnings: ConfigWarning[];
  readonly nodes: HaNode[];
  readonly times: Map<TimingName, { ms: number; pos: SourcePos }>;
  udpPort: number;
  readonly links: HaLink[];
  autoFailback: AutoFailback | undefined;
  witness: HaNode | undefined;
  onStopFailure: 'hold' | 'reboot';
  metricsAddress: { host: string; port: number } | undefined;
  dashboardAddress: { host: string; port: number } | undefined;
  dashboardTokenFile: string | undefined;
  logfile: string | undefined;
  debugfile: string | undefined;
  readonly kept: KeptDirective[];
  /** Where each single-valued directive was last set, to warn when a later line overrides it. */
  readonly lastSet: Map<string, SourcePos>;
}

export interface DirectiveSpec {
  /** Number of value words after the directive name. */
  readonly min: number;
  readonly max: number;
  /** What the values are, for "expected … found end of line". */
  readonly expects: string;
  /**
   * Heartbeat hands option directives (node, keepalive, bcast…) a list split at blanks and
   * commas; whole-line directives (mcast, ucast, respawn…) parse their own line, split at blanks.
   */
  readonly split: 'list' | 'line';
  /** False: parsed, kept and warned about, but tandem-ha does not act on it. */
  readonly acted: boolean;
  readonly apply: (b: Builder, d: Directive) => void;
}

export function warn(b: Builder, code: ConfigWarning['code'], message: string, pos: SourcePos): void {
  b.warnings.push({ code, message, pos });
}

export function arg(d: Directive, i: number): Word {
  const w = d.args[i];
  // The arity check in applyDirective runs first; reaching this is our bug, not the file's.
  if (!w) throw new Error(`internal: ${d.name.text} has no argument ${i}`);
  return w;
}

/** Single-valued directives: Heartbeat lets a later line win; say so, it is rarely meant. */
export function noteSet(b: Builder, d: Directive): void {
  const before = b.lastSet.get(d.name.text);
  if (before) {
    warn(
      b,
      'SUSPICIOUS',
      `${d.name.text} is set again; this replaces the value at line ${before.line}, as in Heartbeat`,
      d.name.pos,
    );
  }
  b.lastSet.set(d.name.text, d.name.pos);
}

export function newBuilder(file: string): Builder {
  return {
    file,
    warnings: [],
    nodes: [],
    times: new Map(),
    udpPort: defaultUdpPort,
    links: [],
    autoFailback: undefined,
    witness: undefined,
    onStopFailure: 'hold',
    metricsAddress: undefined,
    dashboardAddress: undefined,
    dashboardTokenFile: undefined,
    logfile: undefined,
    debugfile: undefined,
    kept: [],
    lastSet: new Map(),
  };
}
