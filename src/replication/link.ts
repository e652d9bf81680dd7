// PeerLink: the one TCP connection between two tandemd for one resource, from connecting
// to an authenticated, live link (DRBD 8.4's WFConnection → WFReportParams → Connected).
// Owns the sockets, the Hello/auth handshake, the tie-break and ping liveness; what flows
// after the handshake goes to `onFrame`.
//
// Tie-break: both nodes listen and connect (DRBD style). Of two connections between the
// same pair only the one initiated by the node whose name sorts lower is kept; the other
// is closed right after Hello, and on the lower node it triggers an immediate connect so
// the higher node's attempt still speeds up reconnection.
//
// TLS (`tls yes`, a tandem extension): every connection is wrapped in mutual TLS before
// its first byte of Hello — each side presents its node certificate, signed by the
// configured CA, whose subject (CN or a DNS subjectAltName) must be the peer's node name.
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import {
  type PeerCertificate,
  type TLSSocket,
  connect as tlsConnect,
  createServer as tlsServer,
} from 'node:tls';
import { authMismatch, CramHmac } from './auth.js';
import { type LinkClock, realClock, type TimerHandle } from './clock.js';
import { ProtocolError } from './errors.js';
import { encodeFrame, encodeFrameParts, type Frame, type FrameOf } from './frames.js';
import { negotiateVersion, protocolVersionMax, protocolVersionMin } from './header.js';
import { type DisconnectReason, helloFeaturesKnown } from './messages-session.js';
import { FrameDecoder } from './stream.js';

/** The connection states PeerLink goes through (DRBD 8.4 `enum drbd_conns` names). */
export type LinkState =
  | 'StandAlone'
  | 'WFConnection'
  | 'WFReportParams'
  | 'Connected'
  | 'NetworkFailure'
  | 'ProtocolError'
  | 'BrokenPipe'
  | 'Timeout';

/** Why a state was entered; tests and callers match `code`, the message is for the log. */
export type LinkReasonCode =
  | 'start'
  | 'stop'
  | 'handshake'
  | 'connected'
  /** Wrong shared-secret, or one configured on one side only (fatal: StandAlone). */
  | 'auth-failed'
  /** Resource name, node name or protocol versions that cannot work together (fatal: StandAlone). */
  | 'incompatible'
  | 'protocol-error'
  /** The sync handshake found a split brain (or unrelated data) it may not resolve (fatal: StandAlone). */
  | 'split-brain'
  /** The sync handshake refused for another reason, e.g. a SyncSource without good data (fatal). */
  | 'sync-refused'
  | 'ping-timeout'
  | 'handshake-timeout'
  | 'peer-closed'
  | 'peer-disconnect'
  | 'socket-error';

export interface LinkReason {
  readonly code: LinkReasonCode;
  readonly message: string;
}

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface PeerLinkOptions {
  /** The resource this link replicates; the peer's Hello must name the same. */
  readonly resource: string;
  /** This node's name (`on NAME`). */
  readonly nodeName: string;
  /** The peer's node name; its Hello must carry it. */
  readonly peerName: string;
  /** Where this node listens (its own `address`). */
  readonly listen: Endpoint;
  /** The peer's `address`. */
  readonly peer: Endpoint;
  /** `cram-hmac-alg` and `shared-secret`; both or neither. */
  readonly auth?: { readonly alg: string; readonly secret: string } | undefined;
  /** `tls yes`: PEM file paths of this node's certificate and key, and of the CA. */
  readonly tls?: { readonly certificate: string; readonly privkey: string; readonly ca: string } | undefined;
  /** DRBD connect-int: between connection attempts (default 10 s). */
  readonly connectIntMs?: number;
  /** DRBD ping-int: a Ping on a Connected link this often (default 10 s). */
  readonly pingIntMs?: number;
  /** DRBD ping-timeout: no PingAck within this → NetworkFailure (default 500 ms). */
  readonly pingTimeoutMs?: number;
  /** DRBD timeout: the whole handshake must finish within this (default 6 s). */
  readonly handshakeTimeoutMs?: number;
  readonly clock?: LinkClock;
  /** Every state change, failures included (they are followed by WFConnection or StandAlone). */
  readonly onState?: (state: LinkState, reason: LinkReason) => void;
  /** Frames after the handshake other than Ping/PingAck/Disconnect, which the link handles. */
  readonly onFrame?: (frame: Frame) => void;
  /**
   * The frames one read of the Connected link brought, before any of them goes to onFrame
   * (e.g. to acknowledge their receipt before the work they ask for).
   */
  readonly onFrames?: (frames: readonly Frame[]) => void;
  /** One line about a connection that is not (yet) the link's, e.g. garbage on the port. */
  readonly onLog?: (message: string) => void;
  /** Bytes arrived on the Connected link (the daemon's busy poll). */
  readonly onActivity?: () => void;
}

