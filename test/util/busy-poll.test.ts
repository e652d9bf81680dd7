// The busy-poll window: it grows while events come a little after it, stays while they
// come within it, shrinks to nothing when they are further apart than the limit; the
// poll loop runs only within the window after the last event and never on a quiet node.
import assert from 'node:assert/strict';
import test from 'node:test';
import { BusyPoll, PollWindow } from '../../src/util/busy-poll.js';

test('the window starts closed, grows by doubling up to the limit, and holds while events are caught', () => {
  const w = new PollWindow(200, 20);
  assert.equal(w.windowUs, 0);
  w.observe(100); // missed (window 0), within the limit
  assert.equal(w.windowUs, 20);
  w.observe(100);
  assert.equal(w.windowUs, 40);
  w.observe(100);
  assert.equal(w.windowUs, 80);
  w.observe(100);
  assert.equal(w.windowUs, 160);
  w.observe(100); // caught: no change
  assert.equal(w.windowUs, 160);
  w.observe(190); // missed: grows, capped at the limit
  assert.equal(w.windowUs, 200);
  w.observe(199);
  assert.equal(w.windowUs, 200);
});

test('events further apart than the limit halve the window, then close it', () => {
  const w = new PollWindow(200, 20);
  for (let i = 0; i < 10; i++) w.observe(190);
  assert.equal(w.windowUs, 200);
  w.observe(5_000);
  assert.equal(w.windowUs, 100);
  w.observe(5_000);
  assert.equal(w.windowUs, 50);
  w.observe(5_000);
  assert.equal(w.windowUs, 25);
  w.observe(5_000); // 12.5 is below the start size: closed
  assert.equal(w.windowUs, 0);
  w.observe(5_000);
  assert.equal(w.windowUs, 0);
});

test('a limit of 0 never polls; a negative or non-finite limit is refused', () => {
  const w = new PollWindow(0);
  w.observe(10);
  w.observe(1);
  assert.equal(w.windowUs, 0);
  assert.throws(() => new PollWindow(-1), /busy-poll: -1 is not a window/);
  assert.throws(() => new PollWindow(Number.NaN), /not a window/);
});

/** A BusyPoll on a fake clock whose `later` queue the test runs by hand. */
function fake(maxUs: number) {
  let now = 1_000_000;
  const queue: (() => void)[] = [];
  const poll = new BusyPoll({ maxUs, nowUs: () => now, later: (f) => queue.push(f) });
  return {
    poll,
    queue,
    advance(us: number) {
      now += us;
    },
    /** Runs queued turns, advancing the clock `stepUs` before each, until none is queued. */
    drain(stepUs: number): number {
      let turns = 0;
      while (queue.length > 0) {
        now += stepUs;
        queue.shift()?.();
        turns++;
      }
      return turns;
    },
  };
}

test('the loop polls for the window after the last event, then stops', () => {
  const f = fake(200);
  // Events 100 us apart open the window to 160 us (20, 40, 80, 160); one loop runs.
  for (let i = 0; i < 5; i++) {
    f.advance(100);
    f.poll.activity();
  }
  assert.equal(f.poll.windowUs, 160);
  assert.equal(f.poll.isPolling, true);
  assert.equal(f.queue.length, 1);
  // Turns 10 us apart: polls until 160 us after the last event, then stops by itself.
  const turns = f.drain(10);
  assert.equal(turns, 16);
  assert.equal(f.poll.isPolling, false);
  assert.equal(f.queue.length, 0);
});

test('an event while polling does not start a second loop', () => {
  const f = fake(200);
  for (let i = 0; i < 3; i++) {
    f.advance(150);
    f.poll.activity();
    f.drain(10);
  }
  f.advance(150);
  f.poll.activity();
  f.poll.activity();
  f.poll.activity();
  assert.equal(f.queue.length, 1);
});

test('a quiet node never polls: one event after a long silence schedules nothing', () => {
  const f = fake(200);
  f.poll.activity();
  f.advance(1_000_000);
  f.poll.activity();
  assert.equal(f.queue.length, 0);
  assert.equal(f.poll.turns, 0);
});

test('off (limit 0): activity schedules nothing', () => {
  const f = fake(0);
  for (let i = 0; i < 10; i++) {
    f.advance(50);
    f.poll.activity();
  }
  assert.equal(f.queue.length, 0);
});

test('with the real event loop, polling ends within the window', async () => {
  // Events about 1 ms apart, well within a 50 ms limit: six of them open the window to 640 us.
  const poll = new BusyPoll({ maxUs: 50_000 });
  for (let i = 0; i < 6; i++) {
    poll.activity();
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.ok(poll.windowUs > 0, `window ${poll.windowUs}`);
  poll.activity();
  assert.equal(poll.isPolling, true);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(poll.isPolling, false);
  assert.ok(poll.turns > 0);
});
