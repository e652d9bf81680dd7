// The control socket of tandemd: a unix socket (mode 0600) where tandemadm
// sends one request per line and reads one response per line.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import {
  type ControlError,
  ControlProtocolError,
  type ControlRequest,
  decodeRequest,
  encodeResponse,
  LineSplitter,
} from './control-protocol.js';

/** A handler's failure that becomes an error response (anything else is INTERNAL). */
export class ControlFailure extends Error {
  readonly failure: ControlError;
  constructor(failure: ControlError) {
    super(failure.message);
    this.failure = failure;
  }
}

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

/** Connections served at once. */
export const controlClientsMax = 32;

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly handler: ControlHandler;
  private readonly onInternalError: (e: unknown) => void;

  constructor(handler: ControlHandler, onInternalError: (e: unknown) => void) {
    this.handler = handler;
    this.onInternalError = onInternalError;
  }

  async listen(path: string): Promise<void> {
    rmSync(path, { force: true });
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // Only root may change the state of the node's disks.
    chmodSync(path, 0o600);
    this.server = server;
  }

  private accept(socket: Socket): void {
    if (this.sockets.size >= controlClientsMax) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    const lines = new LineSplitter();
    socket.on('data', (chunk: string) => {
      let reqs: string[];
      try {
        reqs = lines.push(chunk);
      } catch (e) {
        socket.end(
          encodeResponse({ id: 0, ok: false, error: { code: 'BAD_REQUEST', message: (e as Error).message } }),
        );
        return;
      }
      for (const line of reqs) void this.serve(socket, line);
    });
  }

  private async serve(socket: Socket, line: string): Promise<void> {
    let req: ControlRequest;
    try {
      req = decodeRequest(line);
    } catch (e) {
      if (!(e instanceof ControlProtocolError)) throw e;
      socket.write(encodeResponse({ id: 0, ok: false, error: { code: 'BAD_REQUEST', message: e.message } }));
      return;
    }
    try {
      const result = await this.handler(req);
      if (!socket.destroyed) socket.write(encodeResponse({ id: req.id, ok: true, result: result ?? null }));
    } catch (e) {
      let error: ControlError;
      if (e instanceof ControlFailure) error = e.failure;
      else {
        this.onInternalError(e);
        error = { code: 'INTERNAL', message: `internal error: ${(e as Error).message}` };
      }
      if (!socket.destroyed) socket.write(encodeResponse({ id: req.id, ok: false, error }));
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
