// Resource agents: IPaddr, Filesystem and tandemdisk against a fake ctx.run (the commands they issue,
// what they parse), script agents as real shell scripts in a temporary resource.d and init.d, and
// one IPaddr start/status/stop on a real interface inside a fresh network namespace (root only).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type AgentContext,
  type AgentErrorCode,
  type AgentResult,
  builtinAgentNames,
  parseResourceSpec,
  type RunOptions,
  type RunResult,
  resolveAgent,
  runResource,
} from '../../src/ha/agents/agent.js';
import { filesystemAgent } from '../../src/ha/agents/filesystem.js';
import { ipaddr2Agent, ipaddrAgent } from '../../src/ha/agents/ipaddr.js';
import { findContainingSubnet, parseIpAddrShow, parseIpaddrArg } from '../../src/ha/agents/ipaddr-parse.js';
import { parseProcMounts } from '../../src/ha/agents/mounts.js';
import { readScriptStatus } from '../../src/ha/agents/script.js';
import { prefixedRun, spawnRun } from '../../src/ha/agents/spawn-run.js';
import { drbddiskAgent, tandemdiskAgent } from '../../src/ha/agents/tandemdisk.js';

const scratch = mkdtempSync(join(tmpdir(), 'tandem-agents-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Call {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly opts: RunOptions | undefined;
}

type Responder = (cmd: string, args: readonly string[]) => RunResult | Promise<RunResult> | undefined;

const exit0: RunResult = { code: 0, out: '', err: '' };

interface Fake {
  readonly ctx: AgentContext;
  readonly calls: Call[];
  readonly logs: string[];
  readonly sleeps: number[];
  /** The calls as command lines, for compact assertions. */
  lines(): string[];
}

/** A context whose run records every call and answers with `respond` (exit 0 when it has no answer). */
function fake(respond: Responder, extra: Partial<AgentContext> = {}): Fake {
  const calls: Call[] = [];
  const logs: string[] = [];
  const sleeps: number[] = [];
  const ctx: AgentContext = {
    run: async (cmd, args, opts) => {
      calls.push({ cmd, args: [...args], opts });
      return (await respond(cmd, args)) ?? exit0;
    },
    log: (level, message) => logs.push(`${level}: ${message}`),
    configDir: join(scratch, 'no-ha.d'),
    initDir: join(scratch, 'no-init.d'),
    tandemadm: ['tandemadm', '-c', '/etc/tandem.conf'],
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  };
  return { ctx, calls, logs, sleeps, lines: () => calls.map((c) => [c.cmd, ...c.args].join(' ')) };
}

function assertFailed(r: AgentResult, code: AgentErrorCode, pattern?: RegExp): void {
  assert.equal(r.ok, false, r.message);
  assert.equal(r.code, code, r.message);
  if (pattern) assert.match(r.message, pattern);
}

// ---------------------------------------------------------------- IPaddr

// As `ip -o -4 addr show` prints it (one line per address, `\` where the details would wrap).
const ipListing = [
  '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 172.25.137.6/24 brd 172.25.137.255 scope global eth0\\       valid_lft forever preferred_lft forever',
  '3: eth1@if12    inet 10.1.0.2/16 brd 10.1.255.255 scope global eth1\\       valid_lft forever preferred_lft forever',
  '3: eth1@if12    inet 10.1.5.1/24 scope global eth1\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 172.25.137.100/24 scope global secondary eth0:0\\       valid_lft forever preferred_lft forever',
  'garbage that is not an address',
  '',
].join('\n');

/** ip and arping as a host with `ipListing` answers them. */
function ipHost(listing = ipListing, overrides: Responder = () => undefined): Responder {
  return (cmd, args) => {
    const o = overrides(cmd, args);
    if (o) return o;
    if (cmd === 'ip' && args.join(' ') === '-o -4 addr show') return { code: 0, out: listing, err: '' };
    return exit0;
  };
}

describe('IPaddr: arguments and ip output', () => {
  it('parses IP[/CIDR[/IFACE[/BROADCAST]]], empty fields taking their default', () => {
    const cases: [string, object][] = [
      ['10.0.0.5', { address: '10.0.0.5' }],
      ['10.0.0.5/24', { address: '10.0.0.5', prefix: 24 }],
      ['10.0.0.5/255.255.254.0', { address: '10.0.0.5', prefix: 23 }],
      ['172.25.137.100/24/eth0', { address: '172.25.137.100', prefix: 24, iface: 'eth0' }],
      ['10.0.0.5//eth0.100', { address: '10.0.0.5', iface: 'eth0.100' }],
      [
        '10.0.0.5/24/eth0/10.0.0.255',
        { address: '10.0.0.5', prefix: 24, iface: 'eth0', broadcast: '10.0.0.255' },
      ],
      ['10.0.0.5/32//', { address: '10.0.0.5', prefix: 32 }],
      ['10.0.0.5/1/eth0/+', { address: '10.0.0.5', prefix: 1, iface: 'eth0', broadcast: '+' }],
    ];
    for (const [arg, spec] of cases) assert.deepEqual(parseIpaddrArg(arg), { ok: true, spec }, arg);
  });

  it('refuses a bad argument with a message naming it, and runs nothing', async () => {
    const cases: [string[], RegExp][] = [
      [[], /needs an argument/],
      [['10.0.0.256/24'], /address "10\.0\.0\.256"/],
      [['10.0.0/24'], /address "10\.0\.0"/],
      [['eth0'], /address "eth0"/],
      [['10.0.0.5/0'], /CIDR "0"/],
      [['10.0.0.5/33'], /CIDR "33"/],
      [['10.0.0.5/255.0.255.0'], /CIDR "255\.0\.255\.0"/],
      [['10.0.0.5/24/-eth0'], /interface "-eth0"/],
      [['10.0.0.5/24/averyveryverylongname'], /interface "averyveryverylongname"/],
      [['10.0.0.5/24/eth 0'], /interface "eth 0"/],
      [['10.0.0.5/24/eth0/10.0.0'], /broadcast "10\.0\.0"/],
      [['10.0.0.5/24/eth0/10.0.0.255/x'], /at most four/],
      [['10.0.0.5/24', 'extra'], /takes one argument/],
    ];
    for (const [args, pattern] of cases) {
      const f = fake(ipHost());
      for (const action of ['start', 'stop', 'status'] as const) {
        assertFailed(await ipaddrAgent.run(action, args, f.ctx), 'AGENT_BAD_ARGS', pattern);
      }
      assert.deepEqual(f.calls, [], args.join('::'));
    }
  });

  it('reads ip -o -4 addr show: names without @peer, secondaries, garbage skipped', () => {
    assert.deepEqual(parseIpAddrShow(ipListing), [
      { iface: 'lo', address: '127.0.0.1', prefix: 8 },
      { iface: 'eth0', address: '172.25.137.6', prefix: 24 },
      { iface: 'eth1', address: '10.1.0.2', prefix: 16 },
      { iface: 'eth1', address: '10.1.5.1', prefix: 24 },
      { iface: 'eth0', address: '172.25.137.100', prefix: 24 },
    ]);
  });

  it('picks the most specific subnet that contains the address, on the named interface if any', () => {
    const list = parseIpAddrShow(ipListing);
    assert.equal(findContainingSubnet({ address: '10.1.5.50' }, list)?.prefix, 24);
    assert.equal(findContainingSubnet({ address: '10.1.6.50' }, list)?.prefix, 16);
    assert.equal(findContainingSubnet({ address: '172.25.137.50' }, list)?.iface, 'eth0');
    assert.equal(findContainingSubnet({ address: '172.25.137.50', iface: 'eth1' }, list), undefined);
    assert.equal(findContainingSubnet({ address: '192.168.1.1' }, list), undefined);
  });
});

describe('IPaddr: start, stop, status with a fake ip', () => {
  it('start infers interface and prefix, adds the address, then sends gratuitous ARP', async () => {
    const f = fake(ipHost());
    const r = await ipaddrAgent.run('start', ['10.1.5.50'], f.ctx);
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(f.lines(), [
      'ip -o -4 addr show',
      'ip addr add 10.1.5.50/24 dev eth1',
      'arping -U -c 3 -I eth1 10.1.5.50',
    ]);
  });

  it('start with CIDR, interface and broadcast given uses them as written (the seed: /24/eth0)', async () => {
    const f = fake(ipHost());
    const r = await ipaddr2Agent.run('start', ['172.25.137.101/24/eth0/172.25.137.255'], f.ctx);
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(f.lines().slice(1), [
      'ip addr add 172.25.137.101/24 brd 172.25.137.255 dev eth0',
      'arping -U -c 3 -I eth0 172.25.137.101',
    ]);
  });

  it('start with only the interface takes the prefix of its subnet', async () => {
    const f = fake(ipHost());
    assert.equal((await ipaddrAgent.run('start', ['10.1.9.9//eth1'], f.ctx)).ok, true);
    assert.equal(f.lines()[1], 'ip addr add 10.1.9.9/16 dev eth1');
  });

  it('start is idempotent: an address already up is success and nothing is added', async () => {
    const f = fake(ipHost());
    const r = await ipaddrAgent.run('start', ['172.25.137.100/24/eth0'], f.ctx);
    assert.equal(r.ok, true);
    assert.match(r.message, /already up/);
    assert.deepEqual(f.lines(), ['ip -o -4 addr show']);
  });

  it('start refuses when no interface has a subnet for the address', async () => {
    for (const arg of ['192.168.7.7', '192.168.7.7/24', '192.168.7.7//eth0']) {
      const f = fake(ipHost());
      assertFailed(await ipaddrAgent.run('start', [arg], f.ctx), 'AGENT_NO_INTERFACE', /192\.168\.7\.7/);
      assert.deepEqual(f.lines(), ['ip -o -4 addr show'], arg);
    }
  });

  it('start reports what ip said when the add fails; a timeout is its own code', async () => {
    const failing = fake(
      ipHost(ipListing, (cmd, args) =>
        cmd === 'ip' && args[1] === 'add'
          ? { code: 2, out: '', err: 'Error: Nexthop has invalid gateway.\n' }
          : undefined,
      ),
    );
    assertFailed(
      await ipaddrAgent.run('start', ['10.1.5.50'], failing.ctx),
      'AGENT_FAILED',
      /exit 2.*invalid gateway/,
    );
    assert.equal(failing.calls.length, 2, 'no arping after a failed add');
    const hung = fake(
      ipHost(ipListing, (_cmd, args) =>
        args[0] === '-o' ? { code: 143, out: '', err: '', timedOut: true } : undefined,
      ),
    );
    assertFailed(await ipaddrAgent.run('status', ['10.1.5.50'], hung.ctx), 'AGENT_TIMEOUT', /timed out/);
  });

  it('start succeeds with a warning when arping fails, and does not wait for a slow arping', async () => {
    const f = fake(
      ipHost(ipListing, (cmd) => (cmd === 'arping' ? { code: 2, out: '', err: 'no device' } : undefined)),
    );
    assert.equal((await ipaddrAgent.run('start', ['10.1.5.50'], f.ctx)).ok, true);
    assert.equal(f.logs.length, 1);
    assert.match(f.logs[0]!, /^warn: gratuitous ARP for 10\.1\.5\.50: .*no device/);

    let finishArping: (r: RunResult) => void = () => undefined;
    const slow = fake(
      ipHost(ipListing, (cmd) =>
        cmd === 'arping' ? new Promise<RunResult>((resolve) => (finishArping = resolve)) : undefined,
      ),
    );
    const t0 = performance.now();
    assert.equal((await ipaddrAgent.run('start', ['10.1.5.50'], slow.ctx)).ok, true);
    const waited = performance.now() - t0;
    assert.ok(waited >= 900 && waited < 3000, `start waited ${waited} ms for arping`);
    finishArping(exit0);
  });

  it('stop deletes the address where it is; an address that is not up is success', async () => {
    const up = fake(ipHost());
    assert.equal((await ipaddrAgent.run('stop', ['172.25.137.100/24/eth0'], up.ctx)).ok, true);
    assert.deepEqual(up.lines(), ['ip -o -4 addr show', 'ip addr del 172.25.137.100/24 dev eth0']);
    const down = fake(ipHost());
    const r = await ipaddrAgent.run('stop', ['172.25.137.101/24/eth0'], down.ctx);
    assert.equal(r.ok, true);
    assert.deepEqual(down.lines(), ['ip -o -4 addr show']);
  });

  it('status is running exactly when the address is on an interface', async () => {
    const f = fake(ipHost());
    const up = await ipaddrAgent.run('status', ['172.25.137.100'], f.ctx);
    assert.deepEqual([up.ok, up.running], [true, true]);
    assert.match(up.message, /on eth0/);
    const down = await ipaddrAgent.run('status', ['172.25.137.101/24/eth0'], f.ctx);
    assert.deepEqual([down.ok, down.running], [true, false]);
  });
});

// ---------------------------------------------------------------- Filesystem

describe('Filesystem with a fake mount table', () => {
  const root = join(scratch, 'fs');
  const data = join(root, 'data');
  const other = join(root, 'other');
  const loop = join(root, 'loop7');
  // The seed mounts /dev/drbd1; here a symlink to a loop device stands in for it.
  const drbd = join(root, 'drbd1');
  const mounts = join(root, 'mounts');
  mkdirSync(data, { recursive: true });
  mkdirSync(other, { recursive: true });
  writeFileSync(loop, '');
  symlinkSync(loop, drbd);

  function withTable(lines: string[], respond: Responder = () => undefined): Fake {
    writeFileSync(mounts, ['proc /proc proc rw,relatime 0 0', ...lines, ''].join('\n'));
    return fake(respond, { procMounts: mounts });
  }

  const args = [drbd, data, 'ext4'];

  it('start mounts with -t and -o when nothing is mounted', async () => {
    const f = withTable([]);
    const r = await filesystemAgent.run('start', [...args, 'noatime,data=ordered'], f.ctx);
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(f.lines(), [`mount -t ext4 -o noatime,data=ordered ${drbd} ${data}`]);
  });

  it('start is success when the device is already mounted there under its resolved name', async () => {
    const f = withTable([`${loop} ${data} ext4 rw,relatime 0 0`]);
    const r = await filesystemAgent.run('start', args, f.ctx);
    assert.equal(r.ok, true, r.message);
    assert.match(r.message, /already mounted/);
    assert.deepEqual(f.calls, []);
    const status = await filesystemAgent.run('status', args, f.ctx);
    assert.deepEqual([status.ok, status.running], [true, true]);
  });

  it('start refuses a directory with something else mounted, and a device mounted elsewhere', async () => {
    const busyDir = withTable([`/dev/sdb1 ${data} xfs rw 0 0`]);
    assertFailed(
      await filesystemAgent.run('start', args, busyDir.ctx),
      'AGENT_CONFLICT',
      new RegExp(`${data} already has /dev/sdb1 \\(xfs\\) mounted`),
    );
    const elsewhere = withTable([`${loop} ${other} ext4 rw 0 0`]);
    assertFailed(
      await filesystemAgent.run('start', args, elsewhere.ctx),
      'AGENT_CONFLICT',
      new RegExp(`already mounted on ${other}`),
    );
    assert.deepEqual([...busyDir.calls, ...elsewhere.calls], []);
    const st = await filesystemAgent.run('status', args, elsewhere.ctx);
    assert.deepEqual([st.ok, st.running], [true, false]);
  });

  it('start fails with what mount said, and refuses a missing mount point before running mount', async () => {
    const f = withTable([], () => ({
      code: 32,
      out: '',
      err: `mount: ${data}: wrong fs type, bad option\n`,
    }));
    assertFailed(await filesystemAgent.run('start', args, f.ctx), 'AGENT_FAILED', /exit 32.*wrong fs type/);
    const missing = withTable([]);
    assertFailed(
      await filesystemAgent.run('start', [drbd, join(root, 'nowhere'), 'ext4'], missing.ctx),
      'AGENT_FAILED',
      /nowhere/,
    );
    assert.deepEqual(missing.calls, []);
  });

  it('stop unmounts the directory; not mounted, or mounted by someone else, is left alone', async () => {
    const f = withTable([`${loop} ${data} ext4 rw 0 0`]);
    assert.equal((await filesystemAgent.run('stop', args, f.ctx)).ok, true);
    assert.deepEqual(f.lines(), [`umount ${data}`]);
    const none = withTable([]);
    assert.equal((await filesystemAgent.run('stop', args, none.ctx)).ok, true);
    const foreign = withTable([`/dev/sdb1 ${data} xfs rw 0 0`]);
    const r = await filesystemAgent.run('stop', args, foreign.ctx);
    assert.equal(r.ok, true);
    assert.match(r.message, /left alone/);
    assert.deepEqual([...none.calls, ...foreign.calls], []);
  });

  it('stop of a busy directory fails with fuser -vm output and kills nothing', async () => {
    // fuser's table is on stderr but for its PIDs (on stdout), mixed with a complaint for every /proc/PID/fd it may not read.
    const holderLines = Array.from(
      { length: 30 },
      (_, i) => `                     apache  ${4200 + i} ..c.. httpd`,
    );
    const fuserErr = [
      'Cannot stat file /proc/1/fd/0: Permission denied',
      '                     USER        PID ACCESS COMMAND',
      `${data}:             root     kernel mount ${data}`,
      'Cannot stat file /proc/1/fd/1: Permission denied',
      ...holderLines,
    ].join('\n');
    const f = withTable([`${loop} ${data} ext4 rw 0 0`], (cmd) => {
      if (cmd === 'umount') return { code: 32, out: '', err: `umount: ${data}: target is busy.\n` };
      if (cmd === 'fuser') return { code: 0, out: ' 4200c 4201c', err: fuserErr };
      return undefined;
    });
    const r = await filesystemAgent.run('stop', args, f.ctx);
    assertFailed(r, 'AGENT_BUSY', /target is busy/);
    assert.match(r.message, /4200 \.\.c\.\. httpd/);
    assert.doesNotMatch(r.message, /Cannot stat/);
    assert.doesNotMatch(r.message, /4229/, 'at most fuserLinesMax lines of fuser');
    assert.match(r.message, /\(12 more lines\)\nPIDs \(access\): 4200c 4201c$/);
    assert.deepEqual(f.lines(), [`umount ${data}`, `fuser -vm ${data}`]);

    const noFuser = withTable([`${loop} ${data} ext4 rw 0 0`], (cmd) =>
      cmd === 'umount'
        ? { code: 32, out: '', err: 'umount: target is busy.' }
        : { code: 127, out: '', err: 'fuser: not found' },
    );
    const r2 = await filesystemAgent.run('stop', args, noFuser.ctx);
    assertFailed(r2, 'AGENT_BUSY');
    assert.doesNotMatch(r2.message, /fuser/);
  });

  it('refuses bad arguments and an unreadable mount table', async () => {
    const cases: [string[], RegExp][] = [
      [[drbd, data], /3 or 4 arguments/],
      [['', data, 'ext4'], /DEVICE ""/],
      [['-o', data, 'ext4'], /DEVICE "-o"/],
      [[drbd, 'data', 'ext4'], /DIR "data"/],
      [[drbd, data, 'ext 4'], /FSTYPE "ext 4"/],
      [[drbd, data, 'ext4', '-oremount'], /OPTIONS "-oremount"/],
    ];
    for (const [a, pattern] of cases) {
      assertFailed(
        await filesystemAgent.run('start', a, fake(() => undefined).ctx),
        'AGENT_BAD_ARGS',
        pattern,
      );
    }
    const f = fake(() => undefined, { procMounts: join(root, 'no-such-mounts') });
    assertFailed(await filesystemAgent.run('status', args, f.ctx), 'AGENT_FAILED', /no-such-mounts/);
  });

  it('reads /proc/mounts with its octal escapes', () => {
    assert.deepEqual(parseProcMounts('/dev/sdc1 /mnt/my\\040disk\\011x vfat rw,uid=0 0 0\n\nshort line\n'), [
      { source: '/dev/sdc1', dir: '/mnt/my disk\tx', fstype: 'vfat', options: 'rw,uid=0' },
    ]);
  });
});

// ---------------------------------------------------------------- tandemdisk

const notUpToDate: RunResult = {
  code: 11,
  out: '',
  err: 'tandemadm: State change failed: (-2) Need access to UpToDate data\n',
};

describe('tandemdisk / drbddisk with a fake tandemadm', () => {
  it('start promotes; a disk not yet UpToDate is retried every 0.5 s until it is', async () => {
    let n = 0;
    const f = fake(() => (++n <= 2 ? notUpToDate : exit0));
    const r = await tandemdiskAgent.run('start', ['example'], f.ctx);
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(f.lines(), Array(3).fill('tandemadm -c /etc/tandem.conf primary example'));
    assert.deepEqual(f.sleeps, [500, 500]);
  });

  it('start gives up after diskWaitSeconds with the last refusal', async () => {
    const f = fake(() => notUpToDate, { diskWaitSeconds: 2 });
    const r = await drbddiskAgent.run('start', ['example'], f.ctx);
    assertFailed(r, 'AGENT_DISK_NOT_UPTODATE', /after 2 s.*Need access to UpToDate data/);
    assert.equal(f.calls.length, 5, '1 + 2 s / 0.5 s attempts');
    const none = fake(() => notUpToDate, { diskWaitSeconds: 0 });
    assertFailed(await drbddiskAgent.run('start', ['example'], none.ctx), 'AGENT_DISK_NOT_UPTODATE');
    assert.equal(none.calls.length, 1);
  });

  it('start stops short of promoting once the node may no longer act (lost the majority)', async () => {
    let majority = true;
    let n = 0;
    const f = fake(
      () => {
        n++;
        if (n === 2) majority = false; // the majority goes while the disk is still syncing
        return notUpToDate;
      },
      { mayNotAct: () => (majority ? undefined : 'this node lost the majority') },
    );
    assertFailed(
      await tandemdiskAgent.run('start', ['example'], f.ctx),
      'AGENT_REFUSED',
      /not promoted: this node lost the majority/,
    );
    assert.equal(f.calls.length, 2, 'no promotion attempt after the majority went');
    const never = fake(() => exit0, { mayNotAct: () => 'this node lost the majority' });
    assertFailed(await tandemdiskAgent.run('start', ['example'], never.ctx), 'AGENT_REFUSED');
    assert.equal(never.calls.length, 0);
  });

  it('start does not retry any other refusal or failure', async () => {
    const refused = fake(() => ({
      code: 11,
      out: '',
      err: 'State change failed: (-7) Refusing to be Primary while peer is not outdated',
    }));
    assertFailed(
      await tandemdiskAgent.run('start', ['example'], refused.ctx),
      'AGENT_REFUSED',
      /peer is not outdated/,
    );
    const unreachable = fake(() => ({ code: 20, out: '', err: 'tandemd is not running' }));
    assertFailed(
      await tandemdiskAgent.run('start', ['example'], unreachable.ctx),
      'AGENT_FAILED',
      /not running/,
    );
    assert.equal(refused.calls.length + unreachable.calls.length, 2);
  });

  it('stop demotes; a refusal is a failure with tandemadm’s message', async () => {
    const ok = fake(() => exit0);
    assert.equal((await drbddiskAgent.run('stop', ['example'], ok.ctx)).ok, true);
    assert.deepEqual(ok.lines(), ['tandemadm -c /etc/tandem.conf secondary example']);
    const held = fake(() => ({
      code: 11,
      out: '',
      err: 'State change failed: (-12) Device is held open by someone',
    }));
    assertFailed(await drbddiskAgent.run('stop', ['example'], held.ctx), 'AGENT_REFUSED', /held open/);
  });

  it('status is running when the role is Primary; all resources must be', async () => {
    const cases: [string, boolean][] = [
      ['Primary/Secondary\n', true],
      ['Primary/Unknown\n', true],
      ['Secondary/Primary\n', false],
      ['Primary/Secondary\nSecondary/Secondary\n', false],
    ];
    for (const [out, running] of cases) {
      const f = fake(() => ({ code: 0, out, err: '' }));
      const r = await tandemdiskAgent.run('status', [], f.ctx);
      assert.deepEqual([r.ok, r.running], [true, running], out);
      assert.deepEqual(f.lines(), ['tandemadm -c /etc/tandem.conf role all'], 'no argument means all');
    }
    const down = fake(() => ({ code: 20, out: '', err: 'cannot connect to tandemd' }));
    assertFailed(
      await tandemdiskAgent.run('status', ['example'], down.ctx),
      'AGENT_STATUS_UNKNOWN',
      /cannot connect/,
    );
  });

  it('refuses a bad resource name and a missing tandemadm command line', async () => {
    for (const args of [['-all'], ['a b'], ['x', 'y']]) {
      const f = fake(() => exit0);
      assertFailed(await tandemdiskAgent.run('start', args, f.ctx), 'AGENT_BAD_ARGS');
      assert.deepEqual(f.calls, []);
    }
    assertFailed(
      await tandemdiskAgent.run('start', ['r0'], fake(() => exit0, { tandemadm: [] }).ctx),
      'AGENT_FAILED',
    );
  });
});

// ---------------------------------------------------------------- script agents

describe('script agents: resource.d and init.d', () => {
  const haDir = join(scratch, 'ha.d');
  const resourceD = join(haDir, 'resource.d');
  const initD = join(scratch, 'init.d');
  const callLog = join(scratch, 'script-calls');
  mkdirSync(resourceD, { recursive: true });
  mkdirSync(initD, { recursive: true });

  function script(dir: string, name: string, body: string, mode = 0o755): void {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), mode);
  }

  // Logs "where: args…", answers status with $STATUS_TEXT and $STATUS_CODE from ctx.env.
  const reporter = (where: string) =>
    `echo "${where}: $*" >> "${callLog}"\n` +
    'for last; do :; done\n' +
    'case "$last" in\n' +
    '  status) [ -n "$STATUS_TEXT" ] && echo "$STATUS_TEXT"; exit $((STATUS_CODE + 0)) ;;\n' +
    '  start) exit $((START_CODE + 0)) ;;\n' +
    'esac\nexit 0';
  script(resourceD, 'svc', reporter('resource.d'));
  script(initD, 'svc', reporter('init.d'));
  script(initD, 'httpd', reporter('init.d'));
  script(resourceD, 'IPaddr', reporter('resource.d'));
  script(resourceD, 'notexec', reporter('resource.d'), 0o644);
  script(initD, 'notexec', reporter('init.d'));
  script(resourceD, 'slow', 'sleep 5');
  // A daemon that keeps the script's stdout open must not hold start open.
  script(initD, 'daemonizing', 'sleep 2 &\necho started');

  function ctx(env: Record<string, string> = {}, extra: Partial<AgentContext> = {}): AgentContext {
    const logs: string[] = [];
    return {
      run: spawnRun,
      log: (level, message) => logs.push(`${level}: ${message}`),
      configDir: haDir,
      initDir: initD,
      tandemadm: ['tandemadm'],
      env,
      ...extra,
    };
  }

  function calls(): string[] {
    try {
      return spawnSync('cat', [callLog], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => l !== '');
    } finally {
      rmSync(callLog, { force: true });
    }
  }

  it('looks up built-ins first, then resource.d, then init.d; a missing script is undefined', async () => {
    const c = ctx();
    assert.equal(await resolveAgent('IPaddr', c), ipaddrAgent);
    for (const name of builtinAgentNames) assert.ok(await resolveAgent(name, c), name);
    await runResource('svc::x', 'start', c);
    await runResource('httpd', 'start', c);
    await runResource('notexec', 'start', c);
    assert.deepEqual(calls(), ['resource.d: x start', 'init.d: start', 'init.d: start']);
    for (const name of ['missing', '../init.d/svc', '.', '-svc', '']) {
      assert.equal(await resolveAgent(name, c), undefined, name);
    }
    assertFailed(await runResource('missing::1', 'start', c), 'AGENT_NOT_FOUND', /"missing"/);
  });

  it('passes the resource arguments before the action, and ctx.env to the script', async () => {
    const r = await runResource('svc::one::two words::', 'stop', ctx());
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(calls(), ['resource.d: one two words  stop']);
    const failed = await runResource('httpd', 'start', ctx({ START_CODE: '1' }));
    assertFailed(failed, 'AGENT_FAILED', /exit 1/);
    calls();
  });

  it('reads status from the words on stdout first, then from the LSB exit code', async () => {
    const cases: [string, number, boolean | 'unknown'][] = [
      ['httpd (pid 1234) is running...', 0, true],
      ['Checking for service: [  OK  ]', 4, true],
      ['httpd is stopped', 3, false],
      ['httpd is not running', 0, false],
      ['resource stopped', 0, false],
      ['', 0, true],
      ['', 3, false],
      ['nothing useful', 0, true],
      ['', 1, 'unknown'],
      ['', 2, 'unknown'],
      ['', 4, 'unknown'],
      ['broken token', 150, 'unknown'],
    ];
    for (const [text, code, want] of cases) {
      const r = await runResource('httpd', 'status', ctx({ STATUS_TEXT: text, STATUS_CODE: String(code) }));
      const label = `${JSON.stringify(text)} exit ${code}`;
      if (want === 'unknown') assertFailed(r, 'AGENT_STATUS_UNKNOWN', new RegExp(`exit ${code}`));
      else assert.deepEqual([r.ok, r.running], [true, want], `${label}: ${r.message}`);
      assert.equal(readScriptStatus({ code, out: text, err: '' }).known, want !== 'unknown', label);
    }
    calls();
  });

  it('a script past its timeout fails as a timeout; one that leaves a daemon on stdout returns', async () => {
    const t0 = performance.now();
    assertFailed(await runResource('slow', 'start', ctx({}, { scriptTimeoutMs: 300 })), 'AGENT_TIMEOUT');
    assert.ok(performance.now() - t0 < 3000);
    const t1 = performance.now();
    const r = await runResource('daemonizing', 'start', ctx());
    assert.equal(r.ok, true, r.message);
    assert.ok(performance.now() - t1 < 1500, 'start waited for the daemon');
  });
});

