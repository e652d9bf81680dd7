// Orders operations on byte ranges: an operation waits for every earlier one whose
// range overlaps its own, and for nothing else. The order is the order of `acquire`
// calls, which happen synchronously when a request is submitted (or received from the
// peer), so overlapping writes reach the disk in submission order on both replicas
// while disjoint writes run concurrently (DRBD's conflict detection, without the
// interval tree: at most a few hundred operations are in flight).

interface Held {
  readonly start: number;
  readonly end: number;
  readonly done: Promise<void>;
}

export class RangeLock {
  /** In acquire order. An array, not a Set: a few dozen entries, added and removed on every write. */
  private readonly held: Held[] = [];

  /** Operations holding or waiting for a range. */
  get size(): number {
    return this.held.length;
  }

  /** Whether an operation on [offset, offset+length) registered now would have to wait. */
  overlaps(offset: number, length: number): boolean {
    const end = offset + Math.max(length, 1);
    for (const h of this.held) if (h.start < end && offset < h.end) return true;
    return false;
  }

  /**
   * Registers [offset, offset+length) now; `ready` settles when every earlier
   * overlapping operation has released. Call `release` exactly once, also on failure.
   */
  acquire(offset: number, length: number): { ready: Promise<void> | undefined; release: () => void } {
    const start = offset;
    const end = offset + Math.max(length, 1);
    const waits: Promise<void>[] = [];
    for (const h of this.held) if (h.start < end && start < h.end) waits.push(h.done);
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const entry: Held = { start, end, done };
    this.held.push(entry);
    let released = false;
    return {
      // No promise at all when nothing overlaps: the common case costs no await.
      ready:
        waits.length === 0 ? undefined : waits.length === 1 ? waits[0] : Promise.all(waits).then(() => {}),
      release: () => {
        if (released) return;
        released = true;
        // Found near the front: operations mostly finish in the order they began.
        this.held.splice(this.held.indexOf(entry), 1);
        release();
      },
    };
  }

  /** Settles when everything registered so far has released. */
  drained(): Promise<void> {
    return Promise.all(this.held.map((h) => h.done)).then(() => {});
  }
}
