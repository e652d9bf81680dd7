// One NBD client connection: the fixed-newstyle handshake, then the
// transmission phase with many requests in flight and replies sent as they
// complete. Every request goes read -> validate -> execute -> reply; a bad
// request gets an errno and the stream stays framed; a bad frame ends the
// connection, never the server.
import type { Socket } from 'node:net';
import { StorageError } from '../storage/storage.js';
import { ioBuffers } from '../util/buffer-pool.js';
import {
  decodeInfoRequest,
  decodeOptionHeader,
  decodeRequest,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeOptionReply,
  encodeServerEntry,
  encodeSimpleReply,
  encodeStructuredError,
  encodeStructuredNone,
  encodeStructuredReadHeader,
  NbdProtocolError,
  type Request,
} from './codec.js';
import type { NbdExport } from './export.js';
import {
  Cmd,
  CmdFlag,
  exportNameBytesMax,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  Info,
  NbdErrno,
  Opt,
  optionBytesMax,
  optionsMax,
  Rep,
  requestBytesMax,
  requestHeaderBytes,
  TFlag,
} from './protocol.js';
import { adoptForUserReads } from './user-reads.js';

/** Requests executing at once per connection; past it the socket stops being read. */
export const inFlightMax = 256;
/**
 * Payload bytes a connection may hold at once: WRITE data not yet on disk plus
 * READ data not yet handed to the kernel. Past it the socket is not read, so a
 * client that sends READs and never reads the replies cannot exhaust memory.
 * At least one request of the largest size always fits.
 */
export const heldBytesMax = 64 * 1024 * 1024;
/** Time a client has from connecting to opening an export. */
export const handshakeMsMax = 10_000;
/** Bytes of WRITE payload buffered per connection before reading pauses. */
export const bufferedBytesMax = 64 * 1024 * 1024;

/**
 * Replies of one turn up to this many bytes (reply headers: 16 B each) are copied
 * into one buffer, cheaper than a writev of many tiny ones. Anything with READ data
 * goes out as a writev, so the data is never copied again on its way out.
 */
export const coalesceBytesMax = 4096;

/**
 * Bytes read at once between payloads (headers, small writes) when the session
 * chooses its read buffers (user-reads.ts). A large payload is read into itself.
 */
export const scratchBytes = 128 * 1024;

export const blockSizeMin = 1;
export const blockSizePreferred = 4096;

export interface SessionEvents {
  log?(level: 'debug' | 'info' | 'warn', message: string): void;
  /** Bytes arrived from the client (the daemon's busy poll). */
  activity?(): void;
}

type Phase =
  | { kind: 'clientFlags' }
  | { kind: 'optionHeader' }
  | { kind: 'optionData'; option: number; length: number }
  | { kind: 'request' }
  /**
   * A WRITE's payload. Once part of it has arrived, `buf` holds it and the rest
   * is gathered straight into it (`filled` bytes so far).
   */
  | { kind: 'writeData'; req: Request; buf?: Buffer; filled: number }
  | { kind: 'drain'; remaining: number; req: Request; error: number }
  | { kind: 'closed' };

/**
 * The command flags each command may carry (proto.md: others are EINVAL). FUA
 * "is valid for all commands" once SEND_FUA is negotiated (ignored where moot).
 */
function flagsAllowed(type: number, structured: boolean): number {
  switch (type) {
    case Cmd.READ:
      return CmdFlag.FUA | (structured ? CmdFlag.DF : 0);
    case Cmd.WRITE_ZEROES:
      return CmdFlag.FUA | CmdFlag.NO_HOLE | CmdFlag.FAST_ZERO;
    default:
      return CmdFlag.FUA;
  }
}

export class NbdSession {
  /** The connection (after adoptForUserReads, not the socket the server accepted). */
  readonly socket: Socket;
  private readonly lookup: (name: string) => NbdExport | undefined;
  private readonly list: () => readonly NbdExport[];
  private readonly events: SessionEvents;
  private phase: Phase = { kind: 'clientFlags' };
  private chunks: Buffer[] = [];
  private buffered = 0;
  private noZeroes = false;
  private structured = false;
  private options = 0;
  private export: NbdExport | undefined;
  private inFlight = 0;
  private disconnecting = false;
  private readonly handshakeTimer: NodeJS.Timeout;
  private heldBytes = 0;
  /**
   * Reads land in buffers of our choosing (user-reads.ts): the scratch buffer,
   * whose bytes are valid only until the next read, or the rest of a payload.
   */
  readonly userReads: boolean;
  private readonly scratch: Buffer;
  /** The payload slice handed out for the next read, if any. */
  private readTarget: Buffer | undefined;
  /** The export size announced in the handshake. */
  private sizeBytes = 0;
  readonly peer: string;

