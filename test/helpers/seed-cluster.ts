// The seed's experiment as a reusable cluster (the system test and bench/failover.ts):
// hosts server6 and server7 and a client in network namespaces on one bridge; on each
// server a backing file, tandemd and tandem-ha with their own ha.d (ha.cf keepalive 200ms,
// deadtime 1, auto_failback on; authkeys sha1; haresources `server6 IPaddr::VIP/24/eth0
// drbddisk::example Filesystem::DEVICE::DIR::ext4 httpd`), httpd an LSB-style script
// serving the mounted directory; resource `example` with protocol C, verify-alg sha1 and
// resource-only fencing through `tandem-ha outdate-peer`.
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNet } from './netns.js';
import { bin } from './paths.js';
import { sh } from './tandem-node.js';

export const vip = '172.25.137.100';
export const page = '<h1>tandem: the seed experiment</h1>\n';
export const seedTools = ['nsenter', 'ip', 'curl', 'python3', 'nbdfuse', 'losetup', 'mkfs.ext4', 'nft'];

/**
 * A writer for the filesystem on the group's device: one file per write (`FIRST+1`,
 * `FIRST+2`, …; FIRST defaults to 0), each fsync'd with its directory, its number logged
 * only after that; it exits at the first I/O error. `python3 writer.py DIR LOG [FIRST]`.
 */
export const fsyncWriter = `import os, sys, time
d, log = sys.argv[1], sys.argv[2]
i = int(sys.argv[3]) if len(sys.argv) > 3 else 0
os.makedirs(d, exist_ok=True)
dfd = os.open(d, os.O_RDONLY)
with open(log, 'a') as out:
    while True:
        i += 1
        try:
            fd = os.open(os.path.join(d, str(i)), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, (str(i) + '\\n').encode() * 200)
            os.fsync(fd)
            os.close(fd)
            os.fsync(dfd)
        except OSError as e:
            print('stopped at', i, e, file=sys.stderr)
            sys.exit(0)
        out.write(str(i) + '\\n')
        out.flush()
        if i % 10 == 0:
            time.sleep(0.01)
`;

