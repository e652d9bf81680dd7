// The UDP packet tandem-ha nodes exchange on every heartbeat link: heartbeats (group states),
// requests (standby, takeover…) and their replies, each signed with an authkeys key. A pure
// codec: encodePacket sizes, allocates once and signs; decodePacket bounds every field and
// throws only HaPacketError; verifyPacket checks the MAC. Our own format, not Heartbeat's.
//
// Layout, big-endian; str = u8 byte count + that much UTF-8:
//
//   offset  size  field
//   0       4     magic       u32 0x54484142 "THAB"
//   4       1     version     u8 = 2 (any other is refused; 1 had no view in heartbeats)
//   5       1     type        u8: 1 heartbeat, 2 request, 3 reply
//   6       2     flags       u16 = 0 (no flag is defined; a set bit is refused)
//   8       1+n   cluster     str 1..64: the cluster id (the sorted node names joined by ',')
//   …       1+n   from        str 1..64: the sender's node name, lower-case
//   …       1+n   to          str 0..64: the addressee's node name; empty = every node
//   …       8     generation  u64 ≥ 1: the sender's boot generation, larger at every tandem-ha start
//   …       8     seq         u64 ≥ 1: numbers the sender's packets within one generation
//   …       8     timeMs      u64: the sender's wall clock (informational: clocks are not trusted)
//   …       2+n   body        u16 byte count ≤ 1024, then the type's body (below)
//   --- everything above is `signed`: the bytes the MAC covers ---
//   …       1     keyIndex    u8 0..15: the authkeys key that signed
//   …       1     method      u8: 1 crc, 2 md5, 3 sha1, 4 sha256 (the key's method)
//   …       1     macLength   u8: 4, 16, 20, 32 (the method's, nothing else)
//   …       n     mac         crc: CRC32C of signed, u32; else HMAC-<method>(secret, signed)
//
// Bodies:
//   heartbeat  u8 group count, per group {str key 1..255, u8 state 0 released 1 starting
//              2 running 3 stopping 4 failed 5 start-failed (released after a failed
//              start)}, then u8 flags (bit 0: standby requested), then the sender's
//              view of the other nodes: u8 count ≤ 8, per node {str name 1..64, u8 state
//              0 init 1 up 2 dead, u8 flags (bit 0: outdate pending — the witness holds
//              an outdate for it), u32 silentMs (ms since heard; 0xffffffff never)}
//   request    u8 kind (1 standby, 2 takeover, 3 outdate-peer, 4 release-groups),
//              u32 requestId, str resource 0..255 (empty: not about one resource)
//   reply      u32 requestId, i32 result, str message 0..200
//
// Packets carry no JSON (hot path, once a second per link) and at most 1400 bytes, under
// an Ethernet MTU with IP and UDP headers, so a heartbeat is never fragmented.
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AuthMethod } from '../config/authkeys.js';
import { crc32c } from '../meta/crc32c.js';
import { maskOf, WireWriter, wireCodes } from '../replication/wire.js';
import { BoundedReader, type ReadFault } from '../util/bounded-reader.js';
import type { GroupState } from './groups.js';

/** "THAB": tandem heartbeat. A datagram without it is not ours (or another program's on the port). */
export const packetMagic = 0x54484142;
/** The packet format. Changing the layout or the meaning of a number makes a new version. */
export const packetVersion = 2;

/** Datagrams above this are refused before any field is read. */
export const packetBytesMax = 1400;
export const clusterBytesMax = 64;
/** Node names in packets (config allows up to 253 characters; longer names cannot be sent). */
export const nodeNameBytesMax = 64;
export const bodyBytesMax = 1024;
/** Group keys (`IPaddr::10.0.0.1/24`) and request resources: the u8 string limit. */
export const groupKeyBytesMax = 255;
export const resourceBytesMax = 255;
export const replyMessageBytesMax = 200;
/** The group count is a u8. */
export const heartbeatGroupsMax = 255;
/** Nodes a heartbeat's view may list (the cluster's other nodes). */
export const heartbeatViewMax = 8;
/** A silence too long for u32 ms (or never heard) is sent as this. */
export const silenceNever = 0xffffffff;
/** Heartbeat's MAXAUTH (authkeys' authKeyIndexMax). */
export const keyIndexMax = 15;

