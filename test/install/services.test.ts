// The systemd units and the install script: systemd-analyze accepts the units
// (with the programs' absolute paths put in, as the fixed search path of
// systemd is where npm install -g puts them); tandemd starts after the network
// and before tandem-ha, which requires it; every option the units pass is one
// the programs accept; install-services puts units and example configuration in
// place under a fake root and never overwrites a configuration.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { bin, repoRoot } from '../helpers/paths.js';

const unit = (name: string) => readFileSync(join(repoRoot, 'systemd', name), 'utf8');
const directive = (text: string, key: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

test('ordering: tandemd after the network and before tandem-ha; tandem-ha requires tandemd', () => {
  const d = unit('tandemd.service');
  const h = unit('tandem-ha.service');
  assert.ok(directive(d, 'After').join(' ').includes('network-online.target'));
  assert.ok(directive(d, 'Wants').join(' ').includes('network-online.target'));
  assert.ok(directive(d, 'Before').join(' ').includes('tandem-ha.service'));
  assert.ok(directive(h, 'After').join(' ').includes('tandemd.service'));
  assert.ok(directive(h, 'Requires').join(' ').includes('tandemd.service'));
});

test('every option the units pass is in the program’s --help', () => {
  for (const [file, key] of [
    ['tandemd.service', 'ExecStart'],
    ['tandemd.service', 'ExecStartPost'],
    ['tandem-ha.service', 'ExecStart'],
  ] as const) {
    for (const line of directive(unit(file), key)) {
      const [program, ...args] = line.replace(/^-/, '').split(/\s+/);
      const help = spawnSync(process.execPath, [bin(program as string), '--help'], {
        encoding: 'utf8',
      }).stdout;
      for (const a of args.filter((x) => x.startsWith('--')))
        assert.ok(help.includes(a), `${file}: ${program} does not know ${a}`);
    }
  }
});

test('systemd-analyze verify accepts both units', {
  skip: spawnSync('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-units-'));
  try {
    for (const name of ['tandemd.service', 'tandem-ha.service']) {
      const text = unit(name).replace(
        /^(ExecStart(?:Post)?=-?)(tandemd|tandemadm|tandem-ha)\b/gm,
        (_m, head: string, program: string) => `${head}${bin(program)}`,
      );
      writeFileSync(join(dir, name), text);
    }
    const r = spawnSync(
      'systemd-analyze',
      ['verify', '--man=no', join(dir, 'tandemd.service'), join(dir, 'tandem-ha.service')],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('install-services: units and example configuration under a root; a configuration is never overwritten', () => {
  const root = mkdtempSync(join(tmpdir(), 'tandem-root-'));
  try {
    const env = { ...process.env, PATH: `${join(repoRoot, 'bin')}:${process.env.PATH}` };
    const run = () =>
      spawnSync(join(repoRoot, 'scripts/install-services'), [root], { encoding: 'utf8', env });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    for (const f of [
      'etc/systemd/system/tandemd.service',
      'etc/systemd/system/tandem-ha.service',
      'etc/tandem/tandem.conf',
      'etc/tandem/tandem.d/global_common.conf',
      'etc/tandem/tandem.d/example.res.example',
      'etc/ha.d/ha.cf.example',
    ])
      assert.ok(readFileSync(join(root, f)).length > 0, f);
    assert.equal(statSync(join(root, 'etc/ha.d/authkeys.example')).mode & 0o777, 0o600);
    // The installed configuration parses; the example resource stays inert until renamed.
    const dump = spawnSync(
      process.execPath,
      [bin('tandemadm'), '-c', join(root, 'etc/tandem/tandem.conf'), 'dump', 'all'],
      { encoding: 'utf8' },
    );
    assert.equal(dump.status, 0, dump.stderr);
    assert.doesNotMatch(dump.stdout, /resource example/);
    // A second run keeps what the operator wrote.
    writeFileSync(join(root, 'etc/tandem/tandem.conf'), '# mine\n');
    assert.equal(run().status, 0);
    assert.equal(readFileSync(join(root, 'etc/tandem/tandem.conf'), 'utf8'), '# mine\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
