// tandemadm: drbdadm's counterpart. Each command is a row of `commands`; this
// file only reads the command line and dispatches. Configuration commands work
// offline; commands that need tandemd arrive with it.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { configJson, renderConfig, renderMetaDisk } from '../config/drbd-dump.js';
import { defaultConfigFile, loadResolvedConfig } from '../config/drbd-load.js';
import type { ResolvedConfig, ResolvedResource } from '../config/drbd-model.js';
import { localHost } from '../config/drbd-resolve.js';
import { CliError, exitCodes, printWarnings, runMain } from './errors.js';

interface Context {
  readonly config: ResolvedConfig;
  readonly node: string;
  readonly json: boolean;
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
  readonly run: (ctx: Context) => number;
}

const commands: readonly Command[] = [
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
    '  -q, --quiet              do not print configuration warnings',
    '  -h, --help               show this help',
    '',
    'Exit codes: 0 done, 1 usage or unknown resource, 10 invalid configuration, 20 cannot read or execute.',
  ].join('\n');
}

function main(argv: readonly string[]): number {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      node: { type: 'string' },
      'run-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
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
    json: values.json === true,
    resources,
    out: (t) => process.stdout.write(t),
  });
}

await runMain('tandemadm', () => {
  try {
    return main(process.argv.slice(2));
  } catch (e) {
    // parseArgs reports unknown options as TypeError with a code.
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw new CliError((e as Error).message);
    throw e;
  }
});
