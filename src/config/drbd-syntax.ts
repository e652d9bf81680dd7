// The shape of DRBD's configuration language without its vocabulary: a file is a
// list of statements `keyword arg... ;` or `keyword arg... { statement... }`.
// drbd-parser.ts gives the keywords meaning; this layer only checks the shape.

import { describeToken, type Token } from './drbd-tokens.js';
import { ConfigError } from './errors.js';

export interface Statement {
  readonly keyword: Token;
  /** Words and strings between the keyword and the ';' or '{'. */
  readonly args: readonly Token[];
  /** The statements inside `{ }`, or undefined for a statement ended by ';'. */
  readonly block: readonly Statement[] | undefined;
}

/** Deepest nesting of braces (resource > on > volume > disk is 4). */
export const nestingDepthMax = 16;
/** Most arguments one statement may carry (`become-primary-on` lists a few hosts). */
export const statementArgsMax = 64;

export function parseStatements(tokens: readonly Token[]): Statement[] {
  let i = 0;
  const peek = (): Token => tokens[i] ?? (tokens[tokens.length - 1] as Token);

  function parseBlockBody(depth: number, opener: Token | undefined, owner: string): Statement[] {
    const out: Statement[] = [];
    for (;;) {
      const t = peek();
      if (t.kind === 'eof') {
        if (opener) {
          throw new ConfigError(
            'CONFIG_SYNTAX',
            `unexpected end of file: the '{' of '${owner}' at line ${opener.pos.line}:${opener.pos.col} is never closed (expected '}')`,
            t.pos,
          );
        }
        return out;
      }
      if (t.kind === '}') {
        if (!opener)
          throw new ConfigError('CONFIG_SYNTAX', "expected a keyword but got '}' (no '{' is open)", t.pos);
        i++;
        return out;
      }
      if (t.kind !== 'word') {
        throw new ConfigError('CONFIG_SYNTAX', `expected a keyword but got ${describeToken(t)}`, t.pos);
      }
      out.push(parseStatement(depth));
    }
  }

  function parseStatement(depth: number): Statement {
    const keyword = peek();
    i++;
    const args: Token[] = [];
    for (;;) {
      const t = peek();
      if (t.kind === 'word' || t.kind === 'string') {
        if (args.length >= statementArgsMax) {
          throw new ConfigError(
            'CONFIG_SYNTAX',
            `more than ${statementArgsMax} arguments to '${keyword.text}'`,
            t.pos,
          );
        }
        args.push(t);
        i++;
        continue;
      }
      if (t.kind === ';') {
        i++;
        return { keyword, args, block: undefined };
      }
      if (t.kind === '{') {
        if (depth + 1 > nestingDepthMax) {
          throw new ConfigError('CONFIG_SYNTAX', `sections nested deeper than ${nestingDepthMax}`, t.pos);
        }
        i++;
        const owner = [keyword.text, ...args.map((a) => a.text)].join(' ');
        const block = parseBlockBody(depth + 1, t, owner);
        return { keyword, args, block };
      }
      const what = [keyword.text, ...args.map((a) => a.text)].join(' ');
      throw new ConfigError(
        'CONFIG_SYNTAX',
        `expected ';' or '{' after '${what}' but got ${describeToken(t)}`,
        t.pos,
      );
    }
  }

  return parseBlockBody(0, undefined, '');
}