/** Offsets of the fixed fields; everything from `cluster` on follows variable-length strings. */
export const packetFields = {
  /** u32 packetMagic. */
  magic: 0,
  /** u8 packetVersion. */
  version: 4,
  /** u8 packet type (packetTypes). */
  type: 5,
  /** u16 flags, zero. */
  flags: 6,
  /** str cluster, the first variable-length field. */
  cluster: 8,
} as const;

/** Three u64 fields: generation, seq, timeMs. */
const counterBytes = 24;
/** keyIndex, method and macLength. */
const sealBytes = 3;

export const packetTypes = wireCodes({ heartbeat: 1, request: 2, reply: 3 } as const);
export type PacketType = (typeof packetTypes.all)[number];

export const groupStates = wireCodes({
  released: 0,
  starting: 1,
  running: 2,
  stopping: 3,
  failed: 4,
  'start-failed': 5,
} as const satisfies Record<ReportedState, number>);

/**
 * A group's state as a heartbeat reports it: GroupManager's states, and `start-failed` for
 * a group released after its start failed on the sender (Heartbeat then lets the peer try).
 */
export type ReportedState = GroupState | 'start-failed';

export const nodeStates = wireCodes({ init: 0, up: 1, dead: 2 } as const);
export type NodeState = (typeof nodeStates.all)[number];

/** How the sender sees another node: the witness's word on who is alive. */
export interface NodeReport {
  readonly name: string;
  readonly state: NodeState;
  /** ms since the sender last heard it; undefined: never. */
  readonly silentMs: number | undefined;
  /**
   * The witness holds an outdate for this node: its peer went on writing without it, so
   * its copy is old and it must not take over until it has marked its disk Outdated.
   */
  readonly outdatePending: boolean;
}

export const viewFlagBits = {
  outdatePending: 1 << 0,
} as const;
const knownViewFlags = maskOf(viewFlagBits);

export const requestKinds = wireCodes({
  standby: 1,
  takeover: 2,
  'outdate-peer': 3,
  'release-groups': 4,
} as const);
export type RequestKind = (typeof requestKinds.all)[number];

export const authMethodCodes = wireCodes({ crc: 1, md5: 2, sha1: 3, sha256: 4 } as const satisfies Record<
  AuthMethod,
  number
>);

/** MAC bytes of each method; macLength must be exactly this. */
export const macBytesOf: Readonly<Record<AuthMethod, number>> = { crc: 4, md5: 16, sha1: 20, sha256: 32 };

export const heartbeatFlagBits = {
  /** The sender was asked to give its groups away (hb_standby) and wants the peer to take them. */
  standbyRequested: 1 << 0,
} as const;
const knownHeartbeatFlags = maskOf(heartbeatFlagBits);

export type HaPacketErrorCode =
  /** The packet ends before a field does (or a body before its fields). */
  | 'HA_SHORT'
  /** The first four bytes are not "THAB". */
  | 'HA_BAD_MAGIC'
  /** A packet format other than packetVersion. */
  | 'HA_BAD_VERSION'
  /** A value out of its range: unknown type, flag bit, state or method; bad UTF-8 or name; zero seq. */
  | 'HA_BAD_FIELD'
  /** More than allowed: a packet over 1400 bytes, a length over its field's limit, bytes after the last field. */
  | 'HA_TOO_LONG'
  /** macLength is not the length of the method's MAC. */
  | 'HA_BAD_MAC';

export class HaPacketError extends Error {
  readonly code: HaPacketErrorCode;
  /** Byte offset in the packet of the field at fault (of its length prefix, for a length). */
  readonly offset: number;

  constructor(code: HaPacketErrorCode, message: string, offset: number) {
    super(message);
    this.name = 'HaPacketError';
    this.code = code;
    this.offset = offset;
  }
}

/** What every packet carries besides its body. */
export interface PacketCommon {
  /** The cluster id; a node drops packets of another cluster sharing the link. */
  readonly cluster: string;
  /** The sender's node name, lower-case. */
  readonly from: string;
  /** The addressee's node name, or '' for every node. */
  readonly to: string;
  /** The sender's boot generation (a start timestamp in ms): a restart makes a larger one. */
  readonly generation: number;
  /** 1, 2, 3… within the generation; with it, the replay guard's key. */
  readonly seq: number;
  /** The sender's wall clock in ms since the epoch, for logs only. */
  readonly timeMs: number;
}

