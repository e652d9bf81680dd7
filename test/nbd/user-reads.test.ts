// Reads into buffers the reader chooses (src/nbd/user-reads.ts), and the NBD
// session on top of them: WRITE payloads cut at every kind of boundary by the
// socket, read partly through the scratch buffer and partly straight into the
// payload, land byte for byte; the same stream through 'data' events too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encodeRequest } from '../../src/nbd/codec.js';
import { storageExport } from '../../src/nbd/export.js';
import { Cmd, CmdFlag } from '../../src/nbd/protocol.js';
import { clientsMax, NbdServer } from '../../src/nbd/server.js';
import { adoptForUserReads } from '../../src/nbd/user-reads.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { Prng } from '../../src/util/prng.js';
import { TestNbdClient } from '../helpers/nbd-client.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-user-reads-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function listen(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
}

async function connected(path: string): Promise<Socket> {
  const c = connect(path);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return c;
}

const tick = () => new Promise<void>((r) => setTimeout(r, 2));

test('an accepted socket is read into the buffers the reader hands out, on this Node', async () => {
  const path = join(dir, 'adopt.sock');
  const a = Buffer.alloc(5);
  const b = Buffer.alloc(7);
  const got: string[] = [];
  let turn = 0;
  let adopted: Socket | undefined;
  const server = createServer({ pauseOnConnect: true }, (s) => {
    adopted = adoptForUserReads(s, {
      // Alternates, so a read into the wrong one shows.
      next: () => (turn++ % 2 === 0 ? a : b),
      arrived: (n, buf) =>
        got.push(`${buf === a ? 'a' : buf === b ? 'b' : '?'}:${buf.toString('latin1', 0, n)}`),
    });
    adopted?.write('hello');
  });
  await listen(server, path);
  const c = await connected(path);
  const greeting = await new Promise<string>((r) => c.once('data', (d) => r(d.toString())));
  assert.equal(greeting, 'hello', 'writes go out on the adopted socket');
  assert.ok(adopted, 'this Node lets a session choose its read buffers (else the fallback would be silent)');
  for (const part of ['12345', 'abcdefg', 'XY']) {
    c.write(part);
    await tick();
  }
  assert.deepEqual(got, ['a:12345', 'b:abcdefg', 'a:XY']);
  const closed = new Promise<void>((r) => adopted?.once('close', () => r()));
  c.end();
  await closed;
  // The server's own count of connections was settled when the adopted socket was
  // wrapped again, so close() does not wait for it.
  await new Promise<void>((r) => server.close(() => r()));
});

test('a socket that was not accepted paused is left as it is', async () => {
  const path = join(dir, 'flowing.sock');
  let result: Socket | undefined | 'unset' = 'unset';
  const server = createServer((s) => {
    result = adoptForUserReads(s, { next: () => Buffer.alloc(1), arrived: () => {} });
    s.on('data', (d) => s.write(d));
  });
  await listen(server, path);
  const c = await connected(path);
  c.write('ping');
  const echo = await new Promise<string>((r) => c.once('data', (d) => r(d.toString())));
  assert.equal(result, undefined);
  assert.equal(echo, 'ping');
  c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const sizeBytes = 16 * 1024 * 1024;

/**
 * Random WRITEs (0 to 300 KiB, some FUA, none overlapping) and FLUSHes sent as one
 * byte stream cut into random pieces, from 1 byte to 200 KiB, a third of them
 * inside a request header, many with a pause so that the server reads them apart. Every reply is 0 and the device ends up as
 * the model.
 */
async function fragmentedStream(userReads: boolean, seed: number, tcp = false): Promise<void> {
  const rng = new Prng(seed);
  const storage = new MemoryStorage(sizeBytes);
  const server = new NbdServer({ userReads });
  // Writes land a turn later, as on a real disk: a payload still pointing into a
  // buffer the next read reuses would show.
  const exp = storageExport('r0', storage);
  server.add({
    ...exp,
    write: (buf, off, fua) => new Promise((r) => setImmediate(r)).then(() => exp.write(buf, off, fua)),
    clientOpened: () => exp.clientOpened(),
    clientClosed: () => exp.clientClosed(),
  });
  const path = join(dir, `frag-${userReads}-${seed}.nbd`);
  const port = tcp ? await server.listenTcp('127.0.0.1', 0) : await server.listenUnix(path);
  try {
    const c = tcp
      ? await TestNbdClient.connectTcp('127.0.0.1', port as number)
      : await TestNbdClient.connect(path);
    await c.handshake();
    await c.go('r0');
    assert.equal(server.userReadSessions, userReads ? 1 : 0, 'the session reads the way asked');
    const model = Buffer.alloc(sizeBytes);
    const parts: Buffer[] = [];
    const headerAt: number[] = [];
    let streamBytes = 0;
    const add = (b: Buffer, header: boolean) => {
      if (header) headerAt.push(streamBytes);
      parts.push(b);
      streamBytes += b.length;
    };
    let offset = 0;
    let requests = 0;
    while (requests < 80) {
      const big = rng.chance(0.3);
      const length = big ? 65536 + rng.int(240 * 1024) : rng.int(9000);
      offset += rng.int(3) * 512;
      if (offset + length > sizeBytes) break;
      const payload = randomBytes(length);
      payload.copy(model, offset);
      const flags = rng.chance(0.1) ? CmdFlag.FUA : 0;
      parts.push(
        encodeRequest({ flags, type: Cmd.WRITE, cookie: BigInt(++requests), offset, length }),
        payload,
      );
      if (rng.chance(0.1))
        parts.push(
          encodeRequest({ flags: 0, type: Cmd.FLUSH, cookie: BigInt(++requests), offset: 0, length: 0 }),
        );
      offset += length;
    }
    const stream = Buffer.concat(parts);
    let sent = 0;
    while (sent < stream.length) {
      // A third of the cuts fall inside the next request header.
      const next = headerAt.find((h) => h >= sent);
      let end = sent + (rng.chance(0.3) ? 1 + rng.int(64) : 1 + rng.int(200 * 1024));
      if (next !== undefined && rng.chance(0.3)) end = Math.max(sent + 1, next + 1 + rng.int(27));
      end = Math.min(end, stream.length);
      // Handed to the kernel before the next: Node would join queued pieces into one writev.
      await new Promise<void>((r) => c.socket.write(stream.subarray(sent, end), () => r()));
      sent = end;
      if (rng.chance(0.4)) await tick();
    }
    for (let i = 0; i < requests; i++)
      assert.equal((await c.reply()).error, 0, `reply ${i + 1} of ${requests}`);
    const back = Buffer.alloc(sizeBytes);
    await storage.read(back, 0);
    const at = back.findIndex((x, i) => x !== model[i]);
    assert.equal(at, -1, `the device differs from what was written at byte ${at} (seed ${seed})`);
    c.close();
  } finally {
    await server.close();
  }
}

for (const userReads of [true, false]) {
  test(`WRITE payloads cut anywhere by the socket land byte for byte (${userReads ? 'user reads' : "'data' events"})`, async () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) await fragmentedStream(userReads, seed);
  });
}

