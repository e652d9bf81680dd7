#!/usr/bin/env node
// Builds tandem's native helper (native/tandem_io.c) into build/tandem_io.node
// with the C compiler and Node-API's headers. It never fails the install or the
// build: without the helper tandem reads through libuv's thread pool (slower
// for cached data, the same results). TANDEM_NO_NATIVE=1 skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const out = join(root, 'build', 'tandem_io.node');
const warn = (why) => {
  process.stderr.write(`build-native: ${why}; tandem will read through the thread pool\n`);
  process.exit(0);
};

if (process.env.TANDEM_NO_NATIVE === '1') warn('TANDEM_NO_NATIVE=1');
// Node-API is ABI-stable: any node_api.h serves; prefer the running node's own.
const includes = [
  join(dirname(dirname(process.execPath)), 'include', 'node'),
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter((d) => d && existsSync(join(d, 'node_api.h')));
if (includes.length === 0) warn("no node_api.h found (Node's headers)");
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC ?? 'cc';
const tmp = `${out}.${process.pid}`;
const r = spawnSync(
  cc,
  [
    '-shared',
    '-fPIC',
    '-O2',
    '-Wall',
    '-Wextra',
    '-I',
    includes[0],
    join(root, 'native', 'tandem_io.c'),
    '-o',
    tmp,
  ],
  { encoding: 'utf8' },
);
if (r.error) warn(`${cc}: ${r.error.message}`);
if (r.status !== 0) warn(`${cc} failed:\n${r.stderr}`);
renameSync(tmp, out);
