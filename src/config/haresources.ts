// Heartbeat's haresources: one resource group per logical line, `NODE res1 res2::arg1::arg2 …`,
// with `\` continuations and `#` comments. A group's first resource is its key (Heartbeat's
// name for the group); a bare IPv4 address is the IPaddr resource. Pure: loadHaResources() reads.
import { isIPv4 } from 'node:net';
import { ConfigError, type ConfigWarning, type SourcePos } from './errors.js';
import { readTextFile } from './ha-file.js';
import { quote, splitLines, splitWords, type Word } from './ha-lexer.js';
import { readNodeName } from './ha-values.js';

/** Far beyond any two-node cluster; bounds the work on a generated or corrupted file. */
export const groupsMax = 1024;
export const resourcesPerGroupMax = 128;
export const argsPerResourceMax = 64;

/** Heartbeat's separator between a resource agent and its arguments. */
const argSeparator = '::';

export interface HaResource {
  /** The agent: a script in /etc/ha.d/resource.d or /etc/init.d (IPaddr, drbddisk, httpd…). */
  readonly name: string;
  /** Arguments in order; an empty `::` argument stays as '' so later ones keep their place. */
  readonly args: readonly string[];
  readonly pos: SourcePos;
  readonly argPos: readonly SourcePos[];
  /** The resource as written (`172.25.137.100` for a bare address). */
  readonly text: string;
}

export interface ResourceGroup {
  /** The preferred node, lower-cased as Heartbeat keeps node names. */
  readonly node: string;
  readonly nodePos: SourcePos;
  /** Started in this order, stopped in reverse. */
  readonly resources: readonly HaResource[];
  /** The first resource in canonical `name::arg…` form: how Heartbeat names the group. */
  readonly key: string;
}

export interface HaResources {
  readonly file: string;
  readonly groups: readonly ResourceGroup[];
}

export interface HaResourcesResult {
  readonly config: HaResources;
  readonly warnings: readonly ConfigWarning[];
}

/** The canonical spelling of a resource, `IPaddr::10.0.0.1/24`, as Heartbeat names groups. */
export function resourceKey(r: Pick<HaResource, 'name' | 'args'>): string {
  return [r.name, ...r.args].join(argSeparator);
}

// Heartbeat's ResourceManager takes a word that starts like a dotted quad for an IPaddr argument.
const bareAddress = /^\d+\.\d+\.\d+\.\d+/;
// Agent names are file names in resource.d or init.d: no '/', nothing a shell would expand.
const agentName = /^[A-Za-z0-9_][A-Za-z0-9_.+@-]*$/;

function at(pos: SourcePos, offset: number): SourcePos {
  return { file: pos.file, line: pos.line, col: pos.col + offset };
}

/**
 * IPaddr's argument is `ADDRESS[/BITS[/INTERFACE[/BROADCAST]]]`. Checked here so that a typo in
 * the virtual IP shows up in `tandem-ha check`, not at failover time.
 */
function checkIpaddrArg(text: string, pos: SourcePos): void {
  const [address = '', bits] = text.split('/');
  if (!isIPv4(address)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected an IPv4 address for IPaddr (ADDRESS[/BITS[/INTERFACE[/BROADCAST]]]), found ${quote(address)}`,
      pos,
    );
  }
  if (bits !== undefined && !(/^\d{1,2}$/.test(bits) && Number(bits) <= 32) && !isIPv4(bits)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a netmask length from 0 to 32 after ${address}/, found ${quote(bits)}`,
      at(pos, address.length + 1),
    );
  }
}

