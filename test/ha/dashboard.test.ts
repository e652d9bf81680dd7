// The dashboard's HTTP side with a real tandem-ha daemon (its peer never
// answers) and a stand-in tandemadm: the page, the JSON snapshot, the event
// stream, and the actions — refused without a token file, and with a wrong or
// missing token; done with the right one. The token file is checked as authkeys is.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { parseAuthkeys } from '../../src/config/authkeys.js';
import type { HaConfig } from '../../src/config/ha.js';
import { parseHaCf } from '../../src/config/hacf.js';
import { parseHaResources } from '../../src/config/haresources.js';
import { HaDaemon, readTokenFile } from '../../src/ha/daemon.js';
import type { DashboardSnapshot } from '../../src/ha/dashboard.js';
import { freePort } from '../helpers/cluster.js';

const token = 'a-token-of-some-length';

const status = {
  node: 'alpha',
  pid: 1,
  resources: [
    {
      name: 'r0',
      role: 'Primary',
      peerRole: 'Unknown',
      connection: 'WFConnection',
      volumes: [
        { volume: 0, disk: 'UpToDate', peerDisk: 'DUnknown', replication: 'WFConnection', sync: null },
      ],
    },
  ],
};

async function daemon(withToken: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-dash-'));
  const [udp, http] = [await freePort(), await freePort()];
  // tandemadm stand-in: prints a status, and records what else it is asked.
  writeFileSync(join(dir, 'status.json'), JSON.stringify(status));
  writeFileSync(
    join(dir, 'adm'),
    `#!/bin/sh\ncase "$*" in\n  *status*) cat ${dir}/status.json ;;\n  *) echo "$@" >> ${dir}/adm.log ;;\nesac\n`,
    { mode: 0o755 },
  );
  writeFileSync(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const hacfText = `keepalive 100ms\ndeadtime 1\ninitdead 1\nudpport ${udp}\nucast lo 127.0.0.2\nnode alpha\nnode bravo\ndashboard_address 127.0.0.1:${http}\n${withToken ? `dashboard_token_file ${join(dir, 'token')}\n` : ''}`;
  mkdirSync(join(dir, 'run'));
  const config: HaConfig = {
    dir,
    hacf: parseHaCf(hacfText, 'ha.cf').config,
    authkeys: parseAuthkeys('auth 1\n1 sha256 s3cret\n', 'authkeys').config,
    resources: parseHaResources('', 'haresources').config,
  };
  const d = new HaDaemon({
    config,
    node: 'alpha',
    runDir: join(dir, 'run'),
    tandemadm: [join(dir, 'adm')],
    log: () => {},
  });
  await d.start();
  return {
    d,
    dir,
    url: `http://127.0.0.1:${http}`,
    cleanup: async () => {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const post = (url: string, body: unknown, auth?: string) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
    body: JSON.stringify(body),
  });

/** The first server-sent event of /events, parsed. */
function firstEvent(url: string): Promise<DashboardSnapshot> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/events`, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        const end = buf.indexOf('\n\n');
        if (end < 0) return;
        req.destroy();
        resolve(JSON.parse(buf.slice('data: '.length, end)) as DashboardSnapshot);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

test('the page, the snapshot and the event stream', async () => {
  const { url, cleanup } = await daemon(true);
  try {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>tandem<\/title>/);
    const snap = (await (await fetch(`${url}/api/state`)).json()) as DashboardSnapshot;
    assert.equal(snap.node, 'alpha');
    assert.equal(snap.readOnly, false);
    assert.equal(snap.resources?.[0]?.name, 'r0');
    assert.equal(snap.ha.peer?.name, 'bravo');
    assert.ok(
      snap.events.some((e) => /dashboard on http/.test(e.text)),
      'tandem-ha’s log lines are the events',
    );
    const live = await firstEvent(url);
    assert.equal(live.node, 'alpha');
    assert.equal(live.resources?.[0]?.role, 'Primary');
    assert.equal((await fetch(`${url}/nothing`)).status, 404);
  } finally {
    await cleanup();
  }
});

test('actions need the token: 401 without or with a wrong one; verify and standby with it', async () => {
  const { d, dir, url, cleanup } = await daemon(true);
  try {
    assert.equal((await post(`${url}/api/actions/verify`, { resource: 'r0' })).status, 401);
    assert.equal((await post(`${url}/api/actions/verify`, { resource: 'r0' }, 'Bearer nope')).status, 401);
    assert.equal(
      (await post(`${url}/api/actions/verify`, { resource: 'r0' }, token)).status,
      401,
      'no Bearer',
    );
    const unknown = await post(`${url}/api/actions/verify`, { resource: 'r9' }, `Bearer ${token}`);
    assert.equal(unknown.status, 400);
    const ok = await post(`${url}/api/actions/verify`, { resource: 'r0' }, `Bearer ${token}`);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.match(readFileSync(join(dir, 'adm.log'), 'utf8'), /verify r0/);
    assert.equal(d.status().standby, false);
    assert.equal((await post(`${url}/api/actions/standby`, {}, `Bearer ${token}`)).status, 200);
    assert.equal(d.status().standby, true);
    assert.equal((await post(`${url}/api/actions/reboot`, {}, `Bearer ${token}`)).status, 404);
    const bad = await fetch(`${url}/api/actions/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: '{not json',
    });
    assert.equal(bad.status, 400);
  } finally {
    await cleanup();
  }
});

test('without a token file the dashboard is read-only: every action is 403', async () => {
  const { d, url, cleanup } = await daemon(false);
  try {
    const snap = (await (await fetch(`${url}/api/state`)).json()) as DashboardSnapshot;
    assert.equal(snap.readOnly, true);
    assert.equal((await post(`${url}/api/actions/standby`, {}, `Bearer ${token}`)).status, 403);
    assert.equal(d.status().standby, false);
  } finally {
    await cleanup();
  }
});

test('the token file: mode 0600, at least 16 characters, else refused naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-token-'));
  try {
    const f = join(dir, 'token');
    writeFileSync(f, `${token}\nignored\n`, { mode: 0o600 });
    assert.equal(readTokenFile(f), token);
    chmodSync(f, 0o644);
    assert.throws(() => readTokenFile(f), /token: mode 644, must not be readable by others/);
    writeFileSync(f, 'short\n');
    chmodSync(f, 0o600);
    assert.throws(() => readTokenFile(f), /at least 16 characters/);
    assert.throws(() => readTokenFile(join(dir, 'missing')), /missing: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tandemd not answering: the snapshot says so and the dashboard goes on', async () => {
  const { dir, url, cleanup } = await daemon(true);
  try {
    assert.equal(
      ((await (await fetch(`${url}/api/state`)).json()) as DashboardSnapshot).resources?.length,
      1,
    );
    // tandemadm now prints something that is not a status (as when tandemd is down and it says why).
    writeFileSync(join(dir, 'status.json'), 'tandemd is not running');
    await new Promise((r) => setTimeout(r, 1100));
    const snap = (await (await fetch(`${url}/api/state`)).json()) as DashboardSnapshot;
    assert.equal(snap.resources, null);
    assert.match(snap.resourcesError ?? '', /JSON/);
    assert.equal(snap.node, 'alpha', 'the rest of the snapshot is there');
    assert.equal((await fetch(`${url}/`)).status, 200);
  } finally {
    await cleanup();
  }
});
