// tandemadm as a user runs it: a child process on the built program, its
// stdout, stderr and exit code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { bin, fixtures, repoRoot } from '../helpers/paths.js';

function tandemadm(...args: string[]) {
  const r = spawnSync(process.execPath, [bin('tandemadm'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, TANDEM_NODE: '' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const seed = join(fixtures, 'drbd/valid/seed/drbd.conf');

test('dump prints the effective configuration in drbdadm layout, common folded in', () => {
  const r = tandemadm('-c', seed, '-q', 'dump', 'all');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  assert.match(r.out, /^resource example \{$/m);
  assert.match(
    r.out,
    /^ {4}on server6\.example\.com \{\n {8}device +\/dev\/drbd1 minor 1;\n {8}disk +\/dev\/vdb;\n {8}meta-disk +internal;\n {8}address +ipv4 172\.25\.137\.6:7789;\n {4}\}$/m,
  );
  assert.match(r.out, /^ {4}net \{\n {8}protocol +C;\n {8}verify-alg +"sha1";\n {4}\}$/m);
  assert.match(r.out, /^ {8}split-brain +"\/usr\/lib\/drbd\/notify-split-brain\.sh root";$/m);
});

test('dump --json is the same model as JSON', () => {
  const r = tandemadm('-c', seed, '-q', '--json', 'dump', 'example');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.resources.length, 1);
  assert.equal(j.resources[0].protocol, 'C');
  assert.deepEqual(j.resources[0].hosts[1].address, { family: 'ipv4', host: '172.25.137.7', port: 7789 });
  assert.equal(j.resources[0].net['verify-alg'], 'sha1');
  assert.equal(j.global['usage-count'], 'no');
});

test('dump prints warnings for parsed but unimplemented options on stderr, unless -q', () => {
  const r = tandemadm('-c', join(fixtures, 'drbd/valid/v84/drbd.conf'), 'dump');
  assert.equal(r.code, 0);
  assert.match(r.err, /r0\.res:9:3: warning: option 'sndbuf-size' is parsed but not implemented/);
});

test('sh-* commands print what drbdadm prints, for this node', () => {
  const v84 = join(fixtures, 'drbd/valid/v84/drbd.conf');
  const cases: [string[], string][] = [
    [['--node', 'alpha', 'sh-dev', 'r0'], '/dev/drbd10\n/dev/drbd11\n'],
    [['--node', 'alpha', 'sh-minor', 'all'], '10\n11\n20\n'],
    [['--node', 'alpha', 'sh-md-dev', 'r0'], '/dev/vg0/data0\n/dev/vg0/meta\n'],
    [['--node', 'alpha', 'sh-md-idx', 'r0'], 'internal\n3\n'],
    [['--node', 'bravo', 'sh-ip', 'r1'], 'fd00:1::32\n'],
    [['--node', 'alpha', 'sh-ll-dev', 'r1'], '/dev/sdc\n'],
    [['sh-resources'], 'r0 r1\n'],
  ];
  for (const [args, expected] of cases) {
    const r = tandemadm('-q', '-c', v84, ...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    assert.equal(r.out, expected, args.join(' '));
  }
});

test('usage errors exit 1 with a reason; a node not in the resource is named', () => {
  assert.equal(tandemadm('-c', seed, 'frobnicate', 'example').code, 1);
  const unknownRes = tandemadm('-q', '-c', seed, 'dump', 'nores');
  assert.equal(unknownRes.code, 1);
  assert.match(unknownRes.err, /'nores' is not defined .*resources: example/);
  const wrongNode = tandemadm('-q', '-c', seed, '--node', 'server9', 'sh-dev', 'example');
  assert.equal(wrongNode.code, 10);
  assert.match(wrongNode.err, /no 'on' section for this node 'server9'/);
  assert.equal(tandemadm('-c', seed, 'sh-dev').code, 1, 'a resource is required');
  assert.equal(tandemadm('--bogus').code, 1);
});

test('every broken fixture exits 10 with file:line:col on stderr; a missing file exits 20', () => {
  const dir = join(fixtures, 'drbd/invalid');
  const files = readdirSync(dir).filter((f) => f.endsWith('.res') || f.endsWith('.conf'));
  assert.ok(files.length >= 20);
  for (const f of files) {
    const r = tandemadm('-c', join(dir, f), 'dump');
    assert.equal(r.code, 10, `${f}: ${r.err}`);
    assert.match(r.err, /^tandemadm: \/\S+:\d+:\d+: \S/m, f);
    assert.equal(r.out, '', `${f} prints nothing on stdout`);
  }
  const missing = tandemadm('-c', '/nonexistent/x.conf', 'dump');
  assert.equal(missing.code, 20);
  assert.match(missing.err, /cannot read \/nonexistent\/x\.conf/);
});

test('--help lists every command', () => {
  const r = tandemadm('--help');
  assert.equal(r.code, 0);
  for (const c of ['dump', 'sh-dev', 'sh-md-dev', 'sh-ip', 'sh-resources'])
    assert.match(r.out, new RegExp(`^  ${c} `, 'm'));
});

test('the bundled example configuration: dump all', () => {
  const r = tandemadm('-c', join(repoRoot, 'examples/tandem.conf'), 'dump', 'all');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^resource example \{$/m);
  assert.match(r.out, /address +ipv4 172\.25\.137\.7:7789;/);
});
