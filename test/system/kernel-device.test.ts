// The kernel-device manager's cleanup after a killed tandemd must touch only
// what that tandemd made (review finding: it detached whatever loop device had
// the recorded number).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KernelDeviceManager } from '../../src/nbd/kernel.js';
import { sh, systemTestSkipReason } from '../helpers/tandem-node.js';

const skip = await systemTestSkipReason(['losetup']);

test('stale cleanup leaves a loop device alone that no longer reads our FUSE file', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-kdev-'));
  let loop = '';
  try {
    const img = join(dir, 'unrelated.img');
    writeFileSync(img, Buffer.alloc(4 * 1024 * 1024));
    loop = (await sh('losetup', ['--find', '--show', img])).out.trim();
    assert.match(loop, /^\/dev\/loop\d+$/);
    const fuseDir = join(dir, 'r0.fuse');
    mkdirSync(fuseDir);
    writeFileSync(
      join(dir, 'r0.kdev.json'),
      JSON.stringify({ kind: 'fuse-loop', blockDevice: loop, fuseDir, devicePath: join(dir, 'drbd9') }),
    );
    await new KernelDeviceManager().cleanupStale({ stateDir: dir, exportName: 'r0' });
    const still = await sh('losetup', ['-n', '-O', 'BACK-FILE', loop]);
    assert.equal(still.out.trim(), img, 'the unrelated loop device is still attached to its image');
  } finally {
    if (loop) await sh('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
  }
});
