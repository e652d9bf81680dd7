// ha.cf: the seed's file, Heartbeat's defaults and derived timings, links, warnings for what
// tandem-ha does not act on, a table of refusals (code and line:col), and a fuzz test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, type ConfigErrorCode } from '../../src/config/errors.js';
import { haTextLimits } from '../../src/config/ha-lexer.js';
import { readDuration } from '../../src/config/ha-values.js';
import { checkNodeMembership, type HaCfResult, parseHaCf } from '../../src/config/hacf.js';
import { readHaFixture } from '../helpers/ha-fixtures.js';
import { fuzzParser } from '../helpers/mutate.js';

const file = '/etc/ha.d/ha.cf';
/** Valid lines after the one under test, so that the case's line is line 1. */
const rest = '\nnode alpha beta\nbcast eth0\nauto_failback on\n';

function parse(text: string): HaCfResult {
  return parseHaCf(text, file);
}

function codes(r: HaCfResult): string[] {
  return r.warnings.map((w) => `${w.code}@${w.pos.line}:${w.pos.col}`);
}

describe('ha.cf: the seed story', () => {
  it('reads nodes, timings, link and auto_failback', async () => {
    const { config, warnings } = parse(await readHaFixture('seed/ha.cf'));
    assert.deepEqual(
      config.nodes.map((n) => n.name),
      ['server6.example.com', 'server7.example.com'],
    );
    assert.equal(config.keepalive.ms, 2000);
    assert.equal(config.deadtime.ms, 30_000);
    assert.equal(config.warntime.ms, 10_000);
    assert.equal(config.initdead.ms, 60_000);
    assert.equal(config.keepalive.source, 'file');
    assert.deepEqual(config.keepalive.pos, { file, line: 7, col: 11 });
    assert.equal(config.udpPort, 694);
    assert.deepEqual(config.links, [
      { kind: 'bcast', iface: 'eth0', port: 694, pos: { file, line: 12, col: 7 } },
    ]);
    assert.equal(config.autoFailback.mode, 'on');
    assert.equal(config.autoFailback.failsBack, true);
    assert.equal(config.logfile, '/var/log/ha-log');
    assert.equal(config.debugfile, '/var/log/ha-debug');
    // logfacility is the only directive tandem-ha keeps without acting on it.
    assert.deepEqual(
      warnings.map((w) => [w.code, w.pos.line, w.pos.col]),
      [['NOT_IMPLEMENTED', 5, 1]],
    );
    assert.match(warnings[0]!.message, /logfacility/);
  });

  it('reads the witness (a tandem extension), lower-cased like node names', () => {
    const { config } = parse(
      'node server6 server7 Quorum1\nwitness Quorum1\nbcast eth0\nauto_failback off\n',
    );
    assert.equal(config.witness?.name, 'quorum1');
    assert.deepEqual(config.witness?.pos, { file, line: 2, col: 9 });
    assert.equal(parse(`node a b${rest}`).config.witness, undefined);
    assert.equal(parse(`node a b${rest}`).config.onStopFailure, 'hold');
    assert.equal(parse(`on_stop_failure Reboot${rest}`).config.onStopFailure, 'reboot');
  });

  it('reads metrics_address (a tandem extension): off unless set', () => {
    assert.equal(parse(`node a b${rest}`).config.metricsAddress, undefined);
    assert.deepEqual(parse(`metrics_address 127.0.0.1:9943${rest}`).config.metricsAddress, {
      host: '127.0.0.1',
      port: 9943,
    });
    assert.deepEqual(parse(`metrics_address [::1]:9943${rest}`).config.metricsAddress, {
      host: '::1',
      port: 9943,
    });
  });

  it('finds this node, case-insensitively as Heartbeat does', async () => {
    const { config } = parse(await readHaFixture('seed/ha.cf'));
    assert.equal(checkNodeMembership(config, 'Server7.Example.com').name, 'server7.example.com');
    assert.throws(
      () => checkNodeMembership(config, 'server8.example.com'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.code === 'CONFIG_SEMANTIC' &&
        err.pos?.line === 15 &&
        err.pos.col === 6,
    );
  });
});

describe('ha.cf: every link kind, derived timings, kept directives', () => {
  it('parses the full fixture', async () => {
    const { config, warnings } = parse(await readHaFixture('full.ha.cf'));
    assert.deepEqual(
      config.nodes.map((n) => n.name),
      ['alpha.example.com', 'beta.example.com'],
    );
    assert.equal(config.keepalive.ms, 500);
    assert.equal(config.deadtime.ms, 10_000);
    assert.deepEqual([config.warntime.ms, config.warntime.source], [5000, 'derived']);
    // deadtime 10 s is neither above 10 s nor below 6 s: initdead is twice deadtime.
    assert.deepEqual([config.initdead.ms, config.initdead.source], [20_000, 'derived']);
    assert.deepEqual([config.deadping.ms, config.deadping.source], [10_000, 'derived']);
    assert.deepEqual(
      config.links.map((l) => (l.kind === 'ucast' ? `ucast ${l.iface} ${l.host}` : `${l.kind} ${l.iface}`)),
      ['bcast eth0', 'bcast eth1', 'mcast eth2', 'ucast eth3 10.0.0.6', 'ucast eth3 10.0.0.7'],
    );
    const mcast = config.links[2]!;
    assert.ok(mcast.kind === 'mcast');
    assert.deepEqual([mcast.group, mcast.port, mcast.ttl, mcast.loop], ['225.0.0.1', 694, 1, false]);
    assert.deepEqual([config.autoFailback.mode, config.autoFailback.failsBack], ['off', false]);
    assert.deepEqual(
      config.notImplemented.map((k) => k.name),
      ['use_logd', 'ping', 'ping_group', 'respawn', 'debug', 'compression'],
    );
    assert.deepEqual(config.notImplemented[3]!.args, ['hacluster', '/usr/lib/heartbeat/ipfail']);
    assert.deepEqual(
      warnings.map((w) => (w.code === 'NOT_IMPLEMENTED' ? w.message.split(' ')[0] : w.code)),
      ['use_logd', 'ping', 'ping_group', 'respawn', 'debug', 'compression'],
    );
  });
});

describe("ha.cf: Heartbeat's defaults and derived timings", () => {
  it('applies keepalive 1 s, deadtime 30 s, warntime deadtime/2, initdead deadtime, udpport 694', () => {
    const { config, warnings } = parse('node alpha\nbcast eth0\n');
    assert.deepEqual(
      [config.keepalive, config.deadtime].map((t) => [t.ms, t.source]),
      [
        [1000, 'default'],
        [30_000, 'default'],
      ],
    );
    assert.deepEqual([config.warntime.ms, config.warntime.rule], [15_000, 'deadtime / 2']);
    assert.equal(config.initdead.ms, 30_000);
    assert.equal(config.udpPort, 694);
    assert.deepEqual([config.autoFailback.mode, config.autoFailback.literal], ['legacy', undefined]);
    assert.deepEqual(codes({ config, warnings }), ['DEPRECATED@1:1']);
  });

  const initdeadCases: [deadtime: string, initdeadMs: number][] = [
    ['5', 12_000],
    ['8', 16_000],
    ['10', 20_000],
    ['10.001', 10_001],
    ['20', 20_000],
  ];
  for (const [deadtime, initdeadMs] of initdeadCases) {
    it(`derives initdead ${initdeadMs} ms from deadtime ${deadtime}`, () => {
      const { config } = parse(`deadtime ${deadtime}${rest}`);
      assert.equal(config.initdead.ms, initdeadMs);
    });
  }

  const times: [text: string, ms: number][] = [
    ['2', 2000],
    ['0.5', 500],
    ['.25', 250],
    ['1.', 1000],
    ['1500ms', 1500],
    ['1500MSEC', 1500],
    ['500000us', 500],
    ['501us', 1],
    ['499usec', 0],
    ['2s', 2000],
    ['3sec', 3000],
  ];
  for (const [text, ms] of times) {
    it(`reads the time ${text} as ${ms} ms`, () => {
      assert.equal(readDuration({ text, pos: { file, line: 1, col: 1 } }, 'keepalive'), ms);
    });
  }
});

describe('ha.cf: warnings', () => {
  const cases: [name: string, text: string, expected: string[]][] = [
    ['warntime not below deadtime', `warntime 30${rest}`, ['SUSPICIOUS@1:10']],
    ['initdead below 10 s', `deadtime 5\ninitdead 8${rest}`, ['SUSPICIOUS@2:10']],
    ['udpport after a link', `bcast eth1\nudpport 700${rest}`, ['SUSPICIOUS@2:1']],
    ['a directive set twice', `keepalive 2\nkeepalive 3${rest}`, ['SUSPICIOUS@2:1']],
    ['a node listed twice', `node Alpha${rest}`, ['SUSPICIOUS@2:6']],
    ['auto_failback legacy', 'node a\nbcast eth0\nauto_failback legacy\n', ['DEPRECATED@3:15']],
    ['crm no is fine', `crm no\npacemaker off${rest}`, []],
    ['autojoin none is fine', `autojoin none${rest}`, []],
    ['ping is kept, not acted on', `ping 10.0.0.1${rest}`, ['NOT_IMPLEMENTED@1:1']],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => {
      assert.deepEqual(codes(parse(text)), expected);
    });
  }

  it('gives each link the udpport in effect where it is declared, as Heartbeat does', () => {
    const { config } = parse(`bcast eth1\nudpport 700\nucast eth2 10.0.0.2${rest}`);
    assert.deepEqual(
      config.links.map((l) => l.port),
      [694, 700, 700],
    );
    assert.equal(config.udpPort, 700);
  });

  it('keeps a node listed twice once', () => {
    assert.deepEqual(
      parse(`node Alpha${rest}`).config.nodes.map((n) => n.name),
      ['alpha', 'beta'],
    );
  });
});

