// The frame table: every frame type of the peer link with its number, scope, payload
// bounds and codec, as data. Encoders size first and allocate once; decoders check the
// header against the table before the payload is touched.
//
// Unknown frame types (a peer with a newer minor version): a frame whose header has the
// `optional` flag is skipped whole (its length still bounded by unknownPayloadBytesMax);
// any other unknown type is REPL_UNKNOWN_TYPE and ends the connection. A sender must not
// send a type newer than the agreed version unless it is flagged optional.
import assert from 'node:assert/strict';
import { type BitmapChunk, bitmapCodec } from './bitmap-rle.js';
import { ProtocolError } from './errors.js';
import { type FrameHeader, frameHeaderBytes, headerFields, readHeader, writeHeader } from './header.js';
import {
  type Barrier,
  type BarrierAck,
  type ByteRange,
  barrierAckCodec,
  barrierCodec,
  type Data,
  dataCodec,
  type Flush,
  flushCodec,
  type NegAck,
  negAckCodec,
  rangeCodec,
  type SeqRange,
  seqRangeCodec,
} from './messages-io.js';
import {
  type AuthChallenge,
  type AuthResponse,
  type AuthResult,
  authChallengeCodec,
  authResponseCodec,
  authResultCodec,
  type Disconnect,
  disconnectCodec,
  type Empty,
  emptyCodec,
  type Hello,
  helloCodec,
} from './messages-session.js';
import {
  type ReportParams,
  type ReportSizes,
  type ReportState,
  type ReportUuids,
  reportParamsCodec,
  reportSizesCodec,
  reportStateCodec,
  reportUuidsCodec,
  type StateChangeReply,
  type StateChangeRequest,
  type SyncUuid,
  stateChangeReplyCodec,
  stateChangeRequestCodec,
  syncUuidCodec,
} from './messages-state.js';
import {
  type DigestOfRange,
  digestOfRangeCodec,
  type ResyncData,
  type ResyncFailed,
  resyncDataCodec,
  resyncFailedCodec,
  type VerifyResult,
  verifyResultCodec,
} from './messages-sync.js';
import { type BodyCodec, WireReader, WireWriter } from './wire.js';

/** Payload bodies by frame kind. */
export interface Bodies {
  Hello: Hello;
  AuthChallenge: AuthChallenge;
  AuthResponse: AuthResponse;
  AuthResult: AuthResult;
  Ping: Empty;
  PingAck: Empty;
  Disconnect: Disconnect;
  ReportParams: ReportParams;
  ReportUuids: ReportUuids;
  ReportSizes: ReportSizes;
  ReportState: ReportState;
  StateChangeRequest: StateChangeRequest;
  StateChangeReply: StateChangeReply;
  Bitmap: BitmapChunk;
  SyncUuid: SyncUuid;
  Data: Data;
  RecvAck: SeqRange;
  WriteAck: SeqRange;
  NegAck: NegAck;
  Barrier: Barrier;
  BarrierAck: BarrierAck;
  Flush: Flush;
  FlushAck: Flush;
  OutOfSync: ByteRange;
  ResyncRequest: ByteRange;
  ResyncChecksumRequest: DigestOfRange;
  ResyncData: ResyncData;
  ResyncInSync: ByteRange;
  ResyncAck: ByteRange;
  ResyncFailed: ResyncFailed;
  VerifyRequest: ByteRange;
  VerifyReply: DigestOfRange;
  VerifyResult: VerifyResult;
}
export type FrameKind = keyof Bodies;

/** A decoded (or to-be-encoded) frame: its kind, volume and typed payload. */
export type Frame = {
  [K in FrameKind]: {
    /** Which frame this is (the frame table's key; its type number is on the wire). */
    readonly kind: K;
    /** Volume number within the resource; 0 on connection-wide frames. */
    readonly volume: number;
    /** The typed payload. */
    readonly body: Bodies[K];
  };
}[FrameKind];

export type FrameOf<K extends FrameKind> = Extract<Frame, { kind: K }>;

/** Whether a frame concerns the whole connection (volume must be 0) or one volume. */
export type FrameScope = 'connection' | 'volume';

export interface FrameSpec<T> {
  /** The u16 type number on the wire; never reused for another meaning. */
  readonly type: number;
  /** Connection-wide frames must carry volume 0. */
  readonly scope: FrameScope;
  /** Minor protocol version that introduced the type. */
  readonly since: number;
  /** Sent with the header's `optional` flag: an older peer may skip it. */
  readonly optional: boolean;
  /** Payload bounds and encoder/decoder. */
  readonly codec: BodyCodec<T>;
}

type FrameTable = { readonly [K in FrameKind]: FrameSpec<Bodies[K]> };

/** A connection-wide frame type of protocol version 1. */
function c<T>(type: number, codec: BodyCodec<T>): FrameSpec<T> {
  return { type, scope: 'connection', since: 1, optional: false, codec };
}

/** A per-volume frame type of protocol version 1. */
function v<T>(type: number, codec: BodyCodec<T>): FrameSpec<T> {
  return { type, scope: 'volume', since: 1, optional: false, codec };
}

