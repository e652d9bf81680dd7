import assert from 'node:assert/strict';
import { join } from 'node:path';
import test from 'node:test';
import { loadDrbdConfig, loadResolvedConfig, parseDrbdConfig } from '../../src/config/drbd-load.js';
import type { ResolvedResource } from '../../src/config/drbd-model.js';
import { parseDrbdNumber } from '../../src/config/drbd-options.js';
import { assertRunnable, localHost, peerHost, resolveConfig } from '../../src/config/drbd-resolve.js';
import { ConfigError, type ConfigErrorCode } from '../../src/config/errors.js';
import { fixtures } from '../helpers/paths.js';

const valid = (f: string) => join(fixtures, 'drbd/valid', f);
const invalid = (f: string) => join(fixtures, 'drbd/invalid', f);

function option(
  r: ResolvedResource,
  section: 'disk' | 'net' | 'startup' | 'handlers' | 'options',
  name: string,
) {
  return r.sections.get(section)?.get(name)?.value;
}

function resource(file: string, name: string): ResolvedResource {
  const r = loadResolvedConfig(file).resources.find((x) => x.name === name);
  assert.ok(r, `resource ${name} in ${file}`);
  return r;
}

test('the seed story: includes, global/common inheritance, syncer verify-alg, implicit volume 0', () => {
  const cfg = loadResolvedConfig(valid('seed/drbd.conf'));
  assert.deepEqual(
    cfg.files.map((f) => f.slice(f.indexOf('seed/'))),
    ['seed/drbd.conf', 'seed/drbd.d/global_common.conf', 'seed/drbd.d/example.res'],
  );
  assert.equal(cfg.global.get('usage-count')?.value, 'no');
  const r = cfg.resources[0] as ResolvedResource;
  assert.equal(r.name, 'example');
  assert.equal(r.protocol, 'C');
  assert.equal(option(r, 'net', 'verify-alg'), 'sha1');
  assert.equal(option(r, 'startup', 'wfc-timeout'), 120);
  assert.equal(option(r, 'handlers', 'split-brain'), '/usr/lib/drbd/notify-split-brain.sh root');
  const h6 = localHost(r, 'server6.example.com');
  assert.deepEqual(h6.address, { family: 'ipv4', host: '172.25.137.6', port: 7789, pos: h6.address.pos });
  assert.deepEqual(
    h6.volumes.map((v) => [v.number, v.device.path, v.device.minor, v.disk, v.metaDisk.kind]),
    [[0, '/dev/drbd1', 1, '/dev/vdb', 'internal']],
  );
  assert.equal(peerHost(r, h6).names[0], 'server7.example.com');
  assert.throws(
    () => localHost(r, 'server8'),
    (e: unknown) => e instanceof ConfigError && /server6\.example\.com/.test(e.message),
  );
  assert.ok(
    cfg.warnings.some((w) => w.code === 'DEPRECATED' && w.pos.line === 5),
    'the syncer section is reported as obsolete',
  );
});

test('8.4 style: common options are overridden per option, volumes get their own disk options', () => {
  const r0 = resource(valid('v84/drbd.conf'), 'r0');
  assert.equal(r0.protocol, 'C', 'resource protocol C overrides common protocol B');
  assert.equal(option(r0, 'net', 'ping-int'), 5, 'inherited from common');
  assert.equal(option(r0, 'net', 'timeout'), 50);
  assert.equal(option(r0, 'net', 'shared-secret'), 's3cret "quoted" phrase');
  assert.equal(option(r0, 'net', 'sndbuf-size'), 512 * 1024, 'bytes');
  assert.equal(option(r0, 'net', 'allow-two-primaries'), false);
  assert.equal(option(r0, 'disk', 'resync-rate'), 40 * 1024, 'KiB/s from common 40M');
  assert.equal(option(r0, 'disk', 'size'), 10 * 2 * 1024 * 1024, 'sectors');
  assert.equal(option(r0, 'disk', 'fencing'), 'resource-only');
  assert.equal(option(r0, 'disk', 'c-plan-ahead'), 0);
  assert.deepEqual(option(r0, 'startup', 'become-primary-on'), ['alpha']);
  const alpha = localHost(r0, 'alpha');
  const [v0, v1] = alpha.volumes;
  assert.deepEqual([v0?.device.path, v0?.device.minor, v0?.disk], ['/dev/drbd10', 10, '/dev/vg0/data0']);
  assert.deepEqual([v1?.device.path, v1?.device.minor], ['/dev/drbd11', 11], 'minor only: /dev/drbdN');
  assert.deepEqual(v1?.metaDisk, { kind: 'external', path: '/dev/vg0/meta', index: 3 });
  assert.equal(v1?.diskOptions.get('resync-rate')?.value, 10 * 1024);

  const r1 = resource(valid('v84/drbd.conf'), 'r1');
  assert.equal(r1.protocol, 'B', 'common protocol');
  assert.equal(option(r1, 'disk', 'resync-after'), 'r0/0');
  const bravo = localHost(r1, 'bravo');
  assert.deepEqual(
    [bravo.address.family, bravo.address.host, bravo.address.port],
    ['ipv6', 'fd00:1::32', 7791],
  );
  assert.deepEqual(bravo.volumes[0]?.metaDisk, { kind: 'external', path: '/dev/sdd', index: undefined });
});