export interface GroupReport {
  /** The group's key (its first resource, `IPaddr::10.0.0.1`), unique within a heartbeat. */
  readonly key: string;
  readonly state: ReportedState;
}

export interface HeartbeatPacket extends PacketCommon {
  readonly type: 'heartbeat';
  /** The sender's groups and their states on the sender. */
  readonly groups: readonly GroupReport[];
  readonly standbyRequested: boolean;
  /** The sender's view of the other nodes. */
  readonly view: readonly NodeReport[];
}

export interface RequestPacket extends PacketCommon {
  readonly type: 'request';
  readonly kind: RequestKind;
  /** Chosen by the sender (u32); the reply carries it back. */
  readonly requestId: number;
  /** The resource the request is about, or '' for none. */
  readonly resource: string;
}

export interface ReplyPacket extends PacketCommon {
  readonly type: 'reply';
  /** The request's requestId. */
  readonly requestId: number;
  /** i32: 0 done, otherwise the request's failure code. */
  readonly result: number;
  /** For the log of the requester, at most 200 bytes. */
  readonly message: string;
}

export type HaPacket = HeartbeatPacket | RequestPacket | ReplyPacket;

/** The authentication trailer of a received packet. */
export interface PacketSeal {
  /** The authkeys key number the sender used. */
  readonly keyIndex: number;
  readonly method: AuthMethod;
  /** The MAC as received (a view of the datagram). */
  readonly mac: Uint8Array;
  /** The bytes the MAC covers: the packet up to keyIndex (a view of the datagram). */
  readonly signed: Uint8Array;
}

/** A decoded packet: its fields, not authenticated until verifyPacket says so. */
export type DecodedPacket = HaPacket & PacketSeal;

/** Authkeys' AuthSecret, or anything else that keeps a secret behind reveal(). */
export interface SecretLike {
  reveal(): string;
}

/** A key as authkeys defines it (AuthKey fits); a plain string secret is accepted too. */
export interface PacketKey {
  readonly index: number;
  readonly method: AuthMethod;
  /** Undefined for crc, which has none. */
  readonly secret: string | SecretLike | undefined;
}

export type VerifyResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

// ---------------------------------------------------------------------------------------
// Text fields

type TextKind = 'node' | 'text';

/** Node names as readNodeName leaves them: a lower-cased DNS name. */
const nodeNamePattern = /^[a-z0-9._-]*$/;