/**
 * The frame types. Numbers group by phase: 0x01.. connection, 0x10.. handshake and state,
 * 0x20.. write path, 0x30.. resync, 0x38.. verify. DRBD's counterpart in the comment.
 */
export const frameTable: FrameTable = {
  Hello: c(0x01, helloCodec), // P_CONNECTION_FEATURES
  AuthChallenge: c(0x02, authChallengeCodec), // P_AUTH_CHALLENGE
  AuthResponse: c(0x03, authResponseCodec), // P_AUTH_RESPONSE
  AuthResult: c(0x04, authResultCodec), // (none: DRBD just closes)
  Ping: c(0x05, emptyCodec), // P_PING
  PingAck: c(0x06, emptyCodec), // P_PING_ACK
  Disconnect: c(0x07, disconnectCodec), // P_DISCONNECT (DRBD 9)
  ReportParams: c(0x10, reportParamsCodec), // P_PROTOCOL + P_SYNC_PARAM89
  ReportUuids: v(0x11, reportUuidsCodec), // P_UUIDS
  ReportSizes: v(0x12, reportSizesCodec), // P_SIZES
  ReportState: v(0x13, reportStateCodec), // P_STATE
  StateChangeRequest: c(0x14, stateChangeRequestCodec), // P_STATE_CHG_REQ / P_TWOPC_*
  StateChangeReply: c(0x15, stateChangeReplyCodec), // P_STATE_CHG_REPLY
  Bitmap: v(0x16, bitmapCodec), // P_BITMAP / P_COMPRESSED_BITMAP
  SyncUuid: v(0x17, syncUuidCodec), // P_SYNC_UUID
  Data: v(0x20, dataCodec), // P_DATA, P_TRIM, P_ZEROES
  RecvAck: c(0x21, seqRangeCodec), // P_RECV_ACK
  WriteAck: c(0x22, seqRangeCodec), // P_WRITE_ACK
  NegAck: c(0x23, negAckCodec), // P_NEG_ACK
  Barrier: c(0x24, barrierCodec), // P_BARRIER
  BarrierAck: c(0x25, barrierAckCodec), // P_BARRIER_ACK
  Flush: c(0x26, flushCodec), // P_FLUSH_REQUESTS (DRBD 9)
  FlushAck: c(0x27, flushCodec), // P_FLUSH_REQUESTS_ACK (DRBD 9)
  OutOfSync: v(0x28, rangeCodec), // P_OUT_OF_SYNC
  ResyncRequest: v(0x30, rangeCodec), // P_RS_DATA_REQUEST
  ResyncChecksumRequest: v(0x31, digestOfRangeCodec), // P_CSUM_RS_REQUEST
  ResyncData: v(0x32, resyncDataCodec), // P_RS_DATA_REPLY, P_RS_DEALLOCATED
  ResyncInSync: v(0x33, rangeCodec), // P_RS_IS_IN_SYNC
  ResyncAck: v(0x34, rangeCodec), // P_RS_WRITE_ACK
  ResyncFailed: v(0x35, resyncFailedCodec), // P_NEG_RS_DREPLY
  VerifyRequest: v(0x38, rangeCodec), // P_OV_REQUEST
  VerifyReply: v(0x39, digestOfRangeCodec), // P_OV_REPLY
  VerifyResult: v(0x3a, verifyResultCodec), // P_OV_RESULT
};

/** Largest payload of an unknown optional frame that will be skipped. */
export const unknownPayloadBytesMax = 64 * 1024;

export const frameKinds = Object.keys(frameTable) as FrameKind[];

const kindByType = new Map<number, FrameKind>();
for (const kind of frameKinds) {
  const { type, codec } = frameTable[kind];
  assert.ok(!kindByType.has(type), `frame type 0x${type.toString(16)} used twice`);
  assert.ok(codec.payloadBytesMin <= codec.payloadBytesMax);
  kindByType.set(type, kind);
}

/** The frame kind of a type number, undefined for one this tandem does not know. */
export function kindOfType(type: number): FrameKind | undefined {
  return kindByType.get(type);
}

/** What the decoder does with a header that passed checkHeader. */
export type HeaderVerdict =
  | { readonly action: 'decode'; readonly kind: FrameKind }
  /** An unknown frame type flagged optional: skip `length` payload bytes. */
  | { readonly action: 'skip' };

/**
 * Checks a header against the frame table: known type (or optional), the payload length
 * within the type's bounds, the volume allowed. Everything a receiver must know before it
 * allocates or waits for the payload.
 */
