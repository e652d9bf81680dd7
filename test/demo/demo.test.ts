// `npm run demo` as a user runs it: the built program in a child process, no
// root needed. The story completes with every acknowledged block found on the
// new Primary; --keep leaves the cluster running until Ctrl-C, which removes it;
// bad flags are refused with exit status 2.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { parseSize } from '../../src/demo/demo.js';
import { repoRoot } from '../helpers/paths.js';

const main = join(repoRoot, 'dist/src/demo/main.js');

function run(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

function demoDir(output: string): string {
  const m = /^DIR=(\S+)$/m.exec(output);
  assert.ok(m, `no DIR= line in:\n${output}`);
  return m[1] as string;
}

function daemonsIn(dir: string): string {
  try {
    return execFileSync('pgrep', ['-af', dir], { encoding: 'utf8' });
  } catch {
    return ''; // pgrep exits 1 when nothing matches
  }
}

test('the demo runs the seed story: sync, writes, SIGKILL of the Primary, every acknowledged block on the other node', async () => {
  const r = run(['--size', '32M', '--seconds', '1', '--protocol', 'C']);
  const code = await r.exited;
  const out = r.output();
  assert.equal(code, 0, out);
  assert.match(out, /initial sync alpha -> bravo .* done in [\d.]+ s: UpToDate\/UpToDate/);
  const acked = Number(/(\d+) writes acknowledged/.exec(out)?.[1]);
  const verified = Number(/read back (\d+) written blocks from bravo: all identical/.exec(out)?.[1]);
  assert.ok(acked > 0 && verified > 0 && verified <= acked, out);
  assert.match(out, /failover +[\d.]+ s from SIGKILL/);
  const dir = demoDir(out);
  assert.equal(existsSync(dir), false, 'the directory is removed');
  assert.equal(daemonsIn(dir), '', 'no tandemd left');
});

test('--keep leaves both nodes running until SIGINT, which stops them and removes everything', async () => {
  const r = run(['--size', '32M', '--seconds', '1', '--keep']);
  try {
    const deadline = Date.now() + 60_000;
    while (!r.output().includes('Ctrl-C stops both nodes') && Date.now() < deadline) {
      if (r.child.exitCode !== null) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    const out = r.output();
    assert.match(out, /Ctrl-C stops both nodes/, out);
    const dir = demoDir(out);
    assert.match(daemonsIn(dir), /tandemd.*--node alpha/);
    assert.match(daemonsIn(dir), /tandemd.*--node bravo/);
    r.child.kill('SIGINT');
    assert.equal(await r.exited, 130);
    assert.equal(existsSync(dir), false);
    assert.equal(daemonsIn(dir), '');
  } finally {
    // On a failure above: the demo's own Ctrl-C path first, then by force, and
    // whatever tandemd it left (found by its directory).
    if (r.child.exitCode === null) {
      r.child.kill('SIGINT');
      const late = setTimeout(() => r.child.kill('SIGKILL'), 10_000);
      await r.exited;
      clearTimeout(late);
    }
    const m = /^DIR=(\S+)$/m.exec(r.output());
    if (m) {
      try {
        execFileSync('pkill', ['-KILL', '-f', m[1] as string]);
      } catch {
        // nothing left
      }
      rmSync(m[1] as string, { recursive: true, force: true });
    }
  }
});

test('bad flags: exit status 2 and a message naming the flag', async () => {
  for (const [args, text] of [
    [['--protocol', 'D'], /--protocol must be A, B or C/],
    [['--size', 'big'], /--size: 'big' is not a size/],
    [['--size', '1M'], /at least 16M/],
    [['--seconds=-1'], /--seconds must be/],
    [['--frobnicate'], /Unknown option '--frobnicate'/],
  ] as const) {
    const r = run([...args]);
    assert.equal(await r.exited, 2, r.output());
    assert.match(r.output(), text);
  }
});

test('parseSize: bytes and K/M/G suffixes; anything else is refused', () => {
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('512M'), 512 * 1024 * 1024);
  assert.equal(parseSize('2G'), 2 * 1024 ** 3);
  assert.equal(parseSize('64KiB'), 64 * 1024);
  assert.throws(() => parseSize('12X'), /not a size/);
});
