// Test hosts: one network namespace per host, each with an eth0 on a bridge of its
// own, private addresses only inside them. Programs run in a host's network namespace
// with nsenter (the mount namespace stays shared, so FUSE devices, loop devices and
// mounts are the machine's, as on a real server). cleanup() removes namespaces and
// the bridge, also after a failure; stale ones from a killed run are removed first.
import { type ChildProcess, spawn } from 'node:child_process';
import { sh } from './tandem-node.js';

export interface HostSpec {
  readonly name: string;
  /** Address with prefix, e.g. 172.25.137.6/24. */
  readonly address: string;
}

export class TestNet {
  readonly tag: string;
  readonly bridge: string;
  private readonly hosts: readonly HostSpec[];
  private readonly children = new Set<ChildProcess>();

  private constructor(tag: string, hosts: readonly HostSpec[]) {
    this.tag = tag;
    this.bridge = `br${tag}`;
    this.hosts = hosts;
  }

  /** Namespace name of a host. */
  ns(host: string): string {
    return `${this.tag}-${host}`;
  }

  static async create(hosts: readonly HostSpec[]): Promise<TestNet> {
    // Short tag: interface names are at most 15 bytes.
    const net = new TestNet(`t${process.pid % 100000}`, hosts);
    await net.cleanup();
    const must = async (args: string[]): Promise<void> => {
      const r = await sh('ip', args);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.err}`);
    };
    await must(['link', 'add', net.bridge, 'type', 'bridge']);
    await must(['link', 'set', net.bridge, 'up']);
    for (const [i, h] of hosts.entries()) {
      const ns = net.ns(h.name);
      const outside = `${net.tag}v${i}`;
      await must(['netns', 'add', ns]);
      await must(['link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await must(['link', 'set', outside, 'master', net.bridge]);
      await must(['link', 'set', outside, 'up']);
      await must(['-n', ns, 'link', 'set', 'lo', 'up']);
      await must(['-n', ns, 'addr', 'add', h.address, 'dev', 'eth0']);
      await must(['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    return net;
  }

  /** Runs a short command in a host's network namespace. */
  exec(host: string, cmd: string, args: readonly string[], timeoutMs = 60_000) {
    return sh('nsenter', [`--net=/run/netns/${this.ns(host)}`, cmd, ...args], timeoutMs);
  }

  /** Starts a long-running program in a host's network namespace; killed at cleanup. */
  spawn(
    host: string,
    cmd: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = process.env,
  ): ChildProcess {
    const child = spawn('nsenter', [`--net=/run/netns/${this.ns(host)}`, cmd, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env,
    });
    child.stderr?.on('data', () => {});
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** The host's network goes dark (a dead server): eth0 down. */
  async down(host: string): Promise<void> {
    await sh('ip', ['-n', this.ns(host), 'link', 'set', 'eth0', 'down']);
  }

  async up(host: string): Promise<void> {
    await sh('ip', ['-n', this.ns(host), 'link', 'set', 'eth0', 'up']);
  }

  async cleanup(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    // Anything still running in our namespaces (agents' children: a web server, arping).
    for (const [i, h] of this.hosts.entries()) {
      const pids = await sh('ip', ['netns', 'pids', this.ns(h.name)]);
      for (const pid of pids.out.split('\n').filter(Boolean)) await sh('kill', ['-9', pid]);
      await sh('ip', ['netns', 'del', this.ns(h.name)]);
      // The veth pair goes with its namespace only once the namespace is freed (after
      // its last process has exited): delete our end now, so the next run can reuse the name.
      await sh('ip', ['link', 'del', `${this.tag}v${i}`]);
    }
    await sh('ip', ['link', 'del', this.bridge]);
  }
}
