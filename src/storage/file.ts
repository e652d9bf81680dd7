// Storage on a regular file or a block device: opened once, positional reads
// and writes, fdatasync for flush. Reads of cached data are done at once on the
// event loop (preadv2 RWF_NOWAIT, src/storage/nowait.ts), the rest on libuv's
// thread pool; small buffered writes with writeSync (see syncWriteBytesMax).
import { execFileSync } from 'node:child_process';
import { read as fsRead, write as fsWrite, writeSync as fsWriteSync } from 'node:fs';
import { constants, type FileHandle, open } from 'node:fs/promises';
import { constants as os } from 'node:os';
import { EAGAIN, type NowaitIo, nowaitIo } from './nowait.js';
import { type BlockStorage, checkRange, StorageError, type StorageErrorCode } from './storage.js';

/**
 * Writes up to this size go straight to the page cache from the event loop
 * (writeSync) instead of through libuv's thread pool: a 4 KiB buffered write
 * is a memcpy of microseconds, while the thread pool's hand-off and wake-ups
 * cost more than the write and halve small-write IOPS on a two-core machine
 * (bench/one-node.ts, 4k randwrite: QD16 from 0.23x to 0.64x of nbdkit, QD1
 * from 0.5x to 1.0x). The price:
 * when the kernel throttles a writer (too much dirty memory, at most about
 * 200 ms per write) the whole loop waits. Not used with O_DIRECT or O_DSYNC,
 * where every write waits for the disk.
 */
export const syncWriteBytesMax = 64 * 1024;

/**
 * Reads up to this size first try the page cache from the event loop (a cache
 * hit is a memcpy; a miss returns EAGAIN at once and goes to the thread pool).
 * 4 KiB random reads at QD16: see bench/one-node.ts.
 */
export const nowaitReadBytesMax = 256 * 1024;

/** Errors that mean RWF_NOWAIT reads will never work on this file. */
const refusals = new Set([os.errno.EOPNOTSUPP, os.errno.ENOSYS, os.errno.EINVAL, os.errno.EPERM]);

