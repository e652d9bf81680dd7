// tandem-ha's web dashboard: GET / (the page), GET /api/state (a snapshot as
// JSON), GET /events (server-sent events: a snapshot each second while someone
// watches), and POST /api/actions/{standby,takeover,verify} — refused unless
// ha.cf names a token file, and then only with `Authorization: Bearer TOKEN`.
// A snapshot is tandem-ha's own status, this node's tandemd status (through
// tandemadm, as the agents reach it) and the recent events.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ResourceStatus } from '../daemon/status.js';
import type { HaStatus } from './daemon.js';
import { dashboardPage } from './dashboard-page.js';

export interface DashboardEvent {
  readonly at: number;
  readonly level: 'info' | 'warn' | 'error';
  readonly text: string;
}

export interface DashboardSnapshot {
  readonly node: string;
  readonly at: number;
  readonly readOnly: boolean;
  readonly deadtimeMs: number;
  readonly ha: HaStatus;
  /** This node's tandemd resources; null when tandemd does not answer. */
  readonly resources: readonly ResourceStatus[] | null;
  readonly resourcesError: string | null;
  readonly events: readonly DashboardEvent[];
}

export interface DashboardOptions {
  readonly node: string;
  readonly deadtimeMs: number;
  readonly status: () => HaStatus;
  readonly events: () => readonly DashboardEvent[];
  /** Runs tandemadm with these arguments (status --json all; verify RES). */
  readonly tandemadm: (args: readonly string[]) => Promise<{ code: number; out: string; err: string }>;
  readonly standby: () => void;
  readonly takeover: () => Promise<{ result: number; message: string }>;
  /** The actions' token; undefined: read-only. */
  readonly token: string | undefined;
}

/** Viewers at once; more get 503 (each costs a timer and a socket). */
export const dashboardClientsMax = 32;
/** A viewer that has this much unread is dropped: it reads slower than the snapshots come. */
export const viewerBacklogBytesMax = 256 * 1024;
const requestBodyBytesMax = 4096;
const tickMs = 1000;

export class Dashboard {
  private readonly o: DashboardOptions;
  private server: Server | undefined;
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private resources: { at: number; list: readonly ResourceStatus[] | null; error: string | null } = {
    at: 0,
    list: null,
    error: 'not asked yet',
  };
  private polling: Promise<void> | undefined;
  /** Changes seen in tandemd's resources between two looks (role, disk, connection). */
  private readonly changes: DashboardEvent[] = [];

  private readonly log: (message: string) => void;

  constructor(o: DashboardOptions, log: (message: string) => void = () => {}) {
    this.o = o;
    this.log = log;
  }

  /** tandemd's view, at most one second old; one tandemadm at a time. */
  private async refresh(): Promise<void> {
    if (Date.now() - this.resources.at < tickMs - 100) return;
    this.polling ??= (async () => {
      try {
        const r = await this.o.tandemadm(['status', '--json', 'all']);
        if (r.code !== 0) throw new Error(r.err.trim() || `tandemadm exit ${r.code}`);
        const parsed = JSON.parse(r.out) as { resources: ResourceStatus[] };
        this.noteChanges(this.resources.list, parsed.resources);
        this.resources = { at: Date.now(), list: parsed.resources, error: null };
      } catch (e) {
        this.resources = { at: Date.now(), list: null, error: (e as Error).message.split('\n')[0] ?? '' };
      } finally {
        this.polling = undefined;
      }
    })();
    await this.polling;
  }

  private noteChanges(before: readonly ResourceStatus[] | null, now: readonly ResourceStatus[]): void {
    if (before === null) return;
    const describe = (r: ResourceStatus) =>
      `${r.role}/${r.peerRole} ${r.volumes.map((v) => `${v.disk}/${v.peerDisk} ${v.replication}`).join(', ')}`;
    for (const r of now) {
      const old = before.find((b) => b.name === r.name);
      if (old === undefined || describe(old) === describe(r)) continue;
      this.changes.push({
        at: Date.now(),
        level: 'info',
        text: `${r.name}: ${describe(old)} → ${describe(r)}`,
      });
      if (this.changes.length > 50) this.changes.shift();
    }
  }

