// tandem-ha's command line: global options, the command table and exit codes (0 done,
// 1 configuration refused, 2 usage error or not implemented). Only `check` works so far;
// every other command says plainly that it is not implemented.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, formatWarning } from '../config/errors.js';
import { defaultHaConfigDir, loadHaConfig } from '../config/ha.js';
import { checkNodeMembership } from '../config/hacf.js';
import { renderHaConfig } from './ha-render.js';

export const exitOk = 0;
export const exitConfig = 1;
export const exitUsage = 2;

export const defaultRunDir = '/run/tandem';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface GlobalOptions {
  readonly configDir: string;
  /** Lower-cased, as Heartbeat compares node names. */
  readonly node: string;
  readonly runDir: string;
}

interface Command {
  readonly name: string;
  readonly args: string;
  readonly summary: string;
  readonly maxArgs: number;
  /** Absent: not implemented yet. */
  readonly run?: (opts: GlobalOptions, args: readonly string[], io: Io) => Promise<number>;
}

async function check(opts: GlobalOptions, _args: readonly string[], io: Io): Promise<number> {
  const { config, warnings } = await loadHaConfig(opts.configDir);
  checkNodeMembership(config.hacf, opts.node);
  for (const w of warnings) io.err(`${formatWarning(w)}\n`);
  io.out(renderHaConfig(config, opts.node));
  return exitOk;
}

const daemonName = '(none)';

/** The cl_status / hb_standby / hb_takeover counterparts are listed so that --help is complete. */
const commands: readonly Command[] = [
  {
    name: 'check',
    args: '',
    summary: 'parse ha.cf, authkeys and haresources and print the cluster configuration',
    maxArgs: 0,
    run: check,
  },
  { name: daemonName, args: '', summary: 'run the cluster daemon (not implemented yet)', maxArgs: 0 },
  {
    name: 'status',
    args: '',
    summary: 'is the local daemon running (cl_status hbstatus; not implemented yet)',
    maxArgs: 0,
  },
  {
    name: 'listnodes',
    args: '',
    summary: 'list the cluster nodes (cl_status listnodes; not implemented yet)',
    maxArgs: 0,
  },
  {
    name: 'nodestatus',
    args: 'NODE',
    summary: 'state of a node (cl_status nodestatus; not implemented yet)',
    maxArgs: 1,
  },
  {
    name: 'rscstatus',
    args: '',
    summary: 'which resources this node holds (cl_status rscstatus; not implemented yet)',
    maxArgs: 0,
  },
  {
    name: 'standby',
    args: '[all|foreign|local]',
    summary: 'hand resources to the peer (hb_standby; not implemented yet)',
    maxArgs: 1,
  },
  {
    name: 'takeover',
    args: '[all|foreign|local]',
    summary: "take the peer's resources (hb_takeover; not implemented yet)",
    maxArgs: 1,
  },
];

export function helpText(): string {
  const rows = commands.map((c) => {
    const left = c.name === daemonName ? '(no command)' : `${c.name}${c.args ? ` ${c.args}` : ''}`;
    return `  ${left.padEnd(30)}${c.summary}`;
  });
  return [
    'usage: tandem-ha [OPTIONS] [COMMAND [ARGS]]',
    'Two-node failover with Heartbeat v1 configuration: ha.cf, haresources, authkeys.',
    '',
    'commands:',
    ...rows,
    '',
    'options:',
    `  ${'--config-dir DIR'.padEnd(30)}Heartbeat configuration directory (default ${defaultHaConfigDir}, env TANDEM_HA_CONFIG_DIR)`,
    `  ${'--node NAME'.padEnd(30)}this node's name (default env TANDEM_NODE, else uname -n)`,
    `  ${'--run-dir DIR'.padEnd(30)}sockets and state of this node (default ${defaultRunDir}, env TANDEM_RUN_DIR)`,
    `  ${'-h, --help'.padEnd(30)}print this help`,
    '',
    'exit status: 0 done, 1 configuration refused, 2 usage error or command not implemented',
    '',
  ].join('\n');
}

function usageError(io: Io, message: string): number {
  io.err(`tandem-ha: ${message}\nTry 'tandem-ha --help'.\n`);
  return exitUsage;
}

function nonEmpty(...values: (string | undefined)[]): string | undefined {
  return values.find((v) => v !== undefined && v !== '');
}

const optionSpec = {
  'config-dir': { type: 'string' },
  node: { type: 'string' },
  'run-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseCommandLine(argv: readonly string[]) {
  return parseArgs({ args: [...argv], options: optionSpec, allowPositionals: true, strict: true });
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    return usageError(io, (err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(helpText());
    return exitOk;
  }
  for (const name of ['config-dir', 'node', 'run-dir'] as const) {
    if (values[name] === '') return usageError(io, `--${name} needs a non-empty value`);
  }
  const opts: GlobalOptions = {
    configDir: nonEmpty(values['config-dir'], env['TANDEM_HA_CONFIG_DIR']) ?? defaultHaConfigDir,
    node: (nonEmpty(values.node, env['TANDEM_NODE']) ?? hostname()).toLowerCase(),
    runDir: nonEmpty(values['run-dir'], env['TANDEM_RUN_DIR']) ?? defaultRunDir,
  };
  const [name = daemonName, ...args] = positionals;
  const command = commands.find((c) => c.name === name);
  if (!command) {
    const known = commands.filter((c) => c.name !== daemonName).map((c) => c.name);
    return usageError(io, `unknown command '${name}'; expected one of ${known.join(', ')}`);
  }
  if (args.length > command.maxArgs) {
    return usageError(
      io,
      `${name} takes ${command.maxArgs === 0 ? 'no arguments' : `at most ${command.maxArgs}`}, found '${args[command.maxArgs]}'`,
    );
  }
  if (!command.run) {
    const what = command.name === daemonName ? 'the cluster daemon' : command.name;
    io.err(`tandem-ha: ${what} is not implemented yet\n`);
    return exitUsage;
  }
  try {
    return await command.run(opts, args, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line an operator can act on: file:line:col: what was expected, what was found.
      io.err(err.pos ? `${err.message}\n` : `tandem-ha: ${err.message}\n`);
      return exitConfig;
    }
    throw err;
  }
}