test('DRBD 9 style: node-id, resource-level volumes, options section, fencing in net', () => {
  const r = resource(valid('v9.res'), 'web');
  assert.equal(r.protocol, 'A');
  assert.equal(option(r, 'options', 'auto-promote'), false);
  assert.equal(option(r, 'disk', 'fencing'), 'resource-only', 'kept where 8.4 keeps it');
  assert.equal(option(r, 'disk', 'c-max-rate'), 400 * 1024);
  const b = localHost(r, 'node-b');
  assert.equal(b.nodeId, 1);
  assert.deepEqual(
    b.volumes.map((v) => [v.number, v.device.path, v.disk]),
    [
      [0, '/dev/drbd1', '/dev/vdb1'],
      [1, '/dev/drbd2', '/dev/vdb2'],
    ],
  );
});

test('8.3 spellings map to their 8.4 homes, with a warning each', () => {
  const cfg = loadResolvedConfig(valid('syncer83.conf'));
  const db = cfg.resources[0] as ResolvedResource;
  assert.equal(option(db, 'disk', 'resync-rate'), 33 * 1024);
  assert.equal(option(db, 'disk', 'disk-barrier'), false);
  assert.equal(option(db, 'disk', 'disk-flushes'), false);
  assert.equal(option(db, 'net', 'csums-alg'), 'sha1');
  assert.equal(option(cfg.resources[1] as ResolvedResource, 'disk', 'resync-after'), 'db');
  assert.ok(
    cfg.warnings.some((w) => w.code === 'DEPRECATED' && /'rate' is now 'resync-rate'/.test(w.message)),
  );
  assert.ok(cfg.warnings.some((w) => w.code === 'NOT_IMPLEMENTED' && /'disk-barrier'/.test(w.message)));
});

test('floating hosts are found by their address', () => {
  const r = resource(valid('floating.res'), 'fl');
  const h = localHost(r, 'whatever', ['10.7.0.2']);
  assert.equal(h.address.host, '10.7.0.2');
  assert.equal(h.volumes[0]?.disk, '/dev/sde');
});

test('a stacked resource parses, and is refused when it is to run', () => {
  const r = resource(valid('stacked.res'), 'r0-U');
  assert.equal(r.stackedOn, 'r0');
  assert.throws(
    () => assertRunnable(r),
    (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_UNSUPPORTED',
  );
  assert.doesNotThrow(() => assertRunnable(resource(valid('stacked.res'), 'r0')));
});

test('options that tandem does not implement are reported by name, never silently accepted', () => {
  const cfg = loadDrbdConfig(valid('v84/drbd.conf'));
  const named = cfg.warnings
    .filter((w) => w.code === 'NOT_IMPLEMENTED')
    .map((w) => /'([^']+)'/.exec(w.message)?.[1]);
  for (const name of ['sndbuf-size', 'become-primary-on', 'minor-count', 'resync-after']) {
    assert.ok(named.includes(name), `warning for ${name}`);
  }
  assert.ok(!named.includes('protocol') && !named.includes('verify-alg'));
  // tandem never reports usage: `usage-count no` is already true, `yes` is not honoured.
  assert.ok(!named.includes('usage-count'));
  const yes = parseDrbdConfig('global { usage-count yes; }', 'g.conf').warnings;
  assert.ok(yes.some((w) => w.code === 'NOT_IMPLEMENTED' && /'usage-count'/.test(w.message)));
});