export function checkHeader(h: FrameHeader): HeaderVerdict {
  const kind = kindByType.get(h.type);
  if (kind === undefined) {
    if (!h.optional) {
      throw new ProtocolError(
        'REPL_UNKNOWN_TYPE',
        `unknown frame type 0x${h.type.toString(16)}`,
        headerFields.type,
        h.type,
      );
    }
    if (h.length > unknownPayloadBytesMax) {
      throw tooLong(h, `unknown optional frame type 0x${h.type.toString(16)}`, unknownPayloadBytesMax);
    }
    return { action: 'skip' };
  }
  const spec: FrameSpec<unknown> = frameTable[kind];
  if (h.length > spec.codec.payloadBytesMax) throw tooLong(h, kind, spec.codec.payloadBytesMax);
  if (h.length < spec.codec.payloadBytesMin) {
    throw new ProtocolError(
      'REPL_BAD_LENGTH',
      `${kind} payload of ${h.length} bytes is below its minimum ${spec.codec.payloadBytesMin}`,
      headerFields.length,
      h.type,
    );
  }
  if (h.optional !== spec.optional) {
    throw new ProtocolError(
      'REPL_BAD_FIELD',
      `${kind} has the wrong optional flag`,
      headerFields.flags,
      h.type,
    );
  }
  if (spec.scope === 'connection' && h.volume !== 0) {
    throw new ProtocolError(
      'REPL_BAD_FIELD',
      `${kind} is connection-wide but names volume ${h.volume}`,
      headerFields.volume,
      h.type,
    );
  }
  return { action: 'decode', kind };
}

function tooLong(h: FrameHeader, what: string, max: number): ProtocolError {
  return new ProtocolError(
    'REPL_TOO_LONG',
    `${what} payload of ${h.length} bytes exceeds its maximum ${max}`,
    headerFields.length,
    h.type,
  );
}

/** Decodes the payload `buf[start, start + h.length)` of a frame whose header passed checkHeader. */
export function decodePayload(kind: FrameKind, h: FrameHeader, buf: Buffer, start: number): Frame {
  const spec: FrameSpec<unknown> = frameTable[kind];
  const r = new WireReader(buf, start, start + h.length, frameHeaderBytes, h.type, kind);
  const body = spec.codec.read(r);
  return { kind, volume: h.volume, body } as Frame;
}

/** Decodes exactly one whole frame (header and payload, nothing after it). */
export function decodeFrame(bytes: Uint8Array): Frame {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = readHeader(buf);
  const verdict = checkHeader(h);
  if (buf.length !== frameHeaderBytes + h.length) {
    throw new ProtocolError(
      'REPL_BAD_LENGTH',
      `frame is ${buf.length} bytes, its header says ${frameHeaderBytes + h.length}`,
      headerFields.length,
      h.type,
    );
  }
  if (verdict.action === 'skip') {
    throw new ProtocolError(
      'REPL_UNKNOWN_TYPE',
      `unknown optional frame type 0x${h.type.toString(16)}`,
      headerFields.type,
      h.type,
    );
  }
  return decodePayload(verdict.kind, h, buf, frameHeaderBytes);
}

function specOf(frame: Frame): FrameSpec<unknown> {
  return frameTable[frame.kind];
}

function headerOf(frame: Frame, spec: FrameSpec<unknown>, length: number): FrameHeader {
  // The messages are built only on failure: this runs for every frame sent.
  if (length > spec.codec.payloadBytesMax || length < spec.codec.payloadBytesMin)
    assert.fail(`${frame.kind} length`);
  assert.ok(Number.isInteger(frame.volume) && frame.volume >= 0 && frame.volume <= 0xffff, 'volume');
  if (spec.scope !== 'volume' && frame.volume !== 0) assert.fail(`${frame.kind} is connection-wide`);
  return { type: spec.type, optional: spec.optional, volume: frame.volume, length };
}

/** Bytes of the whole encoded frame. */
export function frameBytes(frame: Frame): number {
  return frameHeaderBytes + specOf(frame).codec.size(frame.body);
}

/** Encodes a frame into one freshly allocated buffer (the bulk payload copied in). */
export function encodeFrame(frame: Frame): Buffer {
  const spec = specOf(frame);
  const length = spec.codec.size(frame.body);
  const buf = Buffer.allocUnsafe(frameHeaderBytes + length);
  writeHeader(buf, 0, headerOf(frame, spec, length));
  const w = new WireWriter(buf, frameHeaderBytes);
  spec.codec.write(frame.body, w);
  const bulk = spec.codec.bulk?.(frame.body);
  if (bulk) w.bytes(bulk);
  if (w.position !== buf.length) assert.fail(`${frame.kind} size and write disagree`);
  return buf;
}

/**
 * Encodes a frame as the buffers to write in order, without copying bulk data: for Data
 * and ResyncData the header and fixed fields in one small buffer, then the payload itself
 * (for `socket.writev` / cork). Other frames are one buffer.
 */
export function encodeFrameParts(frame: Frame): Uint8Array[] {
  const spec = specOf(frame);
  const bulk = spec.codec.bulk?.(frame.body);
  if (!bulk || bulk.length === 0) return [encodeFrame(frame)];
  const length = spec.codec.size(frame.body);
  const head = Buffer.allocUnsafe(frameHeaderBytes + length - bulk.length);
  writeHeader(head, 0, headerOf(frame, spec, length));
  const w = new WireWriter(head, frameHeaderBytes);
  spec.codec.write(frame.body, w);
  if (w.position !== head.length) assert.fail(`${frame.kind} size and write disagree`);
  return [head, bulk];
}
