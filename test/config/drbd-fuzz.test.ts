// Random mutations of the fixture corpus never crash the parser: every input
// gives a configuration or a ConfigError with a position inside the input.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import fc from 'fast-check';
import { parseDrbdConfig } from '../../src/config/drbd-load.js';
import { resolveConfig } from '../../src/config/drbd-resolve.js';
import { ConfigError } from '../../src/config/errors.js';
import { fixtures } from '../helpers/paths.js';

function corpus(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...corpus(p));
    else out.push(readFileSync(p, 'utf8'));
  }
  return out;
}

const texts = corpus(join(fixtures, 'drbd'));
const pieces = [
  '{',
  '}',
  ';',
  '"',
  '#',
  '\n',
  ' ',
  'on',
  'resource',
  'volume',
  'disk',
  'net',
  'include "*";',
  '[',
  ']',
  ':',
  '\\',
  'minor',
  '999999999999',
  'ipv6',
  '-1',
  'yes',
];

type Edit = { at: number; kind: 'insert' | 'delete' | 'replace'; text: string; len: number };
const edit: fc.Arbitrary<Edit> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('insert' as const, 'delete' as const, 'replace' as const),
  text: fc.oneof(
    fc.constantFrom(...pieces),
    fc.string({ maxLength: 8 }),
    fc.string({ unit: 'binary', maxLength: 4 }),
  ),
  len: fc.integer({ min: 1, max: 12 }),
});

function mutate(text: string, edits: readonly Edit[]): string {
  let t = text;
  for (const e of edits) {
    const at = t.length === 0 ? 0 : e.at % (t.length + 1);
    if (e.kind === 'insert') t = t.slice(0, at) + e.text + t.slice(at);
    else if (e.kind === 'delete') t = t.slice(0, at) + t.slice(at + e.len);
    else t = t.slice(0, at) + e.text + t.slice(at + e.len);
  }
  return t;
}

// Includes resolve against nothing: a mutated include pattern must not read the disk.
const noIncludes = () => [];

function check(text: string): void {
  try {
    resolveConfig(parseDrbdConfig(text, 'fuzz.res', noIncludes));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    assert.ok(e.pos, `error without a position: ${e.message}`);
    const lines = text.split('\n').length;
    assert.ok(e.pos.line >= 1 && e.pos.line <= lines, `line ${e.pos.line} outside 1..${lines}: ${e.message}`);
    assert.ok(e.pos.col >= 1, e.message);
  }
}

test('mutated fixtures give a config or a positioned ConfigError, never another exception', () => {
  fc.assert(
    fc.property(fc.constantFrom(...texts), fc.array(edit, { minLength: 1, maxLength: 6 }), (text, edits) => {
      check(mutate(text, edits));
    }),
    { numRuns: 3000, seed: 20261125 },
  );
});

test('arbitrary text never escapes the parser as a non-ConfigError', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), (text) => check(text)),
    { numRuns: 2000, seed: 7789 },
  );
});
