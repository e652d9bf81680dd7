// FileStorage on a temporary file: sizes, the range and closed checks, zeroes
// past the end of a file that shrank, flush with and without O_DSYNC, and the
// two write paths (small writes synchronously, larger ones on the thread pool).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { FileStorage, syncWriteBytesMax } from '../../src/storage/file.js';
import { StorageError, type StorageErrorCode } from '../../src/storage/storage.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function isCode(code: StorageErrorCode) {
  return (e: unknown) => e instanceof StorageError && e.code === code;
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** A temporary file of `bytes` zeroes; removed with its directory after `f`. */
async function withFile(bytes: number, f: (path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-file-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, Buffer.alloc(0));
  truncateSync(path, bytes);
  try {
    await f(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Spies on the private FileHandle's datasync (the only way to see the O_DSYNC path skip it). */
function countDatasyncs(s: FileStorage): { count: number } {
  const fh = (s as unknown as { fh: { datasync(): Promise<void> } }).fh;
  const spy = { count: 0 };
  const real = fh.datasync.bind(fh);
  fh.datasync = () => {
    spy.count++;
    return real();
  };
  return spy;
}

test('size: the whole file, or the first sizeBytes; more than the file is refused with EINVAL', async () => {
  await withFile(4 * MiB, async (path) => {
    const whole = await FileStorage.open(path);
    assert.equal(whole.sizeBytes, 4 * MiB);
    assert.equal(whole.name, path);
    await whole.close();
    const part = await FileStorage.open(path, { sizeBytes: 1 * MiB });
    assert.equal(part.sizeBytes, 1 * MiB);
    await assert.rejects(part.write(Buffer.alloc(1), 1 * MiB), isCode('EINVAL'));
    await part.close();
    await assert.rejects(FileStorage.open(path, { sizeBytes: 4 * MiB + 1 }), isCode('EINVAL'));
  });
});

test('a character device is neither a file nor a block device: EINVAL', async () => {
  await assert.rejects(FileStorage.open('/dev/null'), (e: unknown) => {
    assert.ok(e instanceof StorageError && e.code === 'EINVAL');
    assert.match(e.message, /neither a regular file nor a block device/);
    return true;
  });
});

test('accesses outside the device are refused with EINVAL before touching the file', async () => {
  await withFile(1 * MiB, async (path) => {
    const s = await FileStorage.open(path);
    try {
      await assert.rejects(s.read(Buffer.alloc(4096), 1 * MiB - 4095), isCode('EINVAL'));
      await assert.rejects(s.write(Buffer.alloc(1), 1 * MiB), isCode('EINVAL'));
      await assert.rejects(s.write(Buffer.alloc(1), -1), isCode('EINVAL'));
      await assert.rejects(s.read(Buffer.alloc(1), 1.5), isCode('EINVAL'));
      await assert.rejects(s.discard(0, 1 * MiB + 1), isCode('EINVAL'));
      // The file did not grow.
      assert.equal(readFileSync(path).length, 1 * MiB);
    } finally {
      await s.close();
    }
  });
});

test('reads past the end of a file that shrank under us are zero-filled', async () => {
  await withFile(1 * MiB, async (path) => {
    const s = await FileStorage.open(path);
    try {
      await s.write(Buffer.alloc(1 * MiB, 0x5a), 0);
      truncateSync(path, 600 * KiB);
      const b = Buffer.alloc(200 * KiB, 0xee);
      await s.read(b, 500 * KiB);
      assert.ok(
        b.subarray(0, 100 * KiB).every((x) => x === 0x5a),
        'before the new end: the data',
      );
      assert.ok(
        b.subarray(100 * KiB).every((x) => x === 0),
        'after it: zeroes, not the old buffer',
      );
      const past = Buffer.alloc(4096, 0xee);
      await s.read(past, 900 * KiB);
      assert.ok(past.every((x) => x === 0));
    } finally {
      await s.close();
    }
  });
});

test('close: every later operation fails with ECLOSED; closing twice is fine', async () => {
  await withFile(64 * KiB, async (path) => {
    const s = await FileStorage.open(path);
    await s.close();
    await s.close();
    await assert.rejects(s.read(Buffer.alloc(1), 0), isCode('ECLOSED'));
    await assert.rejects(s.write(Buffer.alloc(1), 0), isCode('ECLOSED'));
    await assert.rejects(s.write(Buffer.alloc(1 * MiB), 0), isCode('ECLOSED'));
    await assert.rejects(s.flush(), isCode('ECLOSED'));
    await assert.rejects(s.discard(0, 1), isCode('ECLOSED'));
  });
});

test('flush: fdatasync normally; nothing to do with O_DSYNC, where every write is already durable', async () => {
  await withFile(1 * MiB, async (path) => {
    const plain = await FileStorage.open(path);
    const plainSyncs = countDatasyncs(plain);
    await plain.write(Buffer.alloc(4096, 1), 0);
    await plain.flush();
    assert.equal(plainSyncs.count, 1);
    await plain.close();

    const dsync = await FileStorage.open(path, { dsync: true });
    const dsyncSyncs = countDatasyncs(dsync);
    // Small writes take the thread pool too under O_DSYNC (each waits for the disk).
    const small = pattern(4096, 2);
    await dsync.write(small, 8192);
    await dsync.flush();
    assert.equal(dsyncSyncs.count, 0, 'O_DSYNC: flush is a no-op');
    const back = Buffer.alloc(4096);
    await dsync.read(back, 8192);
    assert.ok(back.equals(small));
    await dsync.close();
    assert.ok(
      readFileSync(path)
        .subarray(8192, 8192 + 4096)
        .equals(small),
    );
  });
});

test('writes up to 64 KiB go to the page cache before write() returns; larger ones complete later, both correct', async () => {
  assert.equal(syncWriteBytesMax, 64 * KiB);
  await withFile(8 * MiB, async (path) => {
    const s = await FileStorage.open(path);
    try {
      // The synchronous path: the bytes are in the file as soon as the call returns.
      const small = pattern(syncWriteBytesMax, 1);
      const p = s.write(small, 4 * KiB + 3);
      assert.ok(
        readFileSync(path)
          .subarray(4 * KiB + 3, 4 * KiB + 3 + small.length)
          .equals(small),
        'in the file before any await',
      );
      await p;
      // Past the limit (by one byte, and much larger): the thread pool, unaligned.
      const justOver = pattern(syncWriteBytesMax + 1, 2);
      const big = pattern(3 * MiB + 17, 3);
      const tiny = pattern(1, 4);
      await Promise.all([s.write(justOver, 1 * MiB + 1), s.write(big, 3 * MiB + 5), s.write(tiny, 7 * MiB)]);
      for (const [data, at] of [
        [small, 4 * KiB + 3],
        [justOver, 1 * MiB + 1],
        [big, 3 * MiB + 5],
        [tiny, 7 * MiB],
      ] as const) {
        const back = Buffer.alloc(data.length);
        await s.read(back, at);
        assert.ok(back.equals(data), `read back at ${at}`);
        assert.ok(
          readFileSync(path)
            .subarray(at, at + data.length)
            .equals(data),
          `in the file at ${at}`,
        );
      }
      await s.flush();
    } finally {
      await s.close();
    }
  });
});

test('many concurrent writes of both sizes, then reads, agree with a model', async () => {
  await withFile(4 * MiB, async (path) => {
    const s = await FileStorage.open(path);
    const model = Buffer.alloc(4 * MiB);
    try {
      const writes: Promise<void>[] = [];
      // Disjoint slots so the completion order does not matter.
      for (let i = 0; i < 32; i++) {
        const length = i % 2 === 0 ? 4 * KiB + i : 96 * KiB + i;
        const at = i * 128 * KiB + (i % 7);
        const data = pattern(length, i);
        data.copy(model, at);
        writes.push(s.write(data, at));
      }
      await Promise.all(writes);
      const back = Buffer.alloc(4 * MiB);
      await s.read(back, 0);
      assert.ok(back.equals(model));
    } finally {
      await s.close();
    }
  });
});

test('discard writes zeroes over its range, in pieces larger ranges need', async () => {
  await withFile(4 * MiB, async (path) => {
    const s = await FileStorage.open(path);
    try {
      await s.write(Buffer.alloc(4 * MiB, 0x33), 0);
      await s.discard(100, 2 * MiB + 5 * KiB);
      const b = readFileSync(path);
      assert.ok(b.subarray(0, 100).every((x) => x === 0x33));
      assert.ok(b.subarray(100, 100 + 2 * MiB + 5 * KiB).every((x) => x === 0));
      assert.ok(b.subarray(100 + 2 * MiB + 5 * KiB).every((x) => x === 0x33));
      await s.discard(0, 0);
    } finally {
      await s.close();
    }
  });
});
