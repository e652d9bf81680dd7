// Line and word splitting shared by Heartbeat's three files (ha.cf, haresources, authkeys).
// Heartbeat reads them with fgets() and strspn()/strcspn(); this splits the same way but keeps
// the line and column where every word starts, so that each diagnostic can name file:line:col.
import { ConfigError, type SourcePos } from './errors.js';

/** One word of a line and where it starts. */
export interface Word {
  readonly text: string;
  readonly pos: SourcePos;
}

/** One non-empty line after comment removal. */
export interface WordLine {
  readonly line: number;
  readonly words: readonly Word[];
  /** Where the line's content ends (just past its last word): "found end of line" points here. */
  readonly end: SourcePos;
}

/** Bounds checked before any work, so a runaway or hostile file costs little. */
export interface TextLimits {
  readonly charsMax: number;
  readonly linesMax: number;
  readonly lineCharsMax: number;
  readonly wordsPerLineMax: number;
}

/** Generous for any real Heartbeat file (the seed's are a few hundred bytes). */
export const haTextLimits: TextLimits = {
  charsMax: 1024 * 1024,
  linesMax: 20_000,
  // Heartbeat's own line buffer (MAXLINE) is 5120 bytes; a longer line was silently split there.
  lineCharsMax: 5120,
  wordsPerLineMax: 512,
};

export interface SplitOptions {
  /**
   * Where `#` starts a comment. 'anywhere': ha.cf and haresources (Heartbeat cuts the line at the
   * first `#`). 'line-start': authkeys, where a secret may itself contain `#` and Heartbeat only
   * treats a line beginning with `#` as a comment.
   */
  readonly comment: 'anywhere' | 'line-start';
  /** Characters besides blanks that separate words (Heartbeat's option lists also split at `,`). */
  readonly extraSeparators?: string;
}

export function filePos(file: string): SourcePos {
  return { file, line: 1, col: 1 };
}

/** Splits text into lines, refusing input beyond the limits before doing anything else. */
export function splitLines(text: string, file: string, limits: TextLimits = haTextLimits): string[] {
  if (text.length > limits.charsMax) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected a file of at most ${limits.charsMax} characters, found ${text.length}`,
      filePos(file),
    );
  }
  const lines = text.split('\n');
  // A final newline does not start another line.
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length > limits.linesMax) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected at most ${limits.linesMax} lines, found ${lines.length}`,
      { file, line: limits.linesMax + 1, col: 1 },
    );
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.length > limits.lineCharsMax) {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected a line of at most ${limits.lineCharsMax} characters, found ${line.length}`,
        { file, line: i + 1, col: limits.lineCharsMax + 1 },
      );
    }
  }
  return lines;
}

function isBlank(ch: string): boolean {
  // \r: DOS line ends; \f and \v: Heartbeat's WHITESPACE set includes them too.
  return ch === ' ' || ch === '\t' || ch === '\r' || ch === '\f' || ch === '\v';
}

function describeChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  return `control character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Cuts one line into words; returns undefined for a blank or comment-only line. */
export function splitWords(
  text: string,
  line: number,
  file: string,
  options: SplitOptions,
  limits: TextLimits = haTextLimits,
): WordLine | undefined {
  let content = text;
  if (options.comment === 'anywhere') {
    const hash = content.indexOf('#');
    if (hash >= 0) content = content.slice(0, hash);
  } else if (content.trimStart().startsWith('#')) {
    return undefined;
  }
  const separators = options.extraSeparators ?? '';
  const words: Word[] = [];
  let start = -1;
  let end = 0;
  for (let i = 0; i <= content.length; i++) {
    const ch = i < content.length ? content[i]! : ' ';
    const separates = isBlank(ch) || separators.includes(ch);
    if (!separates && (ch < ' ' || ch === '\x7f')) {
      throw new ConfigError('CONFIG_SYNTAX', `expected text or blanks, found ${describeChar(ch)}`, {
        file,
        line,
        col: i + 1,
      });
    }
    if (separates) {
      if (start >= 0) {
        if (words.length === limits.wordsPerLineMax) {
          throw new ConfigError(
            'CONFIG_SYNTAX',
            `expected at most ${limits.wordsPerLineMax} words on a line, found more`,
            { file, line, col: start + 1 },
          );
        }
        words.push({ text: content.slice(start, i), pos: { file, line, col: start + 1 } });
        end = i;
        start = -1;
      }
    } else if (start < 0) {
      start = i;
    }
  }
  if (words.length === 0) return undefined;
  return { line, words, end: { file, line, col: end + 1 } };
}

/** Splits a whole file into its non-empty word lines. */
export function wordLines(
  text: string,
  file: string,
  options: SplitOptions,
  limits: TextLimits = haTextLimits,
): WordLine[] {
  const out: WordLine[] = [];
  const lines = splitLines(text, file, limits);
  for (let i = 0; i < lines.length; i++) {
    const wl = splitWords(lines[i]!, i + 1, file, options, limits);
    if (wl) out.push(wl);
  }
  return out;
}

/** A word shown in a message: quoted, with control characters kept visible. */
export function quote(text: string): string {
  return JSON.stringify(text);
}
