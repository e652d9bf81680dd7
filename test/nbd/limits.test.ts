// The NBD server's resource limits, against clients that ask for more than their share:
// connections per listener, requests executing per connection, and WRITE payload held
// per connection. Past each limit the server refuses or stops reading; it never holds
// more, and everything it accepted completes once the disk answers.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { storageExport } from '../../src/nbd/export.js';
import { Cmd } from '../../src/nbd/protocol.js';
import { clientsMax, NbdServer } from '../../src/nbd/server.js';
import { heldBytesMax, inFlightMax } from '../../src/nbd/session.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { TestNbdClient } from '../helpers/nbd-client.js';

const sizeBytes = 256 * 1024 * 1024;
let dir: string;
let sock: string;
let server: NbdServer;
const exp = storageExport('r0', new MemoryStorage(sizeBytes));

/** Writes wait at this gate while it is closed; the export counts what it holds. */
let gate: Promise<void> | undefined;
let openGate: () => void = () => {};
let writing = 0;
let writingPeak = 0;
let heldBytes = 0;
let heldPeak = 0;

function closeGate(): void {
  gate = new Promise((r) => {
    openGate = () => {
      gate = undefined;
      r();
    };
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-nbd-limits-'));
  sock = join(dir, 'r0.nbd');
  server = new NbdServer();
  server.add({
    ...exp,
    write: async (buf, off, fua) => {
      writing++;
      heldBytes += buf.length;
      writingPeak = Math.max(writingPeak, writing);
      heldPeak = Math.max(heldPeak, heldBytes);
      try {
        if (gate) await gate;
        await exp.write(buf, off, fua);
      } finally {
        writing--;
        heldBytes -= buf.length;
      }
    },
    clientOpened: () => exp.clientOpened(),
    clientClosed: () => exp.clientClosed(),
  });
  await server.listenUnix(sock);
});

after(async () => {
  openGate();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(sock);
  await c.handshake();
  await c.go('r0');
  return c;
}

const until = async (what: string, ok: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok()) {
    assert.ok(Date.now() < end, `${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test(`at most ${clientsMax} clients per listener: the next is refused, the others go on`, async () => {
  const clients: TestNbdClient[] = [];
  try {
    for (let i = 0; i < clientsMax; i++) clients.push(await open());
    const extra = await TestNbdClient.connect(sock);
    await assert.rejects(extra.handshake(), 'the client past the limit gets no handshake');
    extra.close();
    // Everyone admitted still has the device.
    const first = clients[0]!;
    first.send(Cmd.WRITE, 0, 4096, 0, Buffer.alloc(4096, 7));
    assert.equal((await first.reply()).error, 0);
  } finally {
    for (const c of clients) c.close();
  }
  await until('the server to count the closed clients', () => server.clientCount() === 0);
  // The places are free again.
  const again = await open();
  again.close();
});

test(`at most ${inFlightMax} requests execute per connection; past it the socket is not read`, async () => {
  writingPeak = 0;
  closeGate();
  const c = await open();
  try {
    const sent = inFlightMax + 150;
    for (let i = 0; i < sent; i++) c.send(Cmd.WRITE, i * 4096, 4096, 0, Buffer.alloc(4096, i & 0xff));
    await until('the server to stop taking requests', () => writing === inFlightMax);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(writingPeak, inFlightMax, 'requests executing at once');
    openGate();
    for (let i = 0; i < sent; i++) assert.equal((await c.reply()).error, 0);
  } finally {
    openGate();
    c.close();
  }
});

test(`WRITE payload held per connection stays within ${heldBytesMax / 1048576} MiB (plus one request)`, async () => {
  heldPeak = 0;
  closeGate();
  const c = await open();
  const request = 8 * 1024 * 1024;
  const count = 20; // 160 MiB offered
  try {
    const payload = Buffer.alloc(request, 0x5a);
    for (let i = 0; i < count; i++) c.send(Cmd.WRITE, i * request, request, 0, payload);
    await until('the server to hold writes', () => heldBytes >= heldBytesMax);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(heldPeak <= heldBytesMax + request, `held ${heldPeak / 1048576} MiB`);
    assert.ok(writing < count, 'the server stopped reading before taking every write');
    openGate();
    for (let i = 0; i < count; i++) assert.equal((await c.reply()).error, 0);
  } finally {
    openGate();
    c.close();
  }
});
