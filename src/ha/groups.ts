// Resource groups as Heartbeat runs them: a group's resources start left to right (one
// whose status already says running is skipped) and stop right to left. A start that
// fails stops, in reverse, what this start started, and leaves the group released with
// the reason; a stop that fails is retried, then the group is `failed` (held here: the
// peer must not start it, since this node may still hold the disk or the address).
import type { HaResource, ResourceGroup } from '../config/haresources.js';
import type { Agent, AgentContext } from './agents/agent.js';

export const groupStates = ['released', 'starting', 'running', 'stopping', 'failed'] as const;
export type GroupState = (typeof groupStates)[number];

export interface GroupStatus {
  readonly key: string;
  readonly node: string;
  readonly state: GroupState;
  /** Why the last start or stop failed, or null. */
  readonly reason: string | null;
  /** Failovers and failbacks of this group on this node (starts after the first). */
  readonly starts: number;
}

export interface GroupsOptions {
  readonly groups: readonly ResourceGroup[];
  readonly ctx: AgentContext;
  readonly resolve: (name: string, ctx: AgentContext) => Promise<Agent | undefined>;
  readonly log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Tries of a failing stop before the group is marked failed. */
  readonly stopTries?: number;
  readonly onChange?: () => void;
}

interface Group {
  readonly cfg: ResourceGroup;
  state: GroupState;
  reason: string | null;
  starts: number;
  /** Serializes start/stop of this group. */
  chain: Promise<unknown>;
}

export class GroupManager {
  private readonly o: GroupsOptions;
  private readonly groups: Group[];

  constructor(o: GroupsOptions) {
    this.o = o;
    this.groups = o.groups.map((cfg) => ({
      cfg,
      state: 'released',
      reason: null,
      starts: 0,
      chain: Promise.resolve(),
    }));
  }

  status(): GroupStatus[] {
    return this.groups.map((g) => ({
      key: g.cfg.key,
      node: g.cfg.node,
      state: g.state,
      reason: g.reason,
      starts: g.starts,
    }));
  }

  state(key: string): GroupState | undefined {
    return this.find(key)?.state;
  }

  private find(key: string): Group | undefined {
    return this.groups.find((g) => g.cfg.key === key);
  }

  private serial<T>(g: Group, f: () => Promise<T>): Promise<T> {
    const next = g.chain.then(f, f);
    g.chain = next.catch(() => {});
    return next;
  }

  private set(g: Group, state: GroupState, reason: string | null): void {
    g.state = state;
    g.reason = reason;
    this.o.onChange?.();
  }

  private async agent(r: HaResource): Promise<Agent> {
    const a = await this.o.resolve(r.name, this.o.ctx);
    if (!a)
      throw new Error(
        `no resource agent '${r.name}' (built-in, ${this.o.ctx.configDir}/resource.d or /etc/init.d)`,
      );
    return a;
  }

  /**
   * At start-up: a group any of whose resources already runs here (a restarted daemon,
   * resources left up) is held — `running` — until the policy stops it.
   */
  async probe(): Promise<void> {
    for (const g of this.groups) {
      let any = false;
      for (const r of g.cfg.resources) {
        try {
          const st = await (await this.agent(r)).run('status', r.args, this.o.ctx);
          if (st.ok && st.running) any = true;
        } catch {
          // No agent: nothing of it can run.
        }
      }
      if (any) {
        this.o.log('warn', `group ${g.cfg.key}: found running at start-up; held here`);
        this.set(g, 'running', null);
      }
    }
  }

  /** Starts a group; resolves true when it runs. Never throws. */
  start(key: string): Promise<boolean> {
    const g = this.find(key);
    if (!g) return Promise.resolve(false);
    return this.serial(g, async () => {
      if (g.state === 'running') return true;
      if (g.state === 'failed') return false;
      this.set(g, 'starting', null);
      this.o.log('info', `group ${key}: starting`);
      const started: HaResource[] = [];
      for (const r of g.cfg.resources) {
        const refusal = this.o.ctx.mayNotAct?.();
        let failure = refusal === undefined ? undefined : `start abandoned: ${refusal}`;
        if (failure === undefined) {
          try {
            const agent = await this.agent(r);
            const st = await agent.run('status', r.args, this.o.ctx);
            if (st.ok && st.running) {
              this.o.log('info', `group ${key}: ${r.text} already running`);
              continue;
            }
            const res = await agent.run('start', r.args, this.o.ctx);
            if (!res.ok) failure = res.message;
          } catch (e) {
            failure = (e as Error).message;
          }
        }
        if (failure !== undefined) {
          const reason = `${r.text} failed to start: ${failure}`;
          this.o.log('error', `group ${key}: ${reason}; stopping what this start started`);
          const stopFailure = await this.stopResources(started.reverse());
          if (stopFailure !== undefined) {
            this.set(g, 'failed', `${reason}; then ${stopFailure}`);
            return false;
          }
          this.set(g, 'released', reason);
          return false;
        }
        started.push(r);
      }
      g.starts++;
      this.set(g, 'running', null);
      this.o.log('info', `group ${key}: running`);
      return true;
    });
  }

  /** Stops a group; resolves true when released. A failed stop leaves it `failed`. */
  stop(key: string): Promise<boolean> {
    const g = this.find(key);
    if (!g) return Promise.resolve(false);
    return this.serial(g, async () => {
      if (g.state === 'released') return true;
      this.set(g, 'stopping', null);
      this.o.log('info', `group ${key}: stopping`);
      const failure = await this.stopResources([...g.cfg.resources].reverse());
      if (failure !== undefined) {
        this.o.log('error', `group ${key}: ${failure}: the group stays held here (failed)`);
        this.set(g, 'failed', failure);
        return false;
      }
      this.set(g, 'released', null);
      this.o.log('info', `group ${key}: released`);
      return true;
    });
  }

  /** Stops resources in the given order, each tried `stopTries` times; the first lasting failure. */
  private async stopResources(resources: readonly HaResource[]): Promise<string | undefined> {
    const tries = this.o.stopTries ?? 3;
    for (const r of resources) {
      let last = '';
      let stopped = false;
      for (let i = 0; i < tries && !stopped; i++) {
        try {
          const res = await (await this.agent(r)).run('stop', r.args, this.o.ctx);
          stopped = res.ok;
          last = res.message;
        } catch (e) {
          last = (e as Error).message;
        }
        if (!stopped && i + 1 < tries) await new Promise((resolve) => setTimeout(resolve, 500));
      }
      if (!stopped) return `${r.text} failed to stop after ${tries} tries: ${last}`;
    }
    return undefined;
  }
}
