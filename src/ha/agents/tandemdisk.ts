// tandemdisk::RES (Heartbeat's drbddisk::RES): the replicated disk's role follows the resource group.
// start promotes with `tandemadm primary RES`, waiting while the disk is still becoming UpToDate
// (right after a failover the survivor may be finishing its handshake); stop demotes; status asks
// `tandemadm role RES`. The drbddisk script LINBIT ships does the same with drbdadm.
import type { Agent, AgentAction, AgentContext, AgentResult, RunResult } from './agent.js';
import { exec, failure, outputOf, runFailure, success, unknownAction } from './result.js';

export const defaultDiskWaitSeconds = 10;
/** Between two promotion attempts while the disk is not UpToDate. */
export const primaryRetryMs = 500;
/** tandemadm itself gives the daemon 120 s to answer. */
export const tandemadmTimeoutMs = 130_000;
/** drbdsetup's "State change failed" exit code, which tandemadm keeps. */
export const stateChangeFailedExitCode = 11;

// A resource name as drbd.conf allows it; no leading '-' so that it never reads as an option.
const resourceName = /^[A-Za-z0-9_][A-Za-z0-9_.+:@-]*$/;

interface Tandemadm {
  readonly cmd: string;
  readonly base: readonly string[];
}

function tandemadmOf(ctx: AgentContext): Tandemadm | undefined {
  const [cmd, ...base] = ctx.tandemadm;
  return cmd === undefined ? undefined : { cmd, base };
}

async function tandemadm(t: Tandemadm, ctx: AgentContext, command: string, res: string): Promise<RunResult> {
  return exec(ctx, t.cmd, [...t.base, command, res], { timeoutMs: tandemadmTimeoutMs });
}

/** tandemadm refused the promotion only because no local disk is UpToDate yet. */
function notUpToDateYet(r: RunResult): boolean {
  return !r.timedOut && r.code === stateChangeFailedExitCode && /UpToDate/.test(`${r.err}\n${r.out}`);
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function start(t: Tandemadm, res: string, ctx: AgentContext): Promise<AgentResult> {
  const waitMs = Math.max(0, (ctx.diskWaitSeconds ?? defaultDiskWaitSeconds) * 1000);
  const sleep = ctx.sleep ?? defaultSleep;
  // Both bounds: the attempt count holds with a fake sleep, the deadline when tandemadm is slow.
  const attemptsMax = 1 + Math.ceil(waitMs / primaryRetryMs);
  const deadline = Date.now() + waitMs;
  const refusal = (): AgentResult | undefined => {
    const why = ctx.mayNotAct?.();
    return why === undefined ? undefined : failure('AGENT_REFUSED', `${res}: not promoted: ${why}`);
  };
  const first = refusal();
  if (first) return first;
  let r = await tandemadm(t, ctx, 'primary', res);
  for (let attempt = 1; attempt < attemptsMax && notUpToDateYet(r) && Date.now() < deadline; attempt++) {
    if (attempt === 1) ctx.log('info', `${res}: waiting up to ${waitMs / 1000} s for an UpToDate disk`);
    await sleep(primaryRetryMs);
    const no = refusal();
    if (no) return no;
    r = await tandemadm(t, ctx, 'primary', res);
  }
  if (r.code === 0 && !r.timedOut) return success(`${res} is Primary`);
  if (notUpToDateYet(r)) {
    return failure(
      'AGENT_DISK_NOT_UPTODATE',
      `${res}: no UpToDate disk after ${waitMs / 1000} s: ${outputOf(r)}`,
    );
  }
  if (!r.timedOut && r.code === stateChangeFailedExitCode) {
    return failure('AGENT_REFUSED', `${res}: promotion refused: ${outputOf(r)}`);
  }
  return runFailure(t.cmd, [...t.base, 'primary', res], r);
}

async function stop(t: Tandemadm, res: string, ctx: AgentContext): Promise<AgentResult> {
  const r = await tandemadm(t, ctx, 'secondary', res);
  if (r.code === 0 && !r.timedOut) return success(`${res} is Secondary`);
  if (!r.timedOut && r.code === stateChangeFailedExitCode) {
    return failure('AGENT_REFUSED', `${res}: demotion refused: ${outputOf(r)}`);
  }
  return runFailure(t.cmd, [...t.base, 'secondary', res], r);
}

/** `Primary/Secondary` per resource, one line each: running when every local role is Primary. */
async function status(t: Tandemadm, res: string, ctx: AgentContext): Promise<AgentResult> {
  const r = await tandemadm(t, ctx, 'role', res);
  if (r.code !== 0 || r.timedOut) {
    const f = runFailure(t.cmd, [...t.base, 'role', res], r);
    return failure(r.timedOut ? 'AGENT_TIMEOUT' : 'AGENT_STATUS_UNKNOWN', f.message, false);
  }
  const roles = r.out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (roles.length === 0)
    return failure('AGENT_STATUS_UNKNOWN', `${res}: tandemadm role printed nothing`, false);
  const running = roles.every((l) => l.startsWith('Primary'));
  return success(`${res}: ${roles.join(', ')}`, running);
}

function makeDiskAgent(name: string): Agent {
  return {
    name,
    async run(action: AgentAction, args: readonly string[], ctx: AgentContext): Promise<AgentResult> {
      if (args.length > 1)
        return failure('AGENT_BAD_ARGS', `${name} takes one argument RESOURCE, found ${args.length}`);
      const res = args[0] || 'all';
      if (!resourceName.test(res)) {
        return failure(
          'AGENT_BAD_ARGS',
          `${name} resource ${JSON.stringify(res)}: expected a resource name from drbd.conf`,
        );
      }
      const t = tandemadmOf(ctx);
      if (!t) return failure('AGENT_FAILED', `${name}: no tandemadm command line configured`);
      switch (action) {
        case 'start':
          return start(t, res, ctx);
        case 'stop':
          return stop(t, res, ctx);
        case 'status':
          return status(t, res, ctx);
        default:
          return unknownAction(action);
      }
    },
  };
}

export const tandemdiskAgent: Agent = makeDiskAgent('tandemdisk');
/** Heartbeat's name for the same agent, as the seed's haresources writes it. */
export const drbddiskAgent: Agent = makeDiskAgent('drbddisk');
