// tandemd: the node daemon. For now it reads and checks this node's part of
// the configuration and says plainly that it cannot serve yet: the data path
// (metadata, backing disk, NBD export, replication) is the next milestone.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { defaultConfigFile, loadResolvedConfig } from '../config/drbd-load.js';
import { assertRunnable, localHost } from '../config/drbd-resolve.js';
import { CliError, exitCodes, printWarnings, runMain } from './errors.js';

const usage = `usage: tandemd [-c FILE] [--node NAME] [--run-dir DIR]

  -c, --config FILE   DRBD configuration (default ${defaultConfigFile}, or TANDEM_CONFIG)
      --node NAME     this node's name in 'on' sections (default TANDEM_NODE, else uname -n)
      --run-dir DIR   sockets and state (default TANDEM_RUN_DIR, else /run/tandem)
  -h, --help          show this help`;

await runMain('tandemd', () => {
  let values: { config?: string; node?: string; 'run-dir'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        node: { type: 'string' },
        'run-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  const file = values.config || process.env['TANDEM_CONFIG'] || defaultConfigFile;
  const node = values.node || process.env['TANDEM_NODE'] || hostname();
  const config = loadResolvedConfig(file);
  printWarnings(config.warnings, false);
  const mine = config.resources.filter((r) => r.hosts.some((h) => h.names.includes(node)));
  for (const r of mine) {
    assertRunnable(r);
    localHost(r, node);
  }
  process.stderr.write(
    `tandemd: ${file} is valid for node '${node}' (${mine.length} resource(s): ${mine.map((r) => r.name).join(', ') || 'none'})\n`,
  );
  throw new CliError(
    'serving resources is not implemented yet (metadata, NBD export and replication come next)',
    exitCodes.execError,
  );
});
