// Block digests for `csums-alg` (checksum-based resync) and `verify-alg` (online
// verify): DRBD's names, computed with node:crypto, and crc32c with tandem's own table.
import { createHash, getHashes } from 'node:crypto';
import { crc32c } from '../meta/crc32c.js';

/** The digest of `bytes` under `alg` (sha1, md5, sha256, crc32c, or another node:crypto hash). */
export function digestOf(alg: string, bytes: Uint8Array): Buffer {
  if (alg === 'crc32c') {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(crc32c(bytes));
    return out;
  }
  return createHash(alg).update(bytes).digest();
}

/** Undefined when `alg` can be used, else why not (for a clear refusal at `up`). */
export function digestProblem(alg: string): string | undefined {
  if (alg === 'crc32c') return undefined;
  if (!getHashes().includes(alg))
    return `digest algorithm '${alg}' is not available (try sha1, md5, sha256, crc32c)`;
  const bytes = createHash(alg).digest().length;
  if (bytes > 64) return `digest algorithm '${alg}' gives ${bytes} bytes, at most 64 fit a frame`;
  return undefined;
}