  /**
   * `accepted`: a connection nothing has read from yet. If it was accepted paused
   * (pauseOnConnect) the session reads it into buffers of its own choosing where
   * this Node allows (see `socket`); otherwise through 'data' events.
   */
  constructor(
    accepted: Socket,
    lookup: (name: string) => NbdExport | undefined,
    list: () => readonly NbdExport[],
    events: SessionEvents = {},
  ) {
    this.lookup = lookup;
    this.list = list;
    this.events = events;
    this.scratch = Buffer.allocUnsafeSlow(scratchBytes);
    const adopted = adoptForUserReads(accepted, {
      next: () => this.nextReadBuffer(),
      arrived: (n, buf) => this.arrived(n, buf),
    });
    this.userReads = adopted !== undefined;
    const socket = adopted ?? accepted;
    this.socket = socket;
    this.peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    socket.setNoDelay?.(true);
    if (!adopted) {
      socket.on('data', (d: Buffer) => {
        this.events.activity?.();
        this.onData(d, true);
      });
      socket.resume();
    }
    socket.on('error', (e) => this.log('debug', `socket error: ${e.message}`));
    socket.on('close', () => this.onClose());
    socket.write(encodeGreeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
    // A client that never finishes the handshake is dropped (a dead host holds nothing).
    this.handshakeTimer = setTimeout(() => {
      if (!this.export && this.phase.kind !== 'closed')
        this.fail(`no export opened within ${handshakeMsMax / 1000} s`);
    }, handshakeMsMax);
    this.handshakeTimer.unref();
    socket.setKeepAlive?.(true, 30_000);
  }

  /** An export is open and the client has not asked to disconnect. */
  get isOpen(): boolean {
    return this.export !== undefined && !this.disconnecting;
  }

  private log(level: 'debug' | 'info' | 'warn', message: string): void {
    this.events.log?.(level, `nbd client ${this.peer}: ${message}`);
  }

  private onClose(): void {
    clearTimeout(this.handshakeTimer);
    this.phase = { kind: 'closed' };
    this.chunks = [];
    this.buffered = 0;
    this.closeExport();
  }

  /** Tells the export this client is gone, once. */
  private closeExport(): void {
    const e = this.export;
    this.export = undefined;
    e?.clientClosed();
  }

  /** Ends the connection after a framing error: nothing after it can be trusted. */
  private fail(message: string): void {
    this.log('warn', `protocol error: ${message}; closing`);
    this.closeExport();
    this.phase = { kind: 'closed' };
    this.socket.destroy();
  }

  /**
   * Bytes from the client. `owned`: the chunk is ours to keep; otherwise it is the
   * scratch buffer, and whatever is left unparsed is copied before returning.
   */
  private onData(d: Buffer, owned: boolean): void {
    if (this.phase.kind === 'closed') return;
    const rest = this.gather(d);
    if (rest.length > 0) {
      this.chunks.push(rest);
      this.buffered += rest.length;
    }
    this.pumpSafely();
    if (!owned) this.ownLeftovers();
    if (this.buffered > bufferedBytesMax) this.socket.pause();
  }

  /**
   * Copies what is left of the scratch buffer (the last chunk, if any) out of it,
   * before the next read reuses it. Earlier leftovers are copies already, so bytes
   * that trickle in are copied once each.
   */
  private ownLeftovers(): void {
    const i = this.chunks.length - 1;
    const last = this.chunks[i];
    if (last !== undefined && last.buffer === this.scratch.buffer) this.chunks[i] = Buffer.from(last);
  }

  /** Copies the start of `d` into a payload being gathered; returns what follows it. */
  private gather(d: Buffer): Buffer {
    const p = this.phase;
    if (p.kind !== 'writeData' || p.buf === undefined) return d;
    const k = Math.min(d.length, p.req.length - p.filled);
    d.copy(p.buf, p.filled, 0, k);
    p.filled += k;
    if (p.filled === p.req.length) this.gathered(p.req, p.buf);
    return d.subarray(k);
  }

  private gathered(req: Request, payload: Buffer): void {
    this.phase = { kind: 'request' };
    this.execute(req, payload);
  }

  /** Where the next read lands: the rest of a payload being gathered, else the scratch buffer. */
  private nextReadBuffer(): Buffer {
    const p = this.phase;
    if (p.kind === 'writeData' && p.buf !== undefined) {
      this.readTarget = p.buf.subarray(p.filled);
      return this.readTarget;
    }
    this.readTarget = undefined;
    return this.scratch;
  }

  /** A read done into a buffer nextReadBuffer() chose. */
  private arrived(n: number, buf: Buffer): void {
    this.events.activity?.();
    const p = this.phase;
    if (buf !== this.readTarget || p.kind !== 'writeData' || p.buf === undefined) {
      this.onData(buf.subarray(0, n), false);
      return;
    }
    // Straight into the payload: nothing to copy or parse until it is whole.
    this.readTarget = undefined;
    p.filled += n;
    if (p.filled < p.req.length) return;
    this.gathered(p.req, p.buf);
    this.pumpSafely();
  }

  /**
   * Takes exactly n buffered bytes, or undefined if fewer are there. `keep`: the
   * bytes must outlive this read (a WRITE payload), so with user reads, where a
   * chunk may be the scratch buffer, they are copied into a pooled buffer; so are
   * bytes that span chunks.
   */
  private take(n: number, keep = false): Buffer | undefined {
    if (this.buffered < n) return undefined;
    if (n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    const first = this.chunks[0] as Buffer;
    if (!(keep && this.userReads)) {
      if (first.length === n) {
        this.chunks.shift();
        return first;
      }
      if (first.length > n) {
        this.chunks[0] = first.subarray(n);
        return first.subarray(0, n);
      }
    }
    const out = keep ? ioBuffers.acquire(n) : Buffer.allocUnsafe(n);
    this.drainInto(out, n);
    return out;
  }

  /** Moves the first n buffered bytes (already counted off `buffered`) into `out`. */
  private drainInto(out: Buffer, n: number): void {
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
  }

  private pump(): void {
    for (;;) {
      const p = this.phase;
      switch (p.kind) {
        case 'closed':
          return;
        case 'clientFlags': {
          const b = this.take(4);
          if (!b) return;
          const flags = b.readUInt32BE(0);
          // proto.md: a server that offered fixed newstyle closes on unknown client flags.
          if (flags & ~3)
            throw new NbdProtocolError('NBD_BAD_OPTION', `unknown client flags 0x${flags.toString(16)}`);
          this.noZeroes = (flags & FLAG_C_NO_ZEROES) !== 0;
          this.phase = { kind: 'optionHeader' };
          break;
        }
        case 'optionHeader': {
          const b = this.take(16);
          if (!b) return;
          const h = decodeOptionHeader(b);
          if (++this.options > optionsMax)
            throw new NbdProtocolError('NBD_TOO_BIG', `more than ${optionsMax} options`);
          if (h.length > optionBytesMax) {
            throw new NbdProtocolError(
              'NBD_TOO_BIG',
              `option ${h.option} with ${h.length} bytes of data (max ${optionBytesMax})`,
            );
          }
          this.phase = { kind: 'optionData', option: h.option, length: h.length };
          break;
        }
        case 'optionData': {
          const data = this.take(p.length);
          if (!data) return;
          this.phase = { kind: 'optionHeader' };
          this.handleOption(p.option, data);
          break;
        }
        case 'request': {
          if (this.inFlight >= inFlightMax || this.heldBytes >= heldBytesMax) {
            this.socket.pause();
            return;
          }
          const b = this.take(requestHeaderBytes);
          if (!b) return;
          this.handleRequestHeader(decodeRequest(b));
          break;
        }
        case 'writeData': {
          if (p.buf !== undefined) return; // gathering: the rest arrives in onData or arrived()
          const data = this.take(p.req.length, true);
          if (data) {
            this.gathered(p.req, data);
            break;
          }
          // Part of it is here: it goes into its buffer now, the rest as it arrives.
          // (With none here yet, no buffer is taken for a payload that may never come.)
          if (this.buffered === 0) return;
          p.buf = ioBuffers.acquire(p.req.length);
          p.filled = this.buffered;
          this.buffered = 0;
          this.drainInto(p.buf, p.filled);
          return;
        }
        case 'drain': {
          // A rejected WRITE's payload is read and dropped so the stream stays framed.
          const n = Math.min(p.remaining, this.buffered);
          if (n > 0) this.take(n);
          p.remaining -= n;
          if (p.remaining > 0) return;
          this.phase = { kind: 'request' };
          this.reply(p.req, p.error);
          break;
        }
      }
    }
  }

  private optionReply(option: number, type: number, data?: Buffer): void {
    this.socket.write(encodeOptionReply(option, type, data));
  }

  private optionError(option: number, type: number, message: string): void {
    // Clients probe optional features (meta contexts): an unsupported option is routine.
    this.log(type === Rep.ERR_UNSUP ? 'debug' : 'info', `option ${option}: ${message}`);
    this.optionReply(option, type, Buffer.from(message, 'utf8'));
  }

  private transmissionFlags(e: NbdExport): number {
    let f =
      TFlag.HAS_FLAGS |
      TFlag.SEND_FLUSH |
      TFlag.SEND_FUA |
      TFlag.SEND_TRIM |
      TFlag.SEND_WRITE_ZEROES |
      TFlag.SEND_FAST_ZERO |
      TFlag.CAN_MULTI_CONN;
    if (this.structured) f |= TFlag.SEND_DF;
    if (e.readOnly) f |= TFlag.READ_ONLY;
    return f;
  }

  private handleOption(option: number, data: Buffer): void {
    switch (option) {
      case Opt.EXPORT_NAME: {
        const name = data.toString('utf8');
        const e = this.lookup(name);
        const refusal = e ? e.refusal() : `no export named '${name}'`;
        // EXPORT_NAME has no error reply: the server can only close (proto.md).
        if (!e || refusal) {
          this.fail(`EXPORT_NAME '${name}' refused: ${refusal}`);
          return;
        }
        this.socket.write(encodeExportNameReply(e.sizeBytes, this.transmissionFlags(e), this.noZeroes));
        this.enterTransmission(e);
        return;
      }
      case Opt.ABORT:
        this.optionReply(option, Rep.ACK);
        this.socket.end();
        this.phase = { kind: 'closed' };
        return;
      case Opt.LIST:
        if (data.length !== 0) {
          this.optionError(option, Rep.ERR_INVALID, 'LIST takes no data');
          return;
        }
        for (const e of this.list()) this.optionReply(option, Rep.SERVER, encodeServerEntry(e.name));
        this.optionReply(option, Rep.ACK);
        return;
      case Opt.STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.optionError(option, Rep.ERR_INVALID, 'STRUCTURED_REPLY takes no data');
          return;
        }
        this.structured = true;
        this.optionReply(option, Rep.ACK);
        return;
      case Opt.INFO:
      case Opt.GO:
        this.handleInfoOrGo(option, data);
        return;
      default:
        this.optionError(option, Rep.ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  private handleInfoOrGo(option: number, data: Buffer): void {
    let req: { name: string; infos: readonly number[] };
    try {
      req = decodeInfoRequest(data);
    } catch (e) {
      if (e instanceof NbdProtocolError) {
        this.optionError(option, Rep.ERR_INVALID, e.message);
        return;
      }
      throw e;
    }
    if (Buffer.byteLength(req.name) > exportNameBytesMax) {
      this.optionError(option, Rep.ERR_INVALID, 'export name too long');
      return;
    }
    const e = this.lookup(req.name);
    if (!e) {
      const names = this.list().map((x) => x.name);
      this.optionError(
        option,
        Rep.ERR_UNKNOWN,
        `no export named '${req.name}' (exports: ${names.join(', ') || 'none'})`,
      );
      return;
    }
    const refusal = e.refusal();
    if (refusal) {
      this.optionError(option, Rep.ERR_POLICY, refusal);
      return;
    }
    this.optionReply(option, Rep.INFO, encodeInfoExport(e.sizeBytes, this.transmissionFlags(e)));
    for (const info of req.infos) {
      if (info === Info.NAME) this.optionReply(option, Rep.INFO, encodeInfoString(Info.NAME, e.name));
      if (info === Info.DESCRIPTION)
        this.optionReply(option, Rep.INFO, encodeInfoString(Info.DESCRIPTION, e.description));
    }
    // Sent whether or not it was asked for: clients that did not ask may ignore it.
    this.optionReply(
      option,
      Rep.INFO,
      encodeInfoBlockSize(blockSizeMin, blockSizePreferred, requestBytesMax),
    );
    this.optionReply(option, Rep.ACK);
    if (option === Opt.GO) this.enterTransmission(e);
  }

  private enterTransmission(e: NbdExport): void {
    this.export = e;
    // Requests are checked against what the client was told, not the live size: an
    // export that lost its disk answers EIO, not "out of range".
    this.sizeBytes = e.sizeBytes;
    e.clientOpened();
    this.phase = { kind: 'request' };
    this.log('debug', `opened export '${e.name}'`);
  }

  private handleRequestHeader(req: Request): void {
    const e = this.export as NbdExport;
    const isWrite = req.type === Cmd.WRITE;
    // Validate; a WRITE carries its payload even when it is refused.
    let error = 0;
    if (req.flags & ~flagsAllowed(req.type, this.structured)) error = NbdErrno.EINVAL;
    else if (req.type === Cmd.READ || isWrite) {
      // proto.md: EOVERFLOW only for DF reads; a request over the maximum block size is EINVAL.
      if (req.length > requestBytesMax) error = NbdErrno.EINVAL;
      else if (req.offset + req.length > this.sizeBytes) error = isWrite ? NbdErrno.ENOSPC : NbdErrno.EINVAL;
      else if (isWrite && e.readOnly) error = NbdErrno.EPERM;
    } else if (req.type === Cmd.TRIM || req.type === Cmd.WRITE_ZEROES) {
      if (req.offset + req.length > this.sizeBytes) error = NbdErrno.EINVAL;
      else if (e.readOnly) error = NbdErrno.EPERM;
      // FAST_ZERO: we cannot promise a zero faster than writing it.
      else if (req.type === Cmd.WRITE_ZEROES && req.flags & CmdFlag.FAST_ZERO) error = NbdErrno.ENOTSUP;
    } else if (req.type === Cmd.DISC) {
      // Not paused: with user reads that would stop reading the socket, and the
      // client's FIN, so the connection would never close. What follows DISC is
      // dropped (phase 'closed').
      this.disconnecting = true;
      this.maybeFinishDisconnect();
      this.phase = { kind: 'closed' };
      return;
    } else if (req.type !== Cmd.FLUSH) error = NbdErrno.EINVAL;

    if (isWrite && (error || req.length > requestBytesMax)) {
      this.phase = { kind: 'drain', remaining: req.length, req, error: error || NbdErrno.EINVAL };
      return;
    }
    if (error) {
      this.reply(req, error);
      return;
    }
    if (isWrite) {
      this.phase = { kind: 'writeData', req, filled: 0 };
      return;
    }
    this.execute(req, undefined);
  }

  private execute(req: Request, payload: Buffer | undefined): void {
    const e = this.export as NbdExport;
    const fua = (req.flags & CmdFlag.FUA) !== 0;
    this.inFlight++;
    const held = req.type === Cmd.READ || req.type === Cmd.WRITE ? req.length : 0;
    this.heldBytes += held;
    let done: Promise<void>;
    let readBuf: Buffer | undefined;
    switch (req.type) {
      case Cmd.READ:
        readBuf = ioBuffers.acquire(req.length);
        done = e.read(readBuf, req.offset);
        break;
      case Cmd.WRITE: {
        if (e.writeFast === undefined) {
          done = e.write(payload as Buffer, req.offset, fua);
          break;
        }
        const rest = e.writeFast(payload as Buffer, req.offset, fua);
        if (rest !== undefined) {
          done = rest;
          break;
        }
        // Written already: answered now (the reply leaves with this turn's others). Not
        // through complete(): it would pump again, and pump() is what called us.
        ioBuffers.release(payload as Buffer);
        this.heldBytes -= held;
        this.inFlight--;
        this.reply(req, 0);
        return;
      }
      case Cmd.FLUSH:
        done = e.flush();
        break;
      case Cmd.TRIM:
        done = e.trim(req.offset, req.length, fua);
        break;
      case Cmd.WRITE_ZEROES:
        done = e.writeZeroes(req.offset, req.length, fua);
        break;
      default:
        throw new Error(`unreachable command ${req.type}`);
    }
    // The payload is the export's only until its promise settles (NbdExport.write).
    // READ data stays held until the socket has taken it (see reply()).
    done.then(
      () => {
        if (payload) ioBuffers.release(payload);
        if (!readBuf) this.heldBytes -= held;
        this.complete(req, 0, readBuf);
      },
      (err: unknown) => {
        if (payload) ioBuffers.release(payload);
        if (readBuf) ioBuffers.release(readBuf);
        this.heldBytes -= held;
        this.complete(req, errnoOf(err), undefined, err);
      },
    );
  }

  private complete(req: Request, error: number, data: Buffer | undefined, err?: unknown): void {
    this.inFlight--;
    if (error)
      this.log(
        'warn',
        `request type ${req.type} at ${req.offset}+${req.length} failed: ${(err as Error)?.message}`,
      );
    this.reply(req, error, data);
    if (this.disconnecting) this.maybeFinishDisconnect();
    else this.maybeResume();
  }

  /** Reads on once every limit has room again. */
  private maybeResume(): void {
    if (
      this.phase.kind === 'request' &&
      this.inFlight < inFlightMax &&
      this.heldBytes < heldBytesMax &&
      this.buffered <= bufferedBytesMax
    ) {
      this.socket.resume();
      if (this.buffered > 0) this.pumpSafely();
    }
  }

  /** READ data handed to the kernel (or dropped with the connection): its bytes are free again. */
  private readDataSent(data: Buffer): void {
    ioBuffers.release(data);
    this.heldBytes -= data.length;
    if (!this.disconnecting) this.maybeResume();
  }

  private pumpSafely(): void {
    try {
      this.pump();
    } catch (e) {
      if (e instanceof NbdProtocolError) this.fail(e.message);
      else throw e;
    }
  }

  /**
   * Replies completed in the same turn of the event loop go out in one write on
   * the next tick: headers alone copied into one buffer (one stream write, one
   * syscall), READ data corked with them into one writev (see coalesceBytesMax). `done` runs once the socket
   * has taken the bytes.
   */
  private send(b: Buffer, done?: () => void): void {
    if (!this.outScheduled) {
      this.outScheduled = true;
      process.nextTick(this.flushOut);
    }
    this.outChunks.push(b);
    this.outBytes += b.length;
    if (done) this.outDone.push(done);
  }

  private outScheduled = false;
  private outChunks: Buffer[] = [];
  private outBytes = 0;
  private outDone: (() => void)[] = [];

  private readonly flushOut = (): void => {
    this.outScheduled = false;
    const chunks = this.outChunks;
    if (chunks.length === 0) return;
    const bytes = this.outBytes;
    const done = this.outDone;
    this.outChunks = [];
    this.outBytes = 0;
    this.outDone = [];
    const s = this.socket;
    const after =
      done.length === 0
        ? undefined
        : () => {
            for (const f of done) f();
          };
    if (chunks.length === 1) s.write(chunks[0] as Buffer, after);
    else if (bytes <= coalesceBytesMax) s.write(Buffer.concat(chunks, bytes), after);
    else {
      s.cork();
      for (let i = 0; i < chunks.length - 1; i++) s.write(chunks[i] as Buffer);
      s.write(chunks[chunks.length - 1] as Buffer, after);
      s.uncork();
    }
  };

  private reply(req: Request, error: number, data?: Buffer): void {
    if (this.socket.destroyed) {
      // Nobody to send it to: the READ data's buffer and bytes are free at once.
      if (data) this.readDataSent(data);
      return;
    }
    if (req.type === Cmd.READ && this.structured) {
      if (error) this.send(encodeStructuredError(req.cookie, error, ''));
      // An OFFSET_DATA chunk must carry at least one byte: a zero-length read is answered with NONE.
      else if (req.length === 0) this.send(encodeStructuredNone(req.cookie));
      else {
        this.send(encodeStructuredReadHeader(req.cookie, req.offset, req.length));
        this.send(data as Buffer, () => this.readDataSent(data as Buffer));
      }
      return;
    }
    this.send(encodeSimpleReply(req.cookie, error));
    if (data && !error) this.send(data, () => this.readDataSent(data));
  }

  private maybeFinishDisconnect(): void {
    if (this.inFlight > 0) return;
    this.closeExport();
    // Replies still waiting for the end of this turn go first.
    this.flushOut();
    this.socket.end();
  }
}

function errnoOf(err: unknown): number {
  if (err instanceof StorageError) {
    switch (err.code) {
      case 'ENOSPC':
        return NbdErrno.ENOSPC;
      case 'EINVAL':
        return NbdErrno.EINVAL;
      case 'ECLOSED':
        return NbdErrno.ESHUTDOWN;
      default:
        return NbdErrno.EIO;
    }
  }
  const code = (err as { nbdErrno?: number }).nbdErrno;
  return typeof code === 'number' ? code : NbdErrno.EIO;
}
