// Heartbeat's authkeys: `auth N` picks the key that signs outgoing heartbeats; lines `N METHOD
// [SECRET]` define keys (crc has no secret). The file must not be readable or writable by group
// or others: loadAuthkeys() checks the mode of the descriptor it reads, as Heartbeat does.
import { inspect } from 'node:util';
import { ConfigError, type ConfigWarning, type SourcePos } from './errors.js';
import { readTextFile } from './ha-file.js';
import { quote, type Word, wordLines } from './ha-lexer.js';

/** Heartbeat's MAXAUTH: key numbers 0 to 15. */
export const authKeyIndexMax = 15;

export const authMethods = ['crc', 'md5', 'sha1', 'sha256'] as const;
export type AuthMethod = (typeof authMethods)[number];

/** Keeps a secret out of logs, JSON and console.log by accident; reveal() is the only way out. */
export class AuthSecret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[secret]';
  }
  toJSON(): string {
    return '[secret]';
  }
  [inspect.custom](): string {
    return '[secret]';
  }
}

export interface AuthKey {
  readonly index: number;
  readonly method: AuthMethod;
  /** Undefined for crc, which has none. */
  readonly secret: AuthSecret | undefined;
  readonly pos: SourcePos;
}

export interface Authkeys {
  readonly file: string;
  /** The key named by `auth N`: it signs what this node sends. */
  readonly active: AuthKey;
  readonly activePos: SourcePos;
  /** Every defined key, in file order; incoming heartbeats may use any of them (key rotation). */
  readonly keys: readonly AuthKey[];
}

export interface AuthkeysResult {
  readonly config: Authkeys;
  readonly warnings: readonly ConfigWarning[];
}

function isMethod(text: string): text is AuthMethod {
  return (authMethods as readonly string[]).includes(text);
}

function readIndex(word: Word, what: string): number {
  const value = /^\d{1,3}$/.test(word.text) ? Number(word.text) : Number.NaN;
  if (!(value >= 0 && value <= authKeyIndexMax)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a key number from 0 to ${authKeyIndexMax} for ${what}, found ${quote(word.text)}`,
      word.pos,
    );
  }
  return value;
}

function parseKeyLine(words: readonly Word[], end: SourcePos): AuthKey {
  const [indexWord, methodWord, secretWord, extra] = words;
  const index = readIndex(indexWord!, 'a key line');
  if (!methodWord) {
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected a method (${authMethods.join(', ')}) after key number ${index}, found end of line`,
      end,
    );
  }
  const method = methodWord.text;
  if (!isMethod(method)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a method (${authMethods.join(', ')}), found ${quote(method)}`,
      methodWord.pos,
    );
  }
  if (method === 'crc' && secretWord) {
    // Heartbeat refuses this too ("Auth method [crc] doesn't use a key").
    throw new ConfigError(
      'CONFIG_SYNTAX',
      `expected end of line after crc (it takes no secret), found a secret`,
      secretWord.pos,
    );
  }
  if (method !== 'crc' && !secretWord) {
    throw new ConfigError('CONFIG_SYNTAX', `expected a secret after ${method}, found end of line`, end);
  }
  if (extra) {
    // Heartbeat would silently keep only the first word as the secret.
    throw new ConfigError(
      'CONFIG_SYNTAX',
      'expected end of line after the secret (a secret cannot contain blanks), found another word',
      extra.pos,
    );
  }
  return {
    index,
    method,
    secret: secretWord ? new AuthSecret(secretWord.text) : undefined,
    pos: indexWord!.pos,
  };
}

/** Parses authkeys text (the mode is loadAuthkeys' concern). Throws ConfigError. */
export function parseAuthkeys(text: string, file: string): AuthkeysResult {
  const warnings: ConfigWarning[] = [];
  const keys = new Map<number, AuthKey>();
  let auth: { index: number; word: Word } | undefined;
  for (const line of wordLines(text, file, { comment: 'line-start' })) {
    const first = line.words[0]!;
    if (first.text === 'auth') {
      const value = line.words[1];
      if (!value)
        throw new ConfigError(
          'CONFIG_SYNTAX',
          'expected a key number after auth, found end of line',
          line.end,
        );
      const extra = line.words[2];
      if (extra) {
        throw new ConfigError(
          'CONFIG_SYNTAX',
          `expected end of line after auth ${value.text}, found ${quote(extra.text)}`,
          extra.pos,
        );
      }
      if (auth) {
        throw new ConfigError(
          'CONFIG_SEMANTIC',
          `expected one auth line, found a second one (the first is at line ${auth.word.pos.line})`,
          first.pos,
        );
      }
      auth = { index: readIndex(value, 'auth'), word: value };
      continue;
    }
    if (!/^\d/.test(first.text)) {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected 'auth N' or a key line 'N METHOD [SECRET]', found ${quote(first.text)}`,
        first.pos,
      );
    }
    const key = parseKeyLine(line.words, line.end);
    const earlier = keys.get(key.index);
    if (earlier) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `expected each key number once, found key ${key.index} again (first at line ${earlier.pos.line})`,
        key.pos,
      );
    }
    keys.set(key.index, key);
  }
  if (!auth) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      "expected an 'auth N' line choosing the key to sign with, found none",
      { file, line: 1, col: 1 },
    );
  }
  const active = keys.get(auth.index);
  if (!active) {
    const defined = [...keys.keys()].sort((a, b) => a - b);
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected auth to name a defined key (${defined.length > 0 ? defined.join(', ') : 'none defined'}), found ${auth.index}`,
      auth.word.pos,
    );
  }
  for (const key of keys.values()) {
    if (key.method === 'crc') {
      warnings.push({
        code: 'SUSPICIOUS',
        message: `key ${key.index} uses crc, which detects corruption but gives no security: anyone on the link can forge heartbeats; use sha1 or sha256 with a secret`,
        pos: key.pos,
      });
    }
  }
  return { config: { file, active, activePos: auth.word.pos, keys: [...keys.values()] }, warnings };
}

/**
 * Heartbeat refuses an authkeys readable by group or others ("Bad permissions on keyfile");
 * tandem-ha also refuses group/other write, so only 0600 and 0400 (and stricter) pass.
 */
export function checkAuthkeysMode(mode: number, file: string): void {
  if ((mode & 0o077) !== 0) {
    const shown = (mode & 0o7777).toString(8).padStart(4, '0');
    throw new ConfigError(
      'CONFIG_PERMISSION',
      `authkeys ${file} must be mode 0600 (is ${shown}): its secrets must not be readable by others; run chmod 600 ${file}`,
    );
  }
}

/** Reads authkeys, refusing it unless its mode is 0600 or stricter, and parses it. */
export async function loadAuthkeys(path: string): Promise<AuthkeysResult> {
  const file = await readTextFile(path);
  checkAuthkeysMode(file.mode, path);
  return parseAuthkeys(file.text, path);
}
