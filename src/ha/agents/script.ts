// Script agents: Heartbeat's resource.d scripts and LSB init scripts, run as `SCRIPT [args…] ACTION`
// (Heartbeat puts the resource's arguments before the action). status is read as Heartbeat's
// ResourceManager reads it: words on stdout first, then the LSB exit code.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Agent, AgentAction, AgentContext, AgentResult, RunResult } from './agent.js';
import { exec, failure, outputOf, runFailure, success, unknownAction } from './result.js';

export const defaultScriptTimeoutMs = 60_000;
export const defaultInitDir = '/etc/init.d';

// A file name in resource.d or init.d: no '/', no '.' or '..', no leading '-'.
const scriptName = /^[A-Za-z0-9_][A-Za-z0-9_.+@-]*$/;

/** LSB init-script status codes (LSB core, "Init Script Actions"); 0 and 3 are the usable ones. */
const lsbStatus: Readonly<Record<number, string>> = {
  1: 'program is dead and /var/run pid file exists',
  2: 'program is dead and /var/lock lock file exists',
  3: 'program is not running',
  4: 'program or service status is unknown',
};

/** The script Heartbeat would run for `name`: resource.d first, then init.d; executable files only. */
export async function findScript(name: string, ctx: AgentContext): Promise<string | undefined> {
  if (!scriptName.test(name)) return undefined;
  for (const dir of [join(ctx.configDir, 'resource.d'), ctx.initDir ?? defaultInitDir]) {
    const path = join(dir, name);
    try {
      if (!(await stat(path)).isFile()) continue;
    } catch {
      continue;
    }
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      ctx.log('warn', `${path} is not executable; looking further`);
    }
  }
  return undefined;
}

export type ScriptStatus =
  | { readonly known: true; readonly running: boolean; readonly why: string }
  | { readonly known: false; readonly why: string };

// "not running" before "running": the negative contains the positive.
const stoppedWords = /\bnot running\b|\bstopped\b/i;
const runningWords = /\brunning\b/i;
// Upper case only, as init scripts print `[  OK  ]`; "ok" inside a sentence means little.
const okWord = /\bOK\b/;

/** What a status run says: words on stdout, else the LSB exit code. */
export function readScriptStatus(r: RunResult): ScriptStatus {
  if (stoppedWords.test(r.out)) return { known: true, running: false, why: 'stdout says stopped' };
  if (runningWords.test(r.out) || okWord.test(r.out))
    return { known: true, running: true, why: 'stdout says running' };
  if (r.code === 0) return { known: true, running: true, why: 'exit 0' };
  if (r.code === 3) return { known: true, running: false, why: `exit 3 (${lsbStatus[3]})` };
  const meaning = lsbStatus[r.code];
  return { known: false, why: `exit ${r.code}${meaning ? ` (${meaning})` : ''}` };
}

export function scriptAgent(name: string, path: string): Agent {
  return {
    name,
    async run(action: AgentAction, args: readonly string[], ctx: AgentContext): Promise<AgentResult> {
      if (action !== 'start' && action !== 'stop' && action !== 'status') return unknownAction(action);
      const argv = [...args, action];
      const r = await exec(ctx, path, argv, {
        timeoutMs: ctx.scriptTimeoutMs ?? defaultScriptTimeoutMs,
        ...(ctx.env ? { env: ctx.env } : {}),
      });
      if (r.timedOut) return runFailure(path, argv, r);
      if (action !== 'status')
        return r.code === 0 ? success(`${name} ${action}: ok`) : runFailure(path, argv, r);
      const st = readScriptStatus(r);
      // stdout is what status is read from, so it is what the message quotes.
      const said = outputOf(r.out.trim() ? { ...r, err: '' } : r);
      const message = `${name} status: ${st.why}${said ? `: ${said}` : ''}`;
      if (!st.known) return failure('AGENT_STATUS_UNKNOWN', message, false);
      return success(message, st.running);
    },
  };
}
