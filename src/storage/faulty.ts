// FaultyStorage: another BlockStorage with faults injected in front of it, for
// the fault tests and the fault-schedule runs (nbdkit's error and delay filters,
// TigerBeetle's simulated storage). Seeded: the same seed, options and sequence
// of calls give the same faults, whatever order the operations complete in.
import { Prng } from '../util/prng.js';
import { type BlockStorage, checkRange, StorageError, type StorageErrorCode } from './storage.js';

export type StorageOp = 'read' | 'write' | 'flush' | 'discard';
/** The operations that address a byte range (flush has none). */
export type RangedOp = Exclude<StorageOp, 'flush'>;

/** A fixed delay, or one drawn uniformly from [minMs, maxMs] for each operation. */
export type DelayMs = number | { readonly minMs: number; readonly maxMs: number };

/** Torn writes stop at a sector boundary: a disk writes whole sectors or none. */
export const sectorBytes = 512;

export interface FaultyStorageOptions {
  /** Seeds the PRNG (default 1). */
  readonly seed?: number;
  /** Probability in [0, 1] that an operation fails with EIO. */
  readonly errorRates?: Partial<Record<StorageOp, number>>;
  /**
   * Probability in [0, 1] that a write is torn: only a prefix of whole sectors
   * (possibly none) reaches the storage, then the write fails with EIO, as when
   * the machine loses power mid-write.
   */
  readonly tornWriteRate?: number;
  readonly delays?: Partial<Record<StorageOp, DelayMs>>;
  /**
   * Disk full: a write reaching past this byte fails with ENOSPC and stores
   * nothing (a sparse file or thin volume whose pool ran out at that point).
   */
  readonly fullAtBytes?: number;
  /** How delays wait; inject a fake clock's sleep in tests. Default: setTimeout. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Faults injected so far. */
export interface FaultCounters {
  readErrors: number;
  writeErrors: number;
  flushErrors: number;
  discardErrors: number;
  /** Torn writes (also counted in writeErrors). */
  tornWrites: number;
  /** Writes refused with ENOSPC (also counted in writeErrors). */
  noSpace: number;
  /** Operations that were delayed, and by how long in all. */
  delays: number;
  delayMsTotal: number;
}

/** Operations seen (after the closed and range checks), faulty or not. */
export interface OpCounters {
  reads: number;
  writes: number;
  flushes: number;
  discards: number;
}

/** What happens to one operation, decided when it is called. */
type Fault =
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly code: StorageErrorCode; readonly why: string }
  | { readonly kind: 'torn'; readonly storedBytes: number };

interface BadRange {
  readonly offset: number;
  readonly length: number;
  readonly ops: ReadonlySet<RangedOp>;
}

/** Bad ranges at once; a schedule needing more has a bug. */
export const badRangesMax = 1024;

const noFault: Fault = { kind: 'none' };

