// tandemadm's side of the control socket: connect, send one request, wait
// for its response, with a deadline.
import { connect } from 'node:net';
import {
  type ControlCommand,
  type ControlResponse,
  decodeResponse,
  encodeRequest,
  LineSplitter,
} from './control-protocol.js';

export class DaemonUnreachableError extends Error {
  readonly code = 'DAEMON_UNREACHABLE';
}

export async function callDaemon(
  socketPath: string,
  cmd: ControlCommand,
  resource: string,
  force = false,
  timeoutMs = 120_000,
  extra: { discardMyData?: boolean } = {},
): Promise<ControlResponse> {
  const socket = connect(socketPath);
  socket.setEncoding('utf8');
  return new Promise<ControlResponse>((resolve, reject) => {
    const lines = new LineSplitter();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DaemonUnreachableError(`tandemd did not answer '${cmd}' within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(encodeRequest({ id: 1, cmd, resource, force, ...extra })));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${e.code})`;
      reject(new DaemonUnreachableError(`tandemd ${why} (control socket ${socketPath})`));
    });
    socket.on('data', (chunk: string) => {
      try {
        for (const line of lines.push(chunk)) {
          clearTimeout(timer);
          socket.end();
          resolve(decodeResponse(line));
          return;
        }
      } catch (e) {
        clearTimeout(timer);
        socket.destroy();
        reject(e);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new DaemonUnreachableError(`tandemd closed the control connection without answering '${cmd}'`));
    });
  });
}
