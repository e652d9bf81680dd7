// Membership on a manual clock with an in-memory link between two nodes: up, late,
// dead after deadtime (initdead before the peer was ever heard), and what must never be
// acted on — forged packets (wrong secret, unknown key), replays, another cluster's
// packets, garbage — counted and dropped. Requests are answered once, and repeated
// until answered.
import assert from 'node:assert/strict';
import test from 'node:test';
import { parseAuthkeys } from '../../src/config/authkeys.js';
import { Membership, type PeerView } from '../../src/ha/membership.js';
import { encodePacket } from '../../src/ha/packet.js';
import type { HeartbeatTransport } from '../../src/ha/transport.js';
import { ManualClock } from '../../src/replication/clock.js';

const keys = parseAuthkeys('auth 1\n1 sha1 right-secret\n2 md5 other\n', 'authkeys').config;

interface Wire {
  readonly sent: Buffer[];
  readonly transport: HeartbeatTransport;
}

function wire(): Wire {
  const sent: Buffer[] = [];
  return {
    sent,
    transport: { links: [{ name: 'test' }], send: (b) => sent.push(Buffer.from(b)), close: async () => {} },
  };
}

function node(self: string, peer: string | readonly string[], clock: ManualClock) {
  const changes: { view: PeerView; why: string }[] = [];
  const requests: string[] = [];
  const logs: string[] = [];
  const m = new Membership({
    self,
    peers: typeof peer === 'string' ? [peer] : peer,
    cluster: 'server6,server7',
    keepaliveMs: 200,
    warntimeMs: 500,
    deadtimeMs: 1000,
    initdeadMs: 3000,
    activeKey: keys.active,
    keys: keys.keys,
    clock,
    report: () => ({ groups: [{ key: 'IPaddr::10.0.0.100', state: 'running' }], standby: false }),
    onPeerChange: (view, why) => changes.push({ view, why }),
    onRequest: async (kind, _resource, from) => {
      requests.push(typeof peer === 'string' ? kind : `${kind} from ${from}`);
      return { result: 0, message: 'done' };
    },
    log: (_level, message) => logs.push(message),
  });
  const w = wire();
  m.start(w.transport);
  return { m, w, changes, requests, logs };
}

/** Delivers everything `from` sent so far to `to`. */
function deliver(from: Wire, to: Membership): number {
  const n = from.sent.length;
  for (const b of from.sent.splice(0)) to.receive(b, 'test', '10.0.0.1');
  return n;
}

test('up when heard, late after warntime, dead after deadtime on every link', () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  const b = node('server7', 'server6', clock);
  deliver(b.w, a.m);
  assert.equal(a.m.view('server7').state, 'up');
  assert.deepEqual(a.m.view('server7').groups, [{ key: 'IPaddr::10.0.0.100', state: 'running' }]);
  for (let t = 0; t < 10; t++) {
    clock.advance(200);
    deliver(b.w, a.m);
  }
  assert.equal(a.m.view('server7').state, 'up');
  assert.equal(a.m.view('server7').late, false);
  // b goes silent.
  b.w.sent.length = 0;
  clock.advance(600);
  assert.equal(a.m.view('server7').late, true);
  assert.ok(a.logs.some((l) => /late heartbeat/.test(l)));
  clock.advance(400);
  assert.equal(a.m.view('server7').state, 'dead');
  assert.match(a.changes.at(-1)!.why, /silent on every link .*deadtime 1000 ms/);
});

test('never heard: dead after initdead, not deadtime', () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  clock.advance(2000);
  assert.equal(a.m.view('server7').state, 'init');
  assert.equal(a.m.settled(), false);
  clock.advance(1000);
  assert.equal(a.m.view('server7').state, 'dead');
  assert.equal(a.m.settled(), true);
});

test('forged, replayed, foreign and garbage packets are dropped and counted, never acted on', () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  const b = node('server7', 'server6', clock);
  deliver(b.w, a.m);
  const real = b.w.sent.length === 0 ? undefined : b.w.sent[0];
  void real;
  clock.advance(200);
  const [hb] = b.w.sent.splice(0);
  assert.ok(hb);
  a.m.receive(hb, 'test', '10.0.0.2');
  const received = a.m.counters.received;
  // The same packet again: a replay.
  a.m.receive(hb, 'test', '10.0.0.2');
  assert.equal(a.m.counters.replayed, 1);
  // A packet signed with a secret we do not share, claiming to be server7 and to run nothing.
  const common = {
    cluster: 'server6,server7',
    from: 'server7',
    to: 'server6',
    generation: Date.now() + 10,
    timeMs: 0,
  };
  const forged = encodePacket(
    {
      ...common,
      seq: 1,
      type: 'heartbeat',
      groups: [{ key: 'IPaddr::10.0.0.100', state: 'released' }],
      standbyRequested: true,
      view: [],
    },
    { index: 1, method: 'sha1', secret: 'wrong-secret' },
  );
  a.m.receive(forged, 'test', '10.0.0.66');
  // Key 3 does not exist.
  a.m.receive(
    encodePacket(
      { ...common, seq: 2, type: 'heartbeat', groups: [], standbyRequested: true, view: [] },
      { index: 3, method: 'sha1', secret: 'x' },
    ),
    'test',
    '10.0.0.66',
  );
  assert.equal(a.m.counters.forged, 2);
  // Another cluster on the same link, with our key.
  a.m.receive(
    encodePacket(
      {
        ...common,
        cluster: 'other',
        seq: 3,
        type: 'heartbeat',
        groups: [],
        standbyRequested: true,
        view: [],
      },
      keys.active,
    ),
    'test',
    '10.0.0.67',
  );
  assert.equal(a.m.counters.foreign, 1);
  // Garbage.
  a.m.receive(Buffer.from('GET / HTTP/1.0\r\n\r\n'), 'test', '10.0.0.68');
  a.m.receive(Buffer.alloc(0), 'test', '10.0.0.68');
  assert.equal(a.m.counters.malformed, 2);
  // None of it changed what server6 believes.
  assert.equal(a.m.counters.received, received);
  assert.equal(a.m.view('server7').standby, false);
  assert.deepEqual(a.m.view('server7').groups, [{ key: 'IPaddr::10.0.0.100', state: 'running' }]);
});

