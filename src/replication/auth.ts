// The `cram-hmac-alg` / `shared-secret` challenge-response, both directions, as DRBD's
// drbd_do_auth: each side sends 64 random bytes, answers the peer's with
// HMAC(secret, challenge), and checks the peer's answer to its own with a timing-safe
// compare. A peer that sends our own challenge back is refused (a reflection attack).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { type AuthResultCode, authChallengeBytes } from './messages-session.js';

/** The digest algorithms tandem accepts as `cram-hmac-alg`, by DRBD's (kernel crypto) name, with digest bytes. */
export const cramHmacAlgs: Readonly<Record<string, { readonly node: string; readonly digestBytes: number }>> =
  {
    md5: { node: 'md5', digestBytes: 16 },
    sha1: { node: 'sha1', digestBytes: 20 },
    sha224: { node: 'sha224', digestBytes: 28 },
    sha256: { node: 'sha256', digestBytes: 32 },
    sha384: { node: 'sha384', digestBytes: 48 },
    sha512: { node: 'sha512', digestBytes: 64 },
    'sha3-256': { node: 'sha3-256', digestBytes: 32 },
    'sha3-512': { node: 'sha3-512', digestBytes: 64 },
  };

/** DRBD's SHARED_SECRET_MAX. */
export const sharedSecretBytesMax = 64;

export class AuthError extends Error {
  /** REPL_AUTH_ALG: not a supported `cram-hmac-alg`; REPL_AUTH_SECRET: secret empty or too long. */
  readonly code: 'REPL_AUTH_ALG' | 'REPL_AUTH_SECRET';
  constructor(code: AuthError['code'], message: string) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
  }
}

/**
 * Why two Hellos' `authAlg`s cannot authenticate each other, in words for both logs;
 * undefined when they agree (both the same algorithm, or both without a secret).
 */
export function authMismatch(localAlg: string, peerAlg: string): string | undefined {
  if (localAlg === peerAlg) return undefined;
  if (localAlg === '')
    return `the peer authenticates with cram-hmac-alg ${peerAlg}, but no shared-secret is configured here`;
  if (peerAlg === '')
    return `cram-hmac-alg ${localAlg} is configured here, but the peer has no shared-secret`;
  return `cram-hmac-alg differs: ${localAlg} here, ${peerAlg} on the peer`;
}

/** The answer to the peer's challenge: our response, or why we refuse to give one. */
export type AuthAnswer =
  | { readonly ok: true; readonly response: Buffer }
  | { readonly ok: false; readonly result: AuthResultCode };

/** One side of one authentication: its own challenge, its answer, its verdict. */
export class CramHmac {
  readonly alg: string;
  /** The challenge to send in AuthChallenge; fresh for every connection attempt. */
  readonly challenge: Buffer;
  private readonly node: string;
  private readonly secret: Buffer;

  /** `random` is crypto.randomBytes unless a test injects a deterministic one. */
  constructor(alg: string, secret: string | Uint8Array, random: (bytes: number) => Buffer = randomBytes) {
    const spec = cramHmacAlgs[alg];
    if (spec === undefined || !Object.hasOwn(cramHmacAlgs, alg)) {
      throw new AuthError(
        'REPL_AUTH_ALG',
        `cram-hmac-alg ${alg} is not supported (use one of ${Object.keys(cramHmacAlgs).join(', ')})`,
      );
    }
    const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
    if (key.length === 0 || key.length > sharedSecretBytesMax) {
      throw new AuthError(
        'REPL_AUTH_SECRET',
        `shared-secret must be 1..${sharedSecretBytesMax} bytes, not ${key.length}`,
      );
    }
    this.alg = alg;
    this.node = spec.node;
    this.secret = key;
    this.challenge = random(authChallengeBytes);
  }

  /** Digest bytes of this algorithm: the AuthResponse length the peer must send. */
  get responseBytes(): number {
    return cramHmacAlgs[this.alg]!.digestBytes;
  }

  /** HMAC(secret, bytes) with this algorithm. */
  private mac(bytes: Uint8Array): Buffer {
    return createHmac(this.node, this.secret).update(bytes).digest();
  }

  /** Our AuthResponse to the peer's AuthChallenge. */
  respond(peerChallenge: Uint8Array): AuthAnswer {
    // DRBD compares the first CHALLENGE_LEN bytes: an echo of ours would let the peer
    // reuse our own answer as its answer without knowing the secret.
    const prefix = peerChallenge.subarray(0, authChallengeBytes);
    if (prefix.length === authChallengeBytes && this.challenge.equals(prefix)) {
      return { ok: false, result: 'reflected-challenge' };
    }
    return { ok: true, response: this.mac(peerChallenge) };
  }

  /** The verdict on the peer's AuthResponse to our challenge, for our AuthResult. */
  verify(peerResponse: Uint8Array): AuthResultCode {
    const expected = this.mac(this.challenge);
    // timingSafeEqual needs equal lengths; a length says nothing about the secret.
    if (peerResponse.length !== expected.length) return 'wrong-response';
    return timingSafeEqual(peerResponse, expected) ? 'ok' : 'wrong-response';
  }
}
