// Errors of the peer-link codec. The peer is the outside world: whatever it sends
// becomes a frame or a ProtocolError with a stable `code` (what tests and the
// connection match) and the byte offset in the frame where the decoder stopped.

export type ProtocolErrorCode =
  /** The first four bytes of a frame are not tandem's peer-link magic: not a tandem peer, or lost framing. */
  | 'REPL_BAD_MAGIC'
  /** The frame format (header version byte) is one this tandem does not speak. */
  | 'REPL_BAD_VERSION'
  /** A frame type this tandem does not know, not flagged optional (so it may not be skipped). */
  | 'REPL_UNKNOWN_TYPE'
  /** The header claims more payload than the frame type allows; refused before any allocation. */
  | 'REPL_TOO_LONG'
  /** The payload length does not fit the contents: under the type's minimum, a field past the end, bytes left over. */
  | 'REPL_BAD_LENGTH'
  /** A field holds a value out of its range: unknown enum or flag bit, reserved bits set, invalid UTF-8. */
  | 'REPL_BAD_FIELD'
  /** The stream ended in the middle of a frame. */
  | 'REPL_TRUNCATED';

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** Byte offset from the start of the frame (its header's first byte) where the fault lies. */
  readonly offset: number;
  /** The frame's type number when the header was read far enough to know it, else -1. */
  readonly frameType: number;

  constructor(code: ProtocolErrorCode, message: string, offset: number, frameType = -1) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.offset = offset;
    this.frameType = frameType;
  }
}
