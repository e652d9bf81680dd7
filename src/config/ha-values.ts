// Value syntax of Heartbeat's files: times, booleans, bounded integers, interface, host and node
// names. Each reader takes the word it reads, so that a refusal points at that word.
import { isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from './errors.js';
import { quote, type Word } from './ha-lexer.js';

/** No Heartbeat timing is meant to be longer than a day; larger values are typing errors. */
export const durationMsMax = 24 * 60 * 60 * 1000;
/** IFNAMSIZ is 16 bytes on Linux, including the terminating NUL. */
export const ifaceNameCharsMax = 15;
/** A DNS name is at most 253 characters; Heartbeat's HOSTLENG leaves room for that. */
export const hostNameCharsMax = 253;

const durationUnits: ReadonlyMap<string, number> = new Map([
  ['', 1000],
  ['s', 1000],
  ['sec', 1000],
  ['ms', 1],
  ['msec', 1],
  ['us', 0.001],
  ['usec', 0.001],
]);

/**
 * Heartbeat's get_msec(): a plain number is seconds (fractions allowed, `0.5`), `ms`/`msec` are
 * milliseconds, `us`/`usec` microseconds; rounded to the nearest millisecond (501us = 1 ms).
 * tandem also takes `s`/`sec`, which Heartbeat refuses, because operators write them.
 */
export function readDuration(word: Word, what: string): number {
  const m = /^(\d+(?:\.\d*)?|\.\d+)([a-z]*)$/i.exec(word.text);
  const factor = m ? durationUnits.get(m[2]!.toLowerCase()) : undefined;
  if (!m || factor === undefined) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a time for ${what} (seconds like 2 or 0.5, or with a unit: 1500ms, 500000us, 2s), found ${quote(word.text)}`,
      word.pos,
    );
  }
  const ms = Math.floor(Number(m[1]) * factor + 0.5);
  if (!(ms <= durationMsMax)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected ${what} of at most ${durationMsMax / 1000} s, found ${quote(word.text)}`,
      word.pos,
    );
  }
  return ms;
}

const trueWords: ReadonlySet<string> = new Set(['true', 'on', 'yes', 'y', '1']);
const falseWords: ReadonlySet<string> = new Set(['false', 'off', 'no', 'n', '0']);

/** Heartbeat's cl_str_to_boolean(): true/on/yes/y/1 and false/off/no/n/0, any case. */
export function readBoolean(word: Word, what: string): boolean {
  const lower = word.text.toLowerCase();
  if (trueWords.has(lower)) return true;
  if (falseWords.has(lower)) return false;
  throw new ConfigError(
    'CONFIG_VALUE',
    `expected yes or no (also on/off, true/false, 1/0) for ${what}, found ${quote(word.text)}`,
    word.pos,
  );
}

/** A decimal integer in [min, max]. */
export function readInteger(word: Word, what: string, min: number, max: number): number {
  const value = /^\d{1,15}$/.test(word.text) ? Number(word.text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected an integer from ${min} to ${max} for ${what}, found ${quote(word.text)}`,
      word.pos,
    );
  }
  return value;
}

export function readIfaceName(word: Word): string {
  // Linux refuses '/', blanks and ':' is an alias label; keep to what `ip link` prints.
  if (word.text.length > ifaceNameCharsMax || !/^[A-Za-z0-9][A-Za-z0-9_.:@-]*$/.test(word.text)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a network interface name (like eth0, at most ${ifaceNameCharsMax} characters), found ${quote(word.text)}`,
      word.pos,
    );
  }
  return word.text;
}

function isDnsName(text: string): boolean {
  if (text.length === 0 || text.length > hostNameCharsMax) return false;
  return text.split('.').every((label) => /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/.test(label));
}

/** A cluster node name as `uname -n` prints it; Heartbeat lower-cases node names (g_strdown). */
export function readNodeName(word: Word): string {
  if (!isDnsName(word.text)) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected a node name as \`uname -n\` prints it (letters, digits, '-', '.'), found ${quote(word.text)}`,
      word.pos,
    );
  }
  return word.text.toLowerCase();
}

/** An IPv4 or IPv6 address or a host name to resolve. */
export function readHost(word: Word, what: string): string {
  if (isIPv4(word.text) || isIPv6(word.text) || isDnsName(word.text)) return word.text;
  throw new ConfigError(
    'CONFIG_VALUE',
    `expected an IP address or host name for ${what}, found ${quote(word.text)}`,
    word.pos,
  );
}

/** An IPv4 multicast group, 224.0.0.0 to 239.255.255.255 (Heartbeat's mcast is IPv4 only). */
export function readMulticastGroup(word: Word): string {
  const first = Number(word.text.split('.')[0]);
  if (!isIPv4(word.text) || first < 224 || first > 239) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected an IPv4 multicast group (224.0.0.0 to 239.255.255.255), found ${quote(word.text)}`,
      word.pos,
    );
  }
  return word.text;
}

/** An absolute path, as Heartbeat's log and program directives expect. */
export function readAbsolutePath(word: Word, what: string): string {
  if (!word.text.startsWith('/')) {
    throw new ConfigError(
      'CONFIG_VALUE',
      `expected an absolute path for ${what}, found ${quote(word.text)}`,
      word.pos,
    );
  }
  return word.text;
}