/** Why `s` is not acceptable as a `kind` field, or undefined. */
function textProblem(s: string, kind: TextKind): string | undefined {
  if (kind === 'node') {
    return nodeNamePattern.test(s) ? undefined : 'not a lower-case node name (a-z, 0-9, ., _, -)';
  }
  // Remote text reaches logs and status output: no control characters (newlines could forge lines).
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return `control character U+${c.toString(16).padStart(4, '0')}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Decoding

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads `buf[pos, end)`; offsets in errors are packet offsets (the buffer is the packet). */
class PacketReader extends BoundedReader {
  /** Names the enclosure in messages: 'packet' or 'heartbeat body'. */
  private readonly what: string;

  constructor(buf: Buffer, start: number, end: number, what: string) {
    super(buf, start, end);
    this.what = what;
  }

  protected fault(kind: ReadFault, field: string, message: string, at: number): HaPacketError {
    return this.fail(kind === 'short' ? 'HA_SHORT' : 'HA_BAD_FIELD', field, message, at);
  }

  fail(code: HaPacketErrorCode, field: string, message: string, at = this.pos): HaPacketError {
    return new HaPacketError(code, `${this.what} ${field}: ${message}`, at);
  }

  /** A u64 that fits a safe integer and is at least `min`. */
  u64(field: string, min: number): number {
    const at = this.pos;
    const v = this.safeU64(field);
    if (v < min) throw this.fail('HA_BAD_FIELD', field, `${v} is below ${min}`, at);
    return v;
  }

  /** A u8 length within [min, max] and that much strict UTF-8 passing the `kind` check. */
  str(field: string, kind: TextKind, min: number, max: number): string {
    const at = this.pos;
    const n = this.u8(`${field} length`);
    if (n > max) throw this.fail('HA_TOO_LONG', field, `${n} bytes, more than ${max}`, at);
    if (n < min) throw this.fail('HA_BAD_FIELD', field, `${n} bytes, fewer than ${min}`, at);
    const b = this.bytes(n, field, at);
    let s: string;
    try {
      s = utf8.decode(b);
    } catch {
      throw this.fail('HA_BAD_FIELD', field, 'not valid UTF-8', at + 1);
    }
    const problem = textProblem(s, kind);
    if (problem !== undefined) throw this.fail('HA_BAD_FIELD', field, problem, at + 1);
    return s;
  }

  /** A reader for the next `bytes` bytes (a body); this one skips them. */
  sub(bytes: number, what: string): PacketReader {
    const start = this.pos;
    this.pos += bytes;
    return new PacketReader(this.buf, start, start + bytes, what);
  }

  /** Nothing may follow the last field. */
  finish(): void {
    if (this.pos !== this.end) {
      throw this.fail('HA_TOO_LONG', 'end', `${this.end - this.pos} bytes after the last field`);
    }
  }
}

function readHeartbeat(r: PacketReader): Pick<HeartbeatPacket, 'groups' | 'standbyRequested' | 'view'> {
  const count = r.u8('group count');
  const groups: GroupReport[] = [];
  const seen = new Set<string>();
  // Bounded by the u8 count, and each group needs at least 3 of the body's ≤ 1024 bytes.
  for (let i = 0; i < count; i++) {
    const at = r.position;
    const key = r.str(`group ${i} key`, 'text', 1, groupKeyBytesMax);
    if (seen.has(key)) throw r.fail('HA_BAD_FIELD', `group ${i} key`, 'reported twice', at);
    seen.add(key);
    groups.push({ key, state: r.code(`group ${i} state`, groupStates.names) });
  }
  const flagsAt = r.position;
  const flags = r.u8('flags');
  if ((flags & ~knownHeartbeatFlags) !== 0) {
    throw r.fail(
      'HA_BAD_FIELD',
      'flags',
      `unknown bits 0x${(flags & ~knownHeartbeatFlags).toString(16)}`,
      flagsAt,
    );
  }
  const viewAt = r.position;
  const nodes = r.u8('view count');
  if (nodes > heartbeatViewMax)
    throw r.fail('HA_TOO_LONG', 'view count', `${nodes} nodes, more than ${heartbeatViewMax}`, viewAt);
  const view: NodeReport[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nodes; i++) {
    const at = r.position;
    const name = r.str(`view ${i} name`, 'node', 1, nodeNameBytesMax);
    if (names.has(name)) throw r.fail('HA_BAD_FIELD', `view ${i} name`, 'reported twice', at);
    names.add(name);
    const state = r.code(`view ${i} state`, nodeStates.names);
    const flagsAt = r.position;
    const flags = r.u8(`view ${i} flags`);
    if ((flags & ~knownViewFlags) !== 0)
      throw r.fail(
        'HA_BAD_FIELD',
        `view ${i} flags`,
        `unknown bits 0x${(flags & ~knownViewFlags).toString(16)}`,
        flagsAt,
      );
    const silent = r.u32(`view ${i} silentMs`);
    view.push({
      name,
      state,
      silentMs: silent === silenceNever ? undefined : silent,
      outdatePending: (flags & viewFlagBits.outdatePending) !== 0,
    });
  }
  return { groups, standbyRequested: (flags & heartbeatFlagBits.standbyRequested) !== 0, view };
}

function readRequest(r: PacketReader): Pick<RequestPacket, 'kind' | 'requestId' | 'resource'> {
  const kind = r.code('kind', requestKinds.names);
  const requestId = r.u32('requestId');
  const resource = r.str('resource', 'text', 0, resourceBytesMax);
  return { kind, requestId, resource };
}

function readReply(r: PacketReader): Pick<ReplyPacket, 'requestId' | 'result' | 'message'> {
  const requestId = r.u32('requestId');
  const result = r.i32('result');
  const message = r.str('message', 'text', 0, replyMessageBytesMax);
  return { requestId, result, message };
}

/**
 * Parses and bounds-checks one datagram. Throws HaPacketError only. The packet is not
 * authenticated yet: verifyPacket, then the replay guard, before anything acts on it.
 * `signed` and `mac` are views of `bytes`.
 */
export function decodePacket(bytes: Uint8Array): DecodedPacket {
  if (bytes.length > packetBytesMax) {
    throw new HaPacketError(
      'HA_TOO_LONG',
      `packet: ${bytes.length} bytes, more than ${packetBytesMax}`,
      packetBytesMax,
    );
  }
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new PacketReader(b, 0, b.length, 'packet');
  const f = packetFields;

  const magic = r.u32('magic');
  if (magic !== packetMagic) {
    throw r.fail('HA_BAD_MAGIC', 'magic', `0x${magic.toString(16)} is not tandem-ha's`, f.magic);
  }
  const version = r.u8('version');
  if (version !== packetVersion) {
    throw r.fail(
      'HA_BAD_VERSION',
      'version',
      `the sender speaks format ${version}, this tandem-ha speaks ${packetVersion}`,
      f.version,
    );
  }
  const type = r.code('type', packetTypes.names);
  const flags = r.u16('flags');
  if (flags !== 0) throw r.fail('HA_BAD_FIELD', 'flags', `unknown bits 0x${flags.toString(16)}`, f.flags);

  const common: PacketCommon = {
    cluster: r.str('cluster', 'text', 1, clusterBytesMax),
    from: r.str('from', 'node', 1, nodeNameBytesMax),
    to: r.str('to', 'node', 0, nodeNameBytesMax),
    generation: r.u64('generation', 1),
    seq: r.u64('seq', 1),
    timeMs: r.u64('timeMs', 0),
  };

  const lengthAt = r.position;
  const bodyLength = r.u16('body length');
  if (bodyLength > bodyBytesMax) {
    throw r.fail('HA_TOO_LONG', 'body', `${bodyLength} bytes, more than ${bodyBytesMax}`, lengthAt);
  }
  if (bodyLength > r.remaining) {
    throw r.fail('HA_SHORT', 'body', `${bodyLength} bytes, ${r.remaining} left in the packet`, lengthAt);
  }
  const body = r.sub(bodyLength, `${type} body`);
  let packet: HaPacket;
  switch (type) {
    case 'heartbeat':
      packet = { type, ...common, ...readHeartbeat(body) };
      break;
    case 'request':
      packet = { type, ...common, ...readRequest(body) };
      break;
    case 'reply':
      packet = { type, ...common, ...readReply(body) };
      break;
  }
  body.finish();
  const signed = b.subarray(0, r.position);

  const indexAt = r.position;
  const keyIndex = r.u8('keyIndex');
  if (keyIndex > keyIndexMax)
    throw r.fail('HA_BAD_FIELD', 'keyIndex', `${keyIndex} is above ${keyIndexMax}`, indexAt);
  const method = r.code('method', authMethodCodes.names);
  const macLengthAt = r.position;
  const macLength = r.u8('macLength');
  if (macLength !== macBytesOf[method]) {
    throw r.fail(
      'HA_BAD_MAC',
      'macLength',
      `${macLength}, but a ${method} MAC is ${macBytesOf[method]} bytes`,
      macLengthAt,
    );
  }
  const mac = r.bytes(macLength, 'mac', macLengthAt);
  r.finish();
  return { ...packet, keyIndex, method, mac, signed };
}

