// Filesystem::DEVICE::DIR::FSTYPE[::OPTIONS]: mounts the replicated device where the service wants
// it. start refuses to stack over another mount or to mount a device twice (two mounts of one ext4
// corrupt it); stop unmounts and, when the mount is busy, says who holds it but kills nothing.
// Unlike Heartbeat's script there is no fsck: tandem's devices carry journalled file systems.
import { readFile, stat } from 'node:fs/promises';
import type { Agent, AgentAction, AgentContext, AgentResult } from './agent.js';
import { canonicalPath, type MountEntry, parseProcMounts, resolveSources } from './mounts.js';
import {
  commandLine,
  exec,
  failure,
  notStartedExitCode,
  outputOf,
  runFailure,
  success,
  unknownAction,
} from './result.js';

/** Journal replay of a large ext4 after a crash takes a while. */
export const mountTimeoutMs = 120_000;
/** umount flushes dirty pages first. */
export const umountTimeoutMs = 120_000;
export const fuserTimeoutMs = 10_000;
export const defaultProcMounts = '/proc/mounts';

interface FilesystemSpec {
  readonly device: string;
  readonly dir: string;
  readonly fstype: string;
  readonly options?: string;
}

const usage = 'Filesystem::DEVICE::DIR::FSTYPE[::OPTIONS]';
const fstypeName = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

function bad(what: string, found: string | undefined, expected: string): AgentResult {
  return failure(
    'AGENT_BAD_ARGS',
    `Filesystem ${what} ${JSON.stringify(found ?? '')}: expected ${expected} (${usage})`,
  );
}

function parseArgs(args: readonly string[]): { spec: FilesystemSpec } | { result: AgentResult } {
  if (args.length < 3 || args.length > 4) {
    return {
      result: failure('AGENT_BAD_ARGS', `Filesystem takes 3 or 4 arguments (${usage}), found ${args.length}`),
    };
  }
  const [device = '', dir = '', fstype = '', options] = args;
  // A leading '-' would reach mount as an option; blanks cannot come from haresources anyway.
  if (device === '' || device.startsWith('-') || /\s/.test(device)) {
    return { result: bad('DEVICE', device, 'a device path like /dev/drbd1') };
  }
  if (!dir.startsWith('/') || dir.includes('\0'))
    return { result: bad('DIR', dir, 'an absolute directory path') };
  if (!fstypeName.test(fstype)) return { result: bad('FSTYPE', fstype, 'a file system type like ext4') };
  if (options !== undefined && options !== '' && (options.startsWith('-') || /\s/.test(options))) {
    return { result: bad('OPTIONS', options, 'mount options like noatime,data=ordered') };
  }
  return { spec: { device, dir, fstype, ...(options ? { options } : {}) } };
}

interface Table {
  /** The mount table with sources resolved. */
  readonly entries: readonly MountEntry[];
  readonly device: string;
  readonly dir: string;
}

async function readTable(spec: FilesystemSpec, ctx: AgentContext): Promise<Table | AgentResult> {
  const path = ctx.procMounts ?? defaultProcMounts;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return failure('AGENT_FAILED', `cannot read the mount table ${path}: ${(e as Error).message}`);
  }
  const [entries, device, dir] = await Promise.all([
    resolveSources(parseProcMounts(text)),
    canonicalPath(spec.device),
    canonicalPath(spec.dir),
  ]);
  return { entries, device, dir };
}

function isTable(t: Table | AgentResult): t is Table {
  return 'entries' in t;
}

/** The spec's device as a person named it, with what it resolves to when that differs. */
function deviceName(spec: FilesystemSpec, t: Table): string {
  return t.device === spec.device ? spec.device : `${spec.device} (${t.device})`;
}

async function start(spec: FilesystemSpec, ctx: AgentContext): Promise<AgentResult> {
  const t = await readTable(spec, ctx);
  if (!isTable(t)) return t;
  const onDir = t.entries.filter((e) => e.dir === t.dir);
  const top = onDir[onDir.length - 1];
  if (top?.source === t.device) return success(`${deviceName(spec, t)} already mounted on ${spec.dir}`);
  if (top) {
    return failure('AGENT_CONFLICT', `${spec.dir} already has ${top.source} (${top.fstype}) mounted`);
  }
  const elsewhere = t.entries.find((e) => e.source === t.device);
  if (elsewhere) {
    return failure('AGENT_CONFLICT', `${deviceName(spec, t)} is already mounted on ${elsewhere.dir}`);
  }
  try {
    if (!(await stat(t.dir)).isDirectory()) {
      return failure('AGENT_FAILED', `mount point ${spec.dir} is not a directory`);
    }
  } catch (e) {
    return failure('AGENT_FAILED', `mount point ${spec.dir}: ${(e as Error).message}`);
  }
  const args = ['-t', spec.fstype];
  if (spec.options !== undefined) args.push('-o', spec.options);
  args.push(spec.device, spec.dir);
  const r = await exec(ctx, 'mount', args, { timeoutMs: mountTimeoutMs });
  if (r.code !== 0 || r.timedOut) return runFailure('mount', args, r);
  return success(`mounted ${deviceName(spec, t)} on ${spec.dir} (${spec.fstype})`);
}

