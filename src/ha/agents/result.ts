// What every agent shares: building results, and running a program so that a missing binary or a
// rejecting ctx.run becomes a RunResult (agents never throw for the world's failures).
import type { AgentContext, AgentErrorCode, AgentResult, RunOptions, RunResult } from './agent.js';

/** How much of a program's output a message quotes; the tail is where the error usually is. */
export const messageCharsMax = 2000;
/** The exit code shells use for "command not found"; also ours for a program that did not start. */
export const notStartedExitCode = 127;

export function success(message: string, running?: boolean): AgentResult {
  return running === undefined ? { ok: true, message } : { ok: true, running, message };
}

export function failure(code: AgentErrorCode, message: string, running?: boolean): AgentResult {
  return running === undefined ? { ok: false, code, message } : { ok: false, code, running, message };
}

/** ctx.run that never rejects. */
export async function exec(
  ctx: AgentContext,
  cmd: string,
  args: readonly string[],
  opts?: RunOptions,
): Promise<RunResult> {
  try {
    return await ctx.run(cmd, args, opts);
  } catch (e) {
    return {
      code: notStartedExitCode,
      out: '',
      err: `${cmd}: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}

/** The command line as a person would type it, for messages. */
export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** What a program said: stderr if any, else stdout, trimmed to its last messageCharsMax characters. */
export function outputOf(r: RunResult): string {
  const text = (r.err.trim() || r.out.trim()).replace(/\s*\n\s*/g, '; ');
  return text.length > messageCharsMax ? `…${text.slice(-messageCharsMax)}` : text;
}

/** `ip addr add … failed (exit 2): RTNETLINK answers: File exists`. */
export function describeFailure(cmd: string, args: readonly string[], r: RunResult): string {
  const how = r.timedOut ? 'timed out' : `failed (exit ${r.code})`;
  const said = outputOf(r);
  return `${commandLine(cmd, args)} ${how}${said ? `: ${said}` : ''}`;
}

/** A failed run as a result: AGENT_TIMEOUT when it was killed, else AGENT_FAILED. */
export function runFailure(cmd: string, args: readonly string[], r: RunResult): AgentResult {
  return failure(r.timedOut ? 'AGENT_TIMEOUT' : 'AGENT_FAILED', describeFailure(cmd, args, r));
}

/** The end of an exhaustive switch over AgentAction: only reachable from untyped callers. */
export function unknownAction(action: never): AgentResult {
  return failure(
    'AGENT_BAD_ARGS',
    `unknown action ${JSON.stringify(action)}: expected start, stop or status`,
  );
}
