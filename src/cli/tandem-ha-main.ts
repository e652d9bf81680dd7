// tandem-ha's command line: global options, the command table and exit codes (0 done,
// 1 configuration refused or the daemon not reachable, 2 usage error). With no command it
// runs the cluster daemon; status, listnodes, nodestatus, rscstatus, standby and takeover
// ask the running daemon over its control socket, as cl_status, hb_standby, hb_takeover do.
import { connect } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, formatWarning } from '../config/errors.js';
import { defaultHaConfigDir, loadHaConfig } from '../config/ha.js';
import { checkNodeMembership } from '../config/hacf.js';
import { HaDaemon, type HaStatus } from '../ha/daemon.js';
import { createLogger, type LogLevel } from '../util/log.js';
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
  /** `status --json`. */
  readonly json?: boolean;
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

/** Asks the running daemon; undefined when it is not running. */
/**
 * Asks the running daemon one request; undefined when it is not running or went away
 * before it answered (the socket closed without a line).
 */
async function ask(
  opts: GlobalOptions,
  cmd: string,
  extra: Record<string, string> = {},
): Promise<{ ok: boolean; result?: unknown; error?: string } | undefined> {
  const path = join(opts.runDir, 'tandem-ha.sock');
  return new Promise((resolve) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ ok: false, error: 'tandem-ha did not answer within 60 s' });
    }, 60_000);
    const gone = (): void => {
      clearTimeout(timer);
      // After an answer this is a no-op: a promise settles once.
      resolve(undefined);
    };
    sock.setEncoding('utf8');
    sock.on('error', gone);
    sock.on('close', gone);
    sock.on('connect', () => sock.write(`${JSON.stringify({ id: 1, cmd, ...extra })}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string });
      } catch {
        resolve({ ok: false, error: 'a malformed answer from tandem-ha' });
      }
    });
  });
}

async function daemonStatus(opts: GlobalOptions, io: Io): Promise<HaStatus | undefined> {
  const r = await ask(opts, 'status');
  if (r === undefined) {
    io.err(`tandem-ha is not running on this machine (no ${join(opts.runDir, 'tandem-ha.sock')})\n`);
    return undefined;
  }
  if (!r.ok) {
    io.err(`tandem-ha: ${r.error}\n`);
    return undefined;
  }
  return r.result as HaStatus;
}

async function runDaemon(opts: GlobalOptions, _args: readonly string[], io: Io): Promise<number> {
  const { config, warnings } = await loadHaConfig(opts.configDir);
  checkNodeMembership(config.hacf, opts.node);
  const level = (process.env['TANDEM_HA_LOG_LEVEL'] as LogLevel | undefined) ?? 'info';
  const logger = createLogger({
    program: 'tandem-ha',
    level,
    ...(config.hacf.logfile ? { file: config.hacf.logfile } : {}),
  });
  for (const w of warnings) io.err(`${formatWarning(w)}\n`);
  const here = dirname(fileURLToPath(import.meta.url));
  const tandemadm = process.env['TANDEMADM']
    ? process.env['TANDEMADM'].split(' ')
    : [process.execPath, join(here, '..', '..', '..', 'bin', 'tandemadm')];
  const daemon = new HaDaemon({
    config,
    node: opts.node,
    runDir: opts.runDir,
    tandemadm,
    log: (lvl, message) => logger.log(lvl, message),
    ...(process.env['TANDEM_HA_INIT_DIR'] ? { initDir: process.env['TANDEM_HA_INIT_DIR'] } : {}),
    ...(process.env['TANDEM_HA_REBOOT_COMMAND']
      ? { rebootCommand: process.env['TANDEM_HA_REBOOT_COMMAND'].split(' ').filter(Boolean) }
      : {}),
    ...(process.env['TANDEM_HA_DISK_WAIT']
      ? { diskWaitSeconds: Number(process.env['TANDEM_HA_DISK_WAIT']) }
      : {}),
  });
  try {
    await daemon.start();
  } catch (e) {
    io.err(`tandem-ha: ${(e as Error).message}\n`);
    await daemon.stop().catch(() => {});
    return exitConfig;
  }
  logger.log(
    'info',
    daemon.peerName === undefined
      ? `started for node ${opts.node}, the witness`
      : `started for node ${opts.node}, peer ${daemon.peerName}${daemon.witness ? `, witness ${daemon.witness}` : ''}`,
  );
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      logger.log('info', `${sig}: releasing this node's groups`);
      void daemon.stop().then(
        (done) => {
          stopping = false;
          if (done) resolve();
          else
            logger.log(
              'error',
              'a group could not be stopped: tandem-ha keeps running (the peer must not take it); fix it and signal again',
            );
        },
        () => resolve(),
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  return exitOk;
}

async function statusCommand(opts: GlobalOptions, args: readonly string[], io: Io): Promise<number> {
  const st = await daemonStatus(opts, io);
  if (!st) return exitConfig;
  if (opts.json || args[0] === '--json') io.out(`${JSON.stringify(st, null, 2)}\n`);
  else io.out('tandem-ha is running on this machine.\n');
  return exitOk;
}

async function listnodes(opts: GlobalOptions, _args: readonly string[], io: Io): Promise<number> {
  const st = await daemonStatus(opts, io);
  if (!st) return exitConfig;
  io.out(`${[st.node, ...st.nodes.map((n) => n.name)].join('\n')}\n`);
  return exitOk;
}

async function nodestatus(opts: GlobalOptions, args: readonly string[], io: Io): Promise<number> {
  const st = await daemonStatus(opts, io);
  if (!st) return exitConfig;
  const name = (args[0] ?? opts.node).toLowerCase();
  const other = st.nodes.find((n) => n.name === name);
  if (name === st.node) io.out('active\n');
  else if (other) io.out(`${other.state === 'up' ? 'active' : other.state}\n`);
  else {
    io.err(
      `tandem-ha: '${name}' is not a cluster node (${[st.node, ...st.nodes.map((n) => n.name)].join(', ')})\n`,
    );
    return exitUsage;
  }
  return exitOk;
}

/** cl_status rscstatus: which groups this node holds — all, local, foreign or none. */
async function rscstatus(opts: GlobalOptions, _args: readonly string[], io: Io): Promise<number> {
  const st = await daemonStatus(opts, io);
  if (!st) return exitConfig;
  const held = st.groups.filter((g) => g.state === 'running');
  const local = held.filter((g) => g.node === st.node).length;
  const foreign = held.length - local;
  const word =
    held.length === 0
      ? 'none'
      : held.length === st.groups.length
        ? 'all'
        : foreign === 0
          ? 'local'
          : local === 0
            ? 'foreign'
            : 'all';
  io.out(`${word}\n`);
  for (const g of st.groups)
    io.out(`  ${g.key} (${g.node}): ${g.state}${g.reason ? ` — ${g.reason}` : ''}\n`);
  return exitOk;
}

/**
 * `outdate-peer [RES]`: the `fence-peer` handler for tandemd (DRBD's drbd-peer-outdater,
 * dopd): asks the peer's tandem-ha over the heartbeat links to outdate its copy. Exit
 * codes as drbd-peer-outdater's: 4 outdated, 5 peer unreachable, 6 peer is Primary —
 * and 6 too when, with a witness, this node has no majority: the peer may take over, so
 * writes here must stay held.
 */
async function outdatePeer(opts: GlobalOptions, args: readonly string[], io: Io): Promise<number> {
  const resource = args[0] ?? process.env['DRBD_RESOURCE'] ?? '';
  const r = await ask(opts, 'outdate-peer', { resource });
  const answer = r?.ok ? (r.result as { result: number; message: string } | undefined) : undefined;
  if (answer === undefined) {
    io.err(`tandem-ha outdate-peer: tandem-ha is not running here; the peer could not be asked\n`);
    return 5;
  }
  io.err(`tandem-ha outdate-peer: ${answer.message}\n`);
  if (answer.result === 0) return 4;
  return answer.result === -6 || answer.result === -7 ? 6 : 5;
}

function forward(cmd: 'standby' | 'takeover') {
  return async (opts: GlobalOptions, _args: readonly string[], io: Io): Promise<number> => {
    const r = await ask(opts, cmd);
    if (r === undefined) {
      io.err(`tandem-ha is not running on this machine (no ${join(opts.runDir, 'tandem-ha.sock')})\n`);
      return exitConfig;
    }
    if (!r.ok) {
      io.err(`tandem-ha: ${cmd}: ${r.error}\n`);
      return exitConfig;
    }
    io.out(`${String(r.result)}\n`);
    return exitOk;
  };
}

/** The cl_status / hb_standby / hb_takeover counterparts are listed so that --help is complete. */
const commands: readonly Command[] = [
  {
    name: 'check',
    args: '',
    summary: 'parse ha.cf, authkeys and haresources and print the cluster configuration',
    maxArgs: 0,
    run: check,
  },
  {
    name: daemonName,
    args: '',
    summary: 'run the cluster daemon (SIGTERM releases the groups)',
    maxArgs: 0,
    run: runDaemon,
  },
  {
    name: 'status',
    args: '[--json]',
    summary: 'is the local daemon running (cl_status hbstatus); --json: nodes, links, groups, counters',
    maxArgs: 1,
    run: statusCommand,
  },
  {
    name: 'listnodes',
    args: '',
    summary: 'list the cluster nodes (cl_status listnodes)',
    maxArgs: 0,
    run: listnodes,
  },
  {
    name: 'nodestatus',
    args: 'NODE',
    summary: 'active, dead or init (cl_status nodestatus)',
    maxArgs: 1,
    run: nodestatus,
  },
  {
    name: 'rscstatus',
    args: '',
    summary: 'which groups this node holds: all, local, foreign, none (cl_status rscstatus)',
    maxArgs: 0,
    run: rscstatus,
  },
  {
    name: 'standby',
    args: '',
    summary: "give this node's groups to the peer (hb_standby)",
    maxArgs: 0,
    run: forward('standby'),
  },
  {
    name: 'outdate-peer',
    args: '[RES]',
    summary:
      'fence-peer handler: have the peer outdate its copy (exit 4 done, 5 unreachable, 6 peer Primary or no majority)',
    maxArgs: 1,
    run: outdatePeer,
  },
  {
    name: 'takeover',
    args: '',
    summary: "take the peer's groups (hb_takeover)",
    maxArgs: 0,
    run: forward('takeover'),
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
    'exit status: 0 done, 1 configuration refused or tandem-ha not running, 2 usage error',
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
  json: { type: 'boolean' },
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
    json: values.json === true,
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
