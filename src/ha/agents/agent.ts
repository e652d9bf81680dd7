// Heartbeat's resource agents as tandem-ha runs them: the Agent interface, the context that carries
// every side effect (programs, log, paths), and the lookup Heartbeat's ResourceManager does:
// built-ins, then ha.d/resource.d/NAME, then /etc/init.d/NAME.
import { filesystemAgent } from './filesystem.js';
import { ipaddr2Agent, ipaddrAgent } from './ipaddr.js';
import { failure } from './result.js';
import { findScript, scriptAgent } from './script.js';
import { drbddiskAgent, tandemdiskAgent } from './tandemdisk.js';

export type AgentAction = 'start' | 'stop' | 'status';
export const agentActions: readonly AgentAction[] = ['start', 'stop', 'status'];

/** Stable reasons for `ok: false`; callers and tests match these, never the message. */
export type AgentErrorCode =
  /** An argument is malformed (the message names it). */
  | 'AGENT_BAD_ARGS'
  /** The resource names no built-in, resource.d or init.d agent. */
  | 'AGENT_NOT_FOUND'
  /** Something else holds what the resource needs (another mount on DIR, DEVICE mounted elsewhere). */
  | 'AGENT_CONFLICT'
  /** umount found the file system in use. */
  | 'AGENT_BUSY'
  /** No interface to put the address on could be found. */
  | 'AGENT_NO_INTERFACE'
  /** tandemadm refused the role change. */
  | 'AGENT_REFUSED'
  /** The disk did not become UpToDate within diskWaitSeconds. */
  | 'AGENT_DISK_NOT_UPTODATE'
  /** A program ran past its timeout and was killed. */
  | 'AGENT_TIMEOUT'
  /** A program failed (non-zero exit, or it could not be started). */
  | 'AGENT_FAILED'
  /** status could not tell whether the resource runs (LSB 1, 2, 4 or an unknown code). */
  | 'AGENT_STATUS_UNKNOWN';

export interface AgentResult {
  readonly ok: boolean;
  /** For status: running or not. */
  readonly running?: boolean;
  readonly message: string;
  /** Set when ok is false. */
  readonly code?: AgentErrorCode;
}

export interface RunOptions {
  readonly timeoutMs?: number;
  /** Added to the environment the program inherits. */
  readonly env?: Record<string, string>;
}

export interface RunResult {
  /** The exit code; 128 + N for a program killed by signal N, 127 when it could not be started. */
  readonly code: number;
  readonly out: string;
  readonly err: string;
  /** The program ran past timeoutMs and was killed. */
  readonly timedOut?: boolean;
}

export interface AgentContext {
  /** Runs a program (argv, no shell) with a timeout; injectable so tests can fake it. */
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  log(level: 'info' | 'warn' | 'error', message: string): void;
  /** Heartbeat's config dir (resource.d lives here). */
  readonly configDir: string;
  /** The tandemadm command line for tandemdisk/drbddisk, e.g. ['node', 'bin/tandemadm', '-c', FILE]. */
  readonly tandemadm: readonly string[];
  /** Extra env for scripts (e.g. PATH inside a netns). */
  readonly env?: Record<string, string>;
  /** Seconds to wait for an UpToDate disk when promoting (tandemdisk); default 10. */
  readonly diskWaitSeconds?: number;
  /** Where LSB init scripts live; default /etc/init.d. */
  readonly initDir?: string;
  /** The mount table Filesystem reads; default /proc/mounts. */
  readonly procMounts?: string;
  /** How long a resource.d or init.d script may run; default 60 s. */
  readonly scriptTimeoutMs?: number;
  /** Waits between tandemdisk retries; tests pass one that returns at once. */
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * Why this node may no longer take anything over (it lost the majority), or undefined.
   * A group's start asks before each resource, and tandemdisk before each promotion:
   * a start under way when the majority goes must not promote a disk.
   */
  readonly mayNotAct?: () => string | undefined;
}

export interface Agent {
  readonly name: string;
  run(action: AgentAction, args: readonly string[], ctx: AgentContext): Promise<AgentResult>;
}

/** The agents tandem implements itself, by the names haresources uses. */
const builtins: ReadonlyMap<string, Agent> = new Map(
  [ipaddrAgent, ipaddr2Agent, filesystemAgent, tandemdiskAgent, drbddiskAgent].map((a) => [a.name, a]),
);

export const builtinAgentNames: readonly string[] = [...builtins.keys()];

/**
 * Heartbeat's lookup: a built-in, else an executable ctx.configDir/resource.d/NAME, else an
 * executable /etc/init.d/NAME (ctx.initDir). Undefined when none exists.
 */
export async function resolveAgent(name: string, ctx: AgentContext): Promise<Agent | undefined> {
  const builtin = builtins.get(name);
  if (builtin) return builtin;
  const path = await findScript(name, ctx);
  return path === undefined ? undefined : scriptAgent(name, path);
}

/** A resource as haresources writes it, split: `Filesystem::/dev/drbd1::/data::ext4`. */
export interface ResourceSpec {
  readonly name: string;
  readonly args: readonly string[];
}

// Heartbeat's ResourceManager takes a word that starts like a dotted quad for an IPaddr argument.
const bareAddress = /^\d+\.\d+\.\d+\.\d+/;

/** `NAME::arg1::arg2…`; a bare `1.2.3.4/24` is `IPaddr::1.2.3.4/24`. */
export function parseResourceSpec(text: string): ResourceSpec {
  if (!text.includes('::') && bareAddress.test(text)) return { name: 'IPaddr', args: [text] };
  const [name = '', ...args] = text.split('::');
  return { name, args };
}

/** Resolves the resource's agent and runs one action; an unknown agent is a failed result. */
export async function runResource(
  resource: string | ResourceSpec,
  action: AgentAction,
  ctx: AgentContext,
): Promise<AgentResult> {
  const spec = typeof resource === 'string' ? parseResourceSpec(resource) : resource;
  const agent = await resolveAgent(spec.name, ctx);
  if (!agent) {
    return failure(
      'AGENT_NOT_FOUND',
      `no resource agent ${JSON.stringify(spec.name)}: not built in, not in ${ctx.configDir}/resource.d, not in ${ctx.initDir ?? '/etc/init.d'}`,
    );
  }
  return agent.run(action, spec.args, ctx);
}
