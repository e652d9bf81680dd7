// An NBD server: listens on a unix socket (and optionally TCP), serves a set
// of named exports, and keeps its sessions so they can be closed together.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { NbdExport } from './export.js';
import { NbdSession, type SessionEvents } from './session.js';

/** Clients served at once per listener; more are refused at accept. */
export const clientsMax = 64;

export interface NbdServerOptions extends SessionEvents {
  /** File mode of the unix socket (0600: only root talks to the device). */
  readonly socketMode?: number;
  /**
   * Sessions choose their read buffers (user-reads.ts; the default). false: they
   * read through 'data' events, as any Node socket (tests run both ways).
   */
  readonly userReads?: boolean;
}

export class NbdServer {
  private readonly exports = new Map<string, NbdExport>();
  private readonly servers: Server[] = [];
  /** Open connections, with the tag of the listener they came in on. */
  private readonly sockets = new Map<Socket, { tag: string; session: NbdSession }>();
  private readonly options: NbdServerOptions;

  constructor(options: NbdServerOptions = {}) {
    this.options = options;
  }

  /** Connections the server holds, in any phase (handshake, open, disconnecting). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Open connections whose session reads into buffers of its own choosing. */
  get userReadSessions(): number {
    let n = 0;
    for (const c of this.sockets.values()) if (c.session.userReads) n++;
    return n;
  }

  /** Accepted paused, nothing is read before the session takes the socket over. */
  private listener(tag: string): Server {
    return createServer({ pauseOnConnect: this.options.userReads !== false }, (s) => this.accept(s, tag));
  }

  add(e: NbdExport): void {
    this.exports.set(e.name, e);
  }

  remove(name: string): void {
    this.exports.delete(name);
  }

  /**
   * Clients that have an export open (past the handshake, not disconnected);
   * with a tag, only those that came in on that listener. A connection still
   * haggling, refused, or that sent DISC does not hold the device.
   */
  clientCount(tag?: string): number {
    let n = 0;
    for (const c of this.sockets.values()) if ((tag === undefined || c.tag === tag) && c.session.isOpen) n++;
    return n;
  }

  /** Closes the connections of one listener (the kernel device's, after it is removed). */
  disconnect(tag: string): void {
    for (const [s, c] of this.sockets) if (c.tag === tag) s.destroy();
  }

  private accept(socket: Socket, tag: string): void {
    // Per listener, so users filling theirs cannot keep the kernel device from connecting.
    let same = 0;
    for (const c of this.sockets.values()) if (c.tag === tag) same++;
    if (same >= clientsMax) {
      this.options.log?.('warn', `nbd: refusing a client: ${clientsMax} already connected`);
      socket.destroy();
      return;
    }
    const session = new NbdSession(
      socket,
      (name) => this.exports.get(name),
      () => [...this.exports.values()],
      this.options,
    );
    const s = session.socket;
    this.sockets.set(s, { tag, session });
    s.on('close', () => this.sockets.delete(s));
  }

  async listenUnix(path: string, tag = 'unix'): Promise<void> {
    rmSync(path, { force: true });
    const server = this.listener(tag);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, this.options.socketMode ?? 0o600);
    this.servers.push(server);
  }

  /** Listens on TCP; resolves to the port (useful with port 0). */
  async listenTcp(host: string, port: number, tag = 'tcp'): Promise<number> {
    const server = this.listener(tag);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.servers.push(server);
    const addr = server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets.keys()) s.destroy();
    await Promise.all(this.servers.map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))));
    this.servers.length = 0;
  }
}
