// Random edits of a configuration text for the parsers' fuzz tests: insert, delete or replace
// characters or whole tokens. Sizes are bounded so every run finishes quickly.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError } from '../../src/config/errors.js';

/** Fixed, so a failure reproduces; fast-check prints the counterexample. */
export const fuzzSeed = 0x7a4d3e;
export const fuzzRuns = 400;

export type Mutation =
  | { readonly kind: 'insert'; readonly at: number; readonly text: string }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'replace'; readonly at: number; readonly length: number; readonly text: string };

/** Characters and words that matter to Heartbeat's files, mixed with arbitrary strings. */
const interesting = [
  '\n',
  '\r\n',
  '\t',
  ' ',
  '#',
  '\\',
  '\\\n',
  '::',
  ',',
  '/',
  '.',
  '\u0000',
  '\u007f',
  'é',
  '\u{1F600}',
  '0',
  '-1',
  '1.5',
  '.',
  '99999999999999999999',
  '1e9',
  'ms',
  'us',
  's',
  'node',
  'keepalive',
  'deadtime',
  'warntime',
  'initdead',
  'deadping',
  'udpport',
  'bcast',
  'mcast',
  'ucast',
  'crm',
  'auto_failback',
  'legacy',
  'auth',
  'crc',
  'sha1',
  'md5',
  'IPaddr',
  '10.0.0.1',
  '300.1.1.1',
  '225.0.0.1',
  'eth0',
];

const text = fc.oneof(
  fc.constantFrom(...interesting),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 24 }) }),
  fc.record({
    kind: fc.constant('replace' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 12 }),
    text,
  }),
);

export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.array(mutationArb, { minLength: 1, maxLength: 10 });

export function applyMutations(original: string, mutations: readonly Mutation[]): string {
  let s = original;
  for (const m of mutations) {
    const at = m.at % (s.length + 1);
    switch (m.kind) {
      case 'insert':
        s = s.slice(0, at) + m.text + s.slice(at);
        break;
      case 'delete':
        s = s.slice(0, at) + s.slice(at + m.length);
        break;
      case 'replace':
        s = s.slice(0, at) + m.text + s.slice(at + m.length);
        break;
    }
  }
  return s;
}

/**
 * Parses many mutations of `original`: each must parse or throw a ConfigError whose position
 * lies inside the text (line 1 to the line count + 1). Anything else fails the test.
 */
export function fuzzParser(original: string, parse: (text: string) => unknown): void {
  fc.assert(
    fc.property(mutationsArb, (mutations) => {
      const text = applyMutations(original, mutations);
      try {
        parse(text);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        if (err.pos) {
          const lines = text.split('\n').length;
          assert.ok(err.pos.line >= 1 && err.pos.line <= lines + 1, `line ${err.pos.line} of ${lines}`);
          assert.ok(err.pos.col >= 1, `col ${err.pos.col}`);
        }
      }
    }),
    { seed: fuzzSeed, numRuns: fuzzRuns },
  );
}
