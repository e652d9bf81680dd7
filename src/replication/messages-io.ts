// Frames of the write path: Data (an application write, DRBD's P_DATA), the batched
// acknowledgements of protocols B and C, NegAck, the epoch Barrier/BarrierAck that keep
// write order, Flush/FlushAck, and OutOfSync. Data's payload is bulk: encoders hand it
// on as its own buffer and the decoder returns a view of the received bytes.
import { type BodyCodec, maskOf, type WireReader, type WireWriter } from './wire.js';

/** Largest write or resync payload: as NBD's requestBytesMax (nbdkit's MAX_REQUEST_SIZE). */
export const ioBytesMax = 32 * 1024 * 1024;

/** A byte range on the device, as many frames carry it: u64 offset, u32 length (1..ioBytesMax). */
export interface ByteRange {
  /** Byte offset on the replicated device. */
  readonly offset: number;
  /** Bytes from `offset`, at least 1, at most ioBytesMax. */
  readonly length: number;
}
export const rangeBytes = 12;

export function writeRange(m: ByteRange, w: WireWriter): void {
  w.u64(m.offset);
  w.u32(m.length);
}

export function readRange(r: WireReader): ByteRange {
  const offset = r.u64('offset');
  const at = r.position;
  const length = r.u32('length');
  if (length === 0 || length > ioBytesMax) {
    throw r.fail('REPL_BAD_FIELD', 'length', `${length} not in 1..${ioBytesMax}`, at);
  }
  if (offset + length > Number.MAX_SAFE_INTEGER) {
    throw r.fail('REPL_BAD_FIELD', 'length', 'range ends beyond 2^53 - 1', at);
  }
  return { offset, length };
}

/** A codec for frames that are one ByteRange. */
export const rangeCodec: BodyCodec<ByteRange> = {
  payloadBytesMin: rangeBytes,
  payloadBytesMax: rangeBytes,
  size: () => rangeBytes,
  write: writeRange,
  read(r) {
    const m = readRange(r);
    r.finish();
    return m;
  },
};

// ---------------------------------------------------------------- Data
//   0  u64  seq
//   8  u64  epoch
//  16  u64  offset
//  24  u32  length
//  28  u32  flags (dataFlagBits)
//  32  bytes payload: `length` bytes, or none when `discard` or `zeroes` is set

/** Flag bits of Data; positions are tandem's, meanings DRBD's DP_*. */
export const dataFlagBits = {
  /** Forced unit access: on stable storage before it is acknowledged (DP_FUA). */
  fua: 1 << 0,
  /** Flush everything written before, then write this (DP_FLUSH, REQ_PREFLUSH). */
  flush: 1 << 1,
  /** Deallocate the range; no payload (DP_DISCARD). */
  discard: 1 << 2,
  /** The range must read back as zeroes; no payload (DP_ZEROES; with discard: may unmap). */
  zeroes: 1 << 3,
  /** Protocol B: send RecvAck when received (DP_SEND_RECEIVE_ACK). */
  ackReceived: 1 << 4,
  /** Protocol C: send WriteAck when written (DP_SEND_WRITE_ACK). */
  ackWritten: 1 << 5,
  /** During resync the peer may mark the whole blocks this write covers in sync (DP_MAY_SET_IN_SYNC). */
  maySetInSync: 1 << 6,
} as const;
const dataFlagsKnown = maskOf(dataFlagBits);
const noPayloadFlags = dataFlagBits.discard | dataFlagBits.zeroes;
export const dataFixedBytes = 32;

export interface Data {
  /** Sender's sequence number of this write on the connection, from 1 up; acks name it. */
  readonly seq: number;
  /** The epoch (write-ordering interval) the write belongs to; a Barrier closes it. */
  readonly epoch: number;
  /** Byte offset on the device. */
  readonly offset: number;
  /** Bytes written (or discarded/zeroed), 1..ioBytesMax. */
  readonly length: number;
  /** dataFlagBits. */
  readonly flags: number;
  /** The data, `length` bytes; empty for discard/zeroes. A view of the received frame when decoded. */
  readonly payload: Uint8Array;
}

export const dataCodec: BodyCodec<Data> = {
  payloadBytesMin: dataFixedBytes,
  payloadBytesMax: dataFixedBytes + ioBytesMax,
  size: (m) => dataFixedBytes + m.payload.length,
  write(m, w) {
    w.u64(m.seq);
    w.u64(m.epoch);
    writeRange(m, w);
    w.u32(m.flags);
  },
  bulk: (m) => m.payload,
  read(r) {
    const seq = r.u64('seq');
    const epoch = r.u64('epoch');
    const { offset, length } = readRange(r);
    const at = r.position;
    const flags = r.flags32('flags', dataFlagsKnown);
    if ((flags & dataFlagBits.ackReceived) !== 0 && (flags & dataFlagBits.ackWritten) !== 0) {
      throw r.fail('REPL_BAD_FIELD', 'flags', 'asks for both RecvAck and WriteAck', at);
    }
    const payloadBytes = (flags & noPayloadFlags) !== 0 ? 0 : length;
    if (r.remaining !== payloadBytes) {
      throw r.fail('REPL_BAD_LENGTH', 'payload', `is ${r.remaining} bytes, expected ${payloadBytes}`);
    }
    return { seq, epoch, offset, length, flags, payload: r.rest() };
  },
};

