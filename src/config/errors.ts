// Errors and warnings of the configuration parsers. Every diagnostic names where
// it comes from (file:line:col) so that an operator can go straight to it.

/** A place in a configuration file; line and col count from 1. */
export interface SourcePos {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export type ConfigErrorCode =
  /** The text does not follow the grammar (unexpected token, unclosed brace, bad string). */
  | 'CONFIG_SYNTAX'
  /** A value has the wrong type, unit, range or spelling. */
  | 'CONFIG_VALUE'
  /** The file parses but describes something that cannot work (one host, duplicate port). */
  | 'CONFIG_SEMANTIC'
  /** A file could not be read. */
  | 'CONFIG_IO'
  /** Valid DRBD/Heartbeat configuration that tandem refuses to run (stacked resources, crm). */
  | 'CONFIG_UNSUPPORTED'
  /** A file's permissions are unsafe (authkeys not 0600). */
  | 'CONFIG_PERMISSION';

export function formatPos(pos: SourcePos): string {
  return `${pos.file}:${pos.line}:${pos.col}`;
}

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  readonly pos: SourcePos | undefined;
  /** The message without the position prefix. */
  readonly detail: string;

  constructor(code: ConfigErrorCode, detail: string, pos?: SourcePos) {
    super(pos ? `${formatPos(pos)}: ${detail}` : detail);
    this.name = 'ConfigError';
    this.code = code;
    this.pos = pos;
    this.detail = detail;
  }
}

export type ConfigWarningCode =
  /** Parsed and kept, but tandem does not act on it (yet). */
  | 'NOT_IMPLEMENTED'
  /** An obsolete spelling that was mapped to its current form. */
  | 'DEPRECATED'
  /** Accepted, but probably not what was meant. */
  | 'SUSPICIOUS';

export interface ConfigWarning {
  readonly code: ConfigWarningCode;
  readonly message: string;
  readonly pos: SourcePos;
}

export function formatWarning(w: ConfigWarning): string {
  return `${formatPos(w.pos)}: warning: ${w.message}`;
}
