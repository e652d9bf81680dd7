// Tokenizer for DRBD's configuration language (drbd.conf(5)). It knows only the
// lexical layer: words, quoted strings, braces and semicolons, each with the
// file:line:col where it starts. Meaning is given by drbd-parser.ts.
import { ConfigError, type SourcePos } from './errors.js';

export type TokenKind = 'word' | 'string' | '{' | '}' | ';' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The word, or a string's unescaped contents; '' for punctuation and eof. */
  readonly text: string;
  readonly pos: SourcePos;
}

/** Longest word or string accepted; DRBD's own scanner stops far below this. */
export const tokenBytesMax = 4096;
/** Largest configuration file read (a real one is a few KiB). */
export const fileBytesMax = 4 * 1024 * 1024;

// Characters that end a word. drbdadm's scanner reads `address172.25.137.6:7789`
// as one word, and so does this one, so that the error names what was written.
const delimiters = new Set([' ', '\t', '\r', '\n', '\f', '\v', '{', '}', ';', '"', '#']);

const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' };

/** Splits `text` into tokens, ending with one 'eof' token. Throws ConfigError on a bad string. */
export function tokenize(text: string, file: string): Token[] {
  if (text.length > fileBytesMax) {
    throw new ConfigError('CONFIG_SYNTAX', `file is larger than ${fileBytesMax} bytes`, {
      file,
      line: 1,
      col: 1,
    });
  }
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const here = (): SourcePos => ({ file, line, col: i - lineStart + 1 });

  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '{' || c === '}' || c === ';') {
      tokens.push({ kind: c, text: '', pos: here() });
      i++;
      continue;
    }
    if (c === '"') {
      const pos = here();
      i++;
      let value = '';
      for (;;) {
        if (i >= text.length || text[i] === '\n') {
          throw new ConfigError('CONFIG_SYNTAX', "unterminated string: expected a closing '\"'", pos);
        }
        const s = text[i] as string;
        if (s === '"') {
          i++;
          break;
        }
        if (s === '\\') {
          const next = text[i + 1];
          if (next === undefined || next === '\n') {
            throw new ConfigError('CONFIG_SYNTAX', "unterminated string: expected a closing '\"'", pos);
          }
          value += escapes[next] ?? next;
          i += 2;
        } else {
          value += s;
          i++;
        }
        if (value.length > tokenBytesMax) {
          throw new ConfigError('CONFIG_SYNTAX', `string longer than ${tokenBytesMax} characters`, pos);
        }
      }
      tokens.push({ kind: 'string', text: value, pos });
      continue;
    }
    const pos = here();
    const start = i;
    while (i < text.length && !delimiters.has(text[i] as string)) i++;
    if (i - start > tokenBytesMax) {
      throw new ConfigError('CONFIG_SYNTAX', `word longer than ${tokenBytesMax} characters`, pos);
    }
    tokens.push({ kind: 'word', text: text.slice(start, i), pos });
  }
  tokens.push({ kind: 'eof', text: '', pos: here() });
  return tokens;
}

/** How a token reads in an error message. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of file';
    case 'word':
      return `'${t.text}'`;
    case 'string':
      return `"${t.text}"`;
    default:
      return `'${t.kind}'`;
  }
}
