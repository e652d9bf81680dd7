// tandemd's Prometheus metrics with two real daemons: node alpha listens where
// --metrics-address says, bravo where the configuration's `global {
// metrics-address }` says. The states, counters and the write-latency histogram
// follow what the pair does; anything but GET /metrics is 404; a bad address is
// refused at start.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import test from 'node:test';
import { NbdClient } from '../../src/nbd/client.js';
import { Cluster, freePort } from '../helpers/cluster.js';

function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one series, by name and exact labels; undefined when absent. */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_]+=")/)
      .filter((x) => x !== '')
      .sort()
      .join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('metrics follow the pair: roles, states, /proc/drbd counters and write latency per protocol', async () => {
  const c = await Cluster.create({ protocol: 'C', diskBytes: 32 * 1024 * 1024 });
  try {
    const [pa, pb] = [await freePort(), await freePort()];
    // bravo from the configuration; alpha's flag overrides the same setting.
    writeFileSync(c.conf, `global { metrics-address 127.0.0.1:${pb}; }\n${readFileSync(c.conf, 'utf8')}`);
    for (const [n, args] of [
      [c.a, ['--no-kernel-device', '--metrics-address', `127.0.0.1:${pa}`]],
      [c.b, ['--no-kernel-device']],
    ] as const) {
      assert.equal((await n.adm('--force', 'create-md', 'r0')).code, 0);
      await n.start(args);
      assert.equal((await n.adm('up', 'r0')).code, 0);
    }
    for (const n of c.nodes) assert.equal((await n.adm('--timeout', '30', 'wait-connect', 'r0')).code, 0);

    const before = await get(pa, '/metrics');
    assert.equal(before.status, 200);
    assert.match(before.type, /^text\/plain; version=0\.0\.4/);
    const r0 = { resource: 'r0' };
    const v0 = { resource: 'r0', volume: '0' };
    assert.equal(value(before.body, 'tandem_resource_role', { ...r0, role: 'Secondary' }), 1);
    assert.equal(value(before.body, 'tandem_resource_role', { ...r0, role: 'Primary' }), 0);
    assert.equal(value(before.body, 'tandem_connection_state', { ...r0, state: 'Connected' }), 1);
    assert.equal(value(before.body, 'tandem_disk_state', { ...v0, state: 'Inconsistent' }), 1);
    assert.ok((value(before.body, 'process_resident_memory_bytes', {}) ?? 0) > 0, 'process metrics too');

    assert.equal((await c.a.adm('primary', '--force', 'r0')).code, 0);
    for (const n of c.nodes) assert.equal((await n.adm('--timeout', '60', 'wait-sync', 'r0')).code, 0);
    const client = await NbdClient.open({ path: join(c.a.runDir, 'r0.nbd') }, 'r0');
    for (let i = 0; i < 100; i++) await client.write(i * 4096, Buffer.alloc(4096, i));
    client.close();

    const a = (await get(pa, '/metrics')).body;
    assert.equal(value(a, 'tandem_resource_role', { ...r0, role: 'Primary' }), 1);
    assert.equal(value(a, 'tandem_resource_peer_role', { ...r0, role: 'Secondary' }), 1);
    assert.equal(value(a, 'tandem_disk_state', { ...v0, state: 'UpToDate' }), 1);
    assert.equal(value(a, 'tandem_peer_disk_state', { ...v0, state: 'UpToDate' }), 1);
    assert.equal(value(a, 'tandem_replication_state', { ...v0, state: 'Connected' }), 1);
    assert.equal(value(a, 'tandem_out_of_sync_bytes', v0), 0);
    // The 100 writes went out (ns:; the sync of a zeroed disk sends flags, not bytes),
    // and every write was timed under C.
    const sent = value(a, 'tandem_network_sent_bytes_total', v0) ?? 0;
    assert.ok(sent >= 100 * 4096, `sent ${sent}`);
    assert.equal(value(a, 'tandem_write_latency_seconds_count', { ...r0, protocol: 'C' }), 100);
    assert.ok((value(a, 'tandem_write_latency_seconds_sum', { ...r0, protocol: 'C' }) ?? 0) > 0);
    assert.ok(
      (value(a, 'tandem_activity_log_writes_total', v0) ?? 0) >= 1,
      'the writes needed the activity log',
    );

    // bravo: listening where the configuration said; it received and wrote what alpha sent.
    await until('bravo to have written the 100 writes', async () => {
      const b = (await get(pb, '/metrics')).body;
      return (value(b, 'tandem_network_received_bytes_total', v0) ?? 0) >= sent;
    });
    const b = (await get(pb, '/metrics')).body;
    assert.equal(value(b, 'tandem_resource_role', { ...r0, role: 'Secondary' }), 1);
    assert.ok((value(b, 'tandem_disk_written_bytes_total', v0) ?? 0) >= 30 * 1024 * 1024);

    assert.equal((await get(pa, '/')).status, 404);
    assert.equal((await get(pa, '/metrics/../x')).status, 404);
  } finally {
    await c.cleanup();
  }
});

test('a bad --metrics-address is refused before tandemd starts anything', async () => {
  const c = await Cluster.create({ diskBytes: 16 * 1024 * 1024 });
  try {
    await assert.rejects(
      c.a.start(['--no-kernel-device', '--metrics-address', 'nonsense']),
      /--metrics-address: expected HOST:PORT/,
    );
  } finally {
    await c.cleanup();
  }
});