describe('ha.cf: refusals name the code and line:col', () => {
  const cases: [name: string, text: string, code: ConfigErrorCode, line: number, col: number][] = [
    ['unknown directive', `frobnicate 1${rest}`, 'CONFIG_SYNTAX', 1, 1],
    ['directive in upper case', `Keepalive 2${rest}`, 'CONFIG_SYNTAX', 1, 1],
    ['missing value', `keepalive${rest}`, 'CONFIG_SYNTAX', 1, 10],
    ['missing value before a comment', `keepalive   # two${rest}`, 'CONFIG_SYNTAX', 1, 10],
    ['extra value', `keepalive 2 3${rest}`, 'CONFIG_SYNTAX', 1, 13],
    ['extra value after a comma', `keepalive 2,3${rest}`, 'CONFIG_SYNTAX', 1, 13],
    ['bad time unit', `keepalive 2x${rest}`, 'CONFIG_VALUE', 1, 11],
    ['time with two dots', `deadtime 1.2.3${rest}`, 'CONFIG_VALUE', 1, 10],
    ['negative time', `deadtime -1${rest}`, 'CONFIG_VALUE', 1, 10],
    ['keepalive zero', `keepalive 0${rest}`, 'CONFIG_VALUE', 1, 11],
    ['keepalive rounds to zero', `keepalive 400us${rest}`, 'CONFIG_VALUE', 1, 11],
    ['time beyond a day', `deadtime 86401${rest}`, 'CONFIG_VALUE', 1, 10],
    ['udpport zero', `udpport 0${rest}`, 'CONFIG_VALUE', 1, 9],
    ['udpport too large', `udpport 65536${rest}`, 'CONFIG_VALUE', 1, 9],
    ['crm yes', `crm yes${rest}`, 'CONFIG_UNSUPPORTED', 1, 5],
    ['crm respawn', `crm respawn${rest}`, 'CONFIG_UNSUPPORTED', 1, 5],
    ['pacemaker on', `pacemaker on${rest}`, 'CONFIG_UNSUPPORTED', 1, 11],
    ['crm maybe', `crm maybe${rest}`, 'CONFIG_VALUE', 1, 5],
    ['autojoin any', `autojoin any${rest}`, 'CONFIG_UNSUPPORTED', 1, 10],
    ['auto_failback maybe', 'auto_failback maybe\nnode a\nbcast eth0\n', 'CONFIG_VALUE', 1, 15],
    ['deadtime not above 2 × keepalive', `keepalive 1\ndeadtime 2${rest}`, 'CONFIG_SEMANTIC', 2, 10],
    ['keepalive too long for the default deadtime', `keepalive 15${rest}`, 'CONFIG_SEMANTIC', 1, 11],
    ['initdead below deadtime', `deadtime 30\ninitdead 10${rest}`, 'CONFIG_SEMANTIC', 2, 10],
    ['deadping not above 2 × keepalive', `deadping 2${rest}`, 'CONFIG_SEMANTIC', 1, 10],
    ['mcast group not multicast', `mcast eth0 10.0.0.1 694 1 0${rest}`, 'CONFIG_VALUE', 1, 12],
    ['mcast missing loop', `mcast eth0 225.0.0.1 694 1${rest}`, 'CONFIG_SYNTAX', 1, 27],
    ['mcast ttl zero', `mcast eth0 225.0.0.1 694 0 0${rest}`, 'CONFIG_VALUE', 1, 26],
    ['mcast loop 2', `mcast eth0 225.0.0.1 694 1 2${rest}`, 'CONFIG_VALUE', 1, 28],
    ['bcast with a bad interface', `bcast eth0/1${rest}`, 'CONFIG_VALUE', 1, 7],
    ['bcast without interface', `bcast${rest}`, 'CONFIG_SYNTAX', 1, 6],
    ['ucast to a bad host', `ucast eth0 bad!host${rest}`, 'CONFIG_VALUE', 1, 12],
    ['ucast with two addresses', `ucast eth0 10.0.0.1 10.0.0.2${rest}`, 'CONFIG_SYNTAX', 1, 21],
    ['bad node name', `node bad!name${rest}`, 'CONFIG_VALUE', 1, 6],
    ['relative logfile', `logfile ha-log${rest}`, 'CONFIG_VALUE', 1, 9],
    ['respawn of a relative program', `respawn hacluster ipfail${rest}`, 'CONFIG_VALUE', 1, 19],
    ['bad logfacility', `logfacility local9${rest}`, 'CONFIG_VALUE', 1, 13],
    ['control character', `node al\u0001pha${rest}`, 'CONFIG_SYNTAX', 1, 8],
    ['witness not a node', 'node a b c\nwitness d\nbcast eth0\n', 'CONFIG_SEMANTIC', 2, 9],
    ['witness of two nodes', 'node a b\nwitness b\nbcast eth0\n', 'CONFIG_SEMANTIC', 2, 9],
    ['witness without a name', `witness${rest}`, 'CONFIG_SYNTAX', 1, 8],
    ['on_stop_failure maybe', `on_stop_failure maybe${rest}`, 'CONFIG_VALUE', 1, 17],
    ['metrics_address without a port', `metrics_address 127.0.0.1${rest}`, 'CONFIG_VALUE', 1, 17],
    ['metrics_address with a bad port', `metrics_address host:99999${rest}`, 'CONFIG_VALUE', 1, 17],
    ['metrics_address without a host', `metrics_address :9943${rest}`, 'CONFIG_VALUE', 1, 17],
    ['no node directive', 'bcast eth0\n', 'CONFIG_SEMANTIC', 1, 1],
    ['no link', 'node alpha\n', 'CONFIG_SEMANTIC', 1, 1],
    ['only a serial link', 'node alpha\nserial /dev/ttyS0\n', 'CONFIG_SEMANTIC', 1, 1],
    [
      'a line beyond the limit',
      `node ${'a'.repeat(haTextLimits.lineCharsMax)}`,
      'CONFIG_SYNTAX',
      1,
      haTextLimits.lineCharsMax + 1,
    ],
    ['a file beyond the limit', '#'.repeat(haTextLimits.charsMax + 1), 'CONFIG_SYNTAX', 1, 1],
  ];
  for (const [name, text, code, line, col] of cases) {
    it(name, () => {
      assert.throws(
        () => parse(text),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.deepEqual(
            [err.code, err.pos?.file, err.pos?.line, err.pos?.col],
            [code, file, line, col],
            err.message,
          );
          assert.ok(err.message.startsWith(`${file}:${line}:${col}: expected `), err.message);
          return true;
        },
      );
    });
  }

  it('lists the expected directives for an unknown one', () => {
    assert.throws(
      () => parse(`frobnicate 1${rest}`),
      /expected a directive \(.*keepalive.*\), found "frobnicate"/,
    );
  });

  it('says crm is Heartbeat v2 and tandem-ha is haresources-style', () => {
    assert.throws(
      () => parse(`crm yes${rest}`),
      /found crm yes, which asks for the CRM\/Pacemaker cluster manager of Heartbeat v2/,
    );
  });
});

describe('ha.cf: fuzz', () => {
  it('never throws anything but ConfigError on mutated fixtures', async () => {
    for (const fixture of ['seed/ha.cf', 'full.ha.cf']) {
      const text = await readHaFixture(fixture);
      fuzzParser(text, (t) => parse(t));
    }
  });
});