  async snapshot(): Promise<DashboardSnapshot> {
    await this.refresh();
    return {
      node: this.o.node,
      at: Date.now(),
      readOnly: this.o.token === undefined,
      deadtimeMs: this.o.deadtimeMs,
      ha: this.o.status(),
      resources: this.resources.list,
      resourcesError: this.resources.error,
      events: [...this.o.events(), ...this.changes].sort((a, b) => a.at - b.at).slice(-100),
    };
  }

  async listen(host: string, port: number): Promise<void> {
    const server = createServer({ connectionsCheckingInterval: 2_000 }, (req, res) => {
      this.route(req, res).catch((e: unknown) => {
        if (!res.headersSent) json(res, 500, { ok: false, message: (e as Error).message });
        else res.destroy();
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.maxConnections = dashboardClientsMax + 16;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A failed accept (out of file descriptors) is the server's 'error': logged, never fatal.
    server.on('error', (e) => this.log(`dashboard: ${e.message}`));
    this.server = server;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.clients) c.end();
    this.clients.clear();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      res
        .writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy':
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
          'x-content-type-options': 'nosniff',
        })
        .end(dashboardPage);
      return;
    }
    if (req.method === 'GET' && path === '/api/state') {
      json(res, 200, await this.snapshot());
      return;
    }
    if (req.method === 'GET' && path === '/events') {
      this.follow(res);
      return;
    }
    if (req.method === 'POST' && path?.startsWith('/api/actions/')) {
      await this.action(path.slice('/api/actions/'.length), req, res);
      return;
    }
    json(res, 404, { ok: false, message: `no ${req.method} ${path} here` });
  }

  /** A viewer: a snapshot now and every second until it goes. */
  private follow(res: ServerResponse): void {
    if (this.clients.size >= dashboardClientsMax) {
      json(res, 503, { ok: false, message: `${dashboardClientsMax} viewers already` });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    });
    this.push([res]);
    this.timer ??= setInterval(() => this.push([...this.clients]), tickMs);
  }

  /** A snapshot to each viewer; one that does not read is dropped, not buffered for. */
  private push(to: readonly ServerResponse[]): void {
    this.snapshot().then(
      (s) => {
        const frame = `data: ${JSON.stringify(s)}\n\n`;
        for (const c of to) {
          if (c.writableEnded || c.destroyed) continue;
          if (c.writableLength > viewerBacklogBytesMax) {
            c.destroy();
            continue;
          }
          c.write(frame);
        }
      },
      (e: unknown) => this.log(`dashboard snapshot: ${(e as Error).message}`),
    );
  }

  private async action(name: string | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.o.token === undefined) {
      json(res, 403, { ok: false, message: 'read-only dashboard: ha.cf names no dashboard_token_file' });
      return;
    }
    if (!tokenMatches(req.headers.authorization, this.o.token)) {
      json(res, 401, { ok: false, message: 'wrong or missing token (Authorization: Bearer TOKEN)' });
      return;
    }
    let body: { resource?: unknown };
    try {
      body = await readJson(req);
    } catch (e) {
      json(res, 400, { ok: false, message: (e as Error).message });
      return;
    }
    switch (name) {
      case 'standby':
        this.o.standby();
        json(res, 200, { ok: true, message: 'standby: giving this node’s groups to the peer' });
        return;
      case 'takeover': {
        const r = await this.o.takeover();
        json(res, r.result >= 0 ? 200 : 409, { ok: r.result >= 0, message: r.message });
        return;
      }
      case 'verify': {
        const resource = body.resource;
        await this.refresh();
        if (typeof resource !== 'string' || !this.resources.list?.some((r) => r.name === resource)) {
          json(res, 400, {
            ok: false,
            message: `verify: no resource ${JSON.stringify(resource)} on this node`,
          });
          return;
        }
        const r = await this.o.tandemadm(['verify', resource]);
        json(res, r.code === 0 ? 200 : 409, {
          ok: r.code === 0,
          message: r.code === 0 ? `verify ${resource} started` : r.err.trim() || `tandemadm exit ${r.code}`,
        });
        return;
      }
      default:
        json(res, 404, { ok: false, message: `no action '${name}' (standby, takeover, verify)` });
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(JSON.stringify(body));
}

/** Constant-time comparison of `Bearer TOKEN` with the token. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1] as string);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readJson(req: IncomingMessage): Promise<{ resource?: unknown }> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > requestBodyBytesMax) throw new Error(`request body over ${requestBodyBytesMax} bytes`);
  }
  if (text.trim() === '') return {};
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new Error('the body must be a JSON object');
  return v as { resource?: unknown };
}
