// Heartbeat's timing rules for ha.cf (init_config() in its config.c): keepalive 1 s and
// deadtime 30 s by default, warntime and initdead derived when unset, and the checks between them.
import { ConfigError } from './errors.js';
import { filePos } from './ha-lexer.js';
import { type Builder, warn } from './hacf-builder.js';
import type { HaCf, Timing, TimingName, TimingSource } from './hacf-model.js';

function timingOf(
  b: Builder,
  name: TimingName,
  fallback: { ms: number; source: TimingSource; rule?: string },
): Timing {
  const set = b.times.get(name);
  if (set) return { ms: set.ms, source: 'file', pos: set.pos, rule: undefined };
  return { ms: fallback.ms, source: fallback.source, pos: undefined, rule: fallback.rule };
}

/** Heartbeat's init_config(): defaults, derived timings and their checks, in its order. */
export function finishTimings(
  b: Builder,
): Pick<HaCf, 'keepalive' | 'deadtime' | 'warntime' | 'initdead' | 'deadping'> {
  const keepalive = timingOf(b, 'keepalive', { ms: 1000, source: 'default' });
  const deadtime = timingOf(b, 'deadtime', { ms: 30_000, source: 'default' });
  const warntime = timingOf(b, 'warntime', {
    ms: Math.floor(deadtime.ms / 2),
    source: 'derived',
    rule: 'deadtime / 2',
  });
  if (deadtime.ms <= 2 * keepalive.ms) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected deadtime greater than twice keepalive (${formatMs(2 * keepalive.ms)}), found deadtime ${formatMs(deadtime.ms)}: ` +
        'a peer would be declared dead after missing two heartbeats',
      deadtime.pos ?? keepalive.pos ?? filePos(b.file),
    );
  }
  // Heartbeat: initdead defaults to deadtime above 10 s, else to 12 s below 6 s, else twice deadtime.
  const initdeadDefault =
    deadtime.ms > 10_000
      ? { ms: deadtime.ms, rule: 'deadtime' }
      : deadtime.ms < 6000
        ? { ms: 12_000, rule: '12 s, as deadtime < 6 s' }
        : { ms: 2 * deadtime.ms, rule: '2 × deadtime' };
  const initdead = timingOf(b, 'initdead', { ...initdeadDefault, source: 'derived' });
  if (initdead.ms < deadtime.ms) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected initdead of at least deadtime (${formatMs(deadtime.ms)}), found ${formatMs(initdead.ms)}`,
      initdead.pos ?? filePos(b.file),
    );
  }
  if (initdead.ms < 10_000 && initdead.pos) {
    warn(
      b,
      'SUSPICIOUS',
      `initdead ${formatMs(initdead.ms)} may be too small: it covers slow network start-up and should be at least 10 s`,
      initdead.pos,
    );
  }
  const deadping = timingOf(b, 'deadping', { ms: deadtime.ms, source: 'derived', rule: 'deadtime' });
  if (deadping.pos && deadping.ms <= 2 * keepalive.ms) {
    throw new ConfigError(
      'CONFIG_SEMANTIC',
      `expected deadping greater than twice keepalive (${formatMs(2 * keepalive.ms)}), found ${formatMs(deadping.ms)}`,
      deadping.pos,
    );
  }
  if (warntime.pos && warntime.ms >= deadtime.ms) {
    warn(
      b,
      'SUSPICIOUS',
      `warntime ${formatMs(warntime.ms)} is not below deadtime ${formatMs(deadtime.ms)}, so no late-heartbeat warning comes before a node is declared dead`,
      warntime.pos,
    );
  }
  return { keepalive, deadtime, warntime, initdead, deadping };
}

/** 500 ms, 2 s, 1.5 s: how timings appear in messages and in `tandem-ha check`. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  // Whole milliseconds, so at most three decimals; trailing zeros dropped.
  return `${(ms / 1000).toFixed(3).replace(/\.?0+$/, '')} s`;
}
