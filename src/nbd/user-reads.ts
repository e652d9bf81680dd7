// Reads from an accepted connection into buffers the reader chooses, with
// Node's `onread` socket option, instead of the stream path (a fresh 64 KiB
// buffer per read, pushed through a Readable). A WRITE payload can then be read
// straight into its own buffer, with larger reads and nothing for the GC.
//
// Measured on our machines, a unix socket carrying 1 MiB writes: the stream path
// costs the main thread about 230 us of CPU per MiB received, `onread` about
// 140 us including one copy out. On the NBD server that thread is the limit of
// sequential writes.
//
// `onread` is a documented option of `new net.Socket()`, but net.Server builds
// its sockets itself and takes no such option. So a socket accepted paused
// (`pauseOnConnect`) is wrapped again around the same handle: `handle` and
// `_handle` are Node internals, stable since Node 12 and checked here; where
// they are missing the accepted socket is returned as it is and its reader falls
// back to 'data' events. test/nbd/user-reads.test.ts fails if this Node takes
// the fallback.
import { Socket, type SocketConstructorOpts } from 'node:net';

export interface UserReads {
  /** The buffer the next read goes into (its whole length may be filled). */
  next(): Buffer;
  /** `n` bytes arrived at the start of `buf`, the buffer next() returned last. */
  arrived(n: number, buf: Buffer): void;
}

interface InternalSocket {
  _handle?: { readStart?: unknown; readStop?: unknown; useUserBuffer?: unknown } | null;
}

/**
 * The same connection as `accepted` (accepted paused, nothing read yet), now
 * reading through `reads`; undefined if this Node does not allow it, and then
 * `accepted` is untouched. The new socket is not counted in the server's
 * connections: whoever accepted it closes it.
 */
export function adoptForUserReads(accepted: Socket, reads: UserReads): Socket | undefined {
  const internal = accepted as unknown as InternalSocket;
  const handle = internal._handle;
  if (
    !handle ||
    typeof handle.readStart !== 'function' ||
    typeof handle.useUserBuffer !== 'function' ||
    accepted.readableFlowing !== false ||
    accepted.bytesRead !== 0
  )
    return undefined;
  // The old socket lets go of the handle first, so destroying it only settles the
  // server's count of connections (it closes no handle).
  internal._handle = null;
  accepted.destroy();
  const options = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: () => reads.next(),
      callback: (n: number, buf: Uint8Array) => {
        reads.arrived(n, buf as Buffer);
        return true;
      },
    },
  };
  return new Socket(options as SocketConstructorOpts);
}
