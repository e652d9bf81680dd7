// How the command-line programs end: one line on stderr a person can act on,
// and an exit code scripts can test (drbdadm's where it has one).
import { ConfigError, type ConfigWarning, formatWarning } from '../config/errors.js';

export const exitCodes = {
  ok: 0,
  /** Wrong command line or unknown resource (drbdadm: 1). */
  usage: 1,
  /** The configuration is invalid (drbdadm: 10). */
  configInvalid: 10,
  /** A state change was refused (drbdsetup: 11, "State change failed"). */
  stateChangeFailed: 11,
  /** A file could not be read or a command could not be carried out (drbdadm: 20). */
  execError: 20,
} as const;

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = exitCodes.usage) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Runs a program's main, turning known errors into a message and exit code. */
export async function runMain(program: string, main: () => Promise<number> | number): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${program}: ${e.message}\n`);
      process.exitCode = e.code === 'CONFIG_IO' ? exitCodes.execError : exitCodes.configInvalid;
      return;
    }
    if (e instanceof CliError) {
      process.stderr.write(`${program}: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    throw e;
  }
}

export function printWarnings(warnings: readonly ConfigWarning[], quiet: boolean): void {
  if (quiet) return;
  for (const w of warnings) process.stderr.write(`${formatWarning(w)}\n`);
}