function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function checkProbability(what: string, p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${what} must be in [0, 1], got ${p}`);
  return p;
}

function checkDelay(op: StorageOp, d: DelayMs): DelayMs {
  const ok =
    typeof d === 'number'
      ? Number.isFinite(d) && d >= 0
      : Number.isFinite(d.minMs) && Number.isFinite(d.maxMs) && d.minMs >= 0 && d.maxMs >= d.minMs;
  if (!ok) throw new RangeError(`delay of ${op} must be >= 0 ms (and min <= max): ${JSON.stringify(d)}`);
  return d;
}

export class FaultyStorage implements BlockStorage {
  readonly sizeBytes: number;
  readonly name: string;
  readonly seed: number;
  readonly injected: FaultCounters = {
    readErrors: 0,
    writeErrors: 0,
    flushErrors: 0,
    discardErrors: 0,
    tornWrites: 0,
    noSpace: 0,
    delays: 0,
    delayMsTotal: 0,
  };
  readonly ops: OpCounters = { reads: 0, writes: 0, flushes: 0, discards: 0 };

  private readonly base: BlockStorage;
  private readonly prng: Prng;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly errorRates: Record<StorageOp, number> = { read: 0, write: 0, flush: 0, discard: 0 };
  private tornWriteRate = 0;
  private readonly delays: Partial<Record<StorageOp, DelayMs>> = {};
  private fullAtBytes: number | undefined;
  private failingAll = false;
  private badRanges: BadRange[] = [];
  /** Absolute write numbers (ops.writes after the write is counted) that must fail. */
  private readonly writeTriggers = new Map<number, 'error' | 'torn'>();
  private closed = false;

  constructor(base: BlockStorage, options: FaultyStorageOptions = {}) {
    this.base = base;
    this.sizeBytes = base.sizeBytes;
    this.name = base.name;
    this.prng = new Prng(options.seed ?? 1);
    this.seed = this.prng.seed;
    this.sleep = options.sleep ?? realSleep;
    for (const [op, p] of Object.entries(options.errorRates ?? {}) as [StorageOp, number][])
      this.setErrorRate(op, p);
    this.setTornWriteRate(options.tornWriteRate ?? 0);
    for (const [op, d] of Object.entries(options.delays ?? {}) as [StorageOp, DelayMs][])
      this.setDelay(op, d);
    this.setFullAt(options.fullAtBytes);
  }

  // --- Faults, changed at any time -------------------------------------------------

  setErrorRate(op: StorageOp, p: number): void {
    this.errorRates[op] = checkProbability(`error rate of ${op}`, p);
  }

  setTornWriteRate(p: number): void {
    this.tornWriteRate = checkProbability('torn write rate', p);
  }

  /** Delays are not faults: heal() keeps them. */
  setDelay(op: StorageOp, d: DelayMs | undefined): void {
    if (d === undefined) delete this.delays[op];
    else this.delays[op] = checkDelay(op, d);
  }

  /** Writes reaching past `bytes` fail with ENOSPC; undefined: the disk has room again. */
  setFullAt(bytes: number | undefined): void {
    if (bytes !== undefined && !(Number.isSafeInteger(bytes) && bytes >= 0))
      throw new RangeError(`fullAtBytes must be a byte count, got ${bytes}`);
    this.fullAtBytes = bytes;
  }

  /** The n-th write from now (1: the next one) fails with EIO, or is torn. */
  failNthWrite(n: number, how: 'error' | 'torn' = 'error'): void {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`n must be >= 1, got ${n}`);
    this.writeTriggers.set(this.ops.writes + n, how);
  }

  /** Operations of the kinds `ops` touching [offset, offset+length) fail with EIO: bad sectors. */
  failRange(offset: number, length: number, ops: readonly RangedOp[] = ['write']): void {
    checkRange(this, offset, length);
    if (this.badRanges.length >= badRangesMax) throw new RangeError(`more than ${badRangesMax} bad ranges`);
    this.badRanges.push({ offset, length, ops: new Set(ops) });
  }

  /** Every operation fails with EIO from now on (the disk died), until heal(). */
  failAll(): void {
    this.failingAll = true;
  }

  /** Removes every fault: rates, torn writes, triggers, bad ranges, disk full, failAll. */
  heal(): void {
    this.failingAll = false;
    this.badRanges = [];
    this.writeTriggers.clear();
    this.fullAtBytes = undefined;
    this.tornWriteRate = 0;
    for (const op of Object.keys(this.errorRates) as StorageOp[]) this.errorRates[op] = 0;
  }

  /** Total faults injected (errors of every kind; torn and ENOSPC writes are write errors). */
  get faultCount(): number {
    const c = this.injected;
    return c.readErrors + c.writeErrors + c.flushErrors + c.discardErrors;
  }

  // --- BlockStorage -------------------------------------------------------------------

  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.check(offset, buf.length);
    this.ops.reads++;
    const fault = this.decide('read', offset, buf.length);
    await this.delay('read');
    if (fault.kind === 'error') throw this.fail('read', fault, offset, buf.length);
    await this.base.read(buf, offset);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.check(offset, buf.length);
    this.ops.writes++;
    const fault = this.decide('write', offset, buf.length);
    await this.delay('write');
    const outcome = this.writeOutcome(fault, buf, offset);
    if (outcome.error === undefined || outcome.stored.length > 0)
      await this.base.write(outcome.stored, offset);
    if (outcome.error) throw outcome.error;
  }

  /** What a write with this fault leaves on the medium, and the error the caller sees. */
  private writeOutcome(
    fault: Fault,
    buf: Uint8Array,
    offset: number,
  ): { stored: Uint8Array; error?: StorageError } {
    if (fault.kind === 'torn') {
      this.injected.tornWrites++;
      // Only whole sectors before the cut reached the medium; the caller sees an error.
      const why = `torn after ${fault.storedBytes} bytes`;
      return {
        stored: buf.subarray(0, fault.storedBytes),
        error: this.fail('write', { kind: 'error', code: 'EIO', why }, offset, buf.length),
      };
    }
    if (fault.kind === 'error')
      return { stored: buf.subarray(0, 0), error: this.fail('write', fault, offset, buf.length) };
    return { stored: buf };
  }

  /** As the base storage does, unless writes are delayed (a delay needs the event loop). */
  writesSync(length: number): boolean {
    return this.delays.write === undefined && (this.base.writesSync?.(length) ?? false);
  }

  /** write() without its (absent) delay: the same faults, decided the same way. */
  writeSync(buf: Uint8Array, offset: number): void {
    const base = this.base;
    if (base.writeSync === undefined) throw new TypeError(`${this.name}: no synchronous writes`);
    this.check(offset, buf.length);
    this.ops.writes++;
    const outcome = this.writeOutcome(this.decide('write', offset, buf.length), buf, offset);
    // The delay's draw, which write() makes for every operation: the same seed gives the
    // same faults whichever way a write comes.
    this.prng.float();
    if (outcome.error === undefined || outcome.stored.length > 0) base.writeSync(outcome.stored, offset);
    if (outcome.error) throw outcome.error;
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    this.ops.flushes++;
    const fault = this.decide('flush', 0, 0);
    await this.delay('flush');
    if (fault.kind === 'error') throw this.fail('flush', fault, 0, 0);
    await this.base.flush();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    this.ops.discards++;
    const fault = this.decide('discard', offset, length);
    await this.delay('discard');
    if (fault.kind === 'error') throw this.fail('discard', fault, offset, length);
    await this.base.discard(offset, length);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.base.close();
  }

  // --- Decisions ----------------------------------------------------------------------

  /** Closed and out-of-range calls are refused before any fault is drawn or counted. */
  private check(offset: number, length: number): void {
    if (this.closed) throw new StorageError('ECLOSED', `${this.name}: closed`, offset, length);
    checkRange(this, offset, length);
  }

  /**
   * Decides synchronously, when the operation is called, so the PRNG is consumed in
   * call order. Every operation draws the same three numbers whatever the options,
   * so changing one knob leaves the other faults of a schedule where they were.
   */
  private decide(op: StorageOp, offset: number, length: number): Fault {
    const errorDraw = this.prng.float();
    const tornDraw = this.prng.float();
    const cutDraw = this.prng.float();
    if (this.failingAll) return { kind: 'error', code: 'EIO', why: 'the disk has failed' };
    if (op !== 'flush' && this.inBadRange(op, offset, length))
      return { kind: 'error', code: 'EIO', why: 'bad range' };
    if (op === 'write') {
      const trigger = this.writeTriggers.get(this.ops.writes);
      if (trigger !== undefined) {
        this.writeTriggers.delete(this.ops.writes);
        if (trigger === 'torn') return this.tear(offset, length, cutDraw);
        return { kind: 'error', code: 'EIO', why: `write #${this.ops.writes} set to fail` };
      }
      if (this.fullAtBytes !== undefined && offset + length > this.fullAtBytes)
        return { kind: 'error', code: 'ENOSPC', why: `disk full at ${this.fullAtBytes} bytes` };
    }
    if (errorDraw < this.errorRates[op]) return { kind: 'error', code: 'EIO', why: 'random' };
    if (op === 'write' && tornDraw < this.tornWriteRate) return this.tear(offset, length, cutDraw);
    return noFault;
  }

  /** A cut at the start or at one of the sector boundaries strictly inside the write. */
  private tear(offset: number, length: number, cutDraw: number): Fault {
    const end = offset + length;
    const firstBoundary = (Math.floor(offset / sectorBytes) + 1) * sectorBytes;
    const inner = firstBoundary < end ? Math.floor((end - 1 - firstBoundary) / sectorBytes) + 1 : 0;
    const choice = Math.floor(cutDraw * (inner + 1));
    const cut = choice === 0 ? offset : firstBoundary + (choice - 1) * sectorBytes;
    return { kind: 'torn', storedBytes: cut - offset };
  }

  private inBadRange(op: RangedOp, offset: number, length: number): boolean {
    for (const r of this.badRanges) {
      // Half-open ranges overlap when each starts before the other ends; an empty access touches nothing.
      if (r.ops.has(op) && length > 0 && offset < r.offset + r.length && r.offset < offset + length)
        return true;
    }
    return false;
  }

  private async delay(op: StorageOp): Promise<void> {
    // Drawn for every operation, delayed or not, for the same reason as in decide().
    const draw = this.prng.float();
    const d = this.delays[op];
    if (d === undefined) return;
    const ms = typeof d === 'number' ? d : d.minMs + draw * (d.maxMs - d.minMs);
    if (ms <= 0) return;
    this.injected.delays++;
    this.injected.delayMsTotal += ms;
    await this.sleep(ms);
  }

  private fail(
    op: StorageOp,
    fault: Extract<Fault, { kind: 'error' }>,
    offset: number,
    length: number,
  ): StorageError {
    const c = this.injected;
    if (op === 'read') c.readErrors++;
    else if (op === 'write') c.writeErrors++;
    else if (op === 'flush') c.flushErrors++;
    else c.discardErrors++;
    if (fault.code === 'ENOSPC') c.noSpace++;
    return new StorageError(
      fault.code,
      `${this.name}: injected ${fault.code} on ${op} at ${offset}+${length} (${fault.why})`,
      offset,
      length,
    );
  }
}