test('the same over TCP, where the session wraps a TCP handle', async () => {
  for (const seed of [7, 8]) await fragmentedStream(true, seed, true);
});

// Review finding: DISC paused the socket; with user reads that stops reading it,
// so the client's FIN was never seen, the connection never closed, and after
// clientsMax clean disconnects the listener refused everyone.
for (const userReads of [true, false]) {
  test(`clients that leave with DISC leave nothing behind (${userReads ? 'user reads' : "'data' events"})`, async () => {
    const server = new NbdServer({ userReads });
    const exp = storageExport('r0', new MemoryStorage(1 << 20));
    server.add(exp);
    const path = join(dir, `disc-${userReads}.nbd`);
    await server.listenUnix(path);
    try {
      for (let i = 0; i < clientsMax + 2; i++) {
        const c = await TestNbdClient.connect(path);
        await c.handshake();
        await c.go('r0');
        c.send(Cmd.WRITE, 0, 512, 0, Buffer.alloc(512, i));
        c.send(Cmd.DISC, 0, 0);
        assert.equal((await c.reply()).error, 0);
        assert.ok(await c.waitClosed(), `client ${i + 1} closed`);
      }
      const deadline = Date.now() + 2000;
      while (server.connectionCount > 0 && Date.now() < deadline) await tick();
      assert.equal(server.connectionCount, 0, 'the server let go of every connection');
      const last = await TestNbdClient.connect(path);
      await last.handshake();
      const { size } = await last.go('r0');
      assert.equal(size, 1 << 20, 'the next client is served');
      last.close();
    } finally {
      await server.close();
    }
  });
}

// A client that vanishes halfway through a WRITE's payload (the rest of it would have
// been read straight into the payload buffer): nothing of it reaches the disk, the
// server lets the connection go, and the next client is served.
for (const userReads of [true, false]) {
  test(`a client gone halfway through a payload leaves nothing behind (${userReads ? 'user reads' : "'data' events"})`, async () => {
    const storage = new MemoryStorage(4 << 20);
    const server = new NbdServer({ userReads });
    server.add(storageExport('r0', storage));
    const path = join(dir, `half-${userReads}.nbd`);
    await server.listenUnix(path);
    try {
      const c = await TestNbdClient.connect(path);
      await c.handshake();
      await c.go('r0');
      const length = 1 << 20;
      c.write(encodeRequest({ flags: 0, type: Cmd.WRITE, cookie: 1n, offset: 0, length }));
      await new Promise<void>((r) => c.socket.write(Buffer.alloc(length / 2, 0x5a), () => r()));
      await tick();
      c.close();
      const deadline = Date.now() + 2000;
      while (server.connectionCount > 0 && Date.now() < deadline) await tick();
      assert.equal(server.connectionCount, 0, 'the server let go of the connection');
      const back = Buffer.alloc(length);
      await storage.read(back, 0);
      assert.ok(
        back.every((x) => x === 0),
        'no byte of the half payload reached the disk',
      );
      const next = await TestNbdClient.connect(path);
      await next.handshake();
      await next.go('r0');
      next.send(Cmd.WRITE, 0, 4096, 0, Buffer.alloc(4096, 1));
      assert.equal((await next.reply()).error, 0, 'the next client is served');
      next.close();
    } finally {
      await server.close();
    }
  });
}
