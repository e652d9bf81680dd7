// TLS on the replication link (`tls yes`, a tandem extension): node certificates made
// here with openssl, signed by a test CA. The right pair connects and says it is
// authenticated by TLS; a certificate from another CA, or for another node name, is
// refused before any Hello; a plain-text peer gets nowhere; a missing file fails start().
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type LinkState, listenerConnectionsMax, PeerLink } from '../../src/replication/link.js';
import { Cluster, freePort } from '../helpers/cluster.js';

const host = '127.0.0.1';
let dir = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A key and a certificate for CN `name`, signed by the CA named `ca`. */
function issue(name: string, ca: string, file = name): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', ...ec, '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${name}`);
  openssl(
    'x509',
    '-req',
    '-in',
    `${file}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${file}.crt`,
    '-days',
    '2',
  );
}

function makeCa(name: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-subj',
    `/CN=${name}`,
    '-days',
    '2',
  );
}

const tlsOf = (file: string, ca = 'ca') => ({
  certificate: join(dir, `${file}.crt`),
  privkey: join(dir, `${file}.key`),
  ca: join(dir, `${ca}.crt`),
});

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Side {
  readonly link: PeerLink;
  readonly states: LinkState[];
  readonly logs: string[];
  readonly reasons: string[];
}

function side(
  name: string,
  peer: string,
  port: number,
  peerPort: number,
  tls: ReturnType<typeof tlsOf>,
): Side {
  const states: LinkState[] = [];
  const logs: string[] = [];
  const reasons: string[] = [];
  const link = new PeerLink({
    resource: 'r0',
    nodeName: name,
    peerName: peer,
    listen: { host, port },
    peer: { host, port: peerPort },
    connectIntMs: 50,
    handshakeTimeoutMs: 1000,
    tls,
    onState: (s, r) => {
      states.push(s);
      reasons.push(r.message);
    },
    onLog: (m) => logs.push(m),
  });
  return { link, states, logs, reasons };
}

describe('TLS on the replication link', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tandem-tls-'));
    makeCa('ca');
    makeCa('rogue-ca');
    issue('alpha', 'ca');
    issue('beta', 'ca');
    issue('beta', 'rogue-ca', 'rogue-beta');
    issue('gamma', 'ca');
    // One certificate for both nodes (the `net` section is shared): names in subjectAltName.
    writeFileSync(join(dir, 'both.ext'), 'subjectAltName=DNS:alpha,DNS:bravo\n');
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', ...ec, '-keyout', 'both.key', '-out', 'both.csr', '-subj', '/CN=tandem-cluster');
    openssl(
      'x509',
      '-req',
      '-in',
      'both.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'both.crt',
      '-days',
      '2',
      '-extfile',
      'both.ext',
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('two nodes with certificates from the CA connect, authenticated by TLS', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = side('alpha', 'beta', pa, pb, tlsOf('alpha'));
    const b = side('beta', 'alpha', pb, pa, tlsOf('beta'));
    try {
      await a.link.start();
      await b.link.start();
      await waitFor('Connected', () => a.link.state === 'Connected' && b.link.state === 'Connected');
      assert.match(a.link.reason.message, /authenticated: TLS/);
      assert.equal(a.link.send({ kind: 'Barrier', volume: 0, body: { epoch: 3 } }), true);
    } finally {
      await a.link.stop();
      await b.link.stop();
    }
  });

  for (const [what, file, expect] of [
    ['another CA', 'rogue-beta', /not signed by tls-ca|certificate/],
    ['another node name', 'gamma', /the certificate is gamma's, not beta's/],
  ] as const) {
    test(`a peer whose certificate is from ${what} is refused before any Hello`, async () => {
      const [pa, pb] = [await freePort(), await freePort()];
      const a = side('alpha', 'beta', pa, pb, tlsOf('alpha'));
      const b = side('beta', 'alpha', pb, pa, tlsOf(file));
      try {
        await a.link.start();
        await b.link.start();
        await waitFor('a refusal', () => a.logs.some((l) => expect.test(l)));
        await new Promise((r) => setTimeout(r, 300));
        assert.ok(!a.states.includes('WFReportParams'), 'a Hello got through');
        assert.ok(!a.states.includes('Connected') && !b.states.includes('Connected'));
      } finally {
        await a.link.stop();
        await b.link.stop();
      }
    });
  }

  test('a peer speaking plain text gets nowhere', async () => {
    const port = await freePort();
    const a = side('alpha', 'beta', port, await freePort(), tlsOf('alpha'));
    try {
      await a.link.start();
      await new Promise<void>((resolve) => {
        const s = tcpConnect({ host, port });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.resume();
        s.on('connect', () => s.write(Buffer.from('tandem? hello in clear\n'.repeat(10))));
      });
      await waitFor('a refusal', () => a.logs.some((l) => /refused: TLS from/.test(l)));
      assert.ok(!a.states.includes('WFReportParams'));
    } finally {
      await a.link.stop();
    }
  });

  test(`at most ${listenerConnectionsMax} connections at once, TLS handshakes included`, async () => {
    const port = await freePort();
    const a = side('alpha', 'beta', port, await freePort(), tlsOf('alpha'));
    const squatters: Socket[] = [];
    let closed = 0;
    try {
      await a.link.start();
      // Connections that never start their TLS handshake.
      for (let i = 0; i < 20; i++) {
        const s = tcpConnect({ host, port });
        s.on('error', () => {});
        s.on('close', () => closed++);
        s.resume();
        squatters.push(s);
        await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      }
      await new Promise((r) => setTimeout(r, 300));
      const open = squatters.length - closed;
      assert.ok(
        open >= 1 && open <= listenerConnectionsMax,
        `${open} held (limit ${listenerConnectionsMax})`,
      );
      // The held ones end at the TLS handshake timeout (1 s here).
      await waitFor('every squatter dropped', () => closed === squatters.length, 5000);
    } finally {
      for (const s of squatters) s.destroy();
      await a.link.stop();
    }
  });

  test('a missing certificate file fails start() and names it', async () => {
    const link = new PeerLink({
      resource: 'r0',
      nodeName: 'alpha',
      peerName: 'beta',
      listen: { host, port: await freePort() },
      peer: { host, port: await freePort() },
      tls: { ...tlsOf('alpha'), certificate: join(dir, 'missing.crt') },
    });
    await assert.rejects(link.start(), /tls-certificate .*missing\.crt: ENOENT/);
    await assert.rejects(
      new PeerLink({
        resource: 'r0',
        nodeName: 'alpha',
        peerName: 'beta',
        listen: { host, port: await freePort() },
        peer: { host, port: await freePort() },
        tls: { ...tlsOf('alpha'), ca: '' },
      }).start(),
      /tls yes needs tls-ca/,
    );
  });

  test('two tandemd with `tls yes` replicate; status says the link is authenticated', async () => {
    const t = tlsOf('both');
    const c = await Cluster.create({
      net: `tls yes; tls-certificate ${t.certificate}; tls-privkey ${t.privkey}; tls-ca ${t.ca}; verify-alg crc32c;`,
      diskBytes: 16 * 1024 * 1024,
    });
    try {
      await c.upBoth();
      for (const n of c.nodes) assert.equal((await n.adm('--timeout', '20', 'wait-connect', 'r0')).code, 0);
      assert.equal((await c.a.adm('primary', '--force', 'r0')).code, 0);
      for (const n of c.nodes) assert.equal((await n.adm('--timeout', '60', 'wait-sync', 'r0')).code, 0);
      const st = JSON.parse((await c.a.adm('status', '--json', 'r0')).out).resources[0];
      assert.equal(st.authenticated, true);
      assert.equal(st.connection, 'Connected');
      assert.match(c.a.log(), /connected to bravo \(authenticated: TLS\)/);
    } finally {
      await c.cleanup();
    }
  });
});
