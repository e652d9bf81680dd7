// Pure encoders and decoders of the NBD wire formats: the handshake's option
// requests and replies, and the transmission phase's requests and replies.
// No I/O; every decode checks lengths before it reads.
import {
  IHAVEOPT,
  NBDMAGIC,
  REPLY_FLAG_DONE,
  REPLY_MAGIC_OPTION,
  REQUEST_MAGIC,
  ReplyType,
  requestHeaderBytes,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  simpleReplyHeaderBytes,
  structuredReplyHeaderBytes,
} from './protocol.js';

export class NbdProtocolError extends Error {
  readonly code: 'NBD_BAD_MAGIC' | 'NBD_SHORT' | 'NBD_TOO_BIG' | 'NBD_BAD_OPTION';
  constructor(code: NbdProtocolError['code'], message: string) {
    super(message);
    this.name = 'NbdProtocolError';
    this.code = code;
  }
}

/** The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags (18 bytes). */
export function encodeGreeting(flags: number): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(flags, 16);
  return b;
}

export interface OptionHeader {
  readonly option: number;
  readonly length: number;
}

/** The 16-byte header of a client option: IHAVEOPT, option, data length. */
export function decodeOptionHeader(b: Buffer): OptionHeader {
  if (b.length < 16) throw new NbdProtocolError('NBD_SHORT', `option header needs 16 bytes, got ${b.length}`);
  if (b.readBigUInt64BE(0) !== IHAVEOPT) {
    throw new NbdProtocolError(
      'NBD_BAD_MAGIC',
      `option magic 0x${b.readBigUInt64BE(0).toString(16)} is not IHAVEOPT`,
    );
  }
  return { option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(20 + data.length);
  b.writeBigUInt64BE(REPLY_MAGIC_OPTION, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, 20);
  return b;
}

export interface ExportRequest {
  readonly name: string;
  readonly infos: readonly number[];
}

/** The data of NBD_OPT_INFO and NBD_OPT_GO: u32 name length, name, u16 count, u16 info types. */
export function decodeInfoRequest(data: Buffer): ExportRequest {
  if (data.length < 6)
    throw new NbdProtocolError('NBD_BAD_OPTION', `INFO/GO data of ${data.length} bytes is too short`);
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) {
    throw new NbdProtocolError(
      'NBD_BAD_OPTION',
      `export name length ${nameLength} exceeds the option data (${data.length} bytes)`,
    );
  }
  const name = data.toString('utf8', 4, 4 + nameLength);
  const count = data.readUInt16BE(4 + nameLength);
  if (data.length !== 6 + nameLength + 2 * count) {
    throw new NbdProtocolError(
      'NBD_BAD_OPTION',
      `INFO/GO data is ${data.length} bytes, expected ${6 + nameLength + 2 * count}`,
    );
  }
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(data.readUInt16BE(6 + nameLength + 2 * i));
  return { name, infos };
}

export function encodeInfoExport(sizeBytes: number, transmissionFlags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0, 0);
  b.writeBigUInt64BE(BigInt(sizeBytes), 2);
  b.writeUInt16BE(transmissionFlags, 10);
  return b;
}

export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(3, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeInfoString(type: number, text: string): Buffer {
  const s = Buffer.from(text, 'utf8');
  const b = Buffer.alloc(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

/** NBD_REP_SERVER data for LIST: u32 name length, name. */
export function encodeServerEntry(name: string): Buffer {
  const s = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(4 + s.length);
  b.writeUInt32BE(s.length, 0);
  s.copy(b, 4);
  return b;
}

/** The reply to NBD_OPT_EXPORT_NAME: size, transmission flags, then 124 zeroes unless NO_ZEROES. */
export function encodeExportNameReply(
  sizeBytes: number,
  transmissionFlags: number,
  noZeroes: boolean,
): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(BigInt(sizeBytes), 0);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

export interface Request {
  readonly flags: number;
  readonly type: number;
  /** The client's opaque handle, echoed in the reply. */
  readonly cookie: bigint;
  readonly offset: number;
  readonly length: number;
}

/** A 28-byte request header. Offsets beyond 2^53 come back as Infinity (always out of range). */
export function decodeRequest(b: Buffer, at = 0): Request {
  if (b.length - at < requestHeaderBytes) {
    throw new NbdProtocolError(
      'NBD_SHORT',
      `request header needs ${requestHeaderBytes} bytes, got ${b.length - at}`,
    );
  }
  const magic = b.readUInt32BE(at);
  if (magic !== REQUEST_MAGIC)
    throw new NbdProtocolError('NBD_BAD_MAGIC', `request magic 0x${magic.toString(16)}`);
  // The offset as two 32-bit halves, without a BigInt (this runs for every request):
  // below 2^53 exactly when the high half is below 2^21.
  const high = b.readUInt32BE(at + 16);
  return {
    flags: b.readUInt16BE(at + 4),
    type: b.readUInt16BE(at + 6),
    cookie: b.readBigUInt64BE(at + 8),
    offset: high < 0x20_0000 ? high * 0x1_0000_0000 + b.readUInt32BE(at + 20) : Number.POSITIVE_INFINITY,
    length: b.readUInt32BE(at + 24),
  };
}

export function encodeRequest(r: Request): Buffer {
  const b = Buffer.alloc(requestHeaderBytes);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.cookie, 8);
  b.writeBigUInt64BE(BigInt(r.offset), 16);
  b.writeUInt32BE(r.length, 24);
  return b;
}

export function encodeSimpleReply(cookie: bigint, error: number): Buffer {
  const b = Buffer.alloc(simpleReplyHeaderBytes);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
  return b;
}

/** Header of a structured OFFSET_DATA chunk with DONE; the data follows it. */
export function encodeStructuredReadHeader(cookie: bigint, offset: number, dataBytes: number): Buffer {
  const b = Buffer.alloc(structuredReplyHeaderBytes + 8);
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(REPLY_FLAG_DONE, 4);
  b.writeUInt16BE(ReplyType.OFFSET_DATA, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(8 + dataBytes, 16);
  b.writeBigUInt64BE(BigInt(offset), 20);
  return b;
}

/** A structured ERROR chunk with DONE and a human-readable message. */
export function encodeStructuredError(cookie: bigint, error: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 256), 'utf8');
  const b = Buffer.alloc(structuredReplyHeaderBytes + 6 + msg.length);
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(REPLY_FLAG_DONE, 4);
  b.writeUInt16BE(ReplyType.ERROR, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(6 + msg.length, 16);
  b.writeUInt32BE(error, 20);
  b.writeUInt16BE(msg.length, 24);
  msg.copy(b, 26);
  return b;
}

/** A structured NONE chunk with DONE: a reply without data (a zero-length read). */
export function encodeStructuredNone(cookie: bigint): Buffer {
  const b = Buffer.alloc(structuredReplyHeaderBytes);
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(REPLY_FLAG_DONE, 4);
  b.writeUInt16BE(ReplyType.NONE, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(0, 16);
  return b;
}