// ---------------------------------------------------------------- RecvAck, WriteAck, NegAck
// One frame acknowledges every write whose seq lies in [firstSeq, lastSeq]; the receiver
// batches completions, but never acks a write before its condition holds.
//   0  u64  firstSeq
//   8  u64  lastSeq
//  16  u32  error      (NegAck only)

export interface SeqRange {
  /** First acknowledged sequence number. */
  readonly firstSeq: number;
  /** Last acknowledged sequence number (inclusive), not below firstSeq. */
  readonly lastSeq: number;
}

function readSeqRange(r: WireReader): SeqRange {
  const firstSeq = r.u64('firstSeq');
  const at = r.position;
  const lastSeq = r.u64('lastSeq');
  if (lastSeq < firstSeq)
    throw r.fail('REPL_BAD_FIELD', 'lastSeq', `${lastSeq} is below firstSeq ${firstSeq}`, at);
  return { firstSeq, lastSeq };
}

/** RecvAck (protocol B: received) and WriteAck (protocol C: on the peer's disk). */
export const seqRangeCodec: BodyCodec<SeqRange> = {
  payloadBytesMin: 16,
  payloadBytesMax: 16,
  size: () => 16,
  write(m, w) {
    w.u64(m.firstSeq);
    w.u64(m.lastSeq);
  },
  read(r) {
    const m = readSeqRange(r);
    r.finish();
    return m;
  },
};

export interface NegAck extends SeqRange {
  /** Why the peer could not write: a positive errno (EIO = 5, ENOSPC = 28), for the log. */
  readonly error: number;
}

/** NegAck: the writes failed on the peer (DRBD's P_NEG_ACK); the sender marks them out of sync. */
export const negAckCodec: BodyCodec<NegAck> = {
  payloadBytesMin: 20,
  payloadBytesMax: 20,
  size: () => 20,
  write(m, w) {
    w.u64(m.firstSeq);
    w.u64(m.lastSeq);
    w.u32(m.error);
  },
  read(r) {
    const m = { ...readSeqRange(r), error: r.u32('error') };
    r.finish();
    return m;
  },
};

// ---------------------------------------------------------------- Barrier, BarrierAck
// DRBD's write ordering: the sender opens a new epoch whenever a write completed to the
// application before the next was submitted, and sends Barrier(previous epoch). The peer
// answers BarrierAck once all of that epoch's writes are on stable storage, and only then
// starts writing the next epoch's.
//   Barrier:    0  u64 epoch
//   BarrierAck: 0  u64 epoch, 8 u32 writes

export interface Barrier {
  /** The epoch this barrier closes. */
  readonly epoch: number;
}

export const barrierCodec: BodyCodec<Barrier> = {
  payloadBytesMin: 8,
  payloadBytesMax: 8,
  size: () => 8,
  write: (m, w) => w.u64(m.epoch),
  read(r) {
    const m = { epoch: r.u64('epoch') };
    r.finish();
    return m;
  },
};

export interface BarrierAck {
  /** The epoch now on stable storage. */
  readonly epoch: number;
  /** How many writes the peer saw in it; the sender checks it against its own count (DRBD's set_size). */
  readonly writes: number;
}

export const barrierAckCodec: BodyCodec<BarrierAck> = {
  payloadBytesMin: 12,
  payloadBytesMax: 12,
  size: () => 12,
  write(m, w) {
    w.u64(m.epoch);
    w.u32(m.writes);
  },
  read(r) {
    const m = { epoch: r.u64('epoch'), writes: r.u32('writes') };
    r.finish();
    return m;
  },
};

// ---------------------------------------------------------------- Flush, FlushAck
// An NBD FLUSH on the Primary: every write the peer received before this frame must be on
// its stable storage before FlushAck (DRBD 9's P_FLUSH_REQUESTS).
//   0  u64 flushId

export interface Flush {
  /** Chosen by the sender; FlushAck echoes it. */
  readonly flushId: number;
}

export const flushCodec: BodyCodec<Flush> = {
  payloadBytesMin: 8,
  payloadBytesMax: 8,
  size: () => 8,
  write: (m, w) => w.u64(m.flushId),
  read(r) {
    const m = { flushId: r.u64('flushId') };
    r.finish();
    return m;
  },
};