test('a request is repeated until answered, and acted on once', async () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  const b = node('server7', 'server6', clock);
  deliver(b.w, a.m);
  deliver(a.w, b.m);
  const answer = a.m.request('standby', 'server7');
  // The first try is lost.
  a.w.sent.splice(0);
  clock.advance(200);
  // The repeat arrives, and once more (a duplicate on a second link).
  const repeats = a.w.sent.splice(0);
  for (const r of repeats) b.m.receive(r, 'test', '10.0.0.1');
  for (const r of repeats) b.m.receive(Buffer.from(r), 'other', '10.0.0.1');
  await new Promise((r) => setImmediate(r));
  deliver(b.w, a.m);
  assert.deepEqual(await answer, { result: 0, message: 'done' });
  assert.deepEqual(b.requests, ['standby']);
});

test('a request nobody answers fails after deadtime', async () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  const answer = a.m.request('standby', 'server7');
  clock.advance(1200);
  assert.deepEqual(await answer, { result: -1, message: 'no answer from server7 within 1000 ms' });
});

test('a late, older heartbeat proves liveness but does not roll the reported state back', () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  let groupsOfB: { key: string; state: 'running' | 'released' }[] = [{ key: 'G', state: 'released' }];
  const b = new Membership({
    self: 'server7',
    peers: ['server6'],
    cluster: 'server6,server7',
    keepaliveMs: 200,
    warntimeMs: 500,
    deadtimeMs: 1000,
    initdeadMs: 3000,
    activeKey: keys.active,
    keys: keys.keys,
    clock,
    report: () => ({ groups: groupsOfB, standby: false }),
    onPeerChange: () => {},
    onRequest: async () => ({ result: 0, message: '' }),
    log: () => {},
  });
  const w = wire();
  b.start(w.transport);
  const [older] = w.sent.splice(0);
  groupsOfB = [{ key: 'G', state: 'running' }];
  clock.advance(200);
  const [newer] = w.sent.splice(0);
  a.m.receive(newer!, 'test', '10.0.0.2');
  a.m.receive(older!, 'test', '10.0.0.2');
  assert.deepEqual(a.m.view('server7').groups, [{ key: 'G', state: 'running' }]);
});

test('a pause of this node itself does not declare the peer dead before its queued packets are read', () => {
  const clock = new ManualClock();
  const a = node('server6', 'server7', clock);
  const b = node('server7', 'server6', clock);
  deliver(b.w, a.m);
  assert.equal(a.m.view('server7').state, 'up');
  // a is paused for 1.5 s: its next timer runs late; b's heartbeats wait in the socket.
  (clock as unknown as { time: number }).time += 1500;
  clock.advance(0);
  assert.equal(a.m.view('server7').state, 'up', 'declared dead at the first tick after a pause');
  deliver(b.w, a.m);
  clock.advance(200);
  assert.equal(a.m.view('server7').state, 'up');
  assert.ok(a.logs.some((l) => /paused for/.test(l)));
});

test("three nodes: heartbeats carry each one's view, and a request gets around a cut through the third", async () => {
  const clock = new ManualClock();
  const a = node('server6', ['server7', 'witness'], clock);
  const b = node('server7', ['server6', 'witness'], clock);
  const w = node('witness', ['server6', 'server7'], clock);
  // server6 and server7 do not hear each other; both hear the witness.
  const route = () => {
    for (const x of a.w.sent.splice(0)) w.m.receive(x, 'test', '10.0.0.6');
    for (const x of b.w.sent.splice(0)) w.m.receive(x, 'test', '10.0.0.7');
    for (const x of w.w.sent.splice(0)) {
      a.m.receive(x, 'test', '10.0.0.8');
      b.m.receive(Buffer.from(x), 'test', '10.0.0.8');
    }
  };
  for (let t = 0; t < 17; t++) {
    route();
    clock.advance(200);
  }
  route();
  assert.equal(a.m.view('server7').state, 'dead');
  assert.equal(a.m.view('witness').state, 'up');
  // The witness's word, as server6 received it: it hears both.
  assert.deepEqual(
    a.m.view('witness').view.map((v) => [v.name, v.state]),
    [
      ['server6', 'up'],
      ['server7', 'up'],
    ],
  );
  assert.ok((a.m.view('witness').view[0]?.silentMs ?? 1e9) <= 200);
  assert.ok((a.m.view('witness').heartbeatAgeMs ?? 1e9) <= 200);
  const answer = a.m.request('outdate-peer', 'server7', 'r0', 5000);
  route(); // server6 → witness, relayed
  route(); // witness → server7; server7's reply → witness, relayed → server6
  await new Promise((r) => setImmediate(r));
  route();
  route();
  assert.deepEqual(await answer, { result: 0, message: 'done' });
  assert.deepEqual(b.requests, ['outdate-peer from server6']);
  assert.ok(w.m.counters.relayed >= 2, `relayed ${w.m.counters.relayed}`);
  assert.deepEqual(w.requests, [], 'the witness acted on a request for another node');
  // A relayed copy is no heartbeat of the relaying node: server7 is still dead at server6.
  assert.equal(a.m.view('server7').state, 'dead');
});
