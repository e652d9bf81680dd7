// The program behind bin/tandem-ha: runs main() with this process's arguments and environment.
// Kept apart from tandem-ha-main.ts so that importing the command table runs nothing.
import { main } from './tandem-ha-main.js';

process.exitCode = await main(process.argv.slice(2), process.env, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
