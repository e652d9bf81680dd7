// The demo's command line: npm run demo -- [--size 512M] [--protocol A|B|C]
// [--seconds N] [--keep]. Exit status 0 when every acknowledged write was found
// on the new Primary; 1 on any failure (with both nodes' log tails); 130 on Ctrl-C.
import { parseArgs } from 'node:util';
import { Demo, parseSize } from './demo.js';

const usage = `usage: npm run demo -- [options]

Runs the seed's story on this machine with two tandem nodes on loopback and
file-backed disks in a temporary directory (no root, no configuration needed).

  --size SIZE        size of each node's disk (default 512M; K, M, G suffixes)
  --protocol A|B|C   DRBD's replication protocol (default C)
  --seconds N        seconds of random writes through NBD (default 3)
  --keep             leave the cluster running afterwards, until Ctrl-C
  -h, --help         this text
`;

async function main(): Promise<number> {
  let values: { size?: string; protocol?: string; seconds?: string; keep?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        size: { type: 'string', default: '512M' },
        protocol: { type: 'string', default: 'C' },
        seconds: { type: 'string', default: '3' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const protocol = (values.protocol ?? 'C').toUpperCase();
  if (protocol !== 'A' && protocol !== 'B' && protocol !== 'C') {
    process.stderr.write(`demo: --protocol must be A, B or C, not '${values.protocol}'\n`);
    return 2;
  }
  let sizeBytes: number;
  try {
    sizeBytes = parseSize(values.size ?? '512M');
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n`);
    return 2;
  }
  if (sizeBytes < 16 * 1024 * 1024) {
    process.stderr.write('demo: --size must be at least 16M (the metadata needs room too)\n');
    return 2;
  }
  const writeSeconds = Number(values.seconds);
  if (!(writeSeconds > 0 && writeSeconds <= 600)) {
    process.stderr.write(
      `demo: --seconds must be a number of seconds from 0 to 600, not '${values.seconds}'\n`,
    );
    return 2;
  }

  const demo = new Demo({
    sizeBytes,
    protocol,
    writeSeconds,
    keep: values.keep === true,
    out: process.stdout,
  });
  let interrupted = false;
  const stop = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stdout.write(`\n${sig}: stopping both nodes and removing ${demo.root}\n`);
    demo.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await demo.run();
  } catch (e) {
    if (interrupted) return 130;
    process.stderr.write(`\ndemo failed: ${(e as Error).message}\n${demo.logs()}\n`);
    await demo.cleanup();
    return 1;
  }
  if (values.keep) {
    // Until Ctrl-C, even if both daemons die: the timer keeps the process (and its cleanup) alive.
    setInterval(() => {}, 60_000);
    await new Promise<never>(() => {});
  }
  await demo.cleanup();
  return 0;
}

process.exitCode = await main();
