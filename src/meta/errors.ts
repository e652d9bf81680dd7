// Errors of the metadata codecs and store. Every decode failure names what was
// wrong (a stable `code` that tests and callers match) and the byte offset where.

export type MetaErrorCode =
  /** The bytes end before the structure does. */
  | 'META_SHORT'
  /** The magic number is not tandem's: no metadata here (or another program's). */
  | 'META_BAD_MAGIC'
  /** Written by a newer tandem; we refuse rather than misread it. */
  | 'META_NEWER_VERSION'
  /** A version this tandem never wrote (0). */
  | 'META_BAD_VERSION'
  /** The checksum does not match: a torn or corrupted block. */
  | 'META_BAD_CHECKSUM'
  /** A field holds a value out of its range. */
  | 'META_BAD_FIELD'
  /** The device is too small for data + metadata, or the meta-disk slot is beyond its end. */
  | 'META_TOO_SMALL'
  /** A layout parameter is invalid (negative index, fractional size). */
  | 'META_BAD_LAYOUT'
  /** Neither superblock copy is valid. */
  | 'META_NOT_FOUND'
  /** The superblock describes other sizes than the device has now. */
  | 'META_GEOMETRY_MISMATCH'
  /** The store was closed. */
  | 'META_CLOSED';

export class MetaError extends Error {
  readonly code: MetaErrorCode;
  /** Byte offset in the decoded buffer (or on the device, for store errors); -1 when none applies. */
  readonly offset: number;

  constructor(code: MetaErrorCode, message: string, offset = -1) {
    super(message);
    this.name = 'MetaError';
    this.code = code;
    this.offset = offset;
  }
}

/** Size in bytes with a unit for messages: `1073741824 bytes (1 GiB)`. */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = '';
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  if (unit === '') return `${bytes} bytes`;
  // Rounded down, so a size is never shown larger than it is.
  const shown = Number.isInteger(value) ? String(value) : (Math.floor(value * 10) / 10).toFixed(1);
  return `${bytes} bytes (${shown} ${unit})`;
}
