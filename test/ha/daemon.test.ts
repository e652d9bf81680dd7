// tandem-ha's daemon in one process, on loopback with a peer that never answers: its
// control socket answers status, refuses garbage (a `null` line once crashed it) without
// stopping, and a second daemon on the same run dir is refused without touching the
// first one's socket.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseAuthkeys } from '../../src/config/authkeys.js';
import type { HaConfig } from '../../src/config/ha.js';
import { parseHaCf } from '../../src/config/hacf.js';
import { parseHaResources } from '../../src/config/haresources.js';
import { HaDaemon } from '../../src/ha/daemon.js';
import { freePort } from '../helpers/cluster.js';
import { bin } from '../helpers/paths.js';
import { sh } from '../helpers/tandem-node.js';

async function ask(socket: string, line: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    s.setEncoding('utf8');
    s.on('error', reject);
    s.on('connect', () => s.write(`${line}\n`));
    s.on('data', (d: string) => {
      buf += d;
      if (!buf.includes('\n')) return;
      s.end();
      resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))));
    });
  });
}

test('the control socket answers status, refuses garbage and keeps running; one daemon per run dir', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ha-'));
  const port = await freePort();
  const hacfText = `keepalive 200ms\ndeadtime 1\ninitdead 2\nudpport ${port}\nucast lo 127.0.0.2\nnode alpha\nnode bravo\n`;
  const authText = 'auth 1\n1 sha256 s3cret\n';
  const config: HaConfig = {
    dir,
    hacf: parseHaCf(hacfText, 'ha.cf').config,
    authkeys: parseAuthkeys(authText, 'authkeys').config,
    resources: parseHaResources('', 'haresources').config,
  };
  const logs: string[] = [];
  const d = new HaDaemon({
    config,
    node: 'alpha',
    runDir: dir,
    tandemadm: ['true'],
    log: (_l, m) => logs.push(m),
  });
  await d.start();
  try {
    const sock = join(dir, 'tandem-ha.sock');
    for (const garbage of ['null', '[]', '42', '"status"', '{"cmd":"frobnicate"}', 'not json at all']) {
      const r = (await ask(sock, garbage)) as { ok: boolean; error?: string };
      assert.equal(r.ok, false, garbage);
      assert.ok(r.error, garbage);
    }
    const st = (await ask(sock, '{"id":7,"cmd":"status"}')) as {
      id: number;
      ok: boolean;
      result: { node: string; peer: { name: string } };
    };
    assert.equal(st.id, 7);
    assert.equal(st.result.node, 'alpha');
    assert.equal(st.result.peer.name, 'bravo');
    // A second tandem-ha (another process) on the same run dir is refused.
    writeFileSync(join(dir, 'ha.cf'), hacfText);
    writeFileSync(join(dir, 'authkeys'), authText, { mode: 0o600 });
    writeFileSync(join(dir, 'haresources'), '');
    const second = await sh(
      process.execPath,
      [bin('tandem-ha'), '--config-dir', dir, '--node', 'alpha', '--run-dir', dir],
      20_000,
    );
    assert.equal(second.code, 1, second.err);
    assert.match(second.err, /tandem-ha: another tandem-ha \(pid \d+\) serves this run dir/);
    // The first daemon still answers on its socket.
    const again = (await ask(sock, '{"id":8,"cmd":"status"}')) as { ok: boolean };
    assert.equal(again.ok, true);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
