// One tandem node end to end with real parts: tandemd as a process, the seed's
// commands, real NBD clients (nbdinfo, qemu-io, nbdcopy, fio), the kernel
// device (nbdfuse + loop) with mkfs.ext4, mount and e2fsck, and SIGKILL.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bin } from '../helpers/paths.js';
import { sh, systemTestSkipReason, TandemNode } from '../helpers/tandem-node.js';

const tools = ['nbdinfo', 'qemu-io', 'nbdcopy', 'fio', 'nbdfuse', 'losetup', 'mkfs.ext4', 'e2fsck', 'mount'];
const skip = await systemTestSkipReason(tools);

function uri(n: TandemNode, exportName = 'r0'): string {
  return `nbd+unix:///${exportName}?socket=${join(n.runDir, 'r0.nbd')}`;
}

function ok(r: { code: number; out: string; err: string }, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

describe('one node: the seed story on tandem', { skip }, () => {
  let n: TandemNode;
  before(async () => {
    n = await TandemNode.create();
  });
  after(async () => {
    await n?.cleanup();
  });

  test('create-md, up, primary refused, primary --force', async () => {
    ok(await n.adm('create-md', 'r0'), 'create-md');
    const dump = JSON.parse(ok(await n.adm('--json', 'dump-md', 'r0'), 'dump-md'));
    assert.ok(!dump[0].flags.includes('consistent'), 'fresh metadata is Inconsistent');
    await n.start();
    ok(await n.adm('up', 'r0'), 'up');
    assert.equal(ok(await n.adm('dstate', 'r0'), 'dstate'), 'Inconsistent/DUnknown\n');
    const refused = await n.adm('primary', 'r0');
    assert.equal(refused.code, 11);
    assert.match(refused.err, /State change failed: \(-2\) Need access to UpToDate data/);
    ok(await n.adm('primary', '--force', 'r0'), 'primary --force');
    assert.equal(ok(await n.adm('role', 'r0'), 'role'), 'Primary/Unknown\n');
    assert.equal(ok(await n.adm('cstate', 'r0'), 'cstate'), 'WFConnection\n');
    const st = JSON.parse(ok(await n.adm('status', '--json', 'r0'), 'status'));
    assert.equal(st.resources[0].volumes[0].disk, 'UpToDate');
    assert.equal(st.resources[0].volumes[0].kernelDevice.kind, 'fuse-loop');
  });

  test('nbdinfo reports the size and block sizes', async () => {
    const info = JSON.parse(ok(await sh('nbdinfo', ['--json', uri(n)]), 'nbdinfo'));
    const e = info.exports[0];
    const st = JSON.parse(ok(await n.adm('status', '--json', 'r0'), 'status'));
    assert.equal(e['export-size'], st.resources[0].volumes[0].sizeBytes);
    assert.equal(e['block_size_minimum'], 1);
    assert.equal(e['block_size_preferred'], 4096);
    assert.equal(e['block_size_maximum'], 32 * 1024 * 1024);
    assert.equal(e['can_flush'], true);
    assert.equal(e['can_fua'], true);
  });

  test('qemu-io writes patterns at many offsets and sizes and reads them back', async () => {
    const cmds: string[] = [];
    const cases: [number, number][] = [
      [0, 512],
      [512, 512],
      [4096, 4096],
      [12345 * 512, 65536],
      [1024 * 1024 - 512, 1024],
      [3 * 1024 * 1024 + 4096, 1024 * 1024],
      [100 * 1024 * 1024 + 512, 3 * 512],
      [200 * 1024 * 1024, 2 * 1024 * 1024],
    ];
    for (const [i, [off, len]] of cases.entries()) cmds.push('-c', `write -P ${0x11 + i} ${off} ${len}`);
    cmds.push('-c', 'flush');
    for (const [i, [off, len]] of cases.entries()) cmds.push('-c', `read -P ${0x11 + i} ${off} ${len}`);
    const out = ok(await sh('qemu-io', ['-f', 'raw', uri(n), ...cmds]), 'qemu-io');
    assert.doesNotMatch(out, /Pattern verification failed/);
    assert.equal(out.match(/^read /gm)?.length, cases.length);
  });

  test('nbdcopy copies a random 64 MiB image in and out byte-identical', async () => {
    const img = join(n.dir, 'random.img');
    const back = join(n.dir, 'back.img');
    writeFileSync(img, randomBytes(64 * 1024 * 1024));
    ok(await sh('nbdcopy', [img, uri(n)]), 'nbdcopy in');
    ok(await sh('nbdcopy', ['--synchronous', uri(n), back]), 'nbdcopy out');
    const a = readFileSync(img);
    const b = readFileSync(back).subarray(0, a.length);
    assert.ok(a.equals(b), 'the image read back differs');
  });

  test('fio random read/write with crc32c verify at 4 KiB - 1 MiB passes', async () => {
    const out = ok(
      await sh('fio', [
        '--name=verify',
        '--ioengine=nbd',
        `--uri=${uri(n)}`,
        '--rw=randrw',
        '--bsrange=4k-1m',
        '--size=96m',
        '--offset=128m',
        '--iodepth=16',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--verify_state_save=0',
      ]),
      'fio',
    );
    assert.match(out, /err= 0/);
    // Several connections with small, unaligned requests (the review's corruption case).
    const multi = ok(
      await sh('fio', [
        '--name=multi',
        '--ioengine=nbd',
        `--uri=${uri(n)}`,
        '--numjobs=4',
        '--rw=randrw',
        '--bsrange=512-60k',
        '--size=16m',
        '--offset_increment=16m',
        '--offset=128m',
        '--iodepth=8',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--verify_state_save=0',
      ]),
      'fio multi',
    );
    assert.doesNotMatch(multi, /verify: bad|err= [1-9]/);
  });

  test('mkfs.ext4 on the device path, mount, write, umount, e2fsck clean; demotion refused while mounted', async () => {
    ok(await sh('mkfs.ext4', ['-q', '-F', n.device]), 'mkfs.ext4');
    ok(await sh('mount', [n.device, n.mnt]), 'mount');
    writeFileSync(join(n.mnt, 'index.html'), 'hello from tandem\n');
    ok(await sh('cp', ['-r', '/etc/ssl', join(n.mnt, 'ssl')]), 'cp');
    ok(await sh('sync', []), 'sync');
    const refused = await n.adm('secondary', 'r0');
    assert.equal(refused.code, 11);
    assert.match(refused.err, /\(-12\) Device is held open by someone: .* is mounted on/);
    ok(await sh('umount', [n.mnt]), 'umount');
    ok(await sh('e2fsck', ['-fn', n.device]), 'e2fsck');
    // Open but not mounted (a VM or a database on the raw device): also refused.
    const holder = spawn('sh', ['-c', `exec 3<>${n.device}; exec sleep 30`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const held = await n.adm('secondary', 'r0');
      assert.equal(held.code, 11);
      assert.match(held.err, /\(-12\) Device is held open by someone: .* is open in sleep\[\d+\]/);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    ok(await n.adm('secondary', 'r0'), 'secondary');
    assert.equal(ok(await n.adm('role', 'r0'), 'role'), 'Secondary/Unknown\n');
    const nbd = await sh('nbdinfo', [uri(n)]);
    assert.notEqual(nbd.code, 0, 'a Secondary refuses the export');
    // libnbd does not print the server's reason text; the unit tests check it.
    assert.match(nbd.err, /opt_go/);
  });

  test('SIGKILL of tandemd: what was flushed is there after a restart, and fsck is clean', async () => {
    ok(await n.adm('primary', 'r0'), 'primary');
    ok(await sh('mount', [n.device, n.mnt]), 'mount');
    const payload = randomBytes(3 * 1024 * 1024);
    writeFileSync(join(n.mnt, 'flushed.bin'), payload);
    ok(await sh('sync', []), 'sync');
    // Also a raw pattern through NBD, flushed.
    ok(await sh('qemu-io', ['-f', 'raw', uri(n), '-c', 'write -P 0x77 250m 1m', '-c', 'flush']), 'qemu-io');
    assert.equal(await n.stop('SIGKILL'), null);
    await sh('umount', [n.mnt]);
    await sh('umount', ['-l', n.mnt]);
    await n.start();
    ok(await n.adm('up', 'r0'), 'up after crash');
    assert.match(n.log(), /not shut down cleanly: \d+ activity-log extent\(s\) of 4 MiB marked out of sync/);
    assert.equal(ok(await n.adm('dstate', 'r0'), 'dstate'), 'UpToDate/DUnknown\n');
    ok(await n.adm('primary', 'r0'), 'primary after crash');
    ok(await sh('qemu-io', ['-f', 'raw', uri(n), '-c', 'read -P 0x77 250m 1m']), 'pattern after crash');
    ok(await sh('mount', [n.device, n.mnt]), 'mount after crash');
    assert.ok(readFileSync(join(n.mnt, 'flushed.bin')).equals(payload), 'flushed file intact');
    assert.equal(readFileSync(join(n.mnt, 'index.html'), 'utf8'), 'hello from tandem\n');
    ok(await sh('umount', [n.mnt]), 'umount');
    ok(await sh('e2fsck', ['-fn', n.device]), 'e2fsck after crash');
    // SIGTERM with the filesystem mounted: tandemd keeps serving rather than cut it off.
    ok(await sh('mount', [n.device, n.mnt]), 'mount again');
    n.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(ok(await n.adm('role', 'r0'), 'role after SIGTERM'), 'Primary/Unknown\n');
    assert.match(n.log(), /not stopping: r0: .*is mounted on/);
    writeFileSync(join(n.mnt, 'after-sigterm.txt'), 'still here\n');
    ok(await sh('umount', [n.mnt]), 'umount');
    assert.equal(await n.stop('SIGTERM'), 0, 'the next SIGTERM stops it');
    ok(await sh('e2fsck', ['-fn', n.disk]), 'e2fsck of the backing disk after a clean stop');
  });
});

describe('one node: refusals', { skip }, () => {
  let n: TandemNode;
  before(async () => {
    n = await TandemNode.create();
  });
  after(async () => {
    await n?.cleanup();
  });

  test('create-md over metadata or a filesystem needs --force; a disk too small names both sizes', async () => {
    ok(await n.adm('create-md', 'r0'), 'create-md');
    const again = await n.adm('create-md', 'r0');
    assert.equal(again.code, 20);
    assert.match(again.err, /holds tandem metadata.*use --force/);
    ok(await sh('mkfs.ext4', ['-q', '-F', n.disk]), 'mkfs on the raw disk');
    const fs = await n.adm('create-md', '--force', 'r0');
    assert.equal(fs.code, 0, fs.err);
    await n.sizeDisk(0);
    await n.sizeDisk(1024 * 1024);
    const small = await n.adm('create-md', '--force', 'r0');
    assert.equal(small.code, 20);
    assert.match(small.err, /backing disk has 1048576 bytes .*; tandem needs at least \d+ bytes/);
  });

  test('a second tandemd on the same run dir is refused', async () => {
    await n.sizeDisk(64 * 1024 * 1024);
    ok(await n.adm('create-md', '--force', 'r0'), 'create-md');
    await n.start();
    const second = await sh(process.execPath, [
      bin('tandemd'),
      '-c',
      n.conf,
      '--node',
      n.name,
      '--run-dir',
      n.runDir,
    ]);
    assert.equal(second.code, 20);
    assert.match(second.err, /another tandemd \(pid \d+\) serves this run dir/);
    const status = await n.adm('status');
    assert.equal(status.code, 0, 'the first keeps serving');
  });

  test('up on a disk without metadata says to run create-md', async () => {
    await n.stop();
    await sh('dd', ['if=/dev/zero', `of=${n.disk}`, 'bs=1M', 'count=1', 'conv=notrunc']);
    await sh('truncate', ['-s', '0', n.disk]);
    await n.sizeDisk(64 * 1024 * 1024);
    await n.start(['--no-kernel-device']);
    const r = await n.adm('up', 'r0');
    assert.equal(r.code, 20);
    assert.match(r.err, /no valid tandem metadata found .*run 'tandemadm create-md r0' first/);
  });

  test('commands without a running tandemd say so', async () => {
    await n.stop();
    const r = await n.adm('up', 'r0');
    assert.equal(r.code, 20);
    assert.match(r.err, /tandemd is not running/);
  });
});

describe('one node: a block device as the backing disk', { skip }, () => {
  let n: TandemNode;
  before(async () => {
    n = await TandemNode.create({ diskBytes: 128 * 1024 * 1024 });
  });
  after(async () => {
    await n?.cleanup();
  });

  test('a loop device: its size comes from the kernel, data goes through', async () => {
    const loop = ok(await sh('losetup', ['--find', '--show', n.disk]), 'losetup').trim();
    n.useDisk(loop);
    ok(await n.adm('create-md', '--force', 'r0'), 'create-md');
    const md = JSON.parse(ok(await n.adm('--json', 'dump-md', 'r0'), 'dump-md'));
    assert.ok(
      md[0].sizes.dataBytes > 127 * 1024 * 1024 && md[0].sizes.dataBytes < 128 * 1024 * 1024,
      String(md[0].sizes.dataBytes),
    );
    await n.start(['--no-kernel-device']);
    ok(await n.adm('up', 'r0'), 'up');
    ok(await n.adm('primary', '--force', 'r0'), 'primary');
    ok(
      await sh('qemu-io', [
        '-f',
        'raw',
        uri(n),
        '-c',
        'write -P 0x3c 1m 2m',
        '-c',
        'flush',
        '-c',
        'read -P 0x3c 1m 2m',
      ]),
      'qemu-io',
    );
    ok(await n.adm('down', 'r0'), 'down');
    const raw = Buffer.alloc(4096);
    const fd = openSync(loop, 'r');
    readSync(fd, raw, 0, 4096, 1024 * 1024);
    closeSync(fd);
    assert.ok(raw.equals(Buffer.alloc(4096, 0x3c)), 'the data is on the block device at the same offset');
  });
});
