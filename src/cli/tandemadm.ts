// tandemadm: drbdadm's counterpart. Each command is a row of `commands`; this
// file only reads the command line and dispatches. Configuration and metadata
// commands work offline; state commands go to tandemd over its control socket.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { configJson, renderConfig, renderMetaDisk } from '../config/drbd-dump.js';
import { defaultConfigFile, loadResolvedConfig } from '../config/drbd-load.js';
import type { ResolvedConfig, ResolvedResource } from '../config/drbd-model.js';
import { localHost, optionValue } from '../config/drbd-resolve.js';
import { callDaemon, DaemonUnreachableError } from '../daemon/control-client.js';
import type { ControlCommand } from '../daemon/control-protocol.js';
import {
  diffEvents,
  type NodeStatus,
  type ResourceStatus,
  renderEventsNow,
  renderOverview,
  renderProc,
  renderStatus,
} from '../daemon/status.js';
import { connStatesFrom } from '../device/state.js';
import { CliError, exitCodes, printWarnings, runMain } from './errors.js';
import { createMd, dumpMd, type MdContext } from './md-commands.js';

interface Context {
  readonly config: ResolvedConfig;
  readonly node: string;
  readonly runDir: string;
  readonly json: boolean;
  readonly force: boolean;
  readonly discardMyData: boolean;
  /** events: print the current state and exit. */
  readonly now: boolean;
  /** wait-connect / wait-sync: give up after this many seconds (0: wait for ever). */
  readonly timeoutSeconds: number;
  /** The resources named on the command line (`all` or none: every one). */
  readonly resources: readonly ResolvedResource[];
  readonly out: (text: string) => void;
}

interface Command {
  readonly name: string;
  readonly args: string;
  readonly describe: string;
  /** Whether an omitted resource means all (drbdadm: only for dump and sh-resources). */
  readonly resourceOptional: boolean;
  readonly run: (ctx: Context) => number | Promise<number>;
}

/** Sends `cmd` for each resource to tandemd; the first refusal ends the command, as drbdadm's does. */
async function daemonCommand(ctx: Context, cmd: ControlCommand): Promise<number> {
  const socket = join(ctx.runDir, 'tandemd.sock');
  for (const r of ctx.resources) {
    let res: Awaited<ReturnType<typeof callDaemon>>;
    try {
      res = await callDaemon(socket, cmd, r.name, ctx.force, 120_000, {
        ...(ctx.discardMyData ? { discardMyData: true } : {}),
      });
    } catch (e) {
      if (e instanceof DaemonUnreachableError) {
        throw new CliError(
          `${e.message}: start it with 'tandemd -c FILE --node ${ctx.node} --run-dir ${ctx.runDir}'`,
          exitCodes.execError,
        );
      }
      throw e;
    }
    if (!res.ok) {
      const code =
        res.error.code === 'STATE_CHANGE_FAILED'
          ? exitCodes.stateChangeFailed
          : res.error.code === 'UNKNOWN_RESOURCE'
            ? exitCodes.usage
            : exitCodes.execError;
      throw new CliError(res.error.message, code);
    }
  }
  return exitCodes.ok;
}

async function daemonStatus(ctx: Context): Promise<NodeStatus> {
  const socket = join(ctx.runDir, 'tandemd.sock');
  const want =
    ctx.resources.length === ctx.config.resources.length ? 'all' : (ctx.resources[0]?.name ?? 'all');
  let res: Awaited<ReturnType<typeof callDaemon>>;
  try {
    res = await callDaemon(socket, 'status', want);
  } catch (e) {
    if (e instanceof DaemonUnreachableError) throw new CliError(e.message, exitCodes.execError);
    throw e;
  }
  if (!res.ok)
    throw new CliError(
      res.error.message,
      res.error.code === 'UNKNOWN_RESOURCE' ? exitCodes.usage : exitCodes.execError,
    );
  return res.result as NodeStatus;
}