test('numbers read as drbdadm reads them: suffixes K, M, G, s into the option unit', () => {
  assert.equal(parseDrbdNumber('40M', 'k'), 40960n);
  assert.equal(parseDrbdNumber('250', 'k'), 250n);
  assert.equal(parseDrbdNumber('10G', 's'), 20971520n);
  assert.equal(parseDrbdNumber('1M', 's'), 2048n);
  assert.equal(parseDrbdNumber('512k', '1'), 524288n);
  assert.equal(parseDrbdNumber('8s', '1'), 4096n);
  assert.equal(parseDrbdNumber('fast', 'k'), undefined);
  assert.equal(parseDrbdNumber('10T', 'k'), undefined);
  assert.equal(parseDrbdNumber('', 'k'), undefined);
});

// Each broken file, the error it gets, and where: file:line:col.
const errorCases: [file: string, code: ConfigErrorCode, line: number, col: number, message: RegExp][] = [
  [
    'seed-meta-disk-typo.res',
    'CONFIG_SYNTAX',
    2,
    2,
    /but got 'meta-diskinternal'.*did you mean 'meta-disk internal'/,
  ],
  ['seed-address-typo.res', 'CONFIG_VALUE', 13, 11, /'172\.25\.137\.' is not an IPv4 address/],
  ['protocol-d.res', 'CONFIG_VALUE', 5, 11, /'protocol' expects one of 'A', 'B', 'C' but got 'D'/],
  ['resync-rate-fast.res', 'CONFIG_VALUE', 6, 15, /'resync-rate' expects a number.*but got 'fast'/],
  ['out-of-range.res', 'CONFIG_VALUE', 6, 12, /'ping-int' 500 is out of range: expected 1 \.\.\. 120/],
  ['unknown-option.res', 'CONFIG_SYNTAX', 6, 3, /unknown option 'ping-intervall' in 'net'.*'ping-int'/],
  ['bad-boolean.res', 'CONFIG_VALUE', 6, 23, /expects 'yes' or 'no' but got 'maybe'/],
  ['unterminated-string.res', 'CONFIG_SYNTAX', 6, 15, /unterminated string/],
  ['duplicate-option.res', 'CONFIG_SEMANTIC', 7, 3, /'timeout' is set twice \(first at line 6:3\)/],
  ['bad-port.res', 'CONFIG_VALUE', 10, 11, /77890 is out of range/],
  [
    'unclosed-brace.res',
    'CONFIG_SYNTAX',
    11,
    1,
    /end of file: the '\{' of 'resource r0' at line 1:13 is never closed/,
  ],
  ['one-host.res', 'CONFIG_SEMANTIC', 1, 10, /resource 'r0' has 1 host \(a\)/],
  ['duplicate-address.res', 'CONFIG_SEMANTIC', 9, 11, /address 10\.0\.0\.1:7789 is used twice/],
  [
    'same-port-two-resources.res',
    'CONFIG_SEMANTIC',
    12,
    17,
    /address 10\.0\.0\.1:7789 on host 'a' is used by resource 'r0'/,
  ],
  ['same-minor-two-resources.res', 'CONFIG_SEMANTIC', 9, 2, /minor 1 on host 'a' is used by resource 'r0'/],
  ['missing-disk.res', 'CONFIG_SEMANTIC', 8, 5, /'on b' in resource 'r0' has no 'disk'/],
  ['missing-device.res', 'CONFIG_SEMANTIC', 4, 5, /has no 'device'/],
  ['missing-meta-disk.res', 'CONFIG_SEMANTIC', 4, 5, /has no 'meta-disk'/],
  ['stray-brace.res', 'CONFIG_SYNTAX', 8, 1, /expected a keyword but got '\}'/],
  [
    'missing-semicolon.res',
    'CONFIG_SYNTAX',
    3,
    2,
    /expected 'minor' or ';' after '\/dev\/drbd1' but got 'disk'/,
  ],
  ['ipv6-unbracketed.res', 'CONFIG_VALUE', 5, 22, /expected an address ADDR:PORT/],
  [
    'resync-after-ambiguous.res',
    'CONFIG_SEMANTIC',
    12,
    3,
    /'resync-after r0' is ambiguous: 'r0' has 2 volumes/,
  ],
];

for (const [file, code, line, col, message] of errorCases) {
  test(`error: ${file} -> ${code} at ${line}:${col}`, () => {
    assert.throws(
      () => loadResolvedConfig(invalid(file)),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.code, code, e.message);
        assert.equal(e.pos?.file, invalid(file));
        assert.deepEqual([e.pos?.line, e.pos?.col], [line, col], e.message);
        assert.match(e.message, message);
        assert.ok(e.message.startsWith(`${invalid(file)}:${line}:${col}: `), e.message);
        return true;
      },
    );
  });
}

