// haresources: the seed's group, bare addresses, continuations, empty arguments and positions,
// a table of refusals (code and line:col), and a fuzz test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, type ConfigErrorCode } from '../../src/config/errors.js';
import { type HaResourcesResult, parseHaResources, resourceKey } from '../../src/config/haresources.js';
import { readHaFixture } from '../helpers/ha-fixtures.js';
import { fuzzParser } from '../helpers/mutate.js';

const file = '/etc/ha.d/haresources';

function parse(text: string): HaResourcesResult {
  return parseHaResources(text, file);
}

function summary(r: HaResourcesResult): string[] {
  return r.config.groups.map((g) => `${g.node}: ${g.resources.map((x) => resourceKey(x)).join(' ')}`);
}

describe('haresources: the seed story', () => {
  it('reads the group of server6 with its four resources in order', async () => {
    const { config, warnings } = parse(await readHaFixture('seed/haresources'));
    assert.deepEqual(warnings, []);
    assert.equal(config.groups.length, 1);
    const g = config.groups[0]!;
    assert.equal(g.node, 'server6.example.com');
    assert.deepEqual(g.nodePos, { file, line: 3, col: 1 });
    assert.equal(g.key, 'IPaddr::172.25.137.100/24/eth0');
    assert.deepEqual(
      g.resources.map((r) => [r.name, r.args]),
      [
        ['IPaddr', ['172.25.137.100/24/eth0']],
        ['drbddisk', ['example']],
        ['Filesystem', ['/dev/drbd1', '/var/www/html', 'ext4']],
        ['httpd', []],
      ],
    );
    const fs = g.resources[2]!;
    assert.deepEqual(fs.pos, { file, line: 3, col: 70 });
    assert.deepEqual(
      fs.argPos.map((p) => p.col),
      [82, 94, 109],
    );
  });
});

describe('haresources: syntax', () => {
  it('takes a bare IPv4 address for IPaddr', () => {
    const r = parse('alpha 10.0.0.5/24 httpd\n');
    assert.deepEqual(summary(r), ['alpha: IPaddr::10.0.0.5/24 httpd']);
    assert.equal(r.config.groups[0]!.resources[0]!.text, '10.0.0.5/24');
  });

  it('joins continued lines and keeps each resource where it was written', () => {
    const r = parse(
      'alpha IPaddr::10.0.0.5 \\\n   drbddisk::r0 \\\n   httpd\nbeta 10.0.0.6 # the second web\n',
    );
    assert.deepEqual(summary(r), ['alpha: IPaddr::10.0.0.5 drbddisk::r0 httpd', 'beta: IPaddr::10.0.0.6']);
    assert.deepEqual(r.config.groups[0]!.resources[1]!.pos, { file, line: 2, col: 4 });
    assert.deepEqual(r.config.groups[0]!.resources[2]!.pos, { file, line: 3, col: 4 });
  });

  it('accepts a backslash glued to the last resource and a comment after it', () => {
    const r = parse('alpha drbddisk::r0\\\n httpd\nbeta smb \\ # more below\n nmb\n');
    assert.deepEqual(summary(r), ['alpha: drbddisk::r0 httpd', 'beta: smb nmb']);
  });

  it('keeps an empty :: argument in its place', () => {
    const r = parse('alpha Filesystem::/dev/drbd1::::ext4 MailTo::\n');
    const [fs, mail] = r.config.groups[0]!.resources;
    assert.deepEqual(fs!.args, ['/dev/drbd1', '', 'ext4']);
    assert.deepEqual(
      fs!.argPos.map((p) => p.col),
      [19, 31, 33],
    );
    assert.deepEqual(mail!.args, ['']);
  });

  it('lower-cases node names, skips blank lines and comments', () => {
    const r = parse('\n# comment\n   \nServer6.Example.COM httpd   # trailing\n\n');
    assert.deepEqual(summary(r), ['server6.example.com: httpd']);
  });

  it('allows the same resource later in several groups (MailTo in each)', () => {
    const r = parse('alpha 10.0.0.5 MailTo::root\nbeta 10.0.0.6 MailTo::root\n');
    assert.equal(r.config.groups.length, 2);
  });

  it('accepts an empty file', () => {
    assert.deepEqual(parse('').config.groups, []);
  });

  it('warns about a backslash on the last line', () => {
    const r = parse('alpha httpd \\');
    assert.deepEqual(
      r.warnings.map((w) => [w.code, w.pos.line, w.pos.col]),
      [['SUSPICIOUS', 1, 13]],
    );
    assert.deepEqual(summary(r), ['alpha: httpd']);
  });
});

describe('haresources: refusals name the code and line:col', () => {
  const cases: [name: string, text: string, code: ConfigErrorCode, line: number, col: number][] = [
    ['a node without resources', 'alpha\n', 'CONFIG_SYNTAX', 1, 6],
    ['a node without resources before a comment', 'alpha   # later\n', 'CONFIG_SYNTAX', 1, 6],
    ['a continued node without resources', 'alpha \\\n\n', 'CONFIG_SYNTAX', 1, 6],
    [
      'the same first resource twice',
      'alpha 10.0.0.5 httpd\nbeta IPaddr::10.0.0.5 smb\n',
      'CONFIG_SEMANTIC',
      2,
      6,
    ],
    [
      'the same group key spelled alike',
      'alpha drbddisk::r0\n\nbeta drbddisk::r0\n',
      'CONFIG_SEMANTIC',
      3,
      6,
    ],
    ['a resource without a name', 'alpha ::x\n', 'CONFIG_VALUE', 1, 7],
    ['a path for an agent', 'alpha ../../bin/sh\n', 'CONFIG_VALUE', 1, 7],
    ['a bare address out of range', 'alpha 300.1.1.1\n', 'CONFIG_VALUE', 1, 7],
    ['an IPaddr netmask beyond 32', 'alpha IPaddr::10.0.0.5/40\n', 'CONFIG_VALUE', 1, 24],
    ['an IPaddr argument that is no address', 'alpha IPaddr2::www\n', 'CONFIG_VALUE', 1, 16],
    ['a bad node name', 'bad!node httpd\n', 'CONFIG_VALUE', 1, 1],
    ['a control character', 'alpha ht\u0007tpd\n', 'CONFIG_SYNTAX', 1, 9],
  ];
  for (const [name, text, code, line, col] of cases) {
    it(name, () => {
      assert.throws(
        () => parse(text),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.deepEqual([err.code, err.pos?.line, err.pos?.col], [code, line, col], err.message);
          assert.ok(err.message.startsWith(`${file}:${line}:${col}: expected `), err.message);
          return true;
        },
      );
    });
  }
});

describe('haresources: fuzz', () => {
  it('never throws anything but ConfigError on mutated fixtures', async () => {
    const seed = await readHaFixture('seed/haresources');
    fuzzParser(seed, (t) => parse(t));
    fuzzParser('alpha 10.0.0.5/24 \\\n  Filesystem::/dev/drbd1::::ext4 \\\n  httpd\nbeta smb # x\n', (t) =>
      parse(t),
    );
  });
});
