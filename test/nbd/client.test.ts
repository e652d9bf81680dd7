// The demo's NBD client against servers that misbehave: a refused export, a
// server that closes with requests in flight, a reply with a bad magic or for a
// request never sent, and a server that never answers the handshake. Each ends
// in an error naming what happened; nothing hangs. An error reply fails only its
// own request. (Against tandem's server the demo's tests drive it.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { NbdClient } from '../../src/nbd/client.js';
import { IHAVEOPT, NBDMAGIC, REPLY_MAGIC_OPTION, Rep, SIMPLE_REPLY_MAGIC } from '../../src/nbd/protocol.js';

/** A server that greets, takes the GO option and answers it with `go`, then hands the socket to `then`. */
async function fakeServer(
  go: 'ok' | 'refuse' | 'silent',
  then: (s: Socket) => void = () => {},
): Promise<{ path: string; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-nbdc-'));
  const path = join(dir, 'sock');
  const server: Server = createServer((s) => {
    s.on('error', () => {});
    if (go === 'silent') return;
    const g = Buffer.alloc(18);
    g.writeBigUInt64BE(NBDMAGIC, 0);
    g.writeBigUInt64BE(IHAVEOPT, 8);
    g.writeUInt16BE(3, 16);
    s.write(g);
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4 + 16) return;
      const len = buf.readUInt32BE(4 + 12);
      if (buf.length < 4 + 16 + len) return;
      s.off('data', onData);
      const reply = (type: number, data: Buffer) => {
        const h = Buffer.alloc(20);
        h.writeBigUInt64BE(REPLY_MAGIC_OPTION, 0);
        h.writeUInt32BE(7, 8);
        h.writeUInt32BE(type, 12);
        h.writeUInt32BE(data.length, 16);
        s.write(Buffer.concat([h, data]));
      };
      if (go === 'refuse') {
        reply(Rep.ERR_POLICY, Buffer.from('resource is Secondary'));
        return;
      }
      const info = Buffer.alloc(12);
      info.writeUInt16BE(0, 0);
      info.writeBigUInt64BE(1n << 20n, 2);
      reply(Rep.INFO, info);
      reply(Rep.ACK, Buffer.alloc(0));
      then(s);
    };
    s.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a refused export: the server’s reason', async () => {
  const srv = await fakeServer('refuse');
  try {
    await assert.rejects(
      NbdClient.open({ path: srv.path }, 'r0'),
      /export 'r0' refused: resource is Secondary/,
    );
  } finally {
    await srv.close();
  }
});

test('a server that never answers the handshake: the deadline', async () => {
  const srv = await fakeServer('silent');
  try {
    await assert.rejects(NbdClient.open({ path: srv.path }, 'r0', 300), /no NBD handshake within 300 ms/);
  } finally {
    await srv.close();
  }
});

test('the server closes with requests in flight: every one fails, later ones too', async () => {
  const srv = await fakeServer('ok', (s) => s.once('data', () => s.destroy()));
  try {
    const c = await NbdClient.open({ path: srv.path }, 'r0');
    assert.equal(c.sizeBytes, 1 << 20);
    const inFlight = [c.write(0, Buffer.alloc(4096)), c.read(0, 4096), c.flush()];
    for (const p of inFlight) await assert.rejects(p, /connection closed/);
    await assert.rejects(c.read(0, 512), /connection closed/);
    assert.equal(c.inFlight, 0);
  } finally {
    await srv.close();
  }
});

for (const [what, reply] of [
  ['a bad reply magic', (cookie: bigint) => simple(0xdeadbeef, cookie)],
  ['a reply for a request never sent', () => simple(SIMPLE_REPLY_MAGIC, 999n)],
] as const) {
  test(`${what}: the connection is dropped and the request fails`, async () => {
    const srv = await fakeServer('ok', (s) =>
      s.once('data', (d: Buffer) => s.write(reply(d.readBigUInt64BE(8)))),
    );
    try {
      const c = await NbdClient.open({ path: srv.path }, 'r0');
      await assert.rejects(c.read(0, 4096), /bad reply magic|unknown cookie/);
    } finally {
      await srv.close();
    }
  });
}

test('an error reply carries the errno; the connection goes on', async () => {
  const srv = await fakeServer('ok', (s) =>
    s.on('data', (d: Buffer) => {
      // Requests are 28 bytes (no WRITE here): answer each, EIO for the first.
      for (let at = 0; at + 28 <= d.length; at += 28) {
        const cookie = d.readBigUInt64BE(at + 8);
        s.write(simple(SIMPLE_REPLY_MAGIC, cookie, cookie === 1n ? 5 : 0));
      }
    }),
  );
  try {
    const c = await NbdClient.open({ path: srv.path }, 'r0');
    await assert.rejects(c.flush(), (e: Error & { errno?: number }) => e.errno === 5);
    await c.flush();
    c.close();
  } finally {
    await srv.close();
  }
});

function simple(magic: number, cookie: bigint, error = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
  return b;
}