// ---------------------------------------------------------------------------------------
// Encoding

function strBytes(s: string): number {
  return 1 + Buffer.byteLength(s, 'utf8');
}

/**
 * Refuses a string the decoder would refuse, with the code it would give: such values come
 * from configuration (node names, group keys) or the world (messages), not from our bugs.
 */
function checkStr(field: string, s: string, kind: TextKind, min: number, max: number, at: number): void {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > max) throw new HaPacketError('HA_TOO_LONG', `packet ${field}: ${n} bytes, more than ${max}`, at);
  if (n < min) throw new HaPacketError('HA_BAD_FIELD', `packet ${field}: ${n} bytes, fewer than ${min}`, at);
  const problem = textProblem(s, kind);
  if (problem !== undefined) throw new HaPacketError('HA_BAD_FIELD', `packet ${field}: ${problem}`, at + 1);
}

function bodyBytes(p: HaPacket): number {
  switch (p.type) {
    case 'heartbeat':
      return (
        1 +
        p.groups.reduce((sum, g) => sum + strBytes(g.key) + 1, 0) +
        1 +
        1 +
        p.view.reduce((sum, n) => sum + strBytes(n.name) + 1 + 1 + 4, 0)
      );
    case 'request':
      return 1 + 4 + strBytes(p.resource);
    case 'reply':
      return 4 + 4 + strBytes(p.message);
  }
}

