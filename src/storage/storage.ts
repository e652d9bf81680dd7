// The backing-disk interface every layer above uses, so that tests and the
// fault runs can swap in memory or faulty storage under the same code.
// Offsets and lengths are in bytes; callers keep I/O within sizeBytes.

export type StorageErrorCode =
  /** The device reported an I/O error. */
  | 'EIO'
  /** No space left (a sparse backing file on a full filesystem). */
  | 'ENOSPC'
  /** An access outside the device, or misaligned where alignment is required. */
  | 'EINVAL'
  /** The storage was closed. */
  | 'ECLOSED';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly offset: number;
  readonly length: number;
  constructor(code: StorageErrorCode, message: string, offset: number, length: number) {
    super(message);
    this.name = 'StorageError';
    this.code = code;
    this.offset = offset;
    this.length = length;
  }
}

export interface BlockStorage {
  /** Usable size in bytes. */
  readonly sizeBytes: number;
  /** A name for messages: the path, or 'memory'. */
  readonly name: string;
  /** Fills `buf` from `offset`; rejects with StorageError. */
  read(buf: Uint8Array, offset: number): Promise<void>;
  /** Writes all of `buf` at `offset`; rejects with StorageError. */
  write(buf: Uint8Array, offset: number): Promise<void>;
  /**
   * Whether writeSync takes a write of `length` bytes: a storage whose small writes
   * cost no more than a copy (the page cache, memory) does them on the caller's
   * thread. Absent or false: use write().
   */
  writesSync?(length: number): boolean;
  /** Writes all of `buf` at `offset` before it returns (only where writesSync said so); throws StorageError. */
  writeSync?(buf: Uint8Array, offset: number): void;
  /** Makes every completed write durable (fdatasync). */
  flush(): Promise<void>;
  /** Deallocates a range; reads of it return zeroes afterwards. */
  discard(offset: number, length: number): Promise<void>;
  close(): Promise<void>;
}

/** Throws EINVAL unless [offset, offset+length) lies inside the storage. */
export function checkRange(s: { sizeBytes: number; name: string }, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > s.sizeBytes
  ) {
    throw new StorageError(
      'EINVAL',
      `${s.name}: access ${offset}+${length} outside 0..${s.sizeBytes}`,
      offset,
      length,
    );
  }
}
