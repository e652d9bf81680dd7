// The typed model of Heartbeat's ha.cf as tandem-ha uses it: nodes, timings with their origin,
// heartbeat links, auto_failback and the directives kept without being acted on.
import type { ConfigWarning, SourcePos } from './errors.js';

/** Heartbeat's MAXNODE. */
export const nodesMax = 100;
/** Heartbeat's MAXMEDIA is smaller; a link list longer than this is a generated file gone wrong. */
export const linksMax = 64;
/** Registered for Heartbeat ("ha-cluster") by IANA; Heartbeat's UDPPORT. */
export const defaultUdpPort = 694;

/** Where a timing came from: the file, Heartbeat's fixed default, or a rule over other timings. */
export type TimingSource = 'file' | 'default' | 'derived';

export interface Timing {
  readonly ms: number;
  readonly source: TimingSource;
  /** The value's word in the file when source is 'file'. */
  readonly pos: SourcePos | undefined;
  /** How a derived value was computed, for `tandem-ha check` ("deadtime / 2"). */
  readonly rule: string | undefined;
}

export interface HaNode {
  /** Lower-cased, as Heartbeat keeps node names. */
  readonly name: string;
  readonly pos: SourcePos;
}

/** A heartbeat link. `port` is the udpport in effect where the link is declared, as in Heartbeat. */
export type HaLink =
  | { readonly kind: 'bcast'; readonly iface: string; readonly port: number; readonly pos: SourcePos }
  | {
      readonly kind: 'mcast';
      readonly iface: string;
      readonly group: string;
      readonly port: number;
      readonly ttl: number;
      readonly loop: boolean;
      readonly pos: SourcePos;
    }
  | {
      readonly kind: 'ucast';
      readonly iface: string;
      /** Every ucast is kept; the one naming this node's own address is skipped at run time. */
      readonly host: string;
      readonly port: number;
      readonly pos: SourcePos;
    };

export type AutoFailbackMode = 'on' | 'off' | 'legacy';

export interface AutoFailback {
  readonly mode: AutoFailbackMode;
  /** The word as written (`yes`, `on`, `legacy`…); undefined when ha.cf does not set it. */
  readonly literal: string | undefined;
  readonly pos: SourcePos | undefined;
  /**
   * Whether resources move back to their preferred node when it returns. Heartbeat's 'legacy'
   * turns nice_failback off, and without nice_failback the preferred node takes its groups back.
   */
  readonly failsBack: boolean;
}

/** A directive tandem-ha keeps (and warns about) but does not act on. */
export interface KeptDirective {
  readonly name: string;
  readonly args: readonly string[];
  readonly pos: SourcePos;
}

export interface HaCf {
  readonly file: string;
  readonly nodes: readonly HaNode[];
  readonly keepalive: Timing;
  readonly deadtime: Timing;
  readonly warntime: Timing;
  readonly initdead: Timing;
  /** Deadtime of ping nodes; tandem-ha does not ping, but Heartbeat's check on it is kept. */
  readonly deadping: Timing;
  readonly udpPort: number;
  readonly links: readonly HaLink[];
  readonly autoFailback: AutoFailback;
  /**
   * tandem's extension `witness NAME`: the node that runs tandem-ha without disks or
   * groups, a third vote so that a node takes over only with a majority.
   */
  readonly witness: HaNode | undefined;
  /**
   * tandem's extension `on_stop_failure hold|reboot`: what a group that cannot be
   * stopped does. `hold` (default): it stays held here, `failed`, and the peer never
   * starts it while this node lives. `reboot`: this node reboots at once (Heartbeat's
   * behaviour), so the peer sees it dead and takes the group.
   */
  readonly onStopFailure: 'hold' | 'reboot';
  /**
   * tandem's extension `metrics_address HOST:PORT`: tandem-ha serves Prometheus
   * metrics at http://HOST:PORT/metrics. Off when absent.
   */
  readonly metricsAddress: { readonly host: string; readonly port: number } | undefined;
  /**
   * tandem's extensions `dashboard_address HOST:PORT` and `dashboard_token_file PATH`:
   * tandem-ha serves a live web dashboard there, read-only unless a token file is
   * given (its actions then need `Authorization: Bearer TOKEN`).
   */
  readonly dashboardAddress: { readonly host: string; readonly port: number } | undefined;
  readonly dashboardTokenFile: string | undefined;
  readonly logfile: string | undefined;
  readonly debugfile: string | undefined;
  /** ping, ping_group, respawn, use_logd, logfacility, debug, … in file order. */
  readonly notImplemented: readonly KeptDirective[];
}

export interface HaCfResult {
  readonly config: HaCf;
  readonly warnings: readonly ConfigWarning[];
}

export type TimingName = 'keepalive' | 'deadtime' | 'warntime' | 'initdead' | 'deadping';
