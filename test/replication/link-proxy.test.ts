// The test proxy between two nodes (test/helpers/link-proxy.ts) must never reorder
// bytes: the chaos runs judge tandem by what arrives, and a proxy that lets a later
// chunk overtake an earlier one delivers whole frames out of order.
import assert from 'node:assert/strict';
import { createServer, connect as tcpConnect } from 'node:net';
import test from 'node:test';
import { LinkProxy } from '../helpers/link-proxy.js';

test('a changing delay never lets a later chunk overtake an earlier one', async () => {
  const received: Buffer[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => {
    done = r;
  });
  const chunks = 300;
  const server = createServer((s) =>
    s.on('data', (d: Buffer) => {
      received.push(d);
      if (Buffer.concat(received).length === chunks * 4) done();
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const proxy = await LinkProxy.start({ host: '127.0.0.1', port: typeof a === 'object' && a ? a.port : 0 });
  const client = tcpConnect(proxy.port, '127.0.0.1');
  client.setNoDelay(true);
  await new Promise((r) => client.once('connect', r));
  try {
    for (let i = 0; i < chunks; i++) {
      // Each chunk with a shorter delay than the one before (6, 5, ... 0 ms, again):
      // each is due when the one before it is, by a timer of another length.
      proxy.delay(6 - (i % 7));
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      client.write(b);
      await new Promise((r) => setTimeout(r, 1)); // one chunk per write at the proxy
    }
    await all;
    const bytes = Buffer.concat(received);
    for (let i = 0; i < chunks; i++) assert.equal(bytes.readUInt32BE(i * 4), i, `chunk ${i} in order`);
  } finally {
    client.destroy();
    await proxy.close();
    await new Promise((r) => server.close(r));
  }
});
