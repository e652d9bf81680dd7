// The web dashboard in Debian's Chromium (headless, driven by playwright-core),
// on the seed cluster in network namespaces: the browser runs in the client's
// namespace and opens server6's dashboard. The page shows the running
// two-node cluster; a full resync (invalidate-remote, rate-limited to 4 MB/s)
// moves its bar; Standby, clicked with the token, moves the group and the page
// shows the new owner. Screenshots go to test-output/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { repoRoot } from '../helpers/paths.js';
import { SeedCluster, seedTools, sleep } from '../helpers/seed-cluster.js';
import { systemTestSkipReason } from '../helpers/tandem-node.js';

const chromiumPath = '/usr/bin/chromium';
const skip =
  (await systemTestSkipReason(seedTools)) ||
  (!existsSync(chromiumPath) && `no ${chromiumPath} (apt-get install chromium)`);
const token = 'dashboard-test-token-0123456789';
const out = join(repoRoot, 'test-output');

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

describe('the dashboard in a browser', { skip }, () => {
  let c: SeedCluster;
  let browser: Browser | undefined;
  let page: Page;
  let tmp: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tandem-dash-'));
    writeFileSync(join(tmp, 'token'), `${token}\n`, { mode: 0o600 });
    c = await SeedCluster.create({
      haCf: `dashboard_address 0.0.0.0:8080\ndashboard_token_file ${join(tmp, 'token')}\n`,
      resourceExtra: 'disk { resync-rate 4M; c-plan-ahead 0; }',
      diskSize: '48M',
    });
    await c.prepare();
    for (const s of c.servers) c.startHa(s);
    await c.waitForPage(30_000);
    // The browser runs in the client's namespace, where the servers' addresses are.
    const wrapper = join(tmp, 'chromium');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nexec nsenter --net=/run/netns/${c.net.ns('client')} ${chromiumPath} "$@"\n`,
      { mode: 0o755 },
    );
    browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    mkdirSync(out, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await c?.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  const owner = () => page.locator('[data-testid="group-owner"]').first().textContent();

  test('the page shows the running two-node cluster, live', async () => {
    await page.goto('http://172.25.137.6:8080/');
    await page.locator('#livetext', { hasText: 'live' }).waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="node-server7"] .chip', { hasText: 'up' }).waitFor({ timeout: 10_000 });
    await until('server6 as the owner', async () => ((await owner()) === 'server6' ? true : undefined));
    const roles = (await page.locator('[data-testid="roles"][data-resource="example"]').textContent()) ?? '';
    assert.match(roles, /Primary\s*\/\s*Secondary/);
    assert.ok((await page.locator('#events li').count()) > 0, 'recent events are listed');
  });

  test('a resync in progress moves its bar', async () => {
    const [s6] = c.servers;
    const r = await c.adm(s6, 'invalidate-remote', 'example');
    assert.equal(r.code, 0, r.err);
    const bar = page.locator('[data-testid="sync-bar"][data-resource="example"]');
    await bar.waitFor({ timeout: 10_000 });
    const first = Number(await bar.getAttribute('data-percent'));
    await page.screenshot({ path: join(out, 'dashboard-sync.png'), fullPage: true });
    const later = await until('the bar to move', async () => {
      const p = Number(await bar.getAttribute('data-percent'));
      return p > first + 5 ? p : undefined;
    });
    assert.ok(later > first, `${first}% then ${later}%`);
    assert.match((await bar.textContent()) ?? '', /SyncSource [\d.]+%/);
    const note = await page
      .locator('[data-testid="sync-bar"][data-resource="example"] + .barnote')
      .textContent();
    assert.match(note ?? '', /[\d.]+ MB\/s · .* left · [\d.]+ MB to go/);
    // The resync finishes: the bar goes, the peer's disk is UpToDate again.
    await bar.waitFor({ state: 'detached', timeout: 60_000 });
  });

  test('Standby with the token moves the group; the page shows the new owner', async () => {
    page.once('dialog', (d) => void d.accept(token));
    await page.locator('[data-testid="action-standby"]').click();
    await page.locator('#toast', { hasText: 'standby: giving' }).waitFor({ timeout: 10_000 });
    await until(
      'server7 as the owner',
      async () => ((await owner()) === 'server7' ? true : undefined),
      60_000,
    );
    await page.screenshot({ path: join(out, 'dashboard-failover.png'), fullPage: true });
    assert.ok(existsSync(join(out, 'dashboard-failover.png')));
  });
});
