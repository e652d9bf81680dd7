// The systemd units and the install script. tandemd starts after the network and
// before tandem-ha, which requires it; every option the units pass is one the
// programs accept; install-services writes the units with absolute program
// paths and node's directory on PATH (systemd-analyze accepts them), and the
// example configuration under a fake root, never overwriting one. The unit's
// bring-up step, run against a real tandemd, waits for it and brings each
// resource up on its own: one without metadata is reported, the other comes up.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { bin, repoRoot } from '../helpers/paths.js';
import { TandemNode } from '../helpers/tandem-node.js';

const unit = (name: string) => readFileSync(join(repoRoot, 'systemd', name), 'utf8');
const directive = (text: string, key: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
const pathWithBin = () => ({ ...process.env, PATH: `${join(repoRoot, 'bin')}:${process.env.PATH}` });

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
  const helps = new Map<string, string>();
  const help = (program: string) => {
    if (!helps.has(program))
      helps.set(program, spawnSync(process.execPath, [bin(program), '--help'], { encoding: 'utf8' }).stdout);
    return helps.get(program) as string;
  };
  let seen = 0;
  for (const file of ['tandemd.service', 'tandem-ha.service']) {
    for (const line of [...directive(unit(file), 'ExecStart'), ...directive(unit(file), 'ExecStartPost')]) {
      // Every program named on the line (also inside `sh -c '…'`), with the options after it.
      for (const m of line.matchAll(
        /\b(tandemd|tandemadm|tandem-ha)((?:\s+(?:-[-\w]+|"[^"]*"|\$\{?\w+\}?))*)/g,
      )) {
        for (const opt of (m[2] ?? '').split(/\s+/).filter((a) => a.startsWith('-'))) {
          assert.ok(help(m[1] as string).includes(opt), `${file}: ${m[1]} does not know ${opt}`);
          seen++;
        }
      }
    }
  }
  assert.ok(seen >= 8, `only ${seen} options checked`);
});

test('install-services: absolute program paths, node on PATH, systemd-analyze accepts the units; a configuration is never overwritten', () => {
  const root = mkdtempSync(join(tmpdir(), 'tandem-root-'));
  try {
    const run = () =>
      spawnSync(join(repoRoot, 'scripts/install-services'), [root], { encoding: 'utf8', env: pathWithBin() });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const units = join(root, 'etc/systemd/system');
    const d = readFileSync(join(units, 'tandemd.service'), 'utf8');
    assert.match(d, new RegExp(`^ExecStart=${bin('tandemd')} --config`, 'm'));
    assert.match(d, new RegExp(`^Environment=PATH=${process.execPath.replace(/\/node$/, '')}:`, 'm'));
    assert.match(readFileSync(join(units, 'tandem-ha.service'), 'utf8'), /^ExecStart=\/\S+\/tandem-ha /m);
    if (spawnSync('systemd-analyze', ['--version']).status === 0) {
      const v = spawnSync(
        'systemd-analyze',
        ['verify', '--man=no', join(units, 'tandemd.service'), join(units, 'tandem-ha.service')],
        { encoding: 'utf8' },
      );
      assert.equal(v.status, 0, v.stderr);
      assert.equal(v.stderr.trim(), '', v.stderr);
    }
    for (const f of [
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

test('the unit’s bring-up step waits for tandemd, then brings each resource up on its own', async () => {
  // Two resources of one node; only r0 has metadata.
  const n = await TandemNode.create({ diskBytes: 16 * 1024 * 1024 });
  try {
    const conf = readFileSync(n.conf, 'utf8');
    writeFileSync(join(n.dir, 'disk1.img'), Buffer.alloc(0));
    spawnSync('truncate', ['-s', '16M', join(n.dir, 'disk1.img')]);
    writeFileSync(
      n.conf,
      `${conf}resource r1 {\n  device ${join(n.dir, 'drbd8')} minor 8;\n  disk ${join(n.dir, 'disk1.img')};\n  meta-disk internal;\n  on ${n.name} { address 127.0.0.1:7790; }\n  on bravo { address 127.0.0.2:7790; }\n}\n`,
    );
    assert.equal((await n.adm('create-md', '--force', 'r0')).code, 0);
    const step = (directive(unit('tandemd.service'), 'ExecStartPost')[0] as string).replace(
      /^\/bin\/sh -c '(.*)'$/,
      '$1',
    );
    const env = { ...pathWithBin(), TANDEM_CONFIG: n.conf, TANDEM_RUN_DIR: n.runDir, TANDEM_NODE: n.name };
    // Started before tandemd is: it waits for the control socket.
    const running = new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn('/bin/sh', ['-c', step], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('exit', (status) => resolve({ status, stderr }));
    });
    await new Promise((r) => setTimeout(r, 500));
    await n.start(['--no-kernel-device']);
    const r = await running;
    assert.equal(r.status, 0);
    assert.match(r.stderr, /tandemd\.service: resource r1 did not come up/);
    assert.doesNotMatch(r.stderr, /resource r0 did not/);
    assert.equal(
      (await n.adm('dstate', 'r0')).out.trim().split('/')[0],
      'Inconsistent',
      'r0 is up (attached)',
    );
  } finally {
    await n.cleanup();
  }
});
