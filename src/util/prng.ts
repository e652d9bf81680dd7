// A small seeded pseudo-random generator (mulberry32) for reproducible tests and
// fault schedules: the same seed gives the same sequence on every platform and
// Node version. 32 bits of state, period 2^32. Not for cryptography or UUIDs.

export class Prng {
  readonly seed: number;
  private state: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
    // Any integer seeds; only its low 32 bits matter.
    this.seed = seed >>> 0;
    this.state = this.seed;
  }

  /** The next value, uniform in [0, 2^32). */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, n), for 0 < n <= 2^32. */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0 || n > 0x1_0000_0000)
      throw new RangeError(`int(n) needs 0 < n <= 2^32, got ${n}`);
    return Math.floor(this.float() * n);
  }

  /** True with probability p (p <= 0: never, p >= 1: always). */
  chance(p: number): boolean {
    return this.float() < p;
  }
}
