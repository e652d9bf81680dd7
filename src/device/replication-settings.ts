// The `net` and `disk` options the replication engine acts on, read once from a
// resolved resource with DRBD's defaults filled in, and tandem's where it chooses
// differently (said at the field).
import type { ResolvedResource } from '../config/drbd-model.js';
import { optionValue } from '../config/drbd-resolve.js';
import type { AfterSb0pri, AfterSb1pri, AfterSb2pri, Protocol } from '../replication/messages-state.js';

export interface ReplicationSettings {
  readonly protocol: Protocol;
  readonly allowTwoPrimaries: boolean;
  readonly afterSb0pri: AfterSb0pri;
  readonly afterSb1pri: AfterSb1pri;
  readonly afterSb2pri: AfterSb2pri;
  /** `csums-alg`: '' for none (every out-of-sync block is sent). */
  readonly csumsAlg: string;
  /** `verify-alg`: '' when not set (`verify` refuses). */
  readonly verifyAlg: string;
  readonly auth: { readonly alg: string; readonly secret: string } | undefined;
  /** `tls yes` (a tandem extension): PEM files of this node's certificate and key, and the CA. */
  readonly tls: { readonly certificate: string; readonly privkey: string; readonly ca: string } | undefined;
  readonly connectIntMs: number;
  readonly pingIntMs: number;
  readonly pingTimeoutMs: number;
  readonly timeoutMs: number;
  /** `ko-count`: a peer that leaves a request unanswered for ko-count × timeout is dropped (0: never). */
  readonly koCount: number;
  /** `resync-rate` in bytes/s: the fixed rate when `c-plan-ahead` is 0. */
  readonly resyncRateBytes: number;
  /** `c-plan-ahead` in 1/10 s; 0 selects the fixed `resync-rate`. */
  readonly cPlanAhead: number;
  /** `c-min-rate` bytes/s: resync keeps at least this while the application does I/O. */
  readonly cMinRateBytes: number;
  /** `c-max-rate` bytes/s, or Infinity. */
  readonly cMaxRateBytes: number;
  /**
   * `max-buffers` × 4 KiB: how much received peer data may wait for this node's disk
   * before the link stops reading (DRBD's default 2048 pages: 8 MiB; at least 1 MiB).
   */
  readonly receiveBufferBytes: number;
  /** `disk-flushes`: a FLUSH reaches the backing disk (fdatasync). */
  readonly diskFlushes: boolean;
}

function str(cfg: ResolvedResource, section: 'net' | 'disk', name: string, fallback: string): string {
  const v = optionValue(cfg, section, name);
  return typeof v === 'string' ? v : fallback;
}

function num(cfg: ResolvedResource, section: 'net' | 'disk', name: string, fallback: number): number {
  const v = optionValue(cfg, section, name);
  return typeof v === 'number' ? v : fallback;
}

function bool(cfg: ResolvedResource, section: 'net' | 'disk', name: string, fallback: boolean): boolean {
  const v = optionValue(cfg, section, name);
  if (typeof v === 'boolean') return v;
  if (v === 'yes') return true;
  if (v === 'no') return false;
  return fallback;
}

export function replicationSettings(cfg: ResolvedResource): ReplicationSettings {
  const alg = str(cfg, 'net', 'cram-hmac-alg', '');
  const secret = str(cfg, 'net', 'shared-secret', '');
  const explicitMax = optionValue(cfg, 'disk', 'c-max-rate');
  return {
    protocol: cfg.protocol,
    allowTwoPrimaries: bool(cfg, 'net', 'allow-two-primaries', false),
    afterSb0pri: str(cfg, 'net', 'after-sb-0pri', 'disconnect') as AfterSb0pri,
    afterSb1pri: str(cfg, 'net', 'after-sb-1pri', 'disconnect') as AfterSb1pri,
    afterSb2pri: str(cfg, 'net', 'after-sb-2pri', 'disconnect') as AfterSb2pri,
    csumsAlg: str(cfg, 'net', 'csums-alg', ''),
    verifyAlg: str(cfg, 'net', 'verify-alg', ''),
    auth: alg !== '' || secret !== '' ? { alg, secret } : undefined,
    tls: bool(cfg, 'net', 'tls', false)
      ? {
          certificate: str(cfg, 'net', 'tls-certificate', ''),
          privkey: str(cfg, 'net', 'tls-privkey', ''),
          ca: str(cfg, 'net', 'tls-ca', ''),
        }
      : undefined,
    connectIntMs: num(cfg, 'net', 'connect-int', 10) * 1000,
    pingIntMs: num(cfg, 'net', 'ping-int', 10) * 1000,
    // ping-timeout and timeout are in 1/10 s.
    pingTimeoutMs: num(cfg, 'net', 'ping-timeout', 5) * 100,
    timeoutMs: num(cfg, 'net', 'timeout', 60) * 100,
    koCount: num(cfg, 'net', 'ko-count', 7),
    receiveBufferBytes: Math.max(1024 * 1024, num(cfg, 'net', 'max-buffers', 2048) * 4096),
    resyncRateBytes: num(cfg, 'disk', 'resync-rate', 250) * 1024,
    cPlanAhead: num(cfg, 'disk', 'c-plan-ahead', 20),
    cMinRateBytes: num(cfg, 'disk', 'c-min-rate', 250) * 1024,
    // DRBD's default c-max-rate (100 MiB/s) is the complaint the issue names: a link
    // faster than that idles while a 100 GiB sync takes a quarter of an hour or more.
    // tandem's default is no cap; the controller yields to application I/O instead.
    // An explicit `c-max-rate` (0 means no cap, as in DRBD) is honoured.
    cMaxRateBytes:
      typeof explicitMax === 'number' && explicitMax > 0 ? explicitMax * 1024 : Number.POSITIVE_INFINITY,
    diskFlushes: bool(cfg, 'disk', 'disk-flushes', true),
  };
}