export const connectIntMsDefault = 10_000;
export const pingIntMsDefault = 10_000;
export const pingTimeoutMsDefault = 500;
export const handshakeTimeoutMsDefault = 6_000;
/** Connections accepted but not yet through Hello; more are refused at once. */
export const pendingConnectionsMax = 8;
/** Inbound connections at once, TLS handshakes included (the link and those waiting). */
export const listenerConnectionsMax = pendingConnectionsMax + 1;
const tandemVersion = '0.1.0';

type Phase = 'hello' | 'auth' | 'connected' | 'closed';

interface Conn {
  readonly socket: Socket;
  /** Initiated by this node. */
  readonly outbound: boolean;
  readonly decoder: FrameDecoder;
  phase: Phase;
  auth: CramHmac | undefined;
  /** Our verdict on the peer's AuthResponse was ok. */
  peerProved: boolean;
  /** The peer's AuthResult on our response was ok. */
  weProved: boolean;
  handshakeTimer: TimerHandle | undefined;
  /** Corked for the rest of this event-loop turn (see corkTurn). */
  corked: boolean;
}

/** A fatal refusal (no retry) or a failure after which the link connects again. */
interface Failure {
  readonly state: LinkState;
  readonly reason: LinkReason;
  /** Goes to StandAlone instead of back to WFConnection (DRBD: auth failure, incompatible peer). */
  readonly fatal?: boolean;
  /** Sent to the peer before closing, so its log says why. */
  readonly tell?: DisconnectReason;
}

export class PeerLink {
  private readonly o: PeerLinkOptions;
  private readonly clock: LinkClock;
  private readonly connectIntMs: number;
  private readonly pingIntMs: number;
  private readonly pingTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private currentState: LinkState = 'StandAlone';
  private lastReason: LinkReason = { code: 'stop', message: 'not started' };
  private server: Server | undefined;
  private readonly conns = new Set<Conn>();
  /** The connection past the tie-break (WFReportParams or Connected). */
  private active: Conn | undefined;
  /** The outbound attempt in progress, until it connects or fails. */
  private dialing: Socket | undefined;
  private connectTimer: TimerHandle | undefined;
  private pingTimer: TimerHandle | undefined;
  private pingAckTimer: TimerHandle | undefined;
  private running = false;
  /** Settles when what a fatal refusal closed (listener, sockets) is closed. */
  private halted: Promise<void> = Promise.resolve();
  /** pauseReading() is in effect (a new connection starts reading). */
  private readingPaused = false;
  private busyTimer: TimerHandle | undefined;
  /** The TLS material, read at start(). */
  private tlsMaterial: { cert: Buffer; key: Buffer; ca: Buffer } | undefined;

  constructor(options: PeerLinkOptions) {
    if (options.nodeName === options.peerName) {
      throw new Error(`node name ${options.nodeName} is also the peer's: the tie-break needs two names`);
    }
    this.o = options;
    this.clock = options.clock ?? realClock;
    this.connectIntMs = options.connectIntMs ?? connectIntMsDefault;
    this.pingIntMs = options.pingIntMs ?? pingIntMsDefault;
    this.pingTimeoutMs = options.pingTimeoutMs ?? pingTimeoutMsDefault;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
  }

  get state(): LinkState {
    return this.currentState;
  }

  /** Why the current state was entered (e.g. the auth failure after StandAlone). */
  get reason(): LinkReason {
    return this.lastReason;
  }

