// The control socket's server: mode 0600, at most controlClientsMax connections, a bad
// line answered with BAD_REQUEST on that connection only, a handler's crash reported
// as INTERNAL and never escaping.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { decodeResponse, encodeRequest } from '../../src/daemon/control-protocol.js';
import { ControlServer, controlClientsMax } from '../../src/daemon/control-server.js';

function client(path: string): Promise<{ s: Socket; lines: string[]; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const lines: string[] = [];
    let rest = '';
    let isClosed = false;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      rest += d;
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts);
    });
    s.on('close', () => {
      isClosed = true;
    });
    s.on('error', () => {});
    s.once('connect', () => resolve({ s, lines, closed: () => isClosed }));
    s.once('error', reject);
  });
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    assert.ok(i < 500, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the control socket: 0600, bounded connections, bad lines answered, handler crashes contained', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-control-'));
  const path = join(dir, 'tandemd.sock');
  const internal: unknown[] = [];
  const server = new ControlServer(
    async (req) => {
      if (req.cmd === 'verify') throw new TypeError('boom');
      return { echo: req.cmd };
    },
    (e) => internal.push(e),
  );
  await server.listen(path);
  const clients: Awaited<ReturnType<typeof client>>[] = [];
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    for (let i = 0; i < controlClientsMax + 8; i++) clients.push(await client(path));
    await until(
      'the connections past the limit to be closed',
      () => clients.filter((c) => c.closed()).length >= 8,
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(clients.filter((c) => c.closed()).length, 8, 'closed past the limit');
    const c = clients.find((x) => !x.closed())!;
    c.s.write('not json\n');
    c.s.write(encodeRequest({ id: 5, cmd: 'verify', resource: 'r0', force: false }));
    c.s.write(encodeRequest({ id: 6, cmd: 'status', resource: 'r0', force: false }));
    await until('three answers', () => c.lines.length === 3);
    // Answers come as their requests complete: match them by id (0: the unreadable line).
    const answers = new Map(c.lines.map(decodeResponse).map((a) => [a.id, a.ok ? 'ok' : a.error.code]));
    assert.deepEqual(Object.fromEntries(answers), { 0: 'BAD_REQUEST', 5: 'INTERNAL', 6: 'ok' });
    assert.equal(internal.length, 1, 'the handler crash was reported once');
  } finally {
    for (const c of clients) c.s.destroy();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
