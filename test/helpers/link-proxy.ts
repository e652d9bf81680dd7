// A TCP proxy between two nodes that a test controls: it can hold one direction
// (bytes are kept, in order, until release), cut every connection (a reset), or drop
// everything silently (a partition: nothing is forwarded, nothing is closed), or add
// latency (every chunk forwarded `ms` later, in order).
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export type Direction = 'forward' | 'backward';

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

export class LinkProxy {
  readonly port: number;
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private readonly held: Record<Direction, boolean> = { forward: false, backward: false };
  private readonly queued: Record<Direction, { pair: Pair; chunk: Buffer }[]> = { forward: [], backward: [] };
  private silent = false;
  private delayMs = 0;
  /**
   * Delayed chunks of each direction, in arrival order, each with the time it is due.
   * One timer per direction sends them from the front: a chunk never overtakes an
   * earlier one, whatever the delay was when each came. (A timer per chunk did: two
   * timers due at the same millisecond may fire in either order, and a lowered delay
   * gave a later chunk an earlier timer. Whole frames then arrived out of order, and
   * a chaos run saw the older of two writes to a block win on the Secondary.)
   */
  private readonly delayed: Record<Direction, { pair: Pair; chunk: Buffer; due: number }[]> = {
    forward: [],
    backward: [],
  };
  private readonly delayTimer: Record<Direction, NodeJS.Timeout | undefined> = {
    forward: undefined,
    backward: undefined,
  };
  /** Bytes forwarded in each direction. */
  readonly bytes: Record<Direction, number> = { forward: 0, backward: 0 };

  private constructor(server: Server, port: number) {
    this.server = server;
    this.port = port;
  }

  /** Listens on 127.0.0.1 (a free port) and forwards each connection to `target`. */
  static async start(target: { host: string; port: number }): Promise<LinkProxy> {
    let proxy: LinkProxy | undefined;
    const server = createServer((client) => proxy?.accept(client, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const a = server.address();
    proxy = new LinkProxy(server, typeof a === 'object' && a !== null ? a.port : 0);
    return proxy;
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    const upstream = tcpConnect(target.port, target.host);
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.on('data', (d: Buffer) => this.pass(pair, 'forward', d));
    upstream.on('data', (d: Buffer) => this.pass(pair, 'backward', d));
  }

  private pass(pair: Pair, dir: Direction, chunk: Buffer): void {
    if (this.silent) return;
    if (this.held[dir]) {
      this.queued[dir].push({ pair, chunk });
      return;
    }
    const queue = this.delayed[dir];
    if (this.delayMs === 0 && queue.length === 0) {
      this.forward(pair, dir, chunk);
      return;
    }
    const last = queue[queue.length - 1];
    queue.push({ pair, chunk, due: Math.max(Date.now() + this.delayMs, last?.due ?? 0) });
    this.pumpDelayed(dir);
  }

  private forward(pair: Pair, dir: Direction, chunk: Buffer): void {
    const out = dir === 'forward' ? pair.upstream : pair.client;
    this.bytes[dir] += chunk.length;
    if (!out.destroyed) out.write(chunk);
  }

  /** Sends the delayed chunks that are due, in order, and waits for the next one. */
  private pumpDelayed(dir: Direction): void {
    const queue = this.delayed[dir];
    const now = Date.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { pair, chunk } = queue.shift()!;
      this.forward(pair, dir, chunk);
    }
    if (queue.length === 0 || this.delayTimer[dir] !== undefined) return;
    this.delayTimer[dir] = setTimeout(() => {
      this.delayTimer[dir] = undefined;
      this.pumpDelayed(dir);
    }, queue[0]!.due - now);
  }

  /** Every chunk from now on is forwarded `ms` later (0: at once, after what is delayed). */
  delay(ms: number): void {
    this.delayMs = ms;
  }

  /** Keeps bytes of one direction (forward: client → target) until release(). */
  hold(dir: Direction): void {
    this.held[dir] = true;
  }

  release(dir: Direction): void {
    this.held[dir] = false;
    const q = this.queued[dir];
    this.queued[dir] = [];
    for (const { pair, chunk } of q) this.pass(pair, dir, chunk);
  }

  /** Bytes held back in a direction. */
  heldBytes(dir: Direction): number {
    return this.queued[dir].reduce((n, q) => n + q.chunk.length, 0);
  }

  /** Drops all traffic without closing anything (nftables "drop all"), until heal(). */
  partition(): void {
    this.silent = true;
  }

  heal(): void {
    this.silent = false;
  }

  /** Resets every connection now. */
  cut(): void {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    for (const dir of ['forward', 'backward'] as const) {
      clearTimeout(this.delayTimer[dir]);
      this.delayTimer[dir] = undefined;
      this.delayed[dir] = [];
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
