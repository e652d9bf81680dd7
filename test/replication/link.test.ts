// PeerLink on loopback: connect and tie-break, cram-hmac outcomes, garbage on the port,
// a killed connection and reconnect after connect-int, ping timeout on a manual clock,
// and stop() leaving no sockets behind.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import test from 'node:test';
import { ManualClock } from '../../src/replication/clock.js';
import { encodeFrame, type Frame } from '../../src/replication/frames.js';
import {
  type LinkReason,
  type LinkState,
  PeerLink,
  type PeerLinkOptions,
  pendingConnectionsMax,
} from '../../src/replication/link.js';
import { FrameDecoder } from '../../src/replication/stream.js';
import { freePort } from '../helpers/cluster.js';

const host = '127.0.0.1';
const deadlineMs = 5_000;

async function waitFor(what: string, cond: () => boolean): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Node {
  readonly link: PeerLink;
  readonly states: LinkState[];
  readonly reasons: LinkReason[];
  readonly frames: Frame[];
  readonly port: number;
}

type Extra = Partial<PeerLinkOptions>;

async function pair(
  extraA: Extra = {},
  extraB: Extra = {},
  ports?: { a: number; b: number; bDial?: number; aDial?: number },
): Promise<[Node, Node]> {
  const portA = ports?.a ?? (await freePort());
  const portB = ports?.b ?? (await freePort());
  const make = (name: string, peerName: string, port: number, peerPort: number, extra: Extra): Node => {
    const states: LinkState[] = [];
    const reasons: LinkReason[] = [];
    const frames: Frame[] = [];
    const link = new PeerLink({
      resource: 'r0',
      nodeName: name,
      peerName,
      listen: { host, port },
      peer: { host, port: peerPort },
      connectIntMs: 50,
      onState: (s, r) => {
        states.push(s);
        reasons.push(r);
      },
      onFrame: (f) => frames.push(f),
      ...extra,
    });
    return { link, states, reasons, frames, port };
  };
  const a = make('alpha', 'beta', portA, ports?.aDial ?? portB, extraA);
  const b = make('beta', 'alpha', portB, ports?.bDial ?? portA, extraB);
  await a.link.start();
  await b.link.start();
  return [a, b];
}

async function stopAll(...nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.link.stop()));
}