/** Checks the body's contents; `at` is the body's first byte in the packet. */
function checkBody(p: HaPacket, at: number): void {
  switch (p.type) {
    case 'heartbeat': {
      if (p.groups.length > heartbeatGroupsMax) {
        throw new HaPacketError(
          'HA_TOO_LONG',
          `heartbeat: ${p.groups.length} groups, more than ${heartbeatGroupsMax}`,
          at,
        );
      }
      const seen = new Set<string>();
      let pos = at + 1;
      for (const [i, g] of p.groups.entries()) {
        checkStr(`group ${i} key`, g.key, 'text', 1, groupKeyBytesMax, pos);
        if (seen.has(g.key))
          throw new HaPacketError('HA_BAD_FIELD', `packet group ${i} key: reported twice`, pos);
        seen.add(g.key);
        pos += strBytes(g.key) + 1;
      }
      pos += 1;
      if (p.view.length > heartbeatViewMax) {
        throw new HaPacketError(
          'HA_TOO_LONG',
          `heartbeat: a view of ${p.view.length} nodes, more than ${heartbeatViewMax}`,
          pos,
        );
      }
      const names = new Set<string>();
      pos += 1;
      for (const [i, n] of p.view.entries()) {
        checkStr(`view ${i} name`, n.name, 'node', 1, nodeNameBytesMax, pos);
        if (names.has(n.name))
          throw new HaPacketError('HA_BAD_FIELD', `packet view ${i} name: reported twice`, pos);
        names.add(n.name);
        assert.ok(n.silentMs === undefined || (Number.isInteger(n.silentMs) && n.silentMs >= 0), 'silentMs');
        pos += strBytes(n.name) + 1 + 1 + 4;
      }
      return;
    }
    case 'request':
      assert.ok(Number.isInteger(p.requestId) && p.requestId >= 0 && p.requestId <= 0xffffffff, 'requestId');
      checkStr('resource', p.resource, 'text', 0, resourceBytesMax, at + 5);
      return;
    case 'reply':
      assert.ok(Number.isInteger(p.requestId) && p.requestId >= 0 && p.requestId <= 0xffffffff, 'requestId');
      assert.ok(Number.isInteger(p.result) && p.result >= -(2 ** 31) && p.result < 2 ** 31, 'result');
      checkStr('message', p.message, 'text', 0, replyMessageBytesMax, at + 8);
      return;
  }
}

function writeBody(p: HaPacket, w: WireWriter): void {
  switch (p.type) {
    case 'heartbeat':
      w.u8(p.groups.length);
      for (const g of p.groups) {
        w.str(g.key);
        w.u8(groupStates.numbers[g.state]);
      }
      w.u8(p.standbyRequested ? heartbeatFlagBits.standbyRequested : 0);
      w.u8(p.view.length);
      for (const n of p.view) {
        w.str(n.name);
        w.u8(nodeStates.numbers[n.state]);
        w.u8(n.outdatePending ? viewFlagBits.outdatePending : 0);
        w.u32(n.silentMs === undefined ? silenceNever : Math.min(n.silentMs, silenceNever - 1));
      }
      return;
    case 'request':
      w.u8(requestKinds.numbers[p.kind]);
      w.u32(p.requestId);
      w.str(p.resource);
      return;
    case 'reply':
      w.u32(p.requestId);
      w.i32(p.result);
      w.str(p.message);
      return;
  }
}

function secretOf(key: PacketKey): string | undefined {
  return typeof key.secret === 'string' ? key.secret : key.secret?.reveal();
}

/** The MAC of `signed` under `method`; undefined when an HMAC method has no secret. */
function macOf(method: AuthMethod, secret: string | undefined, signed: Uint8Array): Buffer | undefined {
  if (method === 'crc') {
    // CRC32C, not zlib's CRC32: node:zlib has crc32 only from Node 20.15, and every node must agree.
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32BE(crc32c(signed), 0);
    return out;
  }
  if (secret === undefined) return undefined;
  return createHmac(method, secret).update(signed).digest();
}

