// bin/tandem-ha as a child process against the built dist/: exit codes, the check report, and
// warnings and refusals on stderr as file:line:col.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeConfigDir, removeConfigDirs, repoRoot } from '../helpers/ha-fixtures.js';

after(removeConfigDirs);

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs bin/tandem-ha with `args`; the environment has no TANDEM_* unless `env` sets it. */
function run(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TANDEM_')));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(repoRoot, 'bin', 'tandem-ha'), ...args],
      { env: { ...base, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : undefined) : 0;
        if (code === undefined) reject(err);
        else resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('tandem-ha check', () => {
  it('prints the seed cluster and its warnings, exit 0', async () => {
    const dir = await makeConfigDir('seed');
    const r = await run(['--config-dir', dir, '--node', 'server6.example.com', 'check']);
    assert.equal(r.code, 0, r.stderr);
    for (const expected of [
      'server6.example.com  (this node)',
      'server7.example.com',
      'keepalive 2 s',
      'deadtime  30 s',
      'warntime  10 s',
      'initdead  60 s',
      'bcast  eth0  udp port 694',
      'auto_failback on',
      'signs with key 1 (crc, no security)',
      'IPaddr       172.25.137.100/24/eth0',
      'drbddisk     example',
      'Filesystem   /dev/drbd1 /var/www/html ext4',
      'httpd',
    ]) {
      assert.ok(r.stdout.includes(expected), `missing ${JSON.stringify(expected)} in:\n${r.stdout}`);
    }
    assert.ok(r.stderr.includes(`${join(dir, 'ha.cf')}:5:1: warning: logfacility`), r.stderr);
    assert.ok(r.stderr.includes(`${join(dir, 'authkeys')}:3:1: warning: key 1 uses crc`), r.stderr);
  });

  it('never prints a secret', async () => {
    const dir = await makeConfigDir('seed-sha1');
    const r = await run(['--config-dir', dir, '--node', 'server7.example.com', 'check']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes('signs with key 2 (sha1)'), r.stdout);
    for (const secret of ['s3cret', 'older-secret']) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret));
    }
  });

  it('takes the config dir and node from TANDEM_HA_CONFIG_DIR and TANDEM_NODE', async () => {
    const dir = await makeConfigDir('seed');
    const r = await run(['check'], { TANDEM_HA_CONFIG_DIR: dir, TANDEM_NODE: 'SERVER7.example.com' });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes('server7.example.com  (this node)'), r.stdout);
  });

  it('refuses a node ha.cf does not list: exit 1, file:line:col', async () => {
    const dir = await makeConfigDir('seed');
    const r = await run(['--config-dir', dir, '--node', 'server8.example.com', 'check']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      new RegExp(`^${join(dir, 'ha.cf')}:15:6: expected a node directive naming this node`),
    );
  });

  it('refuses authkeys at mode 0644: exit 1', async () => {
    const dir = await makeConfigDir('seed', { authkeysMode: 0o644 });
    const r = await run(['--config-dir', dir, '--node', 'server6.example.com', 'check']);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`authkeys ${join(dir, 'authkeys')} must be mode 0600 (is 0644)`), r.stderr);
  });

  it('refuses crm yes as unsupported: exit 1 at the value', async () => {
    const dir = await makeConfigDir('seed', {
      files: { 'ha.cf': 'node server6.example.com\nbcast eth0\ncrm yes\n' },
    });
    const r = await run(['--config-dir', dir, '--node', 'server6.example.com', 'check']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^${join(dir, 'ha.cf')}:3:5: expected crm no .*found crm yes`));
  });

  it('reports a haresources error with one line: exit 1', async () => {
    const dir = await makeConfigDir('seed', { files: { haresources: 'server6.example.com\n' } });
    const r = await run(['--config-dir', dir, '--node', 'server6.example.com', 'check']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.ok(
      r.stderr.startsWith(`${join(dir, 'haresources')}:1:20: expected one or more resources`),
      r.stderr,
    );
  });

  it('reports a missing directory as an I/O error: exit 1', async () => {
    const r = await run(['--config-dir', '/nonexistent/ha.d', '--node', 'a', 'check']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tandem-ha: cannot read \/nonexistent\/ha\.d\/ha\.cf: no such file/);
  });
});

describe('tandem-ha usage', () => {
  it('lists commands and options with --help, exit 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    for (const word of ['check', 'standby', 'takeover', '--config-dir DIR', '--node NAME', '--run-dir DIR']) {
      assert.ok(r.stdout.includes(word), word);
    }
  });

  for (const command of ['status', 'listnodes', 'rscstatus', 'standby', 'takeover']) {
    it(`${command} without a running daemon says so, exit 1`, async () => {
      const r = await run([command, '--run-dir', '/nonexistent/run']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^tandem-ha is not running on this machine \(no \/nonexistent\/run\/tandem-ha\.sock\)\n$/,
      );
    });
  }

  it('the daemon refuses a missing configuration, exit 1', async () => {
    const r = await run(['--config-dir', '/nonexistent/ha.d']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read \/nonexistent\/ha\.d\/ha\.cf/);
  });

  const usageErrors: [name: string, args: string[]][] = [
    ['an unknown command', ['frobnicate']],
    ['an unknown option', ['--frobnicate', 'check']],
    ['a missing option value', ['check', '--node']],
    ['an empty node name', ['--node', '', 'check']],
    ['an argument to check', ['check', 'extra']],
  ];
  for (const [name, args] of usageErrors) {
    it(`refuses ${name}, exit 2`, async () => {
      const r = await run(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^tandem-ha: .*\nTry 'tandem-ha --help'\.\n$/);
    });
  }
});