/** Polls status until `done` holds for every named resource; false when the timeout passed. */
async function waitFor(ctx: Context, what: string, done: (r: ResourceStatus) => boolean): Promise<number> {
  const deadline = ctx.timeoutSeconds > 0 ? Date.now() + ctx.timeoutSeconds * 1000 : Number.POSITIVE_INFINITY;
  const names = new Set(ctx.resources.map((r) => r.name));
  for (;;) {
    const st = await daemonStatus(ctx);
    const mine = st.resources.filter((r) => names.has(r.name));
    const pending = mine.filter((r) => !done(r));
    if (pending.length === 0) return exitCodes.ok;
    if (Date.now() >= deadline) {
      throw new CliError(
        `${what}: timed out after ${ctx.timeoutSeconds} s (${pending
          .map(
            (r) =>
              `${r.name}: ${r.connection}, ${r.volumes.map((v) => `${v.replication} ${v.disk}/${v.peerDisk}`).join(', ')}`,
          )
          .join('; ')})`,
        exitCodes.execError,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Still shaking hands or resyncing (not Connected, not verifying): wait-sync waits on. */
const syncing: ReadonlySet<string> = new Set([
  'WFReportParams',
  ...connStatesFrom('StartingSyncS', 'PausedSyncT'),
]);

function mdContext(ctx: Context, r: ResolvedResource): MdContext {
  const al = optionValue(r, 'disk', 'al-extents');
  return {
    force: ctx.force,
    alSlots: typeof al === 'number' ? al : undefined,
    nodeId: localHost(r, ctx.node).nodeId,
    out: ctx.out,
    err: (t) => process.stderr.write(t),
  };
}

/** create-md and dump-md work on the disk directly: refuse while tandemd has it attached. */
async function requireDetached(ctx: Context, r: ResolvedResource, what: string): Promise<void> {
  let res: Awaited<ReturnType<typeof callDaemon>>;
  try {
    res = await callDaemon(join(ctx.runDir, 'tandemd.sock'), 'status', r.name, false, 10_000);
  } catch {
    return;
  }
  if (!res.ok) return;
  const st = (res.result as NodeStatus).resources[0];
  if (st?.volumes.some((v) => v.disk !== 'Diskless')) {
    throw new CliError(
      `${r.name}: the disk is attached (${st.volumes.map((v) => v.disk).join(', ')}); ${what} refused: run 'tandemadm down ${r.name}' first`,
      exitCodes.execError,
    );
  }
}

const commands: readonly Command[] = [
  {
    name: 'create-md',
    args: 'RES|all',
    describe: "write fresh tandem metadata on this node's backing disk(s) (asks; --force to skip)",
    resourceOptional: false,
    run: async (ctx) => {
      for (const r of ctx.resources) {
        await requireDetached(ctx, r, 'create-md');
        for (const v of localHost(r, ctx.node).volumes) await createMd(v, r.name, mdContext(ctx, r));
      }
      return exitCodes.ok;
    },
  },
  {
    name: 'dump-md',
    args: 'RES',
    describe: 'print the metadata in readable text (--json for JSON)',
    resourceOptional: false,
    run: async (ctx) => {
      const all: unknown[] = [];
      for (const r of ctx.resources) {
        await requireDetached(ctx, r, 'dump-md');
        for (const v of localHost(r, ctx.node).volumes)
          all.push({
            resource: r.name,
            volume: v.number,
            ...((await dumpMd(v, ctx.json, mdContext(ctx, r))) as object),
          });
      }
      if (ctx.json) ctx.out(`${JSON.stringify(all, null, 2)}\n`);
      return exitCodes.ok;
    },
  },
  ...(['up', 'down', 'attach', 'detach', 'secondary'] as const).map(
    (name): Command => ({
      name,
      args: name === 'secondary' ? '[--force] RES|all' : 'RES|all',
      describe: {
        up: 'attach the disk(s) and bring the resource up (tandemd must run)',
        down: 'demote, detach and take the resource down',
        attach: 'attach the backing disk(s)',
        detach: 'detach the backing disk(s)',
        secondary:
          'demote to Secondary (refused while the device is mounted or open; --force: at once, its I/O fails)',
      }[name],
      resourceOptional: false,
      run: (ctx) => daemonCommand(ctx, name),
    }),
  ),
  ...(['disconnect', 'invalidate', 'invalidate-remote', 'verify', 'outdate', 'resume-io'] as const).map(
    (name): Command => ({
      name,
      args: 'RES|all',
      describe: {
        disconnect: 'close the link to the peer (StandAlone)',
        invalidate: "replace this node's data with the peer's (full sync, this node SyncTarget)",
        'invalidate-remote': "replace the peer's data with this node's (full sync, this node SyncSource)",
        verify: 'compare both replicas online (verify-alg); differing blocks are marked out of sync',
        outdate: "mark this Secondary's data Outdated (what a fence-peer handler asks of the peer)",
        'resume-io': 'let application writes held by fencing go on',
      }[name],
      resourceOptional: false,
      run: (ctx) => daemonCommand(ctx, name),
    }),
  ),
  {
    name: 'connect',
    args: '[--discard-my-data] RES|all',
    describe: "connect to the peer; --discard-my-data: this node is the split brain's victim",
    resourceOptional: false,
    run: (ctx) => daemonCommand(ctx, 'connect'),
  },
  {
    name: 'wait-connect',
    args: '[--timeout S] RES|all',
    describe: 'wait until the resource is connected to its peer',
    resourceOptional: false,
    run: (ctx) =>
      waitFor(
        ctx,
        'wait-connect',
        (r) => r.connection === 'Connected' && r.volumes.every((v) => v.replication !== 'WFReportParams'),
      ),
  },
  {
    name: 'wait-sync',
    args: '[--timeout S] RES|all',
    describe: 'wait until connected and no resync is running',
    resourceOptional: false,
    run: (ctx) =>
      waitFor(
        ctx,
        'wait-sync',
        (r) => r.connection === 'Connected' && r.volumes.every((v) => !syncing.has(v.replication)),
      ),
  },
  {
    name: 'primary',
    args: '[--force] RES|all',
    describe: 'promote to Primary; --force makes Inconsistent data the reference (initial sync)',
    resourceOptional: false,
    run: (ctx) => daemonCommand(ctx, 'primary'),
  },
  {
    name: 'role',
    args: 'RES|all',
    describe: 'print local/peer role, e.g. Primary/Unknown',
    resourceOptional: false,
    run: async (ctx) => {
      const st = await daemonStatus(ctx);
      ctx.out(st.resources.map((r) => `${r.role}/${r.peerRole}\n`).join(''));
      return exitCodes.ok;
    },
  },
  {
    name: 'dstate',
    args: 'RES|all',
    describe: 'print local/peer disk state of each volume, e.g. UpToDate/DUnknown',
    resourceOptional: false,
    run: async (ctx) => {
      const st = await daemonStatus(ctx);
      ctx.out(st.resources.flatMap((r) => r.volumes.map((v) => `${v.disk}/${v.peerDisk}\n`)).join(''));
      return exitCodes.ok;
    },
  },
  {
    name: 'cstate',
    args: 'RES|all',
    describe: 'print the connection state, e.g. StandAlone',
    resourceOptional: false,
    run: async (ctx) => {
      const st = await daemonStatus(ctx);
      ctx.out(st.resources.map((r) => `${r.connection}\n`).join(''));
      return exitCodes.ok;
    },
  },
  {
    name: 'status',
    args: '[--json] [RES|all]',
    describe: 'print roles, disk and connection states (drbdadm status)',
    resourceOptional: true,
    run: async (ctx) => {
      const st = await daemonStatus(ctx);
      ctx.out(ctx.json ? `${JSON.stringify(st, null, 2)}\n` : renderStatus(st.resources));
      return exitCodes.ok;
    },
  },
  {
    name: 'proc',
    args: '[RES|all]',
    describe: "print DRBD 8.4's /proc/drbd: states, counters, resync progress",
    resourceOptional: true,
    run: async (ctx) => {
      ctx.out(renderProc((await daemonStatus(ctx)).resources));
      return exitCodes.ok;
    },
  },
  {
    name: 'overview',
    args: '[RES|all]',
    describe: 'one line per volume (drbd-overview)',
    resourceOptional: true,
    run: async (ctx) => {
      ctx.out(renderOverview((await daemonStatus(ctx)).resources));
      return exitCodes.ok;
    },
  },
  {
    name: 'events',
    args: '[--now] [RES|all]',
    describe: 'print state changes as they happen (drbdsetup events2); --now: the current state, then exit',
    resourceOptional: true,
    run: async (ctx) => {
      let last = (await daemonStatus(ctx)).resources;
      ctx.out(renderEventsNow(last));
      if (ctx.now) return exitCodes.ok;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const next = (await daemonStatus(ctx)).resources;
        for (const line of diffEvents(last, next)) ctx.out(`${line}\n`);
        last = next;
      }
    },
  },
  {
    name: 'dump',
    args: '[RES|all]',
    describe: 'print the effective configuration (common folded in); --json for JSON',
    resourceOptional: true,
    run: (ctx) => {
      ctx.out(ctx.json ? configJson(ctx.config, ctx.resources) : renderConfig(ctx.config, ctx.resources));
      return exitCodes.ok;
    },
  },
  {
    name: 'sh-resources',
    args: '',
    describe: 'print the names of all resources',
    resourceOptional: true,
    run: (ctx) => {
      ctx.out(`${ctx.config.resources.map((r) => r.name).join(' ')}\n`);
      return exitCodes.ok;
    },
  },
  {
    name: 'sh-dev',
    args: 'RES|all',
    describe: "print this node's device path of each volume",
    resourceOptional: false,
    run: (ctx) => perVolume(ctx, (_, v) => v.device.path),
  },
  {
    name: 'sh-minor',
    args: 'RES|all',
    describe: "print this node's minor number of each volume",
    resourceOptional: false,
    run: (ctx) => perVolume(ctx, (_, v) => String(v.device.minor)),
  },
  {
    name: 'sh-ll-dev',
    args: 'RES|all',
    describe: "print this node's backing disk of each volume",
    resourceOptional: false,
    run: (ctx) => perVolume(ctx, (_, v) => v.disk),
  },
  {
    name: 'sh-md-dev',
    args: 'RES|all',
    describe: "print the device holding this node's metadata of each volume",
    resourceOptional: false,
    run: (ctx) => perVolume(ctx, (_, v) => (v.metaDisk.kind === 'internal' ? v.disk : v.metaDisk.path)),
  },
  {
    name: 'sh-md-idx',
    args: 'RES|all',
    describe: "print this node's meta-disk index of each volume (internal, flexible or N)",
    resourceOptional: false,
    run: (ctx) =>
      perVolume(ctx, (_, v) =>
        v.metaDisk.kind === 'internal'
          ? 'internal'
          : v.metaDisk.index === undefined
            ? 'flexible'
            : renderMetaDisk(v.metaDisk).replace(/^.*\[(\d+)\]$/, '$1'),
      ),
  },
  {
    name: 'sh-ip',
    args: 'RES|all',
    describe: "print this node's replication IP address (one line per volume, as drbdadm)",
    resourceOptional: false,
    run: (ctx) => perVolume(ctx, (h) => h.address.host),
  },
];

function perVolume(
  ctx: Context,
  pick: (host: ReturnType<typeof localHost>, v: ReturnType<typeof localHost>['volumes'][number]) => string,
): number {
  const lines: string[] = [];
  for (const r of ctx.resources) {
    const h = localHost(r, ctx.node);
    for (const v of h.volumes) lines.push(pick(h, v));
  }
  ctx.out(lines.length ? `${lines.join('\n')}\n` : '');
  return exitCodes.ok;
}

function usage(): string {
  const rows = commands.map((c) => `  ${`${c.name} ${c.args}`.padEnd(24)} ${c.describe}`);
  return [
    'usage: tandemadm [-c FILE] [--node NAME] [--run-dir DIR] COMMAND [RES|all]',
    '',
    'Commands:',
    ...rows,
    '  help [COMMAND]           show this help, or one command',
    '',
    'Options:',
    `  -c, --config FILE        DRBD configuration to read (default ${defaultConfigFile}, or TANDEM_CONFIG)`,
    "      --node NAME          this node's name in 'on' sections (default TANDEM_NODE, else uname -n)",
    '      --run-dir DIR        sockets and state of this node (default TANDEM_RUN_DIR, else /run/tandem)',
    '      --json               JSON output where a command has it',
    '      --force              primary: promote Inconsistent data; secondary: demote in use, failing I/O;',
    '                           create-md: overwrite without asking',
    "      --discard-my-data    connect: this node's changes are thrown away to resolve a split brain",
    '      --timeout S          wait-connect, wait-sync: give up after S seconds (default: wait for ever)',
    '  -q, --quiet              do not print configuration warnings',
    '  -h, --help               show this help',
    '',
    'Exit codes: 0 done, 1 usage or unknown resource, 10 invalid configuration, 11 state change refused,',
    '            20 cannot read, execute or reach tandemd.',
  ].join('\n');
}

function parseTimeout(text: string | undefined): number {
  if (text === undefined) return 0;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new CliError(`--timeout: '${text}' is not a number of seconds`);
  return n;
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      node: { type: 'string' },
      'run-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      'discard-my-data': { type: 'boolean', default: false },
      now: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      quiet: { type: 'boolean', short: 'q', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [name, ...rest] = positionals;
  if (values.help || name === undefined) {
    process.stdout.write(`${usage()}\n`);
    return name === undefined && !values.help ? exitCodes.usage : exitCodes.ok;
  }
  if (name === 'help') {
    const which = commands.find((c) => c.name === rest[0]);
    if (rest[0] !== undefined && !which)
      throw new CliError(`unknown command '${rest[0]}'; see 'tandemadm help'`);
    process.stdout.write(
      which ? `usage: tandemadm ${which.name} ${which.args}\n  ${which.describe}\n` : `${usage()}\n`,
    );
    return exitCodes.ok;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    throw new CliError(
      `unknown command '${name}'; known: ${commands.map((c) => c.name).join(', ')} (see 'tandemadm help')`,
    );
  }
  if (rest.length > 1)
    throw new CliError(`'${name}' takes one resource name or 'all', got '${rest.join(' ')}'`);
  const file = values.config || process.env['TANDEM_CONFIG'] || defaultConfigFile;
  const node = values.node || process.env['TANDEM_NODE'] || hostname();
  const config = loadResolvedConfig(file);
  printWarnings(config.warnings, values.quiet === true);
  const wanted = rest[0];
  if (wanted === undefined && !command.resourceOptional)
    throw new CliError(`'${name}' needs a resource name or 'all'`);
  let resources: readonly ResolvedResource[] = config.resources;
  if (wanted !== undefined && wanted !== 'all') {
    const r = config.resources.find((x) => x.name === wanted);
    if (!r) {
      const known = config.resources.map((x) => x.name).join(', ') || 'none';
      throw new CliError(`'${wanted}' is not defined in ${file} (resources: ${known})`);
    }
    resources = [r];
  }
  return command.run({
    config,
    node,
    runDir: values['run-dir'] || process.env['TANDEM_RUN_DIR'] || '/run/tandem',
    json: values.json === true,
    force: values.force === true,
    discardMyData: values['discard-my-data'] === true,
    now: values.now === true,
    timeoutSeconds: parseTimeout(values.timeout),
    resources,
    out: (t) => process.stdout.write(t),
  });
}

await runMain('tandemadm', async () => {
  try {
    return await main(process.argv.slice(2));
  } catch (e) {
    // parseArgs reports unknown options as TypeError with a code.
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw new CliError((e as Error).message);
    throw e;
  }
});
