// Two tandem nodes on loopback for replication tests: one shared DRBD config with
// an `on` section per node (own backing file, device path and port), two run dirs,
// two real tandemd processes. cleanup() undoes both nodes and the directory.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TandemNode } from './tandem-node.js';

/** Ports handed out by this process: never twice, though the kernel may offer one again. */
const handedOut = new Set<number>();

/** A TCP port that was free a moment ago on 127.0.0.1, and not handed out before here. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        const p = typeof a === 'object' && a !== null ? a.port : 0;
        s.close(() => resolve(p));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

export interface ClusterOptions {
  readonly protocol?: 'A' | 'B' | 'C';
  readonly diskBytes?: number;
  readonly resource?: string;
  /** More statements for the resource (net/disk/handlers sections). */
  readonly extraConf?: string;
  /** More statements for the `net` section. */
  readonly net?: string;
}

export class Cluster {
  readonly dir: string;
  readonly conf: string;
  readonly a: TandemNode;
  readonly b: TandemNode;
  readonly resource: string;

  private constructor(dir: string, conf: string, resource: string) {
    this.dir = dir;
    this.conf = conf;
    this.resource = resource;
    this.a = TandemNode.member({ dir: join(dir, 'alpha'), name: 'alpha', conf });
    this.b = TandemNode.member({ dir: join(dir, 'bravo'), name: 'bravo', conf });
  }

  static async create(options: ClusterOptions = {}): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-2n-'));
    const conf = join(dir, 'tandem.conf');
    const resource = options.resource ?? 'r0';
    const c = new Cluster(dir, conf, resource);
    const [pa, pb] = [await freePort(), await freePort()];
    writeFileSync(
      conf,
      `resource ${resource} {
  net { protocol ${options.protocol ?? 'C'}; connect-int 1; ${options.net ?? ''} }
  ${options.extraConf ?? ''}
  on alpha {
    device ${c.a.device} minor 7;
    disk ${c.a.disk};
    meta-disk internal;
    address 127.0.0.1:${pa};
  }
  on bravo {
    device ${c.b.device} minor 7;
    disk ${c.b.disk};
    meta-disk internal;
    address 127.0.0.1:${pb};
  }
}
`,
    );
    const bytes = options.diskBytes ?? 64 * 1024 * 1024;
    await c.a.sizeDisk(bytes);
    await c.b.sizeDisk(bytes);
    return c;
  }

  get nodes(): readonly [TandemNode, TandemNode] {
    return [this.a, this.b];
  }

  /** create-md, start tandemd and `up` on both nodes. */
  async upBoth(daemonArgs: readonly string[] = ['--no-kernel-device']): Promise<void> {
    for (const n of this.nodes) {
      const md = await n.adm('--force', 'create-md', this.resource);
      if (md.code !== 0) throw new Error(`create-md on ${n.name}: ${md.err}`);
      await n.start(daemonArgs);
      const up = await n.adm('up', this.resource);
      if (up.code !== 0) throw new Error(`up on ${n.name}: ${up.err}\n${n.log()}`);
    }
  }

  async cleanup(): Promise<void> {
    await this.a.cleanup();
    await this.b.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
