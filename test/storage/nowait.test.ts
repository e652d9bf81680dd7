// The native helper (native/tandem_io.c): it is built where a C compiler and
// Node-API's headers are; a read of data not in the page cache returns EAGAIN at
// once; FileStorage serves cached reads without a trip through the event loop
// and the rest through the thread pool, with the same bytes either way.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'node:test';
import { FileStorage } from '../../src/storage/file.js';
import { nowaitIo, nowaitModulePath, nowaitUnavailable } from '../../src/storage/nowait.js';

const { EAGAIN, EBADF, EINVAL } = constants.errno;
const compiler = spawnSync('cc', ['--version']).status === 0;
const headers = [join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node'].some((d) =>
  existsSync(join(d, 'node_api.h')),
);
const canBuild = compiler && headers && process.env.TANDEM_NO_NATIVE !== '1';

test('the helper is built and loaded wherever it can be built', {
  skip: !canBuild && 'no cc or node_api.h',
}, () => {
  assert.ok(existsSync(nowaitModulePath), `${nowaitModulePath} was not built`);
  assert.equal(nowaitUnavailable, undefined);
  assert.ok(nowaitIo);
});

/** A file whose data was written around the page cache (O_DIRECT): none of it is cached. */
function uncachedFile(dir: string, blocks: number): string {
  const path = join(dir, 'cold.img');
  execFileSync('dd', [
    'if=/dev/urandom',
    `of=${path}`,
    'bs=4096',
    `count=${blocks}`,
    'oflag=direct',
    'status=none',
  ]);
  return path;
}

// A read with RWF_NOWAIT never blocks, but it may start readahead, and on a busy machine
// that I/O can finish before the kernel looks again: a cold block may then come back at
// once. So the tests read many cold blocks, 1 MiB apart (beyond readahead), and ask that
// some were misses and that every block that came back holds the right bytes.
const spacing = 1024 * 1024;
const coldBlocks = 32;

test('preadNowait: EAGAIN for data not in the page cache, the bytes once cached, -errno for bad calls', {
  skip: !nowaitIo && nowaitUnavailable,
}, () => {
  const io = nowaitIo as NonNullable<typeof nowaitIo>;
  const dir = mkdtempSync(join(tmpdir(), 'tandem-nowait-'));
  try {
    const path = uncachedFile(dir, (coldBlocks * spacing) / 4096);
    const fd = openSync(path, 'r');
    try {
      let misses = 0;
      const got: { at: number; bytes: Buffer }[] = [];
      for (let i = 0; i < coldBlocks; i++) {
        const b = Buffer.alloc(4096);
        const r = io.preadNowait(fd, b, i * spacing);
        if (r === -EAGAIN) misses++;
        else {
          assert.equal(r, 4096, `block ${i}: ${r}`);
          got.push({ at: i * spacing, bytes: b });
        }
      }
      assert.ok(misses > 0, `no cold block of ${coldBlocks} was a miss`);
      const file = readFileSync(path);
      for (const g of got) assert.ok(g.bytes.equals(file.subarray(g.at, g.at + 4096)), `bytes at ${g.at}`);
      // Cached now (readFileSync read it all): every block comes back at once.
      const b = Buffer.alloc(4096);
      assert.equal(io.preadNowait(fd, b, 8192), 4096);
      assert.ok(b.equals(file.subarray(8192, 8192 + 4096)));
      assert.equal(io.preadNowait(fd, b, file.length), 0, 'at the end of the file: 0 bytes');
      assert.equal(io.preadNowait(9999, b, 0), -EBADF);
      assert.equal(io.preadNowait(fd, 'text' as unknown as Uint8Array, 0), -EINVAL);
      assert.equal(io.preadNowait(fd, b, -1), -EINVAL);
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Whether `p` settles within microtasks alone, i.e. before the event loop turns. */
async function settlesWithoutTheLoop(p: Promise<void>): Promise<boolean> {
  let done = false;
  p.then(() => {
    done = true;
  });
  for (let i = 0; i < 50 && !done; i++) await Promise.resolve();
  const answer = done;
  await p;
  return answer;
}

test('FileStorage.read: a miss goes to the thread pool, a hit completes at once; the same bytes with the helper off', {
  skip: !nowaitIo && nowaitUnavailable,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-nowait-'));
  try {
    const cold = uncachedFile(dir, (coldBlocks * spacing) / 4096);
    const s = await FileStorage.open(cold, { nowait: true });
    const off = await FileStorage.open(cold, { nowait: false });
    try {
      assert.equal(s.readsNowait, true);
      assert.equal(off.readsNowait, false);
      // Cold blocks: the misses wait for the thread pool (some may race readahead, see above).
      let waited = 0;
      for (let i = 0; i < coldBlocks; i++) {
        const b = Buffer.alloc(4096);
        if (!(await settlesWithoutTheLoop(s.read(b, i * spacing)))) waited++;
        // Cached now: the same block again is served at once, with the same bytes.
        const again = Buffer.alloc(4096);
        assert.equal(await settlesWithoutTheLoop(s.read(again, i * spacing)), true, `a hit at block ${i}`);
        assert.ok(again.equals(b));
        const viaPool = Buffer.alloc(4096);
        assert.equal(
          await settlesWithoutTheLoop(off.read(viaPool, i * spacing)),
          false,
          'helper off: the pool',
        );
        assert.ok(viaPool.equals(b));
      }
      assert.ok(waited > 0, `no cold block of ${coldBlocks} went to the thread pool`);
      const whole = readFileSync(cold);
      const first = Buffer.alloc(4096);
      await s.read(first, spacing);
      assert.ok(whole.subarray(spacing, spacing + 4096).equals(first));
      // Larger than a nowait read: through the pool, whole.
      const big = Buffer.alloc(64 * 4096);
      await s.read(big, 0);
      assert.ok(big.equals(whole.subarray(0, big.length)));
    } finally {
      await s.close();
      await off.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('any error from the helper sends the read to the thread pool; a refusal of the call turns it off', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-nowait-'));
  try {
    const path = uncachedFile(dir, 4);
    const want = readFileSync(path).subarray(4096, 8192);
    for (const [errno, stillOn] of [
      [constants.errno.EIO, true],
      [constants.errno.ENOMEM, true],
      [constants.errno.EINVAL, false],
      [constants.errno.EOPNOTSUPP, false],
      [constants.errno.ENOSYS, false],
      [constants.errno.EPERM, false],
    ] as const) {
      let calls = 0;
      const faulty = {
        preadNowait: () => {
          calls++;
          return -errno;
        },
      };
      const s = await FileStorage.open(path, { nowaitIo: faulty });
      try {
        const b = Buffer.alloc(4096);
        await s.read(b, 4096);
        assert.ok(b.equals(want), `errno ${errno}: the bytes, from the thread pool`);
        assert.equal(calls, 1);
        assert.equal(s.readsNowait, stillOn, `errno ${errno}`);
      } finally {
        await s.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
