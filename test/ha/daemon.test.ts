// tandem-ha's daemon in one process, on loopback with a peer that never answers: its
// control socket answers status, refuses garbage (a `null` line once crashed it) without
// stopping, and a second daemon on the same run dir is refused without touching the
// first one's socket.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** A one-node run of the daemon (its peer never answers) with one group of one script. */
async function stubbornDaemon(onStopFailure: string) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ha-'));
  const port = await freePort();
  mkdirSync(join(dir, 'resource.d'));
  // Starts and reports running; its stop fails while the file `stubborn` exists.
  writeFileSync(join(dir, 'stubborn'), '');
  writeFileSync(
    join(dir, 'resource.d', 'stubborn'),
    `#!/bin/sh\ncase "$1" in\n  start) touch ${dir}/running ;;\n  stop) [ -f ${dir}/stubborn ] && exit 1; rm -f ${dir}/running ;;\n  status) [ -f ${dir}/running ] && echo running || echo stopped ;;\nesac\n`,
    { mode: 0o755 },
  );
  const hacfText = `keepalive 100ms\ndeadtime 1\ninitdead 1\nudpport ${port}\nucast lo 127.0.0.2\nnode alpha\nnode bravo\n${onStopFailure}`;
  const config: HaConfig = {
    dir,
    hacf: parseHaCf(hacfText, 'ha.cf').config,
    authkeys: parseAuthkeys('auth 1\n1 sha256 s3cret\n', 'authkeys').config,
    resources: parseHaResources('alpha stubborn\n', 'haresources').config,
  };
  const logs: string[] = [];
  const d = new HaDaemon({
    config,
    node: 'alpha',
    runDir: dir,
    tandemadm: ['true'],
    log: (_l, m) => logs.push(m),
    rebootCommand: ['sh', '-c', `echo rebooted > ${dir}/rebooted`],
  });
  await d.start();
  // The peer is never heard: after initdead the group starts here, its preferred node.
  for (let i = 0; d.status().groups[0]?.state !== 'running'; i++) {
    assert.ok(i < 100, `the group did not start: ${d.status().groups[0]?.state}\n${logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const cleanup = async () => {
    rmSync(join(dir, 'stubborn'), { force: true });
    assert.equal(await d.stop(), true);
    rmSync(dir, { recursive: true, force: true });
  };
  return { d, dir, logs, cleanup, port };
}

test('a group that cannot be stopped at shutdown: held (on_stop_failure hold), tandem-ha keeps heartbeating', async () => {
  const { d, dir, logs, cleanup } = await stubbornDaemon('');
  try {
    assert.equal(await d.stop(), false, 'tandem-ha went silent with a group held');
    assert.equal(d.status().groups[0]?.state, 'failed');
    assert.equal(existsSync(join(dir, 'rebooted')), false, 'rebooted without being told to');
    assert.ok(logs.some((l) => /cannot be stopped .*held here, on_stop_failure hold/.test(l)));
  } finally {
    await cleanup();
  }
});

test('a group that cannot be stopped: on_stop_failure reboot reboots the node', async () => {
  const { d, dir, logs, cleanup } = await stubbornDaemon('on_stop_failure reboot\n');
  try {
    assert.equal(await d.stop(), false);
    assert.equal(readFileSync(join(dir, 'rebooted'), 'utf8'), 'rebooted\n');
    assert.ok(logs.some((l) => /on_stop_failure reboot: sh -c/.test(l)));
  } finally {
    await cleanup();
  }
});

/** GET http://127.0.0.1:port/metrics as text. */
async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

function series(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('metrics_address: Prometheus metrics of liveness, groups, packets and the majority', async () => {
  const metricsPort = await freePort();
  const { d, cleanup, port } = await stubbornDaemon(`metrics_address 127.0.0.1:${metricsPort}\n`);
  try {
    const group = d.status().groups[0]?.key as string;
    let text = await scrape(metricsPort);
    assert.equal(series(text, 'tandem_ha_group_state', `{group="${group}",state="running"}`), 1);
    assert.equal(series(text, 'tandem_ha_group_state', `{group="${group}",state="released"}`), 0);
    // The peer was never heard: it is dead here, and every link is down.
    const bravo = d.status().nodes.find((n) => n.name === 'bravo');
    assert.equal(series(text, 'tandem_ha_node_state', `{node="bravo",state="${bravo?.state}"}`), 1);
    assert.equal(bravo?.state, 'dead');
    assert.equal(series(text, 'tandem_ha_quorum', ''), 1, 'no witness: the majority does not apply');
    assert.equal(series(text, 'tandem_ha_standby', ''), 0);
    assert.equal(series(text, 'tandem_ha_failovers_total', ''), d.status().failovers);
    assert.ok((series(text, 'tandem_ha_packets_total', '{kind="sent"}') ?? 0) > 0);
    assert.equal(series(text, 'tandem_ha_packets_total', '{kind="received"}'), 0);
    // Garbage at the heartbeat port is counted, not acted on.
    const { createSocket } = await import('node:dgram');
    const u = createSocket('udp4');
    await new Promise<void>((r) => u.send(Buffer.from('garbage'), port, '127.0.0.1', () => r()));
    u.close();
    for (let i = 0; ; i++) {
      text = await scrape(metricsPort);
      if ((series(text, 'tandem_ha_packets_total', '{kind="malformed"}') ?? 0) >= 1) break;
      assert.ok(i < 40, `the garbage was not counted:\n${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
  } finally {
    await cleanup();
  }
});
