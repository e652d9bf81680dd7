// One daemon per run dir (tandemd.pid, tandem-ha.pid): a PID file created exclusively.
// A file left by a dead daemon (SIGKILL, crash) is taken over; one of a live daemon is refused.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

export class AlreadyRunningError extends Error {
  readonly code = 'ALREADY_RUNNING';
  readonly pid: number;
  constructor(path: string, pid: number) {
    super(
      `another ${basename(path, '.pid')} (pid ${pid}) serves this run dir (${path}); stop it first or use another --run-dir`,
    );
    this.pid = pid;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates `path` holding our pid; returns a function that removes it. */
export function acquirePidFile(path: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
      return () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
      throw new AlreadyRunningError(path, pid);
    // Stale: its daemon is gone.
    rmSync(path, { force: true });
  }
  throw new Error(`cannot create ${path}`);
}