/** stop() has closed every listener and socket (the handles close on the next turn). */
async function noTcpHandles(): Promise<void> {
  const tcp = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP'));
  for (let i = 0; i < 20 && tcp().length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(tcp(), [], 'no TCP handles after stop()');
}

const barrier: Frame = { kind: 'Barrier', volume: 0, body: { epoch: 7 } };

test('two links reach Connected on both sides and carry frames; stop() closes every socket', async () => {
  const [a, b] = await pair();
  await waitFor('Connected', () => a.link.state === 'Connected' && b.link.state === 'Connected');
  assert.deepEqual(a.states.slice(0, 3), ['WFConnection', 'WFReportParams', 'Connected']);
  assert.equal(a.link.send(barrier), true);
  await waitFor('the Barrier', () => b.frames.length === 1);
  assert.deepEqual(b.frames[0], barrier);
  await stopAll(a, b);
  assert.equal(a.link.state, 'StandAlone');
  assert.equal(a.link.send(barrier), false, 'send on a stopped link');
  await noTcpHandles();
});

test('a dial whose handshake times out (a peer silent after the TCP connect) is tried again', async () => {
  // The peer's port accepts and then says nothing, as across a partition that began
  // after the SYN got through.
  const accepted: Socket[] = [];
  const silent = createServer((sock) => {
    accepted.push(sock);
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, host, resolve));
  const address = silent.address();
  assert.ok(typeof address === 'object' && address !== null);
  const lone = new PeerLink({
    resource: 'r0',
    nodeName: 'alpha',
    peerName: 'beta',
    listen: { host, port: await freePort() },
    peer: { host, port: address.port },
    connectIntMs: 50,
    handshakeTimeoutMs: 100,
  });
  await lone.start();
  await waitFor('a third dial', () => accepted.length >= 3);
  await lone.stop();
  for (const sock of accepted) sock.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

test('send() before Connected returns false', async () => {
  const port = await freePort();
  const lone = new PeerLink({
    resource: 'r0',
    nodeName: 'alpha',
    peerName: 'beta',
    listen: { host, port },
    peer: { host, port: await freePort() },
    connectIntMs: 50,
  });
  assert.equal(lone.state, 'StandAlone');
  await lone.start();
  assert.equal(lone.state, 'WFConnection');
  assert.equal(lone.send(barrier), false);
  await lone.stop();
});

test('the same shared-secret authenticates both ways', async () => {
  const auth = { alg: 'sha256', secret: 'correct horse' };
  const [a, b] = await pair({ auth }, { auth });
  await waitFor('Connected', () => a.link.state === 'Connected' && b.link.state === 'Connected');
  await stopAll(a, b);
});

test('a wrong shared-secret: both sides say auth-failed, never Connected, and keep trying (as DRBD)', async () => {
  const [a, b] = await pair(
    { auth: { alg: 'sha1', secret: 'one' } },
    { auth: { alg: 'sha1', secret: 'two' } },
  );
  try {
    await waitFor(
      'auth-failed',
      () => a.link.reason.code === 'auth-failed' && b.link.reason.code === 'auth-failed',
    );
    // Refused more than once: the link goes on trying at connect-int. (It may be in the
    // middle of the next try — WFReportParams — when we look: trying, not given up.)
    await waitFor('a second refusal', () => a.reasons.filter((r) => r.code === 'auth-failed').length >= 2);
    for (const n of [a, b]) {
      assert.ok(['WFConnection', 'WFReportParams'].includes(n.link.state), n.link.state);
      assert.ok(!n.states.includes('Connected'));
      assert.ok(!n.states.includes('StandAlone'));
    }
  } finally {
    await stopAll(a, b);
  }
  await noTcpHandles();
});

test('a shared-secret on one side only is refused and both say so', async () => {
  const [a, b] = await pair({ auth: { alg: 'sha256', secret: 's' } }, {});
  await waitFor(
    'auth-failed',
    () => a.link.reason.code === 'auth-failed' && b.link.reason.code === 'auth-failed',
  );
  assert.ok(!a.states.includes('Connected') && !b.states.includes('Connected'));
  await stopAll(a, b);
});

test('a different resource name is refused as incompatible', async () => {
  const [a, b] = await pair({}, { resource: 'r1' });
  await waitFor(
    'incompatible',
    () => a.link.reason.code === 'incompatible' && b.link.reason.code === 'incompatible',
  );
  assert.ok(!a.states.includes('Connected') && !b.states.includes('Connected'));
  await stopAll(a, b);
});

test('an impostor with a wrong secret does not stop the link: the real peer still connects', async () => {
  const auth = { alg: 'sha256', secret: 'the real one' };
  const portA = await freePort();
  const portB = await freePort();
  const logs: string[] = [];
  const link = (name: string, peerName: string, port: number, peerPort: number, secret: string) =>
    new PeerLink({
      resource: 'r0',
      nodeName: name,
      peerName,
      listen: { host, port },
      peer: { host, port: peerPort },
      connectIntMs: 50,
      auth: { alg: 'sha256', secret },
      onLog: (m) => logs.push(m),
    });
  // beta waits for alpha's call (the lower-named node dials); an impostor calling itself
  // alpha (names are no secret) gets there first, with a guessed secret.
  const beta = link('beta', 'alpha', portB, portA, auth.secret);
  const impostor = link('alpha', 'beta', await freePort(), portB, 'a guess');
  let alpha: PeerLink | undefined;
  try {
    await beta.start();
    await impostor.start();
    await waitFor('the impostor refused', () => logs.some((l) => /r0 beta: refused: /.test(l)));
    await impostor.stop();
    assert.notEqual(beta.state, 'StandAlone');
    alpha = link('alpha', 'beta', portA, portB, auth.secret);
    await alpha.start();
    const a = alpha;
    await waitFor('Connected', () => a.state === 'Connected' && beta.state === 'Connected');
  } finally {
    await impostor.stop();
    await alpha?.stop();
    await beta.stop();
  }
  await noTcpHandles();
});

test('garbage on the listening ports: no crash, the real peer still connects', async () => {
  const portA = await freePort();
  const portB = await freePort();
  const logs: string[] = [];
  const garbage = async (port: number): Promise<void> => {
    const s = tcpConnect({ host, port });
    s.on('error', () => {});
    // Read (and drop) what the link says, so its FIN is seen and 'close' comes.
    s.resume();
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
  };
  const [a, b] = await pair(
    { onLog: (m) => logs.push(m) },
    { onLog: (m) => logs.push(m) },
    { a: portA, b: portB },
  );
  await Promise.all([garbage(portA), garbage(portB)]);
  await waitFor('Connected', () => a.link.state === 'Connected' && b.link.state === 'Connected');
  assert.ok(
    logs.some((m) => m.includes('REPL_BAD_MAGIC')),
    logs.join('\n'),
  );
  await garbage(portB);
  assert.equal(b.link.state, 'Connected', 'garbage on the port does not touch a live link');
  await stopAll(a, b);
});

/** A TCP relay whose connections can be reset, as a dead peer or a cut cable. */
async function relay(target: number): Promise<{ port: number; kill(): void; close(): Promise<void> }> {
  const live = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = tcpConnect({ host, port: target });
    for (const s of [client, up]) {
      live.add(s);
      s.on('error', () => {});
      s.on('close', () => live.delete(s));
    }
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  return {
    port: address.port,
    kill: () => {
      for (const s of live) s.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('a reset connection: NetworkFailure, then reconnect after connect-int', async () => {
  const portA = await freePort();
  const portB = await freePort();
  const r = await relay(portB);
  // alpha sorts lower, so its connection (through the relay) is the one kept.
  const [a, b] = await pair({}, {}, { a: portA, b: portB, aDial: r.port });
  await waitFor('Connected', () => a.link.state === 'Connected' && b.link.state === 'Connected');
  const connectedBefore = a.states.filter((s) => s === 'Connected').length;
  r.kill();
  await waitFor('reconnect', () => a.states.filter((s) => s === 'Connected').length > connectedBefore);
  const after = a.states.slice(a.states.indexOf('Connected') + 1);
  assert.deepEqual(after.slice(0, 2), ['NetworkFailure', 'WFConnection'], after.join(' '));
  await waitFor('Connected', () => a.link.state === 'Connected' && b.link.state === 'Connected');
  await stopAll(a, b);
  await r.close();
});

test('no PingAck within ping-timeout (manual clock): NetworkFailure, reconnect after connect-int', async () => {
  const clock = new ManualClock();
  const pings: number[] = [];
  const peers: Socket[] = [];
  // A peer 'beta' that completes Hello and then swallows every Ping.
  const fake = createServer((s) => {
    peers.push(s);
    s.on('error', () => {});
    const decoder = new FrameDecoder();
    s.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) if (f.kind === 'Ping') pings.push(clock.now());
    });
    s.write(
      encodeFrame({
        kind: 'Hello',
        volume: 0,
        body: {
          protocolMin: 1,
          protocolMax: 1,
          features: 0,
          nodeName: 'beta',
          resourceName: 'r0',
          tandemVersion: 'test',
          authAlg: '',
        },
      }),
    );
  });
  await new Promise<void>((resolve) => fake.listen(0, host, resolve));
  const address = fake.address();
  assert.ok(typeof address === 'object' && address !== null);
  const states: LinkState[] = [];
  const reasons: LinkReason[] = [];
  const link = new PeerLink({
    resource: 'r0',
    nodeName: 'alpha',
    peerName: 'beta',
    listen: { host, port: await freePort() },
    peer: { host, port: address.port },
    connectIntMs: 10_000,
    pingIntMs: 10_000,
    pingTimeoutMs: 500,
    clock,
    onState: (s, r) => {
      states.push(s);
      reasons.push(r);
    },
  });
  await link.start();
  await waitFor('Connected', () => link.state === 'Connected');
  clock.advance(9_999);
  assert.equal(pings.length, 0, 'no Ping before ping-int');
  clock.advance(1);
  await waitFor('the Ping', () => pings.length === 1);
  clock.advance(499);
  assert.equal(link.state, 'Connected');
  clock.advance(1);
  assert.deepEqual(states.slice(-2), ['NetworkFailure', 'WFConnection']);
  assert.equal(reasons.at(-2)?.code, 'ping-timeout');
  clock.advance(9_999);
  assert.equal(link.state, 'WFConnection');
  clock.advance(1);
  await waitFor('Connected again', () => link.state === 'Connected');
  await link.stop();
  for (const s of peers) s.destroy();
  await new Promise<void>((resolve) => fake.close(() => resolve()));
  assert.equal(clock.pending, 0, 'stop() clears every timer');
});

test(`at most ${pendingConnectionsMax} connections wait for their Hello at once; the rest are closed at accept`, async () => {
  const port = await freePort();
  const lone = new PeerLink({
    resource: 'r0',
    nodeName: 'alpha',
    peerName: 'beta',
    listen: { host, port },
    peer: { host, port: await freePort() },
    connectIntMs: 60_000,
    handshakeTimeoutMs: 1_500,
  });
  await lone.start();
  // Connections that send nothing, as a port scanner or a slowloris would.
  const squatters: Socket[] = [];
  const closed = new Set<Socket>();
  try {
    for (let i = 0; i < 20; i++) {
      const s = tcpConnect({ host, port });
      s.on('error', () => {});
      s.on('close', () => closed.add(s));
      s.resume(); // reads the Hello, so the daemon's close is seen
      squatters.push(s);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const open = squatters.length - closed.size;
    assert.ok(
      open >= 1 && open <= pendingConnectionsMax,
      `${open} squatters held (limit ${pendingConnectionsMax})`,
    );
    // Those held are dropped when their handshake time is up.
    await waitFor('every squatter dropped', () => closed.size === squatters.length);
  } finally {
    for (const s of squatters) s.destroy();
    await lone.stop();
  }
});
