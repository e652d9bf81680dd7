// Shared pieces of the benchmarks: run fio through its nbd engine and read
// its JSON, start nbdkit as the reference, and print tables with ratios.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { sh } from '../test/helpers/tandem-node.js';

export interface FioJob {
  readonly name: string;
  readonly rw: 'randwrite' | 'randread' | 'write' | 'read' | 'randrw';
  readonly bs: string;
  readonly iodepth: number;
}

export interface FioResult {
  readonly iops: number;
  readonly mbps: number;
  readonly p50us: number;
  readonly p99us: number;
}

export const standardJobs: readonly FioJob[] = [
  { name: '4k randwrite QD1', rw: 'randwrite', bs: '4k', iodepth: 1 },
  { name: '4k randwrite QD16', rw: 'randwrite', bs: '4k', iodepth: 16 },
  { name: '4k randread QD16', rw: 'randread', bs: '4k', iodepth: 16 },
  { name: '1M seq write QD8', rw: 'write', bs: '1m', iodepth: 8 },
];

export async function fio(uri: string, job: FioJob, seconds: number, sizeBytes: number): Promise<FioResult> {
  const r = await sh(
    'fio',
    [
      '--name=bench',
      '--ioengine=nbd',
      `--uri=${uri}`,
      `--rw=${job.rw}`,
      `--bs=${job.bs}`,
      `--iodepth=${job.iodepth}`,
      `--size=${sizeBytes}`,
      '--time_based',
      `--runtime=${seconds}`,
      '--ramp_time=1',
      '--randrepeat=0',
      '--output-format=json',
    ],
    (seconds + 60) * 1000,
  );
  if (r.code !== 0) throw new Error(`fio ${job.name} failed: ${r.err}`);
  const j = JSON.parse(r.out.slice(r.out.indexOf('{'))) as {
    jobs: { read: FioSide; write: FioSide }[];
  };
  const job0 = j.jobs[0] as { read: FioSide; write: FioSide };
  const side = job.rw.includes('read') ? job0.read : job0.write;
  return {
    iops: side.iops,
    mbps: side.bw_bytes / 1e6,
    p50us: (side.clat_ns.percentile['50.000000'] ?? 0) / 1000,
    p99us: (side.clat_ns.percentile['99.000000'] ?? 0) / 1000,
  };
}

interface FioSide {
  iops: number;
  bw_bytes: number;
  clat_ns: { percentile: Record<string, number> };
}

/** nbdkit's file plugin on `file`, on a unix socket; the reference server. */
export async function startNbdkit(file: string, socket: string): Promise<ChildProcess> {
  const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', socket, 'file', file], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(socket)) throw new Error('nbdkit did not start');
  return child;
}

export async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const done = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await done;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Each figure's median over several runs of one job. */
export function medianResult(runs: readonly FioResult[]): FioResult {
  return {
    iops: median(runs.map((r) => r.iops)),
    mbps: median(runs.map((r) => r.mbps)),
    p50us: median(runs.map((r) => r.p50us)),
    p99us: median(runs.map((r) => r.p99us)),
  };
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
