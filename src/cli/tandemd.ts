// tandemd: the node daemon's command line. Foreground by default (systemd,
// tests); --daemon detaches once the control socket answers.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultConfigFile, loadResolvedConfig } from '../config/drbd-load.js';
import { splitHostPort } from '../config/drbd-options.js';
import { Daemon } from '../daemon/daemon.js';
import { busyPollUsDefault } from '../util/busy-poll.js';
import { createLogger, type LogLevel } from '../util/log.js';
import { CliError, exitCodes, printWarnings, runMain } from './errors.js';

export const defaultRunDir = '/run/tandem';

const usage = `usage: tandemd [-c FILE] [--node NAME] [--run-dir DIR] [--daemon] [--log-level LEVEL] [--log-file FILE]

  -c, --config FILE    DRBD configuration (default ${defaultConfigFile}, or TANDEM_CONFIG)
      --node NAME      this node's name in 'on' sections (default TANDEM_NODE, else uname -n)
      --run-dir DIR    PID file, control socket and NBD sockets (default TANDEM_RUN_DIR, else ${defaultRunDir})
      --daemon         detach into the background once ready
      --log-level L    debug, info (default), warn or error
      --log-file FILE  append the log here instead of stderr
      --no-kernel-device  serve NBD sockets only; make no /dev device
      --metrics-address HOST:PORT  serve Prometheus metrics at /metrics there
                       (overrides global { metrics-address }; off unless one is set)
      --busy-poll USEC after bytes arrive, keep polling up to USEC microseconds before
                       sleeping (overrides global { busy-poll }; default ${busyPollUsDefault}, 0 off)
  -h, --help           show this help`;

await runMain('tandemd', async () => {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        node: { type: 'string' },
        'run-dir': { type: 'string' },
        daemon: { type: 'boolean' },
        'log-level': { type: 'string' },
        'log-file': { type: 'string' },
        'no-kernel-device': { type: 'boolean' },
        'metrics-address': { type: 'string' },
        'busy-poll': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (values['help']) {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  const level = (values['log-level'] as string | undefined) ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level))
    throw new CliError(`--log-level: expected debug, info, warn or error, got '${level}'`);
  const busyPollText = values['busy-poll'] as string | undefined;
  const busyPollFlag = busyPollText === undefined ? undefined : Number(busyPollText);
  if (
    busyPollFlag !== undefined &&
    (busyPollText?.trim() === '' ||
      !Number.isInteger(busyPollFlag) ||
      busyPollFlag < 0 ||
      busyPollFlag > 10_000)
  )
    throw new CliError(`--busy-poll: expected microseconds from 0 to 10000, got '${busyPollText}'`);
  const file = (values['config'] as string | undefined) || process.env['TANDEM_CONFIG'] || defaultConfigFile;
  const node = (values['node'] as string | undefined) || process.env['TANDEM_NODE'] || hostname();
  const runDir = (values['run-dir'] as string | undefined) || process.env['TANDEM_RUN_DIR'] || defaultRunDir;
  const config = loadResolvedConfig(file);
  printWarnings(config.warnings, false);
  const fromConfig = config.global.get('metrics-address')?.value;
  const metricsAddress =
    (values['metrics-address'] as string | undefined) ??
    (typeof fromConfig === 'string' ? fromConfig : undefined);
  if (metricsAddress !== undefined) {
    const { host, port } = splitHostPort(metricsAddress);
    if (host === '' || !metricsAddress.includes(':') || !Number.isInteger(port) || port < 0 || port > 65535)
      throw new CliError(
        `--metrics-address: expected HOST:PORT (e.g. 127.0.0.1:9942), got '${metricsAddress}'`,
      );
  }
  const fromConfigPoll = config.global.get('busy-poll')?.value;
  const busyPollUs =
    busyPollFlag ?? (typeof fromConfigPoll === 'number' ? fromConfigPoll : busyPollUsDefault);

  if (values['daemon']) {
    const args = process.argv.slice(2).filter((a) => a !== '--daemon');
    const child = spawn(process.execPath, [process.argv[1] as string, ...args], {
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
    const sock = join(runDir, 'tandemd.sock');
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(sock)) throw new CliError('tandemd did not come up (see its log)', exitCodes.execError);
    return exitCodes.ok;
  }

  const log = createLogger({
    program: 'tandemd',
    level: level as LogLevel,
    file: values['log-file'] as string | undefined,
  });
  const daemon = new Daemon({
    config,
    node,
    runDir,
    log,
    kernelDevices: values['no-kernel-device'] !== true,
    ...(metricsAddress === undefined ? {} : { metricsAddress }),
    busyPollUs,
  });
  try {
    await daemon.start();
  } catch (e) {
    throw new CliError((e as Error).message, exitCodes.execError);
  }
  await new Promise<void>((resolve) => {
    // A refused stop (a device in use) leaves the daemon serving; the next signal tries again.
    const stop = (sig: string) => {
      log.log('info', `${sig}: shutting down`);
      void daemon.stop().then((stopped) => {
        if (stopped) resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  return exitCodes.ok;
});
