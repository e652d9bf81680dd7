// tandem-ha's Prometheus metrics: each node's liveness and every heartbeat
// link's silence, the packet counters (received, sent, late, malformed,
// forged, replayed, foreign, relayed), the groups' states and starts, the
// failovers, and the majority. Read from HaDaemon.status() at scrape time.
// Served at http://HOST:PORT/metrics when ha.cf says `metrics_address`.
import type { Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { closeServer, serveMetrics, stateSetGauge } from '../daemon/metrics.js';
import type { HaStatus } from './daemon.js';
import { groupStates } from './groups.js';
import { nodeStates } from './packet.js';

const packetKinds = [
  'received',
  'sent',
  'late',
  'malformed',
  'forged',
  'replayed',
  'foreign',
  'relayed',
] as const;

export class HaMetrics {
  readonly registry = new Registry();
  private server: Server | undefined;

  constructor(status: () => HaStatus, deadtimeMs: number) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    stateSetGauge(
      r,
      {
        name: 'tandem_ha_node_state',
        help: 'Each other node as this one sees it: init, up or dead (1 for the current state)',
        labelNames: ['node'],
        label: 'state',
        values: nodeStates.all,
      },
      () => status().nodes.map((n) => [{ node: n.name }, n.state] as const),
    );
    const gauge = (
      name: string,
      help: string,
      labelNames: string[],
      fill: (g: Gauge<string>) => void,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          fill(this);
        },
      });
    };
    gauge('tandem_ha_node_late', 'The node is up but silent for more than warntime', ['node'], (g) => {
      for (const n of status().nodes) g.set({ node: n.name }, n.late ? 1 : 0);
    });
    gauge(
      'tandem_ha_node_silence_seconds',
      'Time since the last valid packet from the node',
      ['node'],
      (g) => {
        for (const n of status().nodes)
          if (n.silentMs !== undefined) g.set({ node: n.name }, n.silentMs / 1000);
      },
    );
    gauge(
      'tandem_ha_link_silence_seconds',
      'Time since the last valid packet from the node on this heartbeat link',
      ['node', 'link'],
      (g) => {
        for (const n of status().nodes)
          for (const [link, ms] of Object.entries(n.links)) g.set({ node: n.name, link }, ms / 1000);
      },
    );
    gauge(
      'tandem_ha_link_up',
      'A valid packet came from the node on this link within deadtime',
      ['node', 'link'],
      (g) => {
        for (const n of status().nodes)
          for (const [link, ms] of Object.entries(n.links))
            g.set({ node: n.name, link }, ms < deadtimeMs ? 1 : 0);
      },
    );
    new Counter({
      name: 'tandem_ha_packets_total',
      help: 'Heartbeat packets by what became of them (late: valid but after warntime; forged: bad signature)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        this.reset();
        const c = status().counters;
        for (const k of packetKinds) this.inc({ kind: k }, c[k]);
      },
    });
    stateSetGauge(
      r,
      {
        name: 'tandem_ha_group_state',
        help: 'Each resource group on this node (1 for the current state)',
        labelNames: ['group'],
        label: 'state',
        values: groupStates,
      },
      () => status().groups.map((g) => [{ group: g.key }, g.state] as const),
    );
    new Counter({
      name: 'tandem_ha_group_starts_total',
      help: 'Starts of the group on this node after the first (failovers and failbacks)',
      labelNames: ['group'],
      registers: [r],
      collect() {
        this.reset();
        for (const g of status().groups) this.inc({ group: g.key }, g.starts);
      },
    });
    new Counter({
      name: 'tandem_ha_failovers_total',
      help: 'Groups this node took over from a dead peer',
      registers: [r],
      collect() {
        this.reset();
        this.inc(status().failovers);
      },
    });
    gauge('tandem_ha_quorum', 'This node has a majority (always 1 without a witness)', [], (g) => {
      g.set(status().quorum.has ? 1 : 0);
    });
    gauge('tandem_ha_standby', 'This node gave its groups away (hb_standby)', [], (g) => {
      g.set(status().standby ? 1 : 0);
    });
  }

  async listen(host: string, port: number, log: (message: string) => void = () => {}): Promise<void> {
    this.server = await serveMetrics(this.registry, host, port, log);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await closeServer(s);
  }
}
