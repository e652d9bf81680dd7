// Adaptive busy polling of the event loop. Each hop of a request (client → tandemd →
// peer → tandemd → client) wakes a process that slept in epoll_wait; on a virtual machine
// that wake-up is an interrupt to a halted virtual CPU, tens of microseconds, and at queue
// depth 1 it is most of a request's latency. After bytes arrive, tandemd keeps its event
// loop polling (epoll with a zero timeout, through setImmediate) for a short window, so
// the next request or the peer's acknowledgement is picked up without a wake-up.
//
// The window adapts as the kernel's haltpoll cpuidle governor does: it grows while the
// next event comes a little after it (a longer window would have caught it), shrinks
// when events are further apart than the limit (polling would only burn the CPU), and
// is 0 on a quiet node: an idle tandemd does not poll at all.

/** The limit when `global { busy-poll }` is unset: long enough for the next hop of a request at queue depth 1. */
export const busyPollUsDefault = 200;

/** The window policy alone, with no clock or scheduling: pure, for tests. */
export class PollWindow {
  /** The current window, in microseconds (0: do not poll). */
  windowUs = 0;
  readonly maxUs: number;
  readonly growStartUs: number;

  constructor(maxUs: number, growStartUs = 20) {
    if (!Number.isFinite(maxUs) || maxUs < 0) throw new RangeError(`busy-poll: ${maxUs} is not a window`);
    this.maxUs = maxUs;
    this.growStartUs = Math.min(growStartUs, maxUs);
  }

  /** An event came `gapUs` after the one before it. */
  observe(gapUs: number): void {
    if (this.maxUs === 0) return;
    if (gapUs <= this.windowUs) return; // caught while polling: the window fits
    if (gapUs <= this.maxUs) {
      // Missed, but a window up to the limit would have caught it: grow.
      this.windowUs = Math.min(this.maxUs, Math.max(this.growStartUs, this.windowUs * 2));
    } else {
      // Further apart than polling may wait: shrink, and stop below the start size.
      const half = this.windowUs / 2;
      this.windowUs = half < this.growStartUs ? 0 : half;
    }
  }
}

export interface BusyPollOptions {
  /** The longest window in microseconds; 0 turns polling off. */
  readonly maxUs: number;
  /** Microseconds from some fixed point (default: performance.now()). */
  readonly nowUs?: () => number;
  /** Runs `f` after the event loop's next poll (default: setImmediate). */
  readonly later?: (f: () => void) => void;
}

export class BusyPoll {
  private readonly window: PollWindow;
  private readonly nowUs: () => number;
  private readonly later: (f: () => void) => void;
  private last = Number.NEGATIVE_INFINITY;
  private polling = false;
  /** Turns of the poll loop so far (tests, and to tell that it stops). */
  turns = 0;

  constructor(options: BusyPollOptions) {
    this.window = new PollWindow(options.maxUs);
    this.nowUs = options.nowUs ?? (() => performance.now() * 1000);
    this.later = options.later ?? ((f) => setImmediate(f));
  }

  /** The limit the window adapts under (0: off). */
  get maxUs(): number {
    return this.window.maxUs;
  }

  get windowUs(): number {
    return this.window.windowUs;
  }

  /** Whether the event loop is being kept polling now. */
  get isPolling(): boolean {
    return this.polling;
  }

  /** Bytes arrived (a client's request, the peer's frames): poll for the window from now. */
  readonly activity = (): void => {
    if (this.window.maxUs === 0) return;
    const now = this.nowUs();
    this.window.observe(now - this.last);
    this.last = now;
    if (!this.polling && this.window.windowUs > 0) {
      this.polling = true;
      this.later(this.turn);
    }
  };

  private readonly turn = (): void => {
    this.turns++;
    if (this.nowUs() - this.last < this.window.windowUs) this.later(this.turn);
    else this.polling = false;
  };
}