test('an error inside an included file names the included file', () => {
  assert.throws(
    () => loadResolvedConfig(invalid('include-missing-close.conf')),
    (e: unknown) =>
      e instanceof ConfigError && e.pos?.file === invalid('include-part.inc') && e.pos.line === 8,
  );
});

test('includes: relative to the including file, glob order, and no include loops', () => {
  const files: Record<string, string> = {
    '/etc/x/main.conf': 'include "d/*.res";',
    '/etc/x/d/a.res':
      'resource a { device minor 1; disk /dev/a; meta-disk internal; on n1 { address 10.0.0.1:7001; } on n2 { address 10.0.0.2:7001; } }',
    '/etc/x/d/b.res':
      'resource b { device minor 2; disk /dev/b; meta-disk internal; on n1 { address 10.0.0.1:7002; } on n2 { address 10.0.0.2:7002; } }',
    '/etc/x/loop.conf': 'include "loop.conf";',
  };
  const reader = (pattern: string, from: string) => {
    const dir = from.slice(0, from.lastIndexOf('/') + 1);
    const re = new RegExp(`^${(dir + pattern).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`);
    return Object.keys(files)
      .filter((f) => re.test(f))
      .sort()
      .map((f) => ({ file: f, text: files[f] as string }));
  };
  const cfg = resolveConfig(parseDrbdConfig(files['/etc/x/main.conf'] as string, '/etc/x/main.conf', reader));
  assert.deepEqual(
    cfg.resources.map((r) => r.name),
    ['a', 'b'],
  );
  assert.throws(
    () => parseDrbdConfig(files['/etc/x/loop.conf'] as string, '/etc/x/loop.conf', reader),
    (e: unknown) =>
      e instanceof ConfigError && e.code === 'CONFIG_SEMANTIC' && /includes itself/.test(e.message),
  );
});

test('a missing configuration file is a CONFIG_IO error naming it', () => {
  assert.throws(
    () => loadResolvedConfig('/nonexistent/tandem.conf'),
    (e: unknown) =>
      e instanceof ConfigError && e.code === 'CONFIG_IO' && /\/nonexistent\/tandem\.conf/.test(e.message),
  );
});

test("tandem's own nbd-address option: an address, checked, and never drbdadm's", () => {
  const base = (
    opt: string,
  ) => `resource r { options { ${opt} } device minor 1; disk /dev/a; meta-disk internal;
    on n1 { address 10.0.0.1:7001; } on n2 { address 10.0.0.2:7001; } }`;
  const r = resolveConfig(parseDrbdConfig(base('nbd-address 127.0.0.1:10809;'), 't.res'))
    .resources[0] as ResolvedResource;
  assert.equal(option(r, 'options', 'nbd-address'), '127.0.0.1:10809');
  assert.equal(r.sections.get('options')?.get('nbd-address')?.spec.versions[0], 'tandem');
  const v6 = resolveConfig(parseDrbdConfig(base('nbd-address [::1]:10809;'), 't.res'))
    .resources[0] as ResolvedResource;
  assert.equal(option(v6, 'options', 'nbd-address'), '[::1]:10809');
  for (const bad of ['localhost:10809', '127.0.0.1', '127.0.0.1:99999', '[::1:10809']) {
    assert.throws(
      () => parseDrbdConfig(base(`nbd-address ${bad};`), 't.res'),
      (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_VALUE' && e.pos?.col === 36,
      bad,
    );
  }
});

test('sdp and ssocks addresses parse, with a warning that tandem uses TCP', () => {
  const cfg = parseDrbdConfig(
    'resource r { device minor 1; disk /dev/a; meta-disk internal; on n1 { address sdp 10.0.0.1:7001; } on n2 { address ssocks 10.0.0.2:7001; } }',
    't.res',
  );
  const w = cfg.warnings.filter((x) => x.code === 'NOT_IMPLEMENTED' && /address family/.test(x.message));
  assert.deepEqual(
    w.map((x) => x.message.match(/'(\w+)'/)?.[1]),
    ['sdp', 'ssocks'],
  );
  assert.equal(resolveConfig(cfg).resources[0]?.hosts[0]?.address.family, 'sdp');
});