/**
 * The datagram for `p`, signed with `key`. Strings and bodies over their limits (a node
 * name or group key from the configuration, a reply message) throw the HaPacketError the
 * decoder would; out-of-range numbers are our bugs and fail an assertion.
 */
export function encodePacket(p: HaPacket, key: PacketKey): Buffer {
  assert.ok(Number.isInteger(key.index) && key.index >= 0 && key.index <= keyIndexMax, 'key index');
  assert.ok(Number.isSafeInteger(p.generation) && p.generation >= 1, 'generation');
  assert.ok(Number.isSafeInteger(p.seq) && p.seq >= 1, 'seq');
  assert.ok(Number.isSafeInteger(p.timeMs) && p.timeMs >= 0, 'timeMs');
  const secret = secretOf(key);
  assert.ok(key.method === 'crc' || secret !== undefined, `key ${key.index} (${key.method}) has no secret`);

  let at: number = packetFields.cluster;
  checkStr('cluster', p.cluster, 'text', 1, clusterBytesMax, at);
  at += strBytes(p.cluster);
  checkStr('from', p.from, 'node', 1, nodeNameBytesMax, at);
  at += strBytes(p.from);
  checkStr('to', p.to, 'node', 0, nodeNameBytesMax, at);
  at += strBytes(p.to) + counterBytes;
  const body = bodyBytes(p);
  if (body > bodyBytesMax) {
    throw new HaPacketError('HA_TOO_LONG', `packet body: ${body} bytes, more than ${bodyBytesMax}`, at);
  }
  checkBody(p, at + 2);
  const signedBytes = at + 2 + body;
  const total = signedBytes + sealBytes + macBytesOf[key.method];
  // Every field within its limit keeps the packet within packetBytesMax.
  assert.ok(total <= packetBytesMax, 'packet size');

  const buf = Buffer.allocUnsafe(total);
  const w = new WireWriter(buf, 0);
  w.u32(packetMagic);
  w.u8(packetVersion);
  w.u8(packetTypes.numbers[p.type]);
  w.u16(0);
  w.str(p.cluster);
  w.str(p.from);
  w.str(p.to);
  w.u64(p.generation);
  w.u64(p.seq);
  w.u64(p.timeMs);
  w.u16(body);
  writeBody(p, w);
  assert.equal(w.position, signedBytes, 'signed bytes');
  const mac = macOf(key.method, secret, buf.subarray(0, signedBytes))!;
  w.u8(key.index);
  w.u8(authMethodCodes.numbers[key.method]);
  w.u8(mac.length);
  w.bytes(mac);
  assert.equal(w.position, total, 'packet bytes');
  return buf;
}

/** The largest packet the encoder can make: all strings and the body at their limits, sha256. */
export const packetBytesLargest =
  packetFields.cluster +
  1 +
  clusterBytesMax +
  2 * (1 + nodeNameBytesMax) +
  counterBytes +
  2 +
  bodyBytesMax +
  sealBytes +
  macBytesOf.sha256;
assert.ok(packetBytesLargest <= packetBytesMax, 'packet limits');

// ---------------------------------------------------------------------------------------
// Authentication

/**
 * Checks the MAC against the configured keys: the key the packet names must exist with
 * the method the packet names, and the MAC must be that key's over `signed`. crc is
 * accepted (it is Heartbeat's "no security" mode); the caller warns about it.
 */
export function verifyPacket(d: DecodedPacket, keys: readonly PacketKey[]): VerifyResult {
  const key = keys.find((k) => k.index === d.keyIndex);
  if (key === undefined)
    return { ok: false, reason: `signed with key ${d.keyIndex}, which authkeys does not define` };
  if (key.method !== d.method) {
    return {
      ok: false,
      reason: `signed with key ${d.keyIndex} as ${d.method}, but authkeys defines key ${d.keyIndex} as ${key.method}`,
    };
  }
  const expected = macOf(key.method, secretOf(key), d.signed);
  if (expected === undefined) return { ok: false, reason: `key ${d.keyIndex} (${key.method}) has no secret` };
  // timingSafeEqual throws on different lengths; the length is no secret.
  if (d.mac.length !== expected.length || !timingSafeEqual(d.mac, expected)) {
    return { ok: false, reason: `the ${d.method} MAC does not match key ${d.keyIndex}` };
  }
  return { ok: true };
}
