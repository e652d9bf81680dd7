// The native helper (native/tandem_io.c, built by scripts/build-native.mjs):
// reads that are served from the page cache at once or fail with EAGAIN, never
// waiting for the disk. Optional: without it every read goes through libuv's
// thread pool, correct but with two thread hand-offs per read.
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface NowaitIo {
  /** Bytes read from the page cache (0 at end of file), or -errno; -EAGAIN: not cached. */
  preadNowait(fd: number, buf: Uint8Array, offset: number): number;
}

/** Where the build puts the helper: build/ at the package root (dist/src/storage → ../../..). */
export const nowaitModulePath = fileURLToPath(new URL('../../../build/tandem_io.node', import.meta.url));

function load(): { io?: NowaitIo; reason?: string } {
  if (process.env.TANDEM_NO_NATIVE === '1') return { reason: 'TANDEM_NO_NATIVE=1' };
  try {
    const io = createRequire(import.meta.url)(nowaitModulePath) as NowaitIo;
    if (typeof io.preadNowait !== 'function') return { reason: `${nowaitModulePath}: no preadNowait` };
    return { io };
  } catch (e) {
    return { reason: (e as Error).message.split('\n')[0] };
  }
}

const loaded = load();

/** The helper, or undefined when it is not built or not loadable here. */
export const nowaitIo: NowaitIo | undefined = loaded.io;
/** Why the helper is not in use; undefined when it is. */
export const nowaitUnavailable: string | undefined = loaded.reason;

export const EAGAIN = constants.errno.EAGAIN;
