// Frames of the connection itself: Hello (versions, names, features), the cram-hmac
// challenge-response (DRBD's P_AUTH_CHALLENGE/P_AUTH_RESPONSE plus a result so that
// both sides can say why), Ping/PingAck and Disconnect. Pure codecs, no I/O.
import { type BodyCodec, maskOf, strBytes, stringBytesMax, type WireReader, wireCodes } from './wire.js';

/** Longest algorithm name (DRBD's SHARED_SECRET_MAX is 64 bytes with its NUL). */
export const algNameBytesMax = 63;
/** Longest tandem version string, e.g. `0.1.0` or `1.2.3-rc.1+g1234abc`. */
export const versionStringBytesMax = 64;

// ---------------------------------------------------------------- Hello
// The first frame each side sends, before authentication (DRBD: P_CONNECTION_FEATURES).
//   0  u16  protocolMin
//   2  u16  protocolMax
//   4  u32  features
//   8  str  nodeName        (u8 length + UTF-8, 1..255 bytes)
//      str  resourceName    (1..255 bytes)
//      str  tandemVersion   (0..64 bytes)
//      str  authAlg         (printable ASCII, 0..63 bytes; empty: no shared secret)

/**
 * Optional capabilities, agreed as the AND of both sides'. Unknown bits from a newer
 * peer are kept and ignored, not refused: that is what feature bits are for.
 */
export const helloFeatureBits = {
  /** Data frames may carry `discard` (DRBD_FF_TRIM). */
  discard: 1 << 0,
  /** Data frames may carry `zeroes` (DRBD_FF_WZEROES). */
  writeZeroes: 1 << 1,
  /** ResyncData may say `allZeroes` instead of carrying zero bytes (DRBD_FF_THIN_RESYNC). */
  thinResync: 1 << 2,
} as const;
export const helloFeaturesKnown = maskOf(helloFeatureBits);

export interface Hello {
  /** Lowest minor protocol version the sender speaks. */
  readonly protocolMin: number;
  /** Highest minor protocol version the sender speaks; the agreed one is min(both maxima). */
  readonly protocolMax: number;
  /** helloFeatureBits the sender supports (unknown bits allowed). */
  readonly features: number;
  /** The sender's node name (its `on NAME` section), so each side can check it reached the right peer. */
  readonly nodeName: string;
  /** The resource this connection replicates; both sides must agree. */
  readonly resourceName: string;
  /** The sender's tandem release, for logs and status only. */
  readonly tandemVersion: string;
  /** `cram-hmac-alg` the sender will authenticate with, '' when it has no `shared-secret`. */
  readonly authAlg: string;
}

export const helloCodec: BodyCodec<Hello> = {
  payloadBytesMin: 8 + 4,
  payloadBytesMax: 8 + 2 * (1 + stringBytesMax) + 1 + versionStringBytesMax + 1 + algNameBytesMax,
  size: (h) =>
    8 + strBytes(h.nodeName) + strBytes(h.resourceName) + strBytes(h.tandemVersion) + strBytes(h.authAlg),
  write(h, w) {
    w.u16(h.protocolMin);
    w.u16(h.protocolMax);
    w.u32(h.features);
    w.str(h.nodeName);
    w.str(h.resourceName);
    w.str(h.tandemVersion);
    w.str(h.authAlg);
  },
  read(r) {
    const at = r.position;
    const protocolMin = r.u16('protocolMin');
    const protocolMax = r.u16('protocolMax');
    if (protocolMin < 1 || protocolMin > protocolMax) {
      const range = `${protocolMin}..${protocolMax}`;
      throw r.fail('REPL_BAD_FIELD', 'protocolMin', `version range ${range} is empty or starts at 0`, at);
    }
    const features = r.u32('features');
    const nodeName = nonEmpty(r, 'nodeName');
    const resourceName = nonEmpty(r, 'resourceName');
    const tandemVersion = r.str('tandemVersion', versionStringBytesMax);
    const authAlg = r.algName('authAlg', algNameBytesMax);
    r.finish();
    return { protocolMin, protocolMax, features, nodeName, resourceName, tandemVersion, authAlg };
  },
};

function nonEmpty(r: WireReader, field: string): string {
  const at = r.position;
  const s = r.str(field);
  if (s.length === 0) throw r.fail('REPL_BAD_FIELD', field, 'is empty', at);
  return s;
}

// ---------------------------------------------------------------- AuthChallenge
// Random bytes; the peer must answer with HMAC(shared-secret, these bytes).
//   0  bytes challenge (the whole payload, 64..128 bytes as DRBD accepts)