/** Enough of fuser's table to name the holders without flooding the log. */
export const fuserLinesMax = 20;

/**
 * Who keeps DIR busy, from `fuser -vm DIR`; '' when fuser is missing.
 * fuser also complains about every /proc/PID/fd it may not read (other namespaces, hardened /proc):
 * those lines name no holder and are dropped.
 */
async function holders(dir: string, ctx: AgentContext): Promise<string> {
  const r = await exec(ctx, 'fuser', ['-vm', dir], { timeoutMs: fuserTimeoutMs });
  if (r.timedOut || r.code === notStartedExitCode) return '';
  const lines = r.err.split('\n').filter((l) => l.trim() !== '' && !/^Cannot stat /.test(l));
  if (lines.length > fuserLinesMax) {
    const more = lines.length - fuserLinesMax;
    lines.length = fuserLinesMax;
    lines.push(`(${more} more lines)`);
  }
  // fuser writes the PIDs to stdout and the rest of its table to stderr, so the two arrive apart.
  const pids = r.out
    .trim()
    .split(/\s+/)
    .filter((p) => p !== '');
  if (pids.length > 0) {
    const shown = pids.slice(0, fuserLinesMax).join(' ');
    lines.push(
      `PIDs (access): ${shown}${pids.length > fuserLinesMax ? ` (${pids.length - fuserLinesMax} more)` : ''}`,
    );
  }
  return lines.join('\n');
}

async function stop(spec: FilesystemSpec, ctx: AgentContext): Promise<AgentResult> {
  const t = await readTable(spec, ctx);
  if (!isTable(t)) return t;
  const onDir = t.entries.filter((e) => e.dir === t.dir);
  if (!onDir.some((e) => e.source === t.device)) {
    // Someone else's mount on DIR is not ours to remove.
    const other = onDir[onDir.length - 1];
    return success(
      `${deviceName(spec, t)} is not mounted on ${spec.dir}` +
        (other ? ` (${other.source} is; left alone)` : ''),
    );
  }
  const top = onDir[onDir.length - 1]!;
  if (top.source !== t.device) {
    return failure('AGENT_CONFLICT', `${top.source} is mounted over ${deviceName(spec, t)} on ${spec.dir}`);
  }
  const args = [spec.dir];
  const r = await exec(ctx, 'umount', args, { timeoutMs: umountTimeoutMs });
  if (r.code === 0 && !r.timedOut) return success(`unmounted ${spec.dir}`);
  // umount(8): "target is busy"; the kernel's EBUSY text is "Device or resource busy".
  if (!r.timedOut && /busy/i.test(`${r.err}\n${r.out}`)) {
    const who = await holders(spec.dir, ctx);
    return failure(
      'AGENT_BUSY',
      `${spec.dir} is busy, not unmounted (${commandLine('umount', args)}: ${outputOf(r)})` +
        (who ? `; fuser -vm ${spec.dir}:\n${who}` : ''),
    );
  }
  return runFailure('umount', args, r);
}

async function status(spec: FilesystemSpec, ctx: AgentContext): Promise<AgentResult> {
  const t = await readTable(spec, ctx);
  if (!isTable(t)) return t;
  const mounted = t.entries.some((e) => e.dir === t.dir && e.source === t.device);
  return success(`${deviceName(spec, t)} is ${mounted ? '' : 'not '}mounted on ${spec.dir}`, mounted);
}

export const filesystemAgent: Agent = {
  name: 'Filesystem',
  async run(action: AgentAction, args: readonly string[], ctx: AgentContext): Promise<AgentResult> {
    const parsed = parseArgs(args);
    if ('result' in parsed) return parsed.result;
    switch (action) {
      case 'start':
        return start(parsed.spec, ctx);
      case 'stop':
        return stop(parsed.spec, ctx);
      case 'status':
        return status(parsed.spec, ctx);
      default:
        return unknownAction(action);
    }
  },
};
