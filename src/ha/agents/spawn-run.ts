// The real AgentContext.run: a child process (argv, no shell) with a timeout, its output captured up
// to a bound. Never rejects: a program that cannot start is exit 127, as a shell reports it.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import type { AgentContext, RunOptions, RunResult } from './agent.js';
import { notStartedExitCode } from './result.js';

export const defaultRunTimeoutMs = 60_000;
/** Per stream; past it the output is read and dropped, so that the program never blocks on a full pipe. */
export const outputBytesMax = 1024 * 1024;
/** Between SIGTERM and SIGKILL for a program past its timeout. */
export const killGraceMs = 2_000;
/**
 * After the program exits, how long we wait for its stdout and stderr to close: an init script may
 * leave them to a daemon it started, and that daemon must not hold start open.
 */
export const stdioDrainMs = 200;

type Run = AgentContext['run'];

function collect(stream: Readable): () => string {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let dropped = false;
  stream.on('data', (chunk: Buffer) => {
    if (bytes + chunk.length <= outputBytesMax) {
      chunks.push(chunk);
      bytes += chunk.length;
    } else {
      if (bytes < outputBytesMax) chunks.push(chunk.subarray(0, outputBytesMax - bytes));
      bytes = outputBytesMax;
      dropped = true;
    }
  });
  return () => Buffer.concat(chunks).toString('utf8') + (dropped ? '\n[output truncated]\n' : '');
}

export const spawnRun: Run = (cmd, args, opts: RunOptions = {}) =>
  new Promise<RunResult>((resolve) => {
    const child = spawn(cmd, [...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      // Its own process group, so that a timeout kills the script and what it started in the foreground.
      detached: true,
    });
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    let settled = false;
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        child.kill(signal);
      }
    };
    const finish = (code: number, extraErr = '') => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, out: out(), err: err() + extraErr, ...(timedOut ? { timedOut } : {}) });
    };
    timers.push(
      setTimeout(() => {
        timedOut = true;
        signalGroup('SIGTERM');
        timers.push(setTimeout(() => signalGroup('SIGKILL'), killGraceMs));
      }, opts.timeoutMs ?? defaultRunTimeoutMs),
    );
    child.on('error', (e) => finish(notStartedExitCode, `${cmd}: ${e.message}\n`));
    child.on('exit', (code, signal) => {
      const status = code ?? 128 + (signal ? constants.signals[signal] : 0);
      child.on('close', () => finish(status));
      timers.push(setTimeout(() => finish(status), stdioDrainMs));
    });
  });

/** A run that puts `prefix` before every command: ['ip', 'netns', 'exec', NS] runs inside a netns. */
export function prefixedRun(prefix: readonly string[], run: Run = spawnRun): Run {
  const [cmd, ...rest] = prefix;
  if (cmd === undefined) return run;
  return (c, args, opts) => run(cmd, [...rest, c, ...args], opts);
}