  /** Listens, then connects every connect-int until Connected. Resolves once listening. */
  async start(): Promise<void> {
    if (this.running) return;
    const tls = this.o.tls;
    if (tls !== undefined) {
      const read = async (what: string, path: string): Promise<Buffer> => {
        if (path === '') throw new Error(`tls yes needs ${what} (a PEM file)`);
        try {
          return await readFile(path);
        } catch (e) {
          throw new Error(`${what} ${path}: ${(e as Error).message}`);
        }
      };
      this.tlsMaterial = {
        cert: await read('tls-certificate', tls.certificate),
        key: await read('tls-privkey', tls.privkey),
        ca: await read('tls-ca', tls.ca),
      };
    }
    this.running = true;
    const m = this.tlsMaterial;
    const server =
      m === undefined
        ? createServer((socket) => this.accept(socket))
        : tlsServer(
            {
              cert: m.cert,
              key: m.key,
              ca: m.ca,
              requestCert: true,
              rejectUnauthorized: true,
              handshakeTimeout: this.handshakeTimeoutMs,
            },
            (t) => {
              const problem = this.certificateProblem(t);
              if (problem === undefined) this.accept(t);
              else {
                this.log(`refused: TLS from ${t.remoteAddress}:${t.remotePort}: ${problem}`);
                t.destroy();
              }
            },
          );
    // Connections the listener holds at once, TLS handshakes included: those waiting for
    // their Hello, and the one that is the link. Past it the kernel's socket is closed
    // at once, before any TLS work.
    server.maxConnections = listenerConnectionsMax;
    if (m !== undefined)
      server.on('tlsClientError', (err, sock) => {
        this.log(`refused: TLS from ${sock.remoteAddress}:${sock.remotePort}: ${err.message}`);
        // Node reports a handshake timeout here but leaves the socket open: without this
        // a silent client would hold its place under maxConnections for ever.
        sock.destroy();
      });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.listen.port, this.o.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log(`listener: ${err.message}`));
    this.setState('WFConnection', { code: 'start', message: `listening on ${this.describeListen()}` });
    this.dial();
  }

  /**
   * Sends a frame on the Connected link. Returns false (and sends nothing) when the link
   * is not Connected: the caller keeps the write for resync (DRBD marks it out of sync).
   */
  send(frame: Frame): boolean {
    const conn = this.active;
    if (conn === undefined || conn.phase !== 'connected') return false;
    this.corkTurn(conn);
    conn.socket.write(encodeFrame(frame));
    return true;
  }

  /**
   * What this turn sent so far goes on the wire now, not at the end of the turn: for acks
   * that must not wait for the work the rest of the turn does.
   */
  flushNow(): void {
    const conn = this.active;
    if (conn === undefined || !conn.corked) return;
    conn.socket.uncork();
    conn.socket.cork();
  }

  /**
   * Frames sent in one turn of the event loop leave in one writev: the socket is
   * corked at the first and uncorked on the next tick (microseconds later), which
   * costs no latency but saves a syscall per small frame (acks, barriers).
   */
  private corkTurn(conn: Conn): void {
    if (conn.corked) return;
    conn.corked = true;
    conn.socket.cork();
    process.nextTick(() => {
      conn.corked = false;
      conn.socket.uncork();
    });
  }

  /**
   * Like send(), without copying bulk payloads: the frame's payload buffer is handed to
   * the socket as is, so the caller must not reuse it before `written` is called (the
   * bytes are in the kernel's send queue, or the connection failed: `written(false)`).
   */
  sendZeroCopy(frame: Frame, written?: (ok: boolean) => void): boolean {
    const conn = this.active;
    if (conn === undefined || conn.phase !== 'connected') return false;
    const parts = encodeFrameParts(frame);
    const socket = conn.socket;
    this.corkTurn(conn);
    for (let i = 0; i < parts.length - 1; i++) socket.write(parts[i]!);
    socket.write(parts[parts.length - 1]!, written === undefined ? undefined : (err) => written(!err));
    return true;
  }

  /** Bytes queued on the Connected link's socket, not yet in the kernel (0 when not Connected). */
  get queuedBytes(): number {
    const conn = this.active;
    return conn === undefined || conn.phase !== 'connected' ? 0 : conn.socket.writableLength;
  }

  /** Settles when the socket's queue has drained (or the connection is gone). */
  whenDrained(): Promise<void> {
    const conn = this.active;
    if (conn === undefined || conn.phase !== 'connected' || conn.socket.writableLength === 0) {
      return Promise.resolve();
    }
    const socket = conn.socket;
    return new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.once('drain', done);
      socket.once('close', done);
    });
  }

  /**
   * Ends the Connected link for a reason found above the link (incompatible settings, a
   * split brain, a frame that makes no sense in the current state). `fatal` goes
   * StandAlone with no retry, as DRBD does after a failed sync handshake.
   */
  drop(reason: LinkReason, options: { fatal: boolean; state?: LinkState; tell?: DisconnectReason }): void {
    const conn = this.active;
    if (conn === undefined) return;
    this.fail(conn, {
      state: options.state ?? (options.fatal ? 'StandAlone' : 'ProtocolError'),
      reason,
      fatal: options.fatal,
      ...(options.tell === undefined ? {} : { tell: options.tell }),
    });
  }

  /** Closes everything (telling a Connected peer 'shutdown'), clears all timers; resolves when closed. */
  async stop(): Promise<void> {
    if (!this.running) {
      // Not started, stopped, or halted by a fatal refusal: wait for what halt() closes.
      await this.halted;
      return;
    }
    this.running = false;
    this.clearTimers();
    const closing: Promise<void>[] = [];
    const dialing = this.dialing;
    if (dialing !== undefined) {
      closing.push(new Promise((resolve) => dialing.once('close', () => resolve())));
      dialing.destroy();
    }
    for (const conn of this.conns) {
      closing.push(new Promise((resolve) => conn.socket.once('close', () => resolve())));
      const goodbye =
        conn.phase === 'connected'
          ? encodeFrame({ kind: 'Disconnect', volume: 0, body: { reason: 'shutdown', message: 'stopping' } })
          : undefined;
      this.closeConn(conn, goodbye);
    }
    this.active = undefined;
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) closing.push(new Promise((resolve) => server.close(() => resolve())));
    await Promise.all(closing);
    this.setState('StandAlone', { code: 'stop', message: 'stopped' });
  }

  // ------------------------------------------------------------ connections

  private dial(): void {
    if (!this.running || this.dialing || this.active !== undefined) return;
    const socket = tcpConnect({ host: this.o.peer.host, port: this.o.peer.port });
    this.dialing = socket;
    const failed = (err: Error): void => {
      this.dialing = undefined;
      socket.destroy();
      this.log(`connect to ${this.o.peer.host}:${this.o.peer.port}: ${err.message}`);
      this.scheduleDial();
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      if (!this.running || this.active !== undefined) {
        this.dialing = undefined;
        socket.destroy();
        return;
      }
      if (this.tlsMaterial === undefined) {
        this.dialing = undefined;
        this.adopt(socket, true);
        return;
      }
      this.secure(socket).then(
        (t) => {
          this.dialing = undefined;
          if (!this.running || this.active !== undefined) t.destroy();
          else this.adopt(t, true);
        },
        (err: Error) => {
          this.dialing = undefined;
          socket.destroy();
          this.log(`refused: TLS with ${this.o.peer.host}:${this.o.peer.port}: ${err.message}`);
          this.scheduleDial();
        },
      );
    });
  }

  /** Why a TLS peer's certificate is not the peer node's, or undefined when it is. */
  private certificateProblem(t: TLSSocket): string | undefined {
    if (!t.authorized) return `the certificate is not signed by tls-ca (${String(t.authorizationError)})`;
    const names = certificateNames(t.getPeerCertificate());
    if (names.includes(this.o.peerName)) return undefined;
    return `the certificate is ${names.join(', ') || 'nameless'}'s, not ${this.o.peerName}'s`;
  }

  /**
   * The client side of the TLS handshake on a fresh TCP connection; resolves with the TLS
   * socket once the server's certificate is the peer node's (our own goes with it).
   */
  private secure(socket: Socket): Promise<Socket> {
    const m = this.tlsMaterial!;
    const t = tlsConnect({
      socket,
      cert: m.cert,
      key: m.key,
      ca: m.ca,
      rejectUnauthorized: true,
      // The name is checked against the node name below, not against a host name.
      checkServerIdentity: () => undefined,
    });
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        t.destroy();
        reject(new Error(`no TLS handshake within ${this.handshakeTimeoutMs} ms`));
      }, this.handshakeTimeoutMs);
      t.once('error', (err) => {
        this.clock.clearTimeout(timer);
        t.destroy();
        reject(err);
      });
      t.once('secureConnect', () => {
        this.clock.clearTimeout(timer);
        const problem = this.certificateProblem(t);
        if (problem !== undefined) {
          t.destroy();
          reject(new Error(problem));
          return;
        }
        resolve(t);
      });
    });
  }

  private scheduleDial(): void {
    if (!this.running || this.connectTimer !== undefined || this.active !== undefined) return;
    this.connectTimer = this.clock.setTimeout(() => {
      this.connectTimer = undefined;
      this.dial();
    }, this.connectIntMs);
  }

  private accept(socket: Socket): void {
    if (!this.running || this.conns.size >= pendingConnectionsMax) {
      socket.destroy();
      return;
    }
    this.adopt(socket, false);
  }

  private adopt(socket: Socket, outbound: boolean): void {
    socket.setNoDelay(true);
    const conn: Conn = {
      socket,
      outbound,
      decoder: new FrameDecoder(),
      phase: 'hello',
      auth: undefined,
      peerProved: false,
      weProved: false,
      handshakeTimer: undefined,
      corked: false,
    };
    this.conns.add(conn);
    conn.handshakeTimer = this.clock.setTimeout(() => {
      conn.handshakeTimer = undefined;
      this.fail(conn, {
        state: 'Timeout',
        reason: { code: 'handshake-timeout', message: `no handshake within ${this.handshakeTimeoutMs} ms` },
      });
    }, this.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.o.onActivity?.();
      this.receive(conn, chunk);
    });
    socket.on('error', (err) => {
      this.fail(conn, { state: 'NetworkFailure', reason: { code: 'socket-error', message: err.message } });
    });
    socket.on('close', () => {
      this.fail(conn, {
        state: 'BrokenPipe',
        reason: { code: 'peer-closed', message: 'the peer closed the connection' },
      });
      this.conns.delete(conn);
    });
    const { auth } = this.o;
    this.write(conn, {
      kind: 'Hello',
      volume: 0,
      body: {
        protocolMin: protocolVersionMin,
        protocolMax: protocolVersionMax,
        features: helloFeaturesKnown,
        nodeName: this.o.nodeName,
        resourceName: this.o.resource,
        tandemVersion,
        authAlg: auth?.alg ?? '',
      },
    });
  }

  private receive(conn: Conn, chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = conn.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(conn, protocolError(`${err.code}: ${err.message}`));
      return;
    }
    if (frames.length > 0 && conn.phase === 'connected' && conn === this.active) this.o.onFrames?.(frames);
    for (const frame of frames) {
      if (conn.phase === 'closed') return;
      this.handle(conn, frame);
    }
  }

  private handle(conn: Conn, frame: Frame): void {
    // Disconnect is accepted in every phase: it says why the peer refuses us.
    if (frame.kind === 'Disconnect') {
      const { reason, message } = frame.body;
      const fatal = reason === 'auth-failed' || reason === 'incompatible' || reason === 'split-brain';
      this.fail(conn, {
        state: fatal ? 'StandAlone' : 'BrokenPipe',
        reason: {
          code: fatal ? reason : 'peer-disconnect',
          message: `peer disconnected (${reason}): ${message}`,
        },
        fatal,
      });
      return;
    }
    switch (conn.phase) {
      case 'hello':
        if (frame.kind !== 'Hello') {
          this.fail(conn, unexpected(frame, 'Hello'));
          return;
        }
        this.onHello(conn, frame);
        return;
      case 'auth':
        this.onAuthFrame(conn, frame);
        return;
      case 'connected':
        this.onConnectedFrame(conn, frame);
        return;
      case 'closed':
        return;
    }
  }

  private onHello(conn: Conn, frame: FrameOf<'Hello'>): void {
    const h = frame.body;
    const version = negotiateVersion(
      { min: protocolVersionMin, max: protocolVersionMax },
      { min: h.protocolMin, max: h.protocolMax },
    );
    const refuse = (code: 'incompatible' | 'auth-failed', message: string): void =>
      this.fail(conn, { state: 'StandAlone', reason: { code, message }, fatal: true, tell: code });
    if (h.resourceName !== this.o.resource) {
      refuse('incompatible', `resource ${h.resourceName} on the peer, ${this.o.resource} here`);
      return;
    }
    if (h.nodeName !== this.o.peerName) {
      refuse('incompatible', `the peer calls itself ${h.nodeName}, expected ${this.o.peerName}`);
      return;
    }
    if (version === undefined) {
      const ours = `${protocolVersionMin}..${protocolVersionMax}`;
      refuse('incompatible', `protocol versions ${h.protocolMin}..${h.protocolMax} vs ${ours} here`);
      return;
    }
    const mismatch = authMismatch(this.o.auth?.alg ?? '', h.authAlg);
    if (mismatch !== undefined) {
      refuse('auth-failed', mismatch);
      return;
    }
    // The tie-break: keep the connection the lower-named node initiated.
    const weAreLower = this.o.nodeName < this.o.peerName;
    if (conn.outbound !== weAreLower || this.active !== undefined) {
      this.log(`closing the duplicate connection ${conn.outbound ? 'to' : 'from'} ${h.nodeName}`);
      this.closeConn(conn);
      if (weAreLower) this.dial();
      else this.scheduleDial();
      return;
    }
    this.active = conn;
    this.clearConnectTimer();
    this.setState('WFReportParams', {
      code: 'handshake',
      message: `${conn.outbound ? 'connected to' : 'accepted'} ${h.nodeName}, protocol ${version}`,
    });
    const { auth } = this.o;
    if (auth === undefined) {
      this.connected(conn);
      return;
    }
    try {
      conn.auth = new CramHmac(auth.alg, auth.secret);
    } catch (err) {
      refuse('auth-failed', (err as Error).message);
      return;
    }
    conn.phase = 'auth';
    this.write(conn, { kind: 'AuthChallenge', volume: 0, body: { challenge: conn.auth.challenge } });
  }

  /** Both directions at once: answer the peer's challenge, judge its answer, hear its verdict. */
  private onAuthFrame(conn: Conn, frame: Frame): void {
    const auth = conn.auth!;
    const authFailed = (message: string): void =>
      this.fail(conn, {
        state: 'StandAlone',
        reason: { code: 'auth-failed', message },
        fatal: true,
        tell: 'auth-failed',
      });
    switch (frame.kind) {
      case 'AuthChallenge': {
        const answer = auth.respond(frame.body.challenge);
        if (!answer.ok) {
          this.write(conn, { kind: 'AuthResult', volume: 0, body: { result: answer.result } });
          authFailed(`the peer sent our own challenge back (${answer.result})`);
          return;
        }
        this.write(conn, { kind: 'AuthResponse', volume: 0, body: { response: answer.response } });
        return;
      }
      case 'AuthResponse': {
        const verdict = auth.verify(frame.body.response);
        this.write(conn, { kind: 'AuthResult', volume: 0, body: { result: verdict } });
        if (verdict !== 'ok') {
          authFailed(`the peer's answer to our challenge is wrong: shared-secret differs (${auth.alg})`);
          return;
        }
        conn.peerProved = true;
        break;
      }
      case 'AuthResult':
        if (frame.body.result !== 'ok') {
          authFailed(`the peer refused our answer (${frame.body.result}): shared-secret differs`);
          return;
        }
        conn.weProved = true;
        break;
      default:
        this.fail(conn, unexpected(frame, 'AuthChallenge, AuthResponse or AuthResult'));
        return;
    }
    if (conn.peerProved && conn.weProved) this.connected(conn);
  }

  private connected(conn: Conn): void {
    conn.phase = 'connected';
    this.readingPaused = false;
    if (conn.handshakeTimer !== undefined) this.clock.clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = undefined;
    this.setState('Connected', {
      code: 'connected',
      message:
        this.o.auth === undefined && this.o.tls === undefined
          ? `connected to ${this.o.peerName} (unauthenticated: no shared-secret)`
          : `connected to ${this.o.peerName} (authenticated: ${[
              ...(this.o.tls ? ['TLS'] : []),
              ...(this.o.auth ? [this.o.auth.alg] : []),
            ].join(', ')})`,
    });
    this.schedulePing();
  }

  private onConnectedFrame(conn: Conn, frame: Frame): void {
    switch (frame.kind) {
      case 'Ping':
        this.write(conn, { kind: 'PingAck', volume: 0, body: {} });
        return;
      case 'PingAck':
        if (this.pingAckTimer !== undefined) this.clock.clearTimeout(this.pingAckTimer);
        this.pingAckTimer = undefined;
        this.schedulePing();
        return;
      case 'Hello':
      case 'AuthChallenge':
      case 'AuthResponse':
      case 'AuthResult':
        this.fail(conn, unexpected(frame, 'no handshake frame after Connected'));
        return;
      default:
        this.o.onFrame?.(frame);
    }
  }

  // ------------------------------------------------------------ liveness

  /**
   * Backpressure: stop reading the Connected link's socket (the peer's writes then wait
   * in TCP, and its bounded send queue makes its writers wait) until resumeReading().
   */
  pauseReading(): void {
    const conn = this.active;
    if (conn === undefined || conn.phase !== 'connected' || this.readingPaused) return;
    this.readingPaused = true;
    conn.socket.pause();
    // The peer's Pings wait unread in the socket: tell it we are alive (an unsolicited
    // PingAck counts as one) every half ping-timeout while we do not read. A peer whose
    // requests stay unanswered this way is ko-count's business, as in DRBD.
    const alive = (): void => {
      this.busyTimer = undefined;
      if (!this.readingPaused || this.active !== conn || conn.phase !== 'connected') return;
      this.write(conn, { kind: 'PingAck', volume: 0, body: {} });
      this.busyTimer = this.clock.setTimeout(alive, Math.max(20, this.pingTimeoutMs / 2));
    };
    alive();
  }

  resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    if (this.busyTimer !== undefined) this.clock.clearTimeout(this.busyTimer);
    this.busyTimer = undefined;
    this.active?.socket.resume();
  }

  private schedulePing(): void {
    if (this.pingTimer !== undefined || this.pingAckTimer !== undefined) return;
    this.pingTimer = this.clock.setTimeout(() => {
      this.pingTimer = undefined;
      const conn = this.active;
      if (conn === undefined || conn.phase !== 'connected') return;
      this.write(conn, { kind: 'Ping', volume: 0, body: {} });
      const judge = (): void => {
        this.pingAckTimer = undefined;
        // We stopped reading ourselves (our disk is behind): the PingAck may be waiting
        // in the socket. Not the peer's fault; look again once reading goes on.
        if (this.readingPaused) {
          this.pingAckTimer = this.clock.setTimeout(judge, this.pingTimeoutMs);
          return;
        }
        this.fail(conn, {
          state: 'NetworkFailure',
          reason: {
            code: 'ping-timeout',
            message: `no PingAck within ping-timeout ${this.pingTimeoutMs} ms`,
          },
        });
      };
      this.pingAckTimer = this.clock.setTimeout(judge, this.pingTimeoutMs);
    }, this.pingIntMs);
  }

  // ------------------------------------------------------------ failure

  /**
   * Ends one connection. Failures of the link's own connection (or fatal refusals on any)
   * become states; others are only logged. Never throws: the peer is the outside world.
   */
  private fail(conn: Conn, failure: Failure): void {
    if (conn.phase === 'closed') return;
    // Only an authenticated peer may stop the link for good (a split brain it decided):
    // a refusal before that — a wrong secret, another resource, a stranger's Disconnect —
    // may come from anyone who can reach the port, and must not end replication.
    const authenticated = conn.phase === 'connected';
    const goodbye =
      failure.tell === undefined
        ? undefined
        : encodeFrame({
            kind: 'Disconnect',
            volume: 0,
            body: { reason: failure.tell, message: truncate(failure.reason.message) },
          });
    this.closeConn(conn, goodbye);
    const wasActive = conn === this.active;
    if (wasActive) {
      this.active = undefined;
      this.clearPingTimers();
    }
    if (!this.running) return;
    if (failure.fatal && authenticated) {
      this.setState('StandAlone', failure.reason);
      this.halt();
      return;
    }
    if (failure.fatal) {
      // Refused before authentication (DRBD: "Authentication of peer failed, trying
      // again"): said in the log and the state's reason, and tried again at connect-int.
      this.log(`refused: ${failure.reason.message}`);
      if (wasActive || this.active === undefined) this.setState('WFConnection', failure.reason);
      if (wasActive || conn.outbound) this.scheduleDial();
      return;
    }
    if (!wasActive) {
      this.log(`${failure.state}: ${failure.reason.message}`);
      // Our own attempt failed before it became the connection (a peer silent after the
      // TCP connect: a partition during the handshake): dial again, or no node ever would.
      if (conn.outbound) this.scheduleDial();
      return;
    }
    this.setState(failure.state, failure.reason);
    this.setState('WFConnection', failure.reason);
    this.scheduleDial();
  }

  /** After a fatal refusal: close the listener and every connection, keep the reason. */
  private halt(): void {
    this.running = false;
    this.clearTimers();
    const closing: Promise<void>[] = [];
    for (const conn of this.conns) {
      closing.push(new Promise((resolve) => conn.socket.once('close', () => resolve())));
      this.closeConn(conn);
    }
    const { dialing, server } = this;
    if (dialing !== undefined) {
      closing.push(new Promise((resolve) => dialing.once('close', () => resolve())));
      dialing.destroy();
    }
    if (server !== undefined) closing.push(new Promise((resolve) => server.close(() => resolve())));
    this.server = undefined;
    this.halted = Promise.all(closing).then(() => {});
  }

  /** Closes a socket, after flushing `goodbye` if given. Idempotent. */
  private closeConn(conn: Conn, goodbye?: Buffer): void {
    if (conn.phase === 'closed') return;
    conn.phase = 'closed';
    if (conn.handshakeTimer !== undefined) this.clock.clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = undefined;
    if (goodbye === undefined || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    conn.socket.end(goodbye, () => conn.socket.destroy());
  }

  private write(conn: Conn, frame: Frame): void {
    if (conn.phase === 'closed' || conn.socket.destroyed) return;
    conn.socket.write(encodeFrame(frame));
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) this.clock.clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  private clearPingTimers(): void {
    if (this.pingTimer !== undefined) this.clock.clearTimeout(this.pingTimer);
    if (this.pingAckTimer !== undefined) this.clock.clearTimeout(this.pingAckTimer);
    if (this.busyTimer !== undefined) this.clock.clearTimeout(this.busyTimer);
    this.pingTimer = undefined;
    this.pingAckTimer = undefined;
    this.busyTimer = undefined;
  }

  private clearTimers(): void {
    this.clearConnectTimer();
    this.clearPingTimers();
    for (const conn of this.conns) {
      if (conn.handshakeTimer !== undefined) this.clock.clearTimeout(conn.handshakeTimer);
      conn.handshakeTimer = undefined;
    }
  }

  private setState(state: LinkState, reason: LinkReason): void {
    this.currentState = state;
    this.lastReason = reason;
    this.o.onState?.(state, reason);
  }

  private log(message: string): void {
    this.o.onLog?.(`${this.o.resource} ${this.o.nodeName}: ${message}`);
  }

  private describeListen(): string {
    const a = this.server?.address();
    return typeof a === 'object' && a !== null ? `${a.address}:${a.port}` : `${this.o.listen.host}`;
  }
}

function protocolError(message: string): Failure {
  return {
    state: 'ProtocolError',
    reason: { code: 'protocol-error', message },
    tell: 'protocol-error',
  };
}

function unexpected(frame: Frame, expected: string): Failure {
  return protocolError(`${frame.kind} where ${expected} was expected`);
}

/** A Disconnect message is at most 255 UTF-8 bytes. */
function truncate(message: string): string {
  let s = message;
  while (Buffer.byteLength(s) > 255) s = s.slice(0, -1);
  return s;
}

/** The names a certificate is for: its subject CN and DNS subjectAltNames. */
function certificateNames(cert: PeerCertificate): string[] {
  const names: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') names.push(cn);
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m?.[1]) names.push(m[1].trim());
  }
  return names;
}
