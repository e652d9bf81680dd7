// tandemd's Prometheus metrics (prom-client): per resource its roles, the
// connection, disk and replication states as state sets, the /proc/drbd
// counters, resync progress and speed, and a write-latency histogram per
// protocol. Everything but the histogram is read from the status model at
// scrape time, so the metrics and `tandemadm status` cannot disagree. Served
// over HTTP at /metrics when `global { metrics-address HOST:PORT; }` (or
// `tandemd --metrics-address`) is set; off otherwise.
import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { connStates, diskStates, roles } from '../device/state.js';
import type { NodeStatus, ResourceStatus, VolumeStatus } from './status.js';

type Labels = Record<string, string>;

/** Write latency buckets, seconds: 50 µs to 1 s. */
const latencyBuckets = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly writeLatency: Histogram<'resource' | 'protocol'>;
  private server: Server | undefined;

  constructor(status: () => NodeStatus) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    const resources = (): readonly ResourceStatus[] => status().resources;
    const volumes = function* (): Generator<[ResourceStatus, VolumeStatus, Labels]> {
      for (const res of resources())
        for (const v of res.volumes) yield [res, v, { resource: res.name, volume: String(v.volume) }];
    };

    const stateSet = <T extends string>(
      name: string,
      help: string,
      labelNames: readonly string[],
      values: readonly T[],
      label: string,
      current: () => Iterable<readonly [Labels, T]>,
    ): void => stateSetGauge(r, { name, help, labelNames, label, values }, current);
    stateSet(
      'tandem_resource_role',
      'This node’s role (1 for the current one)',
      ['resource'],
      roles,
      'role',
      () => resources().map((s) => [{ resource: s.name }, s.role]),
    );
    stateSet('tandem_resource_peer_role', 'The peer’s role as last known', ['resource'], roles, 'role', () =>
      resources().map((s) => [{ resource: s.name }, s.peerRole]),
    );
    stateSet(
      'tandem_connection_state',
      'The resource’s connection state (DRBD 8.4 cs:)',
      ['resource'],
      connStates,
      'state',
      () => resources().map((s) => [{ resource: s.name }, s.connection]),
    );
    stateSet(
      'tandem_replication_state',
      'The volume’s replication state (SyncSource, VerifyT, …)',
      ['resource', 'volume'],
      connStates,
      'state',
      () => [...volumes()].map(([, v, l]) => [l, v.replication]),
    );
    stateSet('tandem_disk_state', 'This node’s disk state', ['resource', 'volume'], diskStates, 'state', () =>
      [...volumes()].map(([, v, l]) => [l, v.disk]),
    );
    stateSet(
      'tandem_peer_disk_state',
      'The peer’s disk state',
      ['resource', 'volume'],
      diskStates,
      'state',
      () => [...volumes()].map(([, v, l]) => [l, v.peerDisk]),
    );

    // Each a value read from every volume's status: [kind, name, help, value].
    const perVolume: readonly ['counter' | 'gauge', string, string, (v: VolumeStatus) => number][] = [
      [
        'counter',
        'tandem_network_sent_bytes_total',
        'Bytes sent to the peer (ns:)',
        (v) => v.counters.sentBytes,
      ],
      [
        'counter',
        'tandem_network_received_bytes_total',
        'Bytes received from the peer (nr:)',
        (v) => v.counters.receivedBytes,
      ],
      [
        'counter',
        'tandem_disk_written_bytes_total',
        'Bytes written to the local disk (dw:)',
        (v) => v.counters.diskWrittenBytes,
      ],
      [
        'counter',
        'tandem_disk_read_bytes_total',
        'Bytes read from the local disk (dr:)',
        (v) => v.counters.diskReadBytes,
      ],
      [
        'counter',
        'tandem_activity_log_writes_total',
        'Activity-log transactions written since the disk was attached (al:)',
        (v) => v.counters.alWrites,
      ],
      [
        'counter',
        'tandem_bitmap_writes_total',
        'Bitmap pages written since the disk was attached (bm:)',
        (v) => v.counters.bitmapWrites,
      ],
      [
        'gauge',
        'tandem_pending_requests',
        'Requests sent to the peer, not yet answered (pe:)',
        (v) => v.counters.pending,
      ],
      [
        'gauge',
        'tandem_unacknowledged_requests',
        'Requests from the peer, not yet answered (ua:)',
        (v) => v.counters.unacked,
      ],
      [
        'gauge',
        'tandem_application_pending_requests',
        'Application requests under way (ap:)',
        (v) => v.counters.appPending,
      ],
      [
        'gauge',
        'tandem_epochs',
        'Write epochs not yet confirmed by the peer (ep:)',
        (v) => v.counters.epochs + 1,
      ],
      [
        'gauge',
        'tandem_out_of_sync_bytes',
        'Bytes out of sync with the peer (oos:)',
        (v) => v.outOfSyncBytes,
      ],
      ['gauge', 'tandem_size_bytes', 'Usable size of the volume', (v) => v.sizeBytes],
      [
        'gauge',
        'tandem_resync_total_bytes',
        'Bytes the running resync or verify covers (0: none)',
        (v) => v.sync?.totalBytes ?? 0,
      ],
      [
        'gauge',
        'tandem_resync_done_bytes',
        'Bytes the running resync or verify has done',
        (v) => v.sync?.doneBytes ?? 0,
      ],
      [
        'gauge',
        'tandem_resync_speed_bytes_per_second',
        'Speed of the running resync or verify',
        (v) => v.sync?.speedBytesPerSecond ?? 0,
      ],
    ];
    for (const [kind, name, help, value] of perVolume) {
      const spec = { name, help, labelNames: ['resource', 'volume'], registers: [r] };
      if (kind === 'counter')
        new Counter({
          ...spec,
          collect() {
            this.reset();
            for (const [, v, l] of volumes()) this.inc(l, value(v));
          },
        });
      else
        new Gauge({
          ...spec,
          collect() {
            this.reset();
            for (const [, v, l] of volumes()) this.set(l, value(v));
          },
        });
    }

    this.writeLatency = new Histogram({
      name: 'tandem_write_latency_seconds',
      help: 'Application write latency, from the request to its completion under the protocol',
      labelNames: ['resource', 'protocol'],
      buckets: latencyBuckets,
      registers: [r],
    });
  }

  /** One application write's latency. */
  observeWrite(resource: string, protocol: string, seconds: number): void {
    this.writeLatency.observe({ resource, protocol }, seconds);
  }

  /** The exposition text (what GET /metrics answers). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Serves GET /metrics on host:port; resolves once listening. Later server errors go to `log`. */
  async listen(host: string, port: number, log: (message: string) => void = () => {}): Promise<void> {
    this.server = await serveMetrics(this.registry, host, port, log);
  }

  /** The port listened on (for an address given with port 0). */
  get port(): number | undefined {
    return listeningPort(this.server);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await closeServer(s);
  }
}

/** An HTTP server answering GET /metrics from `registry` (404 for anything else). */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
  log: (message: string) => void = () => {},
): Promise<Server> {
  const server = createServer({ connectionsCheckingInterval: 2_000 }, (req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
    );
  });
  // A scraper has 10 s; nothing holds a connection for longer.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  server.maxConnections = 16;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // A failed accept (out of file descriptors) is the server's 'error': logged, never fatal.
  server.on('error', (e) => log(`metrics: ${e.message}`));
  return server;
}

export function listeningPort(server: Server | undefined): number | undefined {
  const a = server?.address();
  return typeof a === 'object' && a !== null ? a.port : undefined;
}

export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

/** A state set: one series per possible value, 1 for the current one (read at scrape time). */
export function stateSetGauge<T extends string>(
  registry: Registry,
  spec: { name: string; help: string; labelNames: readonly string[]; label: string; values: readonly T[] },
  current: () => Iterable<readonly [Record<string, string>, T]>,
): void {
  new Gauge({
    name: spec.name,
    help: spec.help,
    labelNames: [...spec.labelNames, spec.label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, now] of current())
        for (const v of spec.values) this.set({ ...labels, [spec.label]: v }, v === now ? 1 : 0);
    },
  });
}
