// The NBD server under well-behaved and hostile clients, on a real unix socket
// with memory storage: replies match requests, bad requests get an errno and
// the stream stays framed, bad frames end only that connection.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { storageExport } from '../../src/nbd/export.js';
import { Cmd, CmdFlag, NbdErrno, Opt, Rep } from '../../src/nbd/protocol.js';
import { NbdServer } from '../../src/nbd/server.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageError } from '../../src/storage/storage.js';
import { TestNbdClient } from '../helpers/nbd-client.js';

const sizeBytes = 16 * 1024 * 1024;
let dir: string;
let sock: string;
let server: NbdServer;
const storage = new MemoryStorage(sizeBytes);
const exp = storageExport('r0', storage);
let refuse: string | undefined;
let failReads = false;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-nbd-'));
  sock = join(dir, 'r0.nbd');
  server = new NbdServer();
  server.add({
    ...exp,
    refusal: () => refuse,
    read: (buf, off) =>
      failReads ? Promise.reject(new StorageError('EIO', 'injected', off, buf.length)) : exp.read(buf, off),
    clientOpened: () => exp.clientOpened(),
    clientClosed: () => exp.clientClosed(),
  });
  server.add(storageExport('ro', new MemoryStorage(4096)));
  await server.listenUnix(sock);
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(name = 'r0'): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(sock);
  await c.handshake();
  await c.go(name);
  return c;
}

test('GO to an unknown export is refused with the export list; the connection may try again', async () => {
  const c = await TestNbdClient.connect(sock);
  await c.handshake();
  await assert.rejects(c.go('nope'), /GO refused \(6\): no export named 'nope' \(exports: r0, ro\)/);
  const { size } = await c.go('r0');
  assert.equal(size, sizeBytes);
  c.close();
});

test('an export that refuses (a Secondary) says why', async () => {
  refuse = "resource 'r0' is Secondary: only the Primary serves I/O";
  try {
    const c = await TestNbdClient.connect(sock);
    await c.handshake();
    await assert.rejects(c.go('r0'), /GO refused \(2\): resource 'r0' is Secondary/);
    c.close();
  } finally {
    refuse = undefined;
  }
});

test('LIST names every export, STRUCTURED_REPLY is acknowledged, unknown options are UNSUP', async () => {
  const c = await TestNbdClient.connect(sock);
  await c.handshake();
  c.sendOption(Opt.LIST);
  const names: string[] = [];
  for (;;) {
    const r = await c.readOptionReply();
    if (r.type === Rep.ACK) break;
    assert.equal(r.type, Rep.SERVER);
    names.push(r.data.toString('utf8', 4));
  }
  assert.deepEqual(names, ['r0', 'ro']);
  c.sendOption(Opt.STRUCTURED_REPLY);
  assert.equal((await c.readOptionReply()).type, Rep.ACK);
  c.sendOption(99);
  assert.equal((await c.readOptionReply()).type, Rep.ERR_UNSUP);
  c.close();
});

test('many writes in flight, each acknowledged by its cookie, then read back', async () => {
  const c = await open();
  const n = 200;
  const cookies = new Set<bigint>();
  for (let i = 0; i < n; i++) {
    cookies.add(
      c.send(Cmd.WRITE, i * 4096, 4096, i % 7 === 0 ? CmdFlag.FUA : 0, Buffer.alloc(4096, i & 0xff)),
    );
  }
  for (let i = 0; i < n; i++) {
    const r = await c.reply();
    assert.equal(r.error, 0);
    assert.ok(cookies.delete(r.cookie), `unexpected cookie ${r.cookie}`);
  }
  assert.equal(cookies.size, 0);
  c.send(Cmd.FLUSH, 0, 0);
  assert.equal((await c.reply()).error, 0);
  for (const i of [0, 1, 99, 199]) {
    c.send(Cmd.READ, i * 4096, 4096);
    const r = await c.reply(4096);
    assert.equal(r.error, 0);
    assert.ok(r.data.equals(Buffer.alloc(4096, i & 0xff)), `block ${i}`);
  }
  c.close();
});

test('out-of-range and invalid requests get an errno and the stream stays framed', async () => {
  const c = await open();
  c.send(Cmd.READ, sizeBytes - 512, 1024);
  assert.equal((await c.reply()).error, NbdErrno.EINVAL);
  // A refused WRITE's payload is drained: the next request is read correctly.
  c.send(Cmd.WRITE, sizeBytes - 512, 1024, 0, Buffer.alloc(1024, 0xee));
  assert.equal((await c.reply()).error, NbdErrno.ENOSPC);
  c.send(Cmd.WRITE, 0, 512, 0x8000, Buffer.alloc(512, 0xee));
  assert.equal((await c.reply()).error, NbdErrno.EINVAL, 'unknown command flag');
  c.send(42, 0, 0);
  assert.equal((await c.reply()).error, NbdErrno.EINVAL, 'unknown command');
  c.send(Cmd.WRITE_ZEROES, 0, 4096, CmdFlag.FAST_ZERO);
  assert.equal((await c.reply()).error, NbdErrno.ENOTSUP);
  c.send(Cmd.TRIM, sizeBytes, 4096);
  assert.equal((await c.reply()).error, NbdErrno.EINVAL);
  c.send(Cmd.READ, 0, 512, CmdFlag.DF);
  assert.equal((await c.reply()).error, NbdErrno.EINVAL, 'DF without structured replies');
  c.send(Cmd.READ, 0, 512, CmdFlag.FUA);
  assert.equal((await c.reply(512)).error, 0, 'FUA is valid on every command');
  c.send(Cmd.WRITE, 0, 512, CmdFlag.FAST_ZERO, Buffer.alloc(512));
  assert.equal((await c.reply()).error, NbdErrno.EINVAL, 'FAST_ZERO on a WRITE');
  c.send(Cmd.WRITE_ZEROES, 8192, 4096, CmdFlag.NO_HOLE);
  assert.equal((await c.reply()).error, 0);
  c.send(Cmd.READ, 8192, 4096);
  assert.ok((await c.reply(4096)).data.equals(Buffer.alloc(4096)));
  c.close();
});

