// Structured logging: one line per event with time, level, optional resource
// and message, to stderr (or a file). Quiet by default: info and above.
import { appendFileSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, string | number | boolean | undefined>): void;
  child(fields: Record<string, string>): Logger;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** Append to this file instead of writing to stderr. */
  readonly file?: string;
  readonly program: string;
}

function formatValue(v: string | number | boolean): string {
  const s = String(v);
  return /^[A-Za-z0-9_./:@-]+$/.test(s) ? s : JSON.stringify(s);
}

export function createLogger(options: LoggerOptions, base: Record<string, string> = {}): Logger {
  const min = rank[options.level ?? 'info'];
  return {
    log(level, message, fields = {}) {
      if (rank[level] < min) return;
      const parts = [new Date().toISOString(), level.toUpperCase(), options.program];
      for (const [k, v] of Object.entries({ ...base, ...fields }))
        if (v !== undefined) parts.push(`${k}=${formatValue(v)}`);
      const line = `${parts.join(' ')} ${message}\n`;
      if (options.file) appendFileSync(options.file, line);
      else process.stderr.write(line);
    },
    child(fields) {
      return createLogger(options, { ...base, ...fields });
    },
  };
}

/** A logger that keeps lines in memory, for tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const make = (base: Record<string, string>): Logger & { lines: string[] } => ({
    lines,
    log(level, message, fields = {}) {
      const f = Object.entries({ ...base, ...fields })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      lines.push(`${level} ${f} ${message}`.replace(/\s+/g, ' ').trim());
    },
    child(fields) {
      return make({ ...base, ...fields });
    },
  });
  return make({});
}
