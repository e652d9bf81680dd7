// A chaos schedule for the whole stack: the seed's cluster (server6, server7, a witness;
// tandemd + tandem-ha, the group VIP + disk + ext4 + httpd) under faults of whole
// servers and of tandem-ha. Pure: the same seed gives the same schedule everywhere.
import { prng } from './schedule.js';

/** Whom a fault hits, named by role at the time it is injected. */
export type HaTarget = 'owner' | 'standby' | 'witness';

export type HaFault =
  /** SIGKILL of tandem-ha alone (tandemd and the group's resources run on); restarted after `ms`. */
  | { readonly kind: 'kill-ha'; readonly target: HaTarget; readonly ms: number }
  /** The server dies: every process in it killed, its network down; it reboots after `ms`. */
  | { readonly kind: 'crash'; readonly target: 'owner' | 'standby'; readonly ms: number }
  /** A silent partition: everything between the target and the other two dropped for `ms`. */
  | { readonly kind: 'cut'; readonly target: HaTarget; readonly ms: number }
  /** Packet loss: `percent` of the packets between the target and the others dropped, each way, for `ms`. */
  | { readonly kind: 'lossy'; readonly target: HaTarget; readonly percent: number; readonly ms: number };

export interface HaStep {
  readonly gapMs: number;
  readonly fault: HaFault;
}

export interface HaSchedule {
  readonly seed: number;
  readonly steps: readonly HaStep[];
}

export function makeHaSchedule(seed: number, steps: number): HaSchedule {
  const r = prng(seed ^ 0x4a11);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const out: HaStep[] = [];
  for (let i = 0; i < steps; i++) {
    const kind = pick(['kill-ha', 'kill-ha', 'crash', 'cut', 'cut', 'lossy'] as const);
    const gapMs = int(1000, 3000);
    const target = pick(['owner', 'owner', 'standby', 'witness'] as const);
    let fault: HaFault;
    if (kind === 'crash') fault = { kind, target: pick(['owner', 'standby'] as const), ms: int(500, 3000) };
    else if (kind === 'lossy') fault = { kind, target, percent: int(5, 40), ms: int(1000, 5000) };
    else fault = { kind, target, ms: int(500, 4000) };
    out.push({ gapMs, fault });
  }
  return { seed, steps: out };
}

export function describeHaFault(f: HaFault): string {
  switch (f.kind) {
    case 'kill-ha':
      return `SIGKILL tandem-ha on the ${f.target}, restart after ${f.ms} ms`;
    case 'crash':
      return `crash the ${f.target} (every process, network down), reboot after ${f.ms} ms`;
    case 'cut':
      return `cut the ${f.target} from the other two for ${f.ms} ms`;
    case 'lossy':
      return `drop ${f.percent}% of the packets between the ${f.target} and the others for ${f.ms} ms`;
  }
}

export function formatHaSchedule(s: HaSchedule): string {
  return [
    `seed ${s.seed}, the seed cluster with a witness, ${s.steps.length} steps:`,
    ...s.steps.map((st, i) => `  ${i + 1}. after ${st.gapMs} ms: ${describeHaFault(st.fault)}`),
  ].join('\n');
}