describe('resources as haresources writes them', () => {
  it('splits NAME::args, a bare address being IPaddr', () => {
    const line = 'IPaddr::172.25.137.100/24/eth0 drbddisk::example Filesystem::/dev/drbd1::/data::ext4 httpd';
    assert.deepEqual(line.split(' ').map(parseResourceSpec), [
      { name: 'IPaddr', args: ['172.25.137.100/24/eth0'] },
      { name: 'drbddisk', args: ['example'] },
      { name: 'Filesystem', args: ['/dev/drbd1', '/data', 'ext4'] },
      { name: 'httpd', args: [] },
    ]);
    assert.deepEqual(parseResourceSpec('1.2.3.4/24'), { name: 'IPaddr', args: ['1.2.3.4/24'] });
  });

  it('spawnRun reports exit codes, output, and a program that cannot start as 127', async () => {
    assert.deepEqual(await spawnRun('sh', ['-c', 'echo out; echo err >&2; exit 3']), {
      code: 3,
      out: 'out\n',
      err: 'err\n',
    });
    const missing = await spawnRun(join(scratch, 'no-such-program'), []);
    assert.equal(missing.code, 127);
    assert.match(missing.err, /ENOENT/);
    const env = await spawnRun('sh', ['-c', 'echo "$TANDEM_X"'], { env: { TANDEM_X: 'y' } });
    assert.equal(env.out, 'y\n');
  });
});

