// A small NBD client for tests: fixed newstyle, NBD_OPT_GO, simple replies.
// It can also send raw bytes, to see how the server takes malformed input.
import { connect, type Socket } from 'node:net';
import { decodeRequest, encodeRequest } from '../../src/nbd/codec.js';
import { IHAVEOPT, Opt, REPLY_MAGIC_OPTION, SIMPLE_REPLY_MAGIC } from '../../src/nbd/protocol.js';

export class TestNbdClient {
  readonly socket: Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  private cookie = 1n;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static async connectTcp(host: string, port: number): Promise<TestNbdClient> {
    const s = connect(port, host);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new TestNbdClient(s);
  }

  static async connect(path: string): Promise<TestNbdClient> {
    const s = connect(path);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new TestNbdClient(s);
  }

  /** Reads n bytes; rejects if the server closes first. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`connection closed with ${this.buf.length}/${n} bytes`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.closed;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.write(Buffer.concat([h, data]));
  }

  async readOptionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.read(20);
    if (h.readBigUInt64BE(0) !== REPLY_MAGIC_OPTION) throw new Error('bad option reply magic');
    const data = await this.read(h.readUInt32BE(16));
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data };
  }

  /** Greeting + client flags; leaves the connection in option haggling. */
  async handshake(): Promise<void> {
    const g = await this.read(18);
    if (g.toString('latin1', 0, 8) !== 'NBDMAGIC') throw new Error('no NBDMAGIC');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(3, 0);
    this.write(flags);
  }

  /** NBD_OPT_GO; returns the export size, or throws with the error reply's text. */
  async go(name: string): Promise<{ size: number; flags: number }> {
    const n = Buffer.from(name);
    const d = Buffer.alloc(6 + n.length);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    d.writeUInt16BE(0, 4 + n.length);
    this.sendOption(Opt.GO, d);
    let size = -1;
    let flags = 0;
    for (;;) {
      const r = await this.readOptionReply();
      if (r.type & 0x80000000) throw new Error(`GO refused (${r.type & 0xff}): ${r.data.toString()}`);
      if (r.type === 3 && r.data.readUInt16BE(0) === 0) {
        size = Number(r.data.readBigUInt64BE(2));
        flags = r.data.readUInt16BE(10);
      }
      if (r.type === 1) return { size, flags };
    }
  }

  /** Sends one request (with payload for WRITE) and returns its cookie. */
  send(type: number, offset: number, length: number, flags = 0, payload?: Buffer): bigint {
    const cookie = this.cookie++;
    const h = encodeRequest({ flags, type, cookie, offset, length });
    this.write(payload ? Buffer.concat([h, payload]) : h);
    return cookie;
  }

  /** Reads one simple reply; READ data follows when `dataBytes` is given and the error is 0. */
  async reply(dataBytes = 0): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const h = await this.read(16);
    if (h.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC)
      throw new Error(`bad reply magic ${h.readUInt32BE(0).toString(16)}`);
    const error = h.readUInt32BE(4);
    const data = error === 0 && dataBytes > 0 ? await this.read(dataBytes) : Buffer.alloc(0);
    return { error, cookie: h.readBigUInt64BE(8), data };
  }

  close(): void {
    this.socket.destroy();
  }
}

export { decodeRequest };