test('a WRITE larger than the request limit is drained and refused with EINVAL', async () => {
  const c = await open();
  const big = 33 * 1024 * 1024;
  c.send(Cmd.WRITE, 0, big, 0, Buffer.alloc(big));
  assert.equal((await c.reply()).error, NbdErrno.EINVAL);
  c.send(Cmd.READ, 0, 512);
  assert.equal((await c.reply(512)).error, 0);
  c.close();
});

test('a storage error becomes EIO for that request; the server keeps serving', async () => {
  const c = await open();
  failReads = true;
  try {
    c.send(Cmd.READ, 0, 512);
    assert.equal((await c.reply()).error, NbdErrno.EIO);
  } finally {
    failReads = false;
  }
  c.send(Cmd.READ, 0, 512);
  assert.equal((await c.reply(512)).error, 0);
  c.close();
});

test('garbage ends only the connection that sent it', async () => {
  const good = await open();
  const badRequest = await open();
  badRequest.write(Buffer.alloc(28, 0x41));
  assert.ok(await badRequest.waitClosed(), 'bad request magic closes the connection');

  const badOption = await TestNbdClient.connect(sock);
  await badOption.handshake();
  badOption.write(Buffer.from('NOTAMAGIC-------'));
  assert.ok(await badOption.waitClosed(), 'bad option magic closes');

  const hugeOption = await TestNbdClient.connect(sock);
  await hugeOption.handshake();
  const h = Buffer.alloc(16);
  h.write('IHAVEOPT', 0, 'latin1');
  h.writeUInt32BE(Opt.GO, 8);
  h.writeUInt32BE(0xffffffff, 12);
  hugeOption.write(h);
  assert.ok(await hugeOption.waitClosed(), 'an option claiming 4 GiB of data closes');

  const badFlags = await TestNbdClient.connect(sock);
  await badFlags.read(18);
  badFlags.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  assert.ok(await badFlags.waitClosed(), 'unknown client flags close');

  good.send(Cmd.WRITE, 4096, 512, 0, Buffer.alloc(512, 7));
  assert.equal((await good.reply()).error, 0);
  good.close();
});

test('DISC closes after outstanding replies; every client is accounted for', async () => {
  const c = await open();
  c.send(Cmd.WRITE, 0, 4096, 0, Buffer.alloc(4096, 3));
  c.send(Cmd.DISC, 0, 0);
  assert.equal((await c.reply()).error, 0);
  assert.ok(await c.waitClosed());
  const deadline = Date.now() + 2000;
  while (exp.clients !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(exp.clients, 0);
});

// Review finding: a WRITE whose payload began a socket chunk released that chunk
// to the buffer pool while the rest of it (the next request) was still unparsed;
// another client's READ then reused the memory and the next WRITE stored its data.
test('a WRITE payload that starts a socket chunk is never recycled under the next request', async () => {
  const hdr = (type: number, off: number, len: number, cookie: number) => {
    const b = Buffer.alloc(28);
    b.writeUInt32BE(0x25609513, 0);
    b.writeUInt16BE(type, 6);
    b.writeBigUInt64BE(BigInt(cookie), 8);
    b.writeBigUInt64BE(BigInt(off), 16);
    b.writeUInt32BE(len, 24);
    return b;
  };
  await storage.write(Buffer.alloc(65536, 0xee), 0);
  const c1 = await open();
  const c2 = await open();
  const a = 1 << 20;
  const b = 2 << 20;
  c1.write(hdr(Cmd.WRITE, a, 4096, 101));
  await new Promise((r) => setTimeout(r, 100));
  // A's payload, B's header and most of B's payload: one 64 KiB read on the server.
  c1.write(
    Buffer.concat([
      Buffer.alloc(4096, 0x11),
      hdr(Cmd.WRITE, b, 65536, 102),
      Buffer.alloc(65536 - 4096 - 28, 0x22),
    ]),
  );
  assert.equal((await c1.reply()).error, 0);
  c2.send(Cmd.READ, 0, 65536);
  assert.equal((await c2.reply(65536)).error, 0);
  c1.write(Buffer.alloc(4096 + 28, 0x22));
  assert.equal((await c1.reply()).error, 0);
  c1.send(Cmd.READ, b, 65536);
  const back = await c1.reply(65536);
  assert.ok(
    back.data.every((x) => x === 0x22),
    'WRITE B reads back as written',
  );
  c1.close();
  c2.close();
});

// Review finding: READs whose replies are never read piled up 32 MiB buffers
// without bound (RSS 3 GiB in seconds). The held-bytes budget stops reading.
test('a client that sends large READs and never reads the replies cannot exhaust memory', async () => {
  const c = await open();
  c.socket.pause();
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 20; i++) c.send(Cmd.READ, 0, 8 * 1024 * 1024);
  await new Promise((r) => setTimeout(r, 1500));
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(
    grown < 100 * 1024 * 1024,
    `held ${Math.round(grown / 1048576)} MiB for 160 MiB of unread replies`,
  );
  c.close();
});