// ---------------------------------------------------------------- a real interface

function whyNoNetns(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  const r = spawnSync('ip', ['-V']);
  if (r.error || r.status !== 0) return 'needs ip (iproute2)';
  return undefined;
}

describe('IPaddr on a real interface in a network namespace', { skip: whyNoNetns() }, () => {
  const ns = `tandem-agent-${process.pid}`;
  const inNs = (...args: string[]) => spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' });
  after(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });

  it('start adds 10.213.0.50/24 next to 10.213.0.1/24, status sees it, stop removes it', async () => {
    const created = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    assert.equal(created.status, 0, created.stderr);
    // A dummy interface when the kernel has the module, else one end of a veth pair.
    if (inNs('ip', 'link', 'add', 'tandem0', 'type', 'dummy').status !== 0) {
      const veth = inNs('ip', 'link', 'add', 'tandem0', 'type', 'veth', 'peer', 'name', 'tandem0p');
      assert.equal(veth.status, 0, veth.stderr);
      inNs('ip', 'link', 'set', 'tandem0p', 'up');
    }
    for (const step of [
      ['ip', 'link', 'set', 'tandem0', 'up'],
      ['ip', 'addr', 'add', '10.213.0.1/24', 'dev', 'tandem0'],
    ]) {
      const r = inNs(...step);
      assert.equal(r.status, 0, r.stderr);
    }
    const logs: string[] = [];
    const c: AgentContext = {
      run: prefixedRun(['ip', 'netns', 'exec', ns]),
      log: (level, message) => logs.push(`${level}: ${message}`),
      configDir: join(scratch, 'no-ha.d'),
      tandemadm: [],
    };
    const addresses = () => inNs('ip', '-o', '-4', 'addr', 'show', 'dev', 'tandem0').stdout;

    const started = await ipaddrAgent.run('start', ['10.213.0.50/24'], c);
    assert.equal(started.ok, true, started.message);
    assert.match(addresses(), /inet 10\.213\.0\.50\/24 /);
    const up = await ipaddrAgent.run('status', ['10.213.0.50'], c);
    assert.deepEqual([up.ok, up.running], [true, true], up.message);
    assert.equal((await ipaddrAgent.run('start', ['10.213.0.50/24'], c)).ok, true, 'start twice');

    const stopped = await ipaddrAgent.run('stop', ['10.213.0.50/24'], c);
    assert.equal(stopped.ok, true, stopped.message);
    assert.doesNotMatch(addresses(), /10\.213\.0\.50/);
    assert.match(addresses(), /inet 10\.213\.0\.1\/24 /, 'the interface keeps its own address');
    const down = await ipaddrAgent.run('status', ['10.213.0.50'], c);
    assert.deepEqual([down.ok, down.running], [true, false]);
  });
});