export interface Server {
  readonly name: 'server6' | 'server7' | 'witness';
  readonly ip: string;
  readonly dir: string;
  readonly disk: string;
  readonly device: string;
  readonly www: string;
  readonly run: string;
  readonly ha: string;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function must(r: { code: number; out: string; err: string }, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.err}\n${r.out}`);
  return r.out;
}

export interface SeedOptions {
  /** A third node, `witness` (172.25.137.8), running tandem-ha only. */
  readonly witness?: boolean;
  /** ha.cf's auto_failback (default on, as the seed). */
  readonly autoFailback?: boolean;
  /** More ha.cf lines for every node (e.g. dashboard_address). */
  readonly haCf?: string;
  /** More statements in the resource (e.g. a disk section with resync-rate). */
  readonly resourceExtra?: string;
  /** Size of each backing file (default 128M). */
  readonly diskSize?: string;
}

export class SeedCluster {
  readonly root: string;
  readonly conf: string;
  readonly servers: readonly [Server, Server];
  /** The witness node, when the cluster has one (tandem-ha only: no disk, no tandemd). */
  readonly witness: Server | undefined;
  net!: TestNet;
  /** The tandemd each server runs now (the last one started). */
  readonly tandemd = new Map<Server['name'], ChildProcess>();
  /** The tandem-ha each node runs now (the last one started). */
  readonly haDaemons = new Map<Server['name'], ChildProcess>();

  private constructor(root: string, servers: readonly [Server, Server], witness: Server | undefined) {
    this.root = root;
    this.conf = join(root, 'tandem.conf');
    this.servers = servers;
    this.witness = witness;
  }

  adm(s: Server, ...args: string[]) {
    return sh(process.execPath, [
      bin('tandemadm'),
      '-q',
      '-c',
      this.conf,
      '--node',
      s.name,
      '--run-dir',
      s.run,
      ...args,
    ]);
  }

  env(s: Server): NodeJS.ProcessEnv {
    return {
      ...process.env,
      TANDEM_CONFIG: this.conf,
      TANDEM_NODE: s.name,
      TANDEM_RUN_DIR: s.run,
      TANDEM_HA_CONFIG_DIR: s.ha,
      TANDEM_HA_DISK_WAIT: '3',
    };
  }

  async startTandemd(s: Server): Promise<ChildProcess> {
    const child = this.net.spawn(
      s.name,
      process.execPath,
      [
        bin('tandemd'),
        '-c',
        this.conf,
        '--node',
        s.name,
        '--run-dir',
        s.run,
        '--log-file',
        join(s.dir, 'tandemd.log'),
      ],
      this.env(s),
    );
    for (let i = 0; (await this.adm(s, 'status')).code !== 0; i++) {
      if (i >= 100) throw new Error(`tandemd on ${s.name} did not start`);
      await sleep(100);
    }
    this.tandemd.set(s.name, child);
    return child;
  }

  startHa(s: Server): ChildProcess {
    const child = this.net.spawn(
      s.name,
      process.execPath,
      [bin('tandem-ha'), '--config-dir', s.ha, '--node', s.name, '--run-dir', s.run],
      this.env(s),
    );
    this.haDaemons.set(s.name, child);
    return child;
  }

  /**
   * A silent partition of `s` (nftables in its namespace): every packet between it and
   * the other nodes dropped, each way — or `percent`% of them at random (packet loss).
   * The client still reaches it. Throws when nft refuses.
   */
  async cut(s: Server, percent = 100): Promise<void> {
    const others = [...this.servers, ...(this.witness ? [this.witness] : [])]
      .filter((x) => x !== s)
      .map((x) => x.ip);
    const nft = async (...args: string[]) =>
      must(await this.net.exec(s.name, 'nft', args), `nft ${args.join(' ')}`);
    await nft('add', 'table', 'inet', 'cut');
    for (const [chain, hook, dir] of [
      ['in', 'input', 'saddr'],
      ['out', 'output', 'daddr'],
    ] as const) {
      await nft('add', 'chain', 'inet', 'cut', chain, `{ type filter hook ${hook} priority 0; }`);
      const loss = percent < 100 ? ['numgen', 'random', 'mod', '100', '<', String(percent)] : [];
      await nft('add', 'rule', 'inet', 'cut', chain, 'ip', dir, `{ ${others.join(', ')} }`, ...loss, 'drop');
    }
  }

  /** Undoes cut(s); false when there was no cut. */
  async heal(s: Server): Promise<boolean> {
    return (await this.net.exec(s.name, 'nft', ['delete', 'table', 'inet', 'cut'])).code === 0;
  }

  ha(s: Server, ...args: string[]) {
    return sh(process.execPath, [
      bin('tandem-ha'),
      '--config-dir',
      s.ha,
      '--node',
      s.name,
      '--run-dir',
      s.run,
      ...args,
    ]);
  }

  /** The client's view: the page from the VIP. */
  fetch() {
    return this.net.exec('client', 'curl', ['-s', '--max-time', '1', `http://${vip}/index.html`], 5000);
  }

  /** A dead server: every process in its namespace killed at once, its network gone. */
  async kill(s: Server): Promise<void> {
    const pids = await sh('ip', ['netns', 'pids', this.net.ns(s.name)]);
    for (const pid of pids.out.split('\n').filter(Boolean)) await sh('kill', ['-9', pid]);
    await this.net.down(s.name);
  }

  /** A rebooted server: its stale mount and address gone, network up, tandemd up, tandem-ha started. */
  async revive(s: Server): Promise<void> {
    await sh('umount', ['-l', s.www]);
    await this.net.exec(s.name, 'ip', ['addr', 'del', `${vip}/24`, 'dev', 'eth0']);
    await this.net.up(s.name);
    await this.startTandemd(s);
    must(await this.adm(s, 'up', 'example'), `up ${s.name}`);
    this.startHa(s);
  }

  /** Milliseconds until the client gets the page (or throws after `limitMs`). */
  async waitForPage(limitMs: number, since = Date.now()): Promise<number> {
    for (;;) {
      const r = await this.fetch();
      if (r.code === 0 && r.out === page) return Date.now() - since;
      if (Date.now() - since > limitMs)
        throw new Error(`no page from ${vip} after ${Date.now() - since} ms: ${r.err}`);
      await sleep(100);
    }
  }

  /** The seed before Heartbeat: create-md, up, primary --force, sync, mkfs.ext4, a page, secondary. */
  async prepare(): Promise<void> {
    const [s6] = this.servers;
    for (const s of this.servers)
      must(await this.adm(s, '--force', 'create-md', 'example'), `create-md ${s.name}`);
    for (const s of this.servers) await this.startTandemd(s);
    for (const s of this.servers) must(await this.adm(s, 'up', 'example'), `up ${s.name}`);
    for (const s of this.servers)
      must(await this.adm(s, '--timeout', '30', 'wait-connect', 'example'), 'wait-connect');
    must(await this.adm(s6, 'primary', '--force', 'example'), 'primary --force');
    for (const s of this.servers)
      must(await this.adm(s, '--timeout', '60', 'wait-sync', 'example'), 'wait-sync');
    const dev = JSON.parse(must(await this.adm(s6, 'status', '--json', 'example'), 'status')).resources[0]
      .volumes[0].kernelDevice.blockDevice as string;
    must(await sh('mkfs.ext4', ['-q', '-F', dev]), 'mkfs.ext4');
    must(await sh('mount', [dev, s6.www]), 'mount');
    writeFileSync(join(s6.www, 'index.html'), page);
    must(await sh('umount', [s6.www]), 'umount');
    must(await this.adm(s6, 'secondary', 'example'), 'secondary');
  }

  static async create(options: SeedOptions = {}): Promise<SeedCluster> {
    const root = mkdtempSync(join(tmpdir(), 'tandem-seed-'));
    const make = (name: Server['name'], ip: string): Server => {
      const dir = join(root, name);
      return {
        name,
        ip,
        dir,
        disk: join(dir, 'disk.img'),
        device: join(dir, 'drbd1'),
        www: join(dir, 'www'),
        run: join(dir, 'run'),
        ha: join(dir, 'ha.d'),
      };
    };
    const servers = [make('server6', '172.25.137.6'), make('server7', '172.25.137.7')] as const;
    const witness = options.witness ? make('witness', '172.25.137.8') : undefined;
    const c = new SeedCluster(root, servers, witness);
    const [s6, s7] = servers;
    const all = witness ? [...servers, witness] : servers;
    if (witness) mkdirSync(join(witness.ha, 'resource.d'), { recursive: true });
    for (const s of servers) {
      mkdirSync(join(s.ha, 'resource.d'), { recursive: true });
      mkdirSync(s.www);
      must(await sh('truncate', ['-s', options.diskSize ?? '128M', s.disk]), 'truncate');
    }
    writeFileSync(
      c.conf,
      `resource example {
  net { protocol C; verify-alg sha1; connect-int 1; ping-int 1; }
  disk { fencing resource-only; }
  ${options.resourceExtra ?? ''}
  handlers { fence-peer "${process.execPath} ${bin('tandem-ha')} outdate-peer"; }
${servers
  .map(
    (s) => `  on ${s.name} {
    device ${s.device} minor 1;
    disk ${s.disk};
    meta-disk internal;
    address ${s.ip}:7789;
  }`,
  )
  .join('\n')}
}
`,
    );
    for (const s of all) {
      writeFileSync(
        join(s.ha, 'ha.cf'),
        `keepalive 200ms
warntime 600ms
deadtime 1
initdead 3
udpport 694
${all.map((n) => `ucast eth0 ${n.ip}`).join('\n')}
logfile ${join(s.dir, 'ha.log')}
auto_failback ${options.autoFailback === false ? 'off' : 'on'}
${all.map((n) => `node ${n.name}`).join('\n')}
${witness ? `witness ${witness.name}\n` : ''}${options.haCf ?? ''}`,
      );
      writeFileSync(join(s.ha, 'authkeys'), 'auth 1\n1 sha1 tandem-seed-secret\n', { mode: 0o600 });
      chmodSync(join(s.ha, 'authkeys'), 0o600);
      writeFileSync(
        join(s.ha, 'haresources'),
        `server6 IPaddr::${vip}/24/eth0 drbddisk::example Filesystem::${s.device}::${s.www}::ext4 httpd\n`,
      );
      // An LSB-style init script for the web server, as the seed's httpd.
      const pidfile = join(s.dir, 'httpd.pid');
      writeFileSync(
        join(s.ha, 'resource.d', 'httpd'),
        `#!/bin/sh
PIDFILE=${pidfile}
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "$1" in
  start) running && exit 0
         python3 -m http.server 80 --bind 0.0.0.0 --directory ${s.www} >/dev/null 2>&1 &
         echo $! > "$PIDFILE"; sleep 0.3; running ;;
  stop)  running && kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; exit 0 ;;
  status) if running; then echo "httpd is running"; exit 0; else echo "httpd is stopped"; exit 3; fi ;;
  *) exit 2 ;;
esac
`,
        { mode: 0o755 },
      );
    }
    c.net = await TestNet.create([
      { name: 'server6', address: `${s6.ip}/24` },
      { name: 'server7', address: `${s7.ip}/24` },
      ...(witness ? [{ name: 'witness', address: `${witness.ip}/24` }] : []),
      { name: 'client', address: '172.25.137.250/24' },
    ]);
    return c;
  }

  /** Everything undone: processes, namespaces, mounts, loop devices, files. */
  async cleanup(): Promise<void> {
    await this.net?.cleanup();
    for (const s of this.servers) {
      await sh('umount', ['-l', s.www]);
      const loops = await sh('losetup', ['-a']);
      for (const line of loops.out.split('\n'))
        if (line.includes(s.dir)) await sh('losetup', ['-d', line.split(':')[0]!]);
    }
    const mounts = readFileSync('/proc/self/mounts', 'utf8');
    for (const line of mounts.split('\n')) {
      const dir = line.split(' ')[1];
      if (dir?.startsWith(this.root)) await sh('umount', ['-l', dir]);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
