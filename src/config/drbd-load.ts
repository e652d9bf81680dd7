// Reads a DRBD configuration from disk: the main file and everything it
// includes (`include "glob";`, relative to the including file), then parses
// and resolves it. The only part of src/config/drbd-* that does I/O.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DrbdConfig, ResolvedConfig } from './drbd-model.js';
import { interpret } from './drbd-parser.js';
import { resolveConfig } from './drbd-resolve.js';
import { parseStatements, type Statement } from './drbd-syntax.js';
import { tokenize } from './drbd-tokens.js';
import { ConfigError, type SourcePos } from './errors.js';
import { globFiles } from './glob.js';

/** Where tandemadm and tandemd look without `-c`. */
export const defaultConfigFile = '/etc/tandem/tandem.conf';
/** Includes nest at most this deep (a loop is caught earlier). */
export const includeDepthMax = 8;
/** At most this many files make one configuration. */
export const filesMax = 1024;

export function readTextFile(file: string, pos?: SourcePos): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new ConfigError('CONFIG_IO', `cannot read ${file}: ${why}`, pos);
  }
}

/** Parses `text` as file `file`; `readInclude` supplies included files (tests pass a fake). */
export function parseDrbdConfig(
  text: string,
  file: string,
  readInclude: (
    pattern: string,
    fromFile: string,
    pos: SourcePos,
  ) => { file: string; text: string }[] = includeFromDisk,
): DrbdConfig {
  const files = [file];
  const statements = expandIncludes(parseStatements(tokenize(text, file)), file, [file], files, readInclude);
  return interpret(statements, files);
}

export function loadDrbdConfig(file: string): DrbdConfig {
  return parseDrbdConfig(readTextFile(file), file);
}

export function loadResolvedConfig(file: string): ResolvedConfig {
  return resolveConfig(loadDrbdConfig(file));
}

function includeFromDisk(
  pattern: string,
  fromFile: string,
  pos: SourcePos,
): { file: string; text: string }[] {
  return globFiles(pattern, dirname(fromFile)).map((f) => ({ file: f, text: readTextFile(f, pos) }));
}

function expandIncludes(
  statements: readonly Statement[],
  file: string,
  stack: readonly string[],
  files: string[],
  readInclude: (pattern: string, fromFile: string, pos: SourcePos) => { file: string; text: string }[],
): Statement[] {
  const out: Statement[] = [];
  for (const st of statements) {
    if (st.keyword.text !== 'include') {
      out.push(st.block ? { ...st, block: expandIncludes(st.block, file, stack, files, readInclude) } : st);
      continue;
    }
    const pattern = st.args[0];
    if (!pattern || st.args.length !== 1 || st.block) {
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `'include' takes one quoted file name or pattern, then ';'`,
        st.keyword.pos,
      );
    }
    if (stack.length > includeDepthMax) {
      throw new ConfigError(
        'CONFIG_SEMANTIC',
        `includes nested deeper than ${includeDepthMax}`,
        st.keyword.pos,
      );
    }
    for (const inc of readInclude(pattern.text, file, pattern.pos)) {
      if (stack.includes(inc.file)) {
        throw new ConfigError(
          'CONFIG_SEMANTIC',
          `'${inc.file}' includes itself (through ${stack.join(' -> ')})`,
          pattern.pos,
        );
      }
      if (files.length >= filesMax)
        throw new ConfigError('CONFIG_SEMANTIC', `more than ${filesMax} files included`, pattern.pos);
      files.push(inc.file);
      const nested = parseStatements(tokenize(inc.text, inc.file));
      out.push(...expandIncludes(nested, inc.file, [...stack, inc.file], files, readInclude));
    }
  }
  return out;
}
