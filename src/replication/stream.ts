// The streaming frame decoder: feed it the peer's bytes in chunks of any size, get whole
// frames back. It holds at most one header and one payload; a header is checked against
// the frame table before a payload buffer is allocated or awaited, and a payload that
// lies within one chunk is decoded in place (a view of the chunk, no copy).
import assert from 'node:assert/strict';
import { ProtocolError } from './errors.js';
import { checkHeader, decodePayload, type Frame, type FrameKind } from './frames.js';
import { type FrameHeader, frameHeaderBytes, readHeader } from './header.js';

export interface FrameDecoderOptions {
  /** Allocates the buffer for a payload that spans chunks (e.g. a BufferPool's acquire). */
  readonly allocate?: (bytes: number) => Buffer;
  /** Told of every unknown optional frame skipped, for a debug log. */
  readonly onSkip?: (type: number, length: number) => void;
}

type State =
  /** Collecting the next header (`headFill` bytes of it so far). */
  | { readonly name: 'header' }
  /** Collecting the payload of a checked header. */
  | { readonly name: 'payload'; readonly header: FrameHeader; readonly kind: FrameKind }
  /** Dropping the payload of an unknown optional frame. */
  | { readonly name: 'skip'; readonly length: number; left: number }
  /** A ProtocolError ended the stream; every later push repeats it. */
  | { readonly name: 'failed'; readonly error: ProtocolError };

const emptyPayload = Buffer.alloc(0);

export class FrameDecoder {
  private state: State = { name: 'header' };
  private readonly head = Buffer.alloc(frameHeaderBytes);
  private headFill = 0;
  /** The payload being assembled from several chunks, and how much of it has arrived. */
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private readonly allocate: (bytes: number) => Buffer;
  private readonly onSkip: ((type: number, length: number) => void) | undefined;
  private received = 0;

  constructor(options: FrameDecoderOptions = {}) {
    this.allocate = options.allocate ?? Buffer.allocUnsafe;
    this.onSkip = options.onSkip;
  }

  /** Bytes held for an incomplete frame: at most one header plus one payload. */
  get bufferedBytes(): number {
    return this.headFill + (this.payload?.length ?? 0);
  }

  /** Bytes pushed so far. */
  get bytesReceived(): number {
    return this.received;
  }

  /**
   * Decodes what `chunk` completes. Throws ProtocolError at the first bad frame; frames
   * decoded before it in the same chunk are dropped with it, since the connection ends.
   */
  push(chunk: Uint8Array): Frame[] {
    if (this.state.name === 'failed') throw this.state.error;
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.received += buf.length;
    const out: Frame[] = [];
    try {
      let at = 0;
      while (at < buf.length) at = this.step(buf, at, out);
    } catch (err) {
      if (err instanceof ProtocolError) this.state = { name: 'failed', error: err };
      throw err;
    }
    return out;
  }

  /** The stream has ended: fine between frames, REPL_TRUNCATED inside one. */
  end(): void {
    if (this.state.name === 'failed') throw this.state.error;
    if (this.state.name === 'header' && this.headFill === 0) return;
    const s = this.state;
    const inFrame =
      s.name === 'header'
        ? this.headFill
        : frameHeaderBytes + (s.name === 'skip' ? s.length - s.left : this.payloadFill);
    const error = new ProtocolError('REPL_TRUNCATED', `stream ended ${inFrame} bytes into a frame`, inFrame);
    this.state = { name: 'failed', error };
    throw error;
  }

  /** Consumes bytes from `buf[at]` on for the current state; returns where it stopped. */
  private step(buf: Buffer, at: number, out: Frame[]): number {
    const state = this.state;
    switch (state.name) {
      case 'header':
        return this.stepHeader(buf, at, out);
      case 'payload':
        return this.stepPayload(state.header, state.kind, buf, at, out);
      case 'skip': {
        const n = Math.min(state.left, buf.length - at);
        state.left -= n;
        if (state.left === 0) this.state = { name: 'header' };
        return at + n;
      }
      case 'failed':
        return assert.fail('step after failure');
    }
  }

  private stepHeader(buf: Buffer, at: number, out: Frame[]): number {
    if (this.headFill === 0 && buf.length - at >= frameHeaderBytes) {
      this.begin(readHeader(buf, at), out);
      return at + frameHeaderBytes;
    }
    const n = Math.min(frameHeaderBytes - this.headFill, buf.length - at);
    buf.copy(this.head, this.headFill, at, at + n);
    this.headFill += n;
    if (this.headFill === frameHeaderBytes) {
      this.headFill = 0;
      this.begin(readHeader(this.head, 0), out);
    }
    return at + n;
  }

  /** A whole header has arrived: check it before anything waits for its payload. */
  private begin(header: FrameHeader, out: Frame[]): void {
    const verdict = checkHeader(header);
    if (verdict.action === 'skip') {
      this.onSkip?.(header.type, header.length);
      this.state =
        header.length === 0
          ? { name: 'header' }
          : { name: 'skip', length: header.length, left: header.length };
      return;
    }
    if (header.length === 0) {
      out.push(decodePayload(verdict.kind, header, emptyPayload, 0));
      this.state = { name: 'header' };
      return;
    }
    this.state = { name: 'payload', header, kind: verdict.kind };
  }

  private stepPayload(header: FrameHeader, kind: FrameKind, buf: Buffer, at: number, out: Frame[]): number {
    if (this.payload === undefined && buf.length - at >= header.length) {
      // The whole payload is in this chunk: decode it where it lies.
      this.state = { name: 'header' };
      out.push(decodePayload(kind, header, buf, at));
      return at + header.length;
    }
    if (this.payload === undefined) {
      this.payload = this.allocate(header.length);
      assert.equal(this.payload.length, header.length, 'allocate returned the wrong size');
      this.payloadFill = 0;
    }
    const n = Math.min(header.length - this.payloadFill, buf.length - at);
    buf.copy(this.payload, this.payloadFill, at, at + n);
    this.payloadFill += n;
    if (this.payloadFill === header.length) {
      const payload = this.payload;
      this.payload = undefined;
      this.payloadFill = 0;
      this.state = { name: 'header' };
      out.push(decodePayload(kind, header, payload, 0));
    }
    return at + n;
  }
}