// The callback API: lighter per call than FileHandle's promise methods on the hot path.
function readAt(fd: number, buf: Uint8Array, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsRead(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeAt(fd: number, buf: Uint8Array, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsWrite(fd, buf, at, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

export interface FileStorageOptions {
  /** Open with O_DIRECT (buffers and offsets must then be 4 KiB aligned). */
  readonly direct?: boolean;
  /** Use only the first sizeBytes of the file (the rest holds internal metadata). */
  readonly sizeBytes?: number;
  /** Try cached reads on the event loop when the native helper is there (default true). */
  readonly nowait?: boolean;
  /** The native helper to use (tests put a faulty one here); default: the built one, if any. */
  readonly nowaitIo?: NowaitIo;
  /**
   * Open with O_DSYNC: every write is durable when it completes, and flush() has
   * nothing left to do. For metadata: an fdatasync of the whole backing file
   * would also write back all of its dirty data, for every 4 KiB metadata block.
   */
  readonly dsync?: boolean;
}

function errorCode(e: unknown): StorageErrorCode {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'ENOSPC';
  if (code === 'EINVAL') return 'EINVAL';
  return 'EIO';
}

/** Size in bytes of a regular file or block device. */
export async function deviceSizeBytes(fh: FileHandle, path: string): Promise<number> {
  const st = await fh.stat();
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    // fstat gives 0 for block devices; blockdev asks the kernel (BLKGETSIZE64).
    return Number(execFileSync('blockdev', ['--getsize64', path], { encoding: 'utf8' }).trim());
  }
  throw new StorageError('EINVAL', `${path} is neither a regular file nor a block device`, 0, 0);
}

export class FileStorage implements BlockStorage {
  readonly name: string;
  readonly sizeBytes: number;
  private readonly fh: FileHandle;
  private closed = false;

  private readonly dsync: boolean;
  private readonly syncWrites: boolean;
  /** Cached reads on the event loop; off with O_DIRECT, or once the file refused RWF_NOWAIT. */
  private nowaitReads: boolean;
  private readonly io: NowaitIo | undefined;

  private constructor(
    fh: FileHandle,
    name: string,
    sizeBytes: number,
    dsync: boolean,
    direct: boolean,
    io: NowaitIo | undefined,
  ) {
    this.dsync = dsync;
    this.syncWrites = !dsync && !direct;
    this.io = io;
    this.nowaitReads = !direct && io !== undefined;
    this.fh = fh;
    this.name = name;
    this.sizeBytes = sizeBytes;
  }

  static async open(path: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    const flags =
      constants.O_RDWR | (options.direct ? constants.O_DIRECT : 0) | (options.dsync ? constants.O_DSYNC : 0);
    const fh = await open(path, flags);
    try {
      const total = await deviceSizeBytes(fh, path);
      const size = options.sizeBytes ?? total;
      if (size > total)
        throw new StorageError('EINVAL', `${path}: ${size} bytes asked, ${total} available`, 0, size);
      return new FileStorage(
        fh,
        path,
        size,
        options.dsync === true,
        options.direct === true,
        options.nowait === false ? undefined : (options.nowaitIo ?? nowaitIo),
      );
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** The StorageError for a failed system call: what, where, and the errno's text. */
  private failed(op: string, e: unknown, at: number, offset: number, length: number): StorageError {
    const where = op === 'flush' ? '' : ` at ${at}`;
    return new StorageError(
      errorCode(e),
      `${this.name}: ${op}${where}: ${(e as Error).message}`,
      offset,
      length,
    );
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new StorageError('ECLOSED', `${this.name}: closed`, offset, length);
    checkRange(this, offset, length);
  }

  /** Whether reads try the page cache on the event loop first. */
  get readsNowait(): boolean {
    return this.nowaitReads;
  }

  /**
   * What the page cache gives at once: bytes read (all of buf, part of it, or 0
   * at the end of the file), or -1 when the thread pool must do the rest.
   */
  private readCached(buf: Uint8Array, offset: number): number {
    if (!this.nowaitReads || !this.io || buf.length > nowaitReadBytesMax) return -1;
    const n = this.io.preadNowait(this.fh.fd, buf, offset);
    if (n >= 0) return n;
    // Not cached, or any error: the thread pool does this read, as it always did, and
    // reports its own error. A file, device or kernel that refuses the call itself
    // (EOPNOTSUPP, ENOSYS, EINVAL, EPERM) is not asked again.
    if (n !== -EAGAIN && refusals.has(-n)) this.nowaitReads = false;
    return -1;
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.check(offset, buf.length);
    let done = 0;
    if (buf.length > 0) {
      const n = this.readCached(buf, offset);
      if (n === 0) {
        buf.fill(0);
        return;
      }
      if (n > 0) done = n;
    }
    while (done < buf.length) {
      let n: number;
      try {
        n = await readAt(this.fh.fd, buf, done, buf.length - done, offset + done);
      } catch (e) {
        throw this.failed('read', e, offset + done, offset, buf.length);
      }
      // Past the end of a file that shrank under us: what is missing reads as zeroes.
      if (n === 0) {
        buf.fill(0, done);
        return;
      }
      done += n;
    }
  }

  writesSync(length: number): boolean {
    return this.syncWrites && length <= syncWriteBytesMax;
  }

  writeSync(buf: Uint8Array, offset: number): void {
    this.check(offset, buf.length);
    let done = 0;
    try {
      while (done < buf.length) done += fsWriteSync(this.fh.fd, buf, done, buf.length - done, offset + done);
    } catch (e) {
      throw this.failed('write', e, offset + done, offset, buf.length);
    }
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (this.writesSync(buf.length)) {
      this.writeSync(buf, offset);
      return;
    }
    this.check(offset, buf.length);
    let done = 0;
    while (done < buf.length) {
      try {
        done += await writeAt(this.fh.fd, buf, done, buf.length - done, offset + done);
      } catch (e) {
        throw this.failed('write', e, offset + done, offset, buf.length);
      }
    }
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    // O_DSYNC: each write was durable when it completed.
    if (this.dsync) return;
    try {
      await this.fh.datasync();
    } catch (e) {
      throw this.failed('flush', e, 0, 0, 0);
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    // No portable punch-hole in Node: write zeroes in bounded pieces.
    const piece = Buffer.alloc(Math.min(length, 1024 * 1024));
    for (let done = 0; done < length; done += piece.length) {
      await this.write(piece.subarray(0, Math.min(piece.length, length - done)), offset + done);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}