/** What tandem sends (DRBD's CHALLENGE_LEN). */
export const authChallengeBytes = 64;
/** DRBD refuses a challenge over twice its own length; so do we. */
export const authChallengeBytesMax = 2 * authChallengeBytes;

export interface AuthChallenge {
  /** Fresh random bytes from the sender, never reused. */
  readonly challenge: Buffer;
}

export const authChallengeCodec: BodyCodec<AuthChallenge> = {
  payloadBytesMin: authChallengeBytes,
  payloadBytesMax: authChallengeBytesMax,
  size: (m) => m.challenge.length,
  write: (m, w) => w.bytes(m.challenge),
  read: (r) => ({ challenge: r.rest() }),
};

// ---------------------------------------------------------------- AuthResponse
//   0  bytes response (the whole payload: the HMAC, 16..64 bytes for md5..sha512)

export const authResponseBytesMin = 16;
export const authResponseBytesMax = 64;

export interface AuthResponse {
  /** HMAC of the peer's challenge keyed with the shared secret, with the agreed `cram-hmac-alg`. */
  readonly response: Buffer;
}

export const authResponseCodec: BodyCodec<AuthResponse> = {
  payloadBytesMin: authResponseBytesMin,
  payloadBytesMax: authResponseBytesMax,
  size: (m) => m.response.length,
  write: (m, w) => w.bytes(m.response),
  read: (r) => ({ response: r.rest() }),
};

// ---------------------------------------------------------------- AuthResult
// Sent by each side after it checked the peer's response, so that a peer with the wrong
// secret learns why it is refused instead of seeing a closed socket (DRBD has no such frame).
//   0  u8  result (authResults)

export const authResults = wireCodes({
  /** The response matched: the peer knows the secret. */
  ok: 0,
  /** The response did not match: a different `shared-secret` (or algorithm). */
  'wrong-response': 1,
  /** The peer sent our own challenge back (a reflection attack, DRBD: "Peer presented the same challenge!"). */
  'reflected-challenge': 2,
});
export type AuthResultCode = (typeof authResults.all)[number];

export interface AuthResult {
  /** The verdict on the receiver's response. */
  readonly result: AuthResultCode;
}

export const authResultCodec: BodyCodec<AuthResult> = {
  payloadBytesMin: 1,
  payloadBytesMax: 1,
  size: () => 1,
  write: (m, w) => w.u8(authResults.numbers[m.result]),
  read(r) {
    const result = r.code('result', authResults.names);
    r.finish();
    return { result };
  },
};

// ---------------------------------------------------------------- Ping, PingAck
// Liveness on an idle link (`ping-int`, `ping-timeout`): no payload.

/** A frame without payload. */
export type Empty = Readonly<Record<string, never>>;
const empty: Empty = Object.freeze({});

export const emptyCodec: BodyCodec<Empty> = {
  payloadBytesMin: 0,
  payloadBytesMax: 0,
  size: () => 0,
  write: () => {},
  read(r) {
    r.finish();
    return empty;
  },
};

// ---------------------------------------------------------------- Disconnect
// A goodbye with a reason, so the peer's log and status say why, not just "BrokenPipe".
//   0  u8   reason (disconnectReasons)
//   1  str  message (UTF-8, 0..255 bytes)

export const disconnectReasons = wireCodes({
  /** `tandemadm disconnect` or `down`. */
  user: 0,
  /** tandemd is stopping. */
  shutdown: 1,
  /** The peer sent a frame we could not accept; the message says which. */
  'protocol-error': 2,
  /** Authentication failed or was not configured alike on both sides. */
  'auth-failed': 3,
  /** Versions, resource names, net options or sizes that cannot work together. */
  incompatible: 4,
  /** The sync handshake found split brain and the after-sb policy says disconnect. */
  'split-brain': 5,
  /** The peer stopped answering within `timeout` / `ko-count`. */
  timeout: 6,
});
export type DisconnectReason = (typeof disconnectReasons.all)[number];

export interface Disconnect {
  /** Why the sender is closing. */
  readonly reason: DisconnectReason;
  /** One line for the peer's log, e.g. `after-sb-0pri differs: disconnect vs discard-zero-changes`. */
  readonly message: string;
}

export const disconnectCodec: BodyCodec<Disconnect> = {
  payloadBytesMin: 2,
  payloadBytesMax: 1 + 1 + stringBytesMax,
  size: (m) => 1 + strBytes(m.message),
  write(m, w) {
    w.u8(disconnectReasons.numbers[m.reason]);
    w.str(m.message);
  },
  read(r) {
    const reason = r.code('reason', disconnectReasons.names);
    const message = r.str('message');
    r.finish();
    return { reason, message };
  },
};
