// Waiting for an online verify (`tandemadm verify RES`) to finish, as the chaos
// runners and the replication tests all do.
import type { VolumeStatus } from '../../src/daemon/status.js';

/**
 * Polls `volume` every 100 ms until its verify is done and returns the bytes it
 * found out of sync; throws when it is not done within `timeoutMs`.
 */
export async function verifyResult(
  volume: () => Promise<Pick<VolumeStatus, 'verify'> | undefined>,
  timeoutMs = 60_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = (await volume())?.verify;
    if (v?.done) return v.outOfSyncBytes;
    if (Date.now() > deadline) throw new Error(`verify did not finish within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