function parseResource(word: Word): HaResource {
  if (!word.text.includes(argSeparator) && bareAddress.test(word.text)) {
    checkIpaddrArg(word.text, word.pos);
    return { name: 'IPaddr', args: [word.text], pos: word.pos, argPos: [word.pos], text: word.text };
  }
  const parts = word.text.split(argSeparator);
  const name = parts[0]!;
  if (!agentName.test(name)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a resource agent name (like IPaddr, drbddisk, Filesystem, httpd) or an IPv4 address, found ${quote(name)}`,
      word.pos,
    );
  }
  if (parts.length - 1 > argsPerResourceMax) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected at most ${argsPerResourceMax} arguments for ${name}, found ${parts.length - 1}`,
      word.pos,
    );
  }
  const args: string[] = [];
  const argPos: SourcePos[] = [];
  let offset = name.length + argSeparator.length;
  for (const part of parts.slice(1)) {
    args.push(part);
    argPos.push(at(word.pos, offset));
    offset += part.length + argSeparator.length;
  }
  if ((name === 'IPaddr' || name === 'IPaddr2') && args[0] !== undefined) checkIpaddrArg(args[0], argPos[0]!);
  return { name, args, pos: word.pos, argPos, text: word.text };
}

interface LogicalLine {
  readonly words: Word[];
  /** Just past the last word, for "found end of line". */
  end: SourcePos;
}

/**
 * Joins `\`-continued lines, keeping every word's own position. Heartbeat wants the backslash
 * as the very last character; tandem also accepts blanks or a comment after it.
 */
function logicalLines(text: string, file: string, warnings: ConfigWarning[]): LogicalLine[] {
  const out: LogicalLine[] = [];
  const lines = splitLines(text, file);
  let open: LogicalLine | undefined;
  // Where the previous line's continuation backslash is, while the line it continues is pending.
  let backslash: SourcePos | undefined;
  for (let i = 0; i < lines.length; i++) {
    const wl = splitWords(lines[i]!, i + 1, file, { comment: 'anywhere' });
    const words = wl ? [...wl.words] : [];
    const last = words[words.length - 1];
    backslash = undefined;
    if (last?.text.endsWith('\\')) {
      backslash = at(last.pos, last.text.length - 1);
      if (last.text === '\\') words.pop();
      else words[words.length - 1] = { text: last.text.slice(0, -1), pos: last.pos };
    }
    const tail = words[words.length - 1];
    const end = tail ? at(tail.pos, tail.text.length) : undefined;
    if (open) {
      open.words.push(...words);
      if (end) open.end = end;
    } else if (end) {
      open = { words, end };
    }
    if (!backslash && open) {
      out.push(open);
      open = undefined;
    }
  }
  if (open) out.push(open);
  if (backslash) {
    warnings.push({
      code: 'SUSPICIOUS',
      message: 'the last line ends with \\ but no line follows',
      pos: backslash,
    });
  }
  return out;
}

/** Parses haresources text; `file` is only used in positions. Throws ConfigError. */
export function parseHaResources(text: string, file: string): HaResourcesResult {
  const warnings: ConfigWarning[] = [];
  const groups: ResourceGroup[] = [];
  const byKey = new Map<string, ResourceGroup>();
  for (const line of logicalLines(text, file, warnings)) {
    const nodeWord = line.words[0]!;
    const node = readNodeName(nodeWord);
    if (line.words.length === 1) {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected one or more resources after node ${node} (like: ${node} IPaddr::10.0.0.1/24 httpd), found end of line`,
        line.end,
      );
    }
    if (line.words.length - 1 > resourcesPerGroupMax) {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected at most ${resourcesPerGroupMax} resources in a group, found ${line.words.length - 1}`,
        line.words[resourcesPerGroupMax + 1]!.pos,
      );
    }
    if (groups.length === groupsMax) {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected at most ${groupsMax} resource groups, found more`,
        nodeWord.pos,
      );
    }
    const resources = line.words.slice(1).map(parseResource);
    const first = resources[0]!;
    const key = resourceKey(first);
    const earlier = byKey.get(key);
    if (earlier) {
      // Heartbeat names a group by its first resource; two groups with one name cannot be told apart.
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `expected each group to start with a different resource, found ${key} again (first at line ${earlier.nodePos.line})`,
        first.pos,
      );
    }
    const group: ResourceGroup = { node, nodePos: nodeWord.pos, resources, key };
    byKey.set(key, group);
    groups.push(group);
  }
  return { config: { file, groups }, warnings };
}

/** Reads and parses a haresources file. */
export async function loadHaResources(path: string): Promise<HaResourcesResult> {
  return parseHaResources((await readTextFile(path)).text, path);
}
