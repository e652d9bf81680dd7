// A small NBD client: fixed newstyle, NBD_OPT_GO, simple replies, many requests
// in flight on one connection (replies matched by cookie, in any order). The
// demo drives tandem through it; it is no replacement for nbd-client or libnbd.
import { connect, type Socket } from 'node:net';
import { encodeRequest } from './codec.js';
import {
  Cmd,
  CmdFlag,
  IHAVEOPT,
  NBDMAGIC,
  Opt,
  REPLY_MAGIC_OPTION,
  Rep,
  SIMPLE_REPLY_MAGIC,
} from './protocol.js';

export type NbdAddress = { readonly path: string } | { readonly host: string; readonly port: number };

interface Pending {
  readonly readBytes: number;
  readonly resolve: (data: Buffer) => void;
  readonly reject: (e: Error) => void;
}

export class NbdClientError extends Error {
  /** The errno the server answered with; 0 when the connection failed. */
  readonly errno: number;
  constructor(message: string, errno: number) {
    super(message);
    this.name = 'NbdClientError';
    this.errno = errno;
  }
}

export class NbdClient {
  /** The export's size in bytes, from the handshake. */
  readonly sizeBytes: number;
  private readonly socket: Socket;
  private readonly pending = new Map<bigint, Pending>();
  private chunks: Buffer[] = [];
  private buffered = 0;
  private nextCookie = 1n;
  private closedWith: Error | undefined;

  private constructor(socket: Socket, sizeBytes: number, rest: Buffer) {
    this.socket = socket;
    this.sizeBytes = sizeBytes;
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.failAll(new NbdClientError('connection closed', 0)));
    socket.on('error', (e) => this.failAll(new NbdClientError(`connection failed: ${e.message}`, 0)));
    if (rest.length > 0) this.onData(rest);
  }

  /** Connects and opens `exportName` with NBD_OPT_GO; rejects with the server's reason. */
  static async open(address: NbdAddress, exportName: string, timeoutMs = 10_000): Promise<NbdClient> {
    const socket = 'path' in address ? connect(address.path) : connect(address.port, address.host);
    socket.setNoDelay?.(true);
    const reader = new HandshakeReader(socket, timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const greeting = await reader.read(18);
      if (greeting.readBigUInt64BE(0) !== NBDMAGIC || greeting.readBigUInt64BE(8) !== IHAVEOPT)
        throw new Error('not an NBD server (no fixed newstyle greeting)');
      const clientFlags = Buffer.alloc(4);
      clientFlags.writeUInt32BE(3, 0); // FIXED_NEWSTYLE | NO_ZEROES
      const name = Buffer.from(exportName, 'utf8');
      const data = Buffer.alloc(6 + name.length);
      data.writeUInt32BE(name.length, 0);
      name.copy(data, 4);
      const option = Buffer.alloc(16);
      option.writeBigUInt64BE(IHAVEOPT, 0);
      option.writeUInt32BE(Opt.GO, 8);
      option.writeUInt32BE(data.length, 12);
      socket.write(Buffer.concat([clientFlags, option, data]));
      let size = -1;
      for (;;) {
        const h = await reader.read(20);
        if (h.readBigUInt64BE(0) !== REPLY_MAGIC_OPTION) throw new Error('bad option reply magic');
        const type = h.readUInt32BE(12);
        const body = await reader.read(h.readUInt32BE(16));
        if (type & 0x80000000) throw new Error(`export '${exportName}' refused: ${body.toString('utf8')}`);
        if (type === Rep.INFO && body.length >= 12 && body.readUInt16BE(0) === 0)
          size = Number(body.readBigUInt64BE(2));
        if (type === Rep.ACK) break;
      }
      if (size < 0) throw new Error('the server sent no export size');
      return new NbdClient(socket, size, reader.detach());
    } catch (e) {
      reader.detach();
      socket.destroy();
      throw e;
    }
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.request(Cmd.READ, 0, offset, length, length);
  }

  async write(offset: number, data: Buffer, fua = false): Promise<void> {
    await this.request(Cmd.WRITE, fua ? CmdFlag.FUA : 0, offset, data.length, 0, data);
  }

  async flush(): Promise<void> {
    await this.request(Cmd.FLUSH, 0, 0, 0, 0);
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** NBD_CMD_DISC, then the connection ends; requests still in flight fail. */
  close(): void {
    if (!this.socket.destroyed && this.closedWith === undefined) {
      this.socket.end(encodeRequest({ flags: 0, type: Cmd.DISC, cookie: 0n, offset: 0, length: 0 }));
    }
    this.socket.destroySoon?.();
  }

  private request(
    type: number,
    flags: number,
    offset: number,
    length: number,
    readBytes: number,
    payload?: Buffer,
  ): Promise<Buffer> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const cookie = this.nextCookie++;
    const done = new Promise<Buffer>((resolve, reject) => {
      this.pending.set(cookie, { readBytes, resolve, reject });
    });
    this.socket.write(encodeRequest({ flags, type, cookie, offset, length }));
    if (payload) this.socket.write(payload);
    return done;
  }

  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.buffered += d.length;
    for (;;) {
      if (this.buffered < 16) return;
      const head = this.peek(16);
      if (head.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) {
        this.socket.destroy();
        this.failAll(new NbdClientError('bad reply magic from the server', 0));
        return;
      }
      const error = head.readUInt32BE(4);
      const cookie = head.readBigUInt64BE(8);
      const p = this.pending.get(cookie);
      if (!p) {
        this.socket.destroy();
        this.failAll(new NbdClientError(`reply for unknown cookie ${cookie}`, 0));
        return;
      }
      const dataBytes = error === 0 ? p.readBytes : 0;
      if (this.buffered < 16 + dataBytes) return;
      this.take(16);
      const data = this.take(dataBytes);
      this.pending.delete(cookie);
      if (error === 0) p.resolve(data);
      else p.reject(new NbdClientError(`the server answered errno ${error}`, error));
    }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const out = this.peek(n);
    const first = this.chunks[0] as Buffer;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return Buffer.from(out);
  }

  private failAll(e: Error): void {
    this.closedWith ??= e;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(e);
  }
}

/** Reads exact byte counts during the handshake, with one deadline for all of it. */
class HandshakeReader {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended ??= new Error('the server closed the connection during the handshake');
    this.wake?.();
  };
  private readonly timer: NodeJS.Timeout;
  private readonly socket: Socket;

  constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
    // One deadline for connecting and the handshake: a connect that hangs is cut too.
    this.timer = setTimeout(() => {
      this.ended ??= new Error(`no NBD handshake within ${timeoutMs} ms`);
      socket.destroy(this.ended);
      this.wake?.();
    }, timeoutMs);
  }

  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw this.ended;
      await new Promise<void>((r) => {
        this.wake = r;
      });
      this.wake = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Stops listening; returns what was read past the handshake. */
  detach(): Buffer {
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    return this.buf;
  }
}
