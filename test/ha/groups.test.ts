// Resource groups with fake agents: start left to right skipping what runs, stop right
// to left, a failing agent in the middle stops what this start started (in reverse) and
// leaves the group released with the reason; a stop that keeps failing leaves it failed.
import assert from 'node:assert/strict';
import test from 'node:test';
import { parseHaResources } from '../../src/config/haresources.js';
import type { Agent, AgentContext, AgentResult } from '../../src/ha/agents/agent.js';
import { GroupManager } from '../../src/ha/groups.js';

function fakeAgents(behaviour: Record<string, Partial<Record<'start' | 'stop' | 'status', AgentResult>>>) {
  const calls: string[] = [];
  const agent = (name: string): Agent => ({
    name,
    async run(action, args) {
      calls.push(`${name}${args.length ? `::${args.join('::')}` : ''} ${action}`);
      return (
        behaviour[name]?.[action] ??
        (action === 'status' ? { ok: true, running: false, message: '' } : { ok: true, message: '' })
      );
    },
  });
  return { calls, resolve: async (name: string) => (name === 'missing' ? undefined : agent(name)) };
}

const ctx = {
  configDir: '/etc/ha.d',
  tandemadm: [],
  run: async () => ({ code: 0, out: '', err: '' }),
  log: () => {},
} as AgentContext;
const groups = parseHaResources(
  'server6 IPaddr::10.0.0.100/24 drbddisk::r0 Filesystem::/dev/drbd1::/data::ext4 httpd\n',
  'haresources',
).config.groups;
const key = groups[0]!.key;

test('start left to right, stop right to left', async () => {
  const f = fakeAgents({});
  const g = new GroupManager({ groups, ctx, resolve: f.resolve, log: () => {} });
  assert.equal(await g.start(key), true);
  assert.equal(g.state(key), 'running');
  assert.deepEqual(
    f.calls.filter((c) => c.endsWith(' start')),
    [
      'IPaddr::10.0.0.100/24 start',
      'drbddisk::r0 start',
      'Filesystem::/dev/drbd1::/data::ext4 start',
      'httpd start',
    ],
  );
  f.calls.length = 0;
  assert.equal(await g.stop(key), true);
  assert.deepEqual(f.calls, [
    'httpd stop',
    'Filesystem::/dev/drbd1::/data::ext4 stop',
    'drbddisk::r0 stop',
    'IPaddr::10.0.0.100/24 stop',
  ]);
  assert.equal(g.state(key), 'released');
});

test('a resource whose status says running is not started again', async () => {
  const f = fakeAgents({ IPaddr: { status: { ok: true, running: true, message: 'up' } } });
  const g = new GroupManager({ groups, ctx, resolve: f.resolve, log: () => {} });
  await g.start(key);
  assert.ok(!f.calls.includes('IPaddr::10.0.0.100/24 start'));
});

test('a failing agent in the middle: what was started is stopped in reverse; released with the reason', async () => {
  const f = fakeAgents({
    Filesystem: { start: { ok: false, message: '/data already has /dev/sdb1 mounted' } },
  });
  const logs: string[] = [];
  const g = new GroupManager({ groups, ctx, resolve: f.resolve, log: (_l, m) => logs.push(m) });
  assert.equal(await g.start(key), false);
  assert.deepEqual(
    f.calls.filter((c) => !c.endsWith(' status')),
    [
      'IPaddr::10.0.0.100/24 start',
      'drbddisk::r0 start',
      'Filesystem::/dev/drbd1::/data::ext4 start',
      'drbddisk::r0 stop',
      'IPaddr::10.0.0.100/24 stop',
    ],
  );
  const st = g.status()[0]!;
  assert.equal(st.state, 'released');
  assert.match(
    st.reason ?? '',
    /Filesystem::\/dev\/drbd1::\/data::ext4 failed to start: \/data already has \/dev\/sdb1 mounted/,
  );
  assert.ok(logs.some((l) => /stopping what this start started/.test(l)));
});

test('a start under way is abandoned, before the next resource, once the node may no longer act', async () => {
  const f = fakeAgents({});
  let why: string | undefined;
  const guarded = { ...ctx, mayNotAct: () => why } as AgentContext;
  const g = new GroupManager({ groups, ctx: guarded, resolve: f.resolve, log: () => {} });
  // The majority goes while IPaddr starts (its arping takes a while).
  const resolve = f.resolve;
  const g2 = new GroupManager({
    groups,
    ctx: guarded,
    resolve: async (name) => {
      const a = await resolve(name);
      if (name !== 'IPaddr' || !a) return a;
      return {
        ...a,
        run: async (action, args, c) => {
          const r = await a.run(action, args, c);
          if (action === 'start') why = 'this node lost the majority';
          return r;
        },
      };
    },
    log: () => {},
  });
  assert.equal(await g2.start(key), false);
  assert.deepEqual(
    f.calls.filter((c) => !c.endsWith(' status')),
    ['IPaddr::10.0.0.100/24 start', 'IPaddr::10.0.0.100/24 stop'],
    'no disk promoted, the address given back',
  );
  assert.match(g2.status()[0]!.reason ?? '', /start abandoned: this node lost the majority/);
  assert.equal(g2.state(key), 'released');
  // Without a majority from the start, nothing is touched.
  f.calls.length = 0;
  assert.equal(await g.start(key), false);
  assert.deepEqual(
    f.calls.filter((c) => !c.endsWith(' status')),
    [],
  );
});

test('a stop that keeps failing leaves the group failed (held here), after retries', async () => {
  const f = fakeAgents({ Filesystem: { stop: { ok: false, message: 'target is busy' } } });
  const g = new GroupManager({ groups, ctx, resolve: f.resolve, log: () => {}, stopTries: 2 });
  await g.start(key);
  assert.equal(await g.stop(key), false);
  assert.equal(g.state(key), 'failed');
  assert.equal(f.calls.filter((c) => c === 'Filesystem::/dev/drbd1::/data::ext4 stop').length, 2);
  assert.ok(
    !f.calls.includes('drbddisk::r0 stop'),
    'nothing left of a resource that would not stop is stopped',
  );
  // A failed group is not started again by itself.
  assert.equal(await g.start(key), false);
});

test('an unknown agent fails the start with a clear reason', async () => {
  const gs = parseHaResources('server6 IPaddr::10.0.0.100/24 missing\n', 'haresources').config.groups;
  const f = fakeAgents({});
  const g = new GroupManager({ groups: gs, ctx, resolve: f.resolve, log: () => {} });
  assert.equal(await g.start(gs[0]!.key), false);
  assert.match(g.status()[0]!.reason ?? '', /no resource agent 'missing'/);
});
