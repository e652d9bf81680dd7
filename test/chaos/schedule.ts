// A chaos schedule: from a seed, a reproducible list of faults with their timing, for a
// two-node cluster under a writing workload. Pure: the same seed gives the same schedule
// on every machine, and its text is what a failure prints to replay it.
export type Fault =
  /** Every replication connection reset at once (both sides see a closed socket). */
  | { readonly kind: 'reset-link' }
  /** Silent partition: nothing forwarded, nothing closed, for `ms`. */
  | { readonly kind: 'partition'; readonly ms: number }
  /** Added one-way latency on the link, both directions, for `ms`. */
  | { readonly kind: 'delay'; readonly delayMs: number; readonly ms: number }
  /** One side stops reading: bytes toward it are held for `ms` (a full send buffer). */
  | { readonly kind: 'stall'; readonly toward: 'primary' | 'secondary'; readonly ms: number }
  /** SIGKILL of the Secondary's tandemd; restarted and `up` after `ms`. */
  | { readonly kind: 'kill-secondary'; readonly ms: number }
  /**
   * SIGKILL of the Primary's tandemd while the pair is in sync; the Secondary is
   * promoted and the workload moves to it; the old Primary restarts after `ms`.
   */
  | { readonly kind: 'kill-primary'; readonly ms: number }
  /**
   * One side's disk fails every request with EIO for `ms`; then it is healed and
   * `attach`ed again (an operator replacing the disk).
   */
  | { readonly kind: 'disk-error'; readonly side: 'primary' | 'secondary'; readonly ms: number }
  /** One side's disk refuses writes with ENOSPC for `ms`; then space, and `attach`. */
  | { readonly kind: 'disk-full'; readonly side: 'primary' | 'secondary'; readonly ms: number }
  /** One side's disk stops answering for `ms` (requests wait), then goes on. */
  | { readonly kind: 'disk-stall'; readonly side: 'primary' | 'secondary'; readonly ms: number }
  /**
   * Power cut on the Secondary: its disk stops answering, tandemd is SIGKILLed, and what
   * the disk held unwritten is lost; the node restarts after `ms`.
   */
  | { readonly kind: 'power-cut'; readonly ms: number };

/** The faults that need a faulty disk under tandemd. */
export const diskFaultKinds: readonly Fault['kind'][] = [
  'disk-error',
  'disk-full',
  'disk-stall',
  'power-cut',
];

export interface Step {
  /** Quiet time before the fault, ms. */
  readonly gapMs: number;
  readonly fault: Fault;
}

export interface Schedule {
  readonly seed: number;
  readonly protocol: 'A' | 'B' | 'C';
  /** The nodes run on faulty disks (the schedule may hold disk faults). */
  readonly disks: boolean;
  readonly steps: readonly Step[];
}

/** mulberry32: a small, well-mixed 32-bit PRNG; [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const allKinds: readonly { readonly kind: Fault['kind']; readonly weight: number }[] = [
  { kind: 'reset-link', weight: 2 },
  { kind: 'partition', weight: 2 },
  { kind: 'delay', weight: 2 },
  { kind: 'stall', weight: 2 },
  { kind: 'kill-secondary', weight: 2 },
  { kind: 'kill-primary', weight: 2 },
  { kind: 'disk-error', weight: 2 },
  { kind: 'disk-full', weight: 1 },
  { kind: 'disk-stall', weight: 2 },
  { kind: 'power-cut', weight: 1 },
];

/**
 * A schedule of `steps` faults from `seed`. Disk faults (a faulty disk under each
 * tandemd: root, FUSE, nbdkit) only with `disks`; without, the schedule of a seed is
 * what it was before disk faults existed.
 */
export function makeSchedule(
  seed: number,
  steps: number,
  protocol: 'A' | 'B' | 'C' = 'C',
  disks = false,
): Schedule {
  const r = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const kinds = disks ? allKinds : allKinds.filter((k) => !diskFaultKinds.includes(k.kind));
  const total = kinds.reduce((n, k) => n + k.weight, 0);
  const out: Step[] = [];
  for (let i = 0; i < steps; i++) {
    let pick = r() * total;
    let kind: Fault['kind'] = 'reset-link';
    for (const k of kinds) {
      pick -= k.weight;
      if (pick < 0) {
        kind = k.kind;
        break;
      }
    }
    const gapMs = int(200, 1200);
    let fault: Fault;
    switch (kind) {
      case 'reset-link':
        fault = { kind };
        break;
      case 'partition':
        fault = { kind, ms: int(300, 2500) };
        break;
      case 'delay':
        fault = { kind, delayMs: int(1, 40), ms: int(300, 1500) };
        break;
      case 'stall':
        fault = { kind, toward: r() < 0.5 ? 'primary' : 'secondary', ms: int(100, 1500) };
        break;
      case 'kill-secondary':
        fault = { kind, ms: int(0, 1500) };
        break;
      case 'kill-primary':
        fault = { kind, ms: int(0, 1500) };
        break;
      case 'disk-error':
      case 'disk-full':
        fault = { kind, side: r() < 0.5 ? 'primary' : 'secondary', ms: int(200, 1500) };
        break;
      case 'disk-stall':
        fault = { kind, side: r() < 0.5 ? 'primary' : 'secondary', ms: int(50, 1500) };
        break;
      case 'power-cut':
        fault = { kind, ms: int(0, 1500) };
        break;
    }
    out.push({ gapMs, fault });
  }
  return { seed, protocol, disks, steps: out };
}

const side = (s: 'primary' | 'secondary'): string => (s === 'primary' ? 'Primary' : 'Secondary');

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'reset-link':
      return 'reset the replication link';
    case 'partition':
      return `partition the link for ${f.ms} ms`;
    case 'delay':
      return `delay the link by ${f.delayMs} ms for ${f.ms} ms`;
    case 'stall':
      return `stall the link toward the ${f.toward} for ${f.ms} ms`;
    case 'kill-secondary':
      return `SIGKILL the Secondary's tandemd, restart after ${f.ms} ms`;
    case 'kill-primary':
      return `SIGKILL the Primary's tandemd, promote the Secondary, restart after ${f.ms} ms`;
    case 'disk-error':
      return `the ${side(f.side)}'s disk fails with EIO for ${f.ms} ms, then attach`;
    case 'disk-full':
      return `the ${side(f.side)}'s disk is full (ENOSPC) for ${f.ms} ms, then attach`;
    case 'disk-stall':
      return `the ${side(f.side)}'s disk stops answering for ${f.ms} ms`;
    case 'power-cut':
      return `power cut on the Secondary (disk stalled, tandemd SIGKILLed, held writes lost), restart after ${f.ms} ms`;
  }
}

/** The schedule as text, one step a line: what a failure prints. */
export function formatSchedule(s: Schedule): string {
  return [
    `seed ${s.seed}, protocol ${s.protocol}${s.disks ? ', faulty disks' : ''}, ${s.steps.length} steps:`,
    ...s.steps.map((st, i) => `  ${i + 1}. after ${st.gapMs} ms: ${describeFault(st.fault)}`),
  ].join('\n');
}
