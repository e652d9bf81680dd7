// IPaddr / IPaddr2: the virtual address that follows the active node. start adds it with `ip addr add`
// and announces it by gratuitous ARP so switches and neighbours forget the old node's MAC; stop
// deletes it; status looks for it in `ip -o -4 addr show`. Both names run the same code (IPaddr used
// ifconfig aliases, IPaddr2 ip; the address on the wire is the same).
import type { Agent, AgentAction, AgentContext, AgentResult } from './agent.js';
import {
  findContainingSubnet,
  type InterfaceAddress,
  type IpaddrSpec,
  parseIpAddrShow,
  parseIpaddrArg,
} from './ipaddr-parse.js';
import { describeFailure, exec, failure, runFailure, success, unknownAction } from './result.js';

/** ip answers from netlink at once; a hung ip means a wedged kernel, not a slow one. */
export const ipTimeoutMs = 10_000;
/** How long start waits for arping before leaving it to finish on its own (it sends 1 per second). */
export const arpingWaitMs = 1_000;
/** arping -c 3 needs about 3 s; past this it is killed. */
export const arpingTimeoutMs = 10_000;
/** Gratuitous ARPs sent; Heartbeat's send_arp sends several in case the first is dropped. */
export const arpingCount = 3;

type Listing =
  | { readonly ok: true; readonly addresses: InterfaceAddress[] }
  | { readonly ok: false; readonly result: AgentResult };

async function listAddresses(ctx: AgentContext): Promise<Listing> {
  const args = ['-o', '-4', 'addr', 'show'];
  const r = await exec(ctx, 'ip', args, { timeoutMs: ipTimeoutMs });
  if (r.code !== 0 || r.timedOut) return { ok: false, result: runFailure('ip', args, r) };
  return { ok: true, addresses: parseIpAddrShow(r.out) };
}

function where(found: readonly InterfaceAddress[]): string {
  return found.map((a) => `${a.address}/${a.prefix} on ${a.iface}`).join(', ');
}

/**
 * Gratuitous ARP, best effort: a failure is a warning (the address is up; neighbours learn it on
 * their next ARP). Waits at most arpingWaitMs so that start does not take the 3 s arping needs.
 */
async function announce(ctx: AgentContext, iface: string, address: string): Promise<void> {
  const args = ['-U', '-c', String(arpingCount), '-I', iface, address];
  const finished = exec(ctx, 'arping', args, { timeoutMs: arpingTimeoutMs }).then((r) => {
    if (r.code !== 0 || r.timedOut) {
      ctx.log('warn', `gratuitous ARP for ${address}: ${describeFailure('arping', args, r)}`);
    }
  });
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, arpingWaitMs);
  });
  // The catch: a throwing log must not become an unhandled rejection after start has returned.
  await Promise.race([finished.catch(() => undefined), waited]);
  clearTimeout(timer);
}

async function start(spec: IpaddrSpec, ctx: AgentContext): Promise<AgentResult> {
  const listing = await listAddresses(ctx);
  if (!listing.ok) return listing.result;
  const present = listing.addresses.filter((a) => a.address === spec.address);
  if (present.length > 0) {
    if (spec.iface !== undefined && !present.some((a) => a.iface === spec.iface)) {
      ctx.log('warn', `${spec.address} is already up, but not on ${spec.iface}: ${where(present)}`);
    }
    return success(`${spec.address} already up: ${where(present)}`);
  }
  const subnet = findContainingSubnet(spec, listing.addresses);
  const iface = spec.iface ?? subnet?.iface;
  const prefix = spec.prefix ?? subnet?.prefix;
  if (iface === undefined || prefix === undefined) {
    const missing = iface === undefined ? 'IFACE' : 'CIDR';
    const on = spec.iface === undefined ? 'no interface has' : `${spec.iface} has no`;
    return failure(
      'AGENT_NO_INTERFACE',
      `${on} subnet containing ${spec.address} (addresses: ${where(listing.addresses) || 'none'}): ` +
        `give ${missing} as IPaddr::IP/CIDR/IFACE`,
    );
  }
  const args = ['addr', 'add', `${spec.address}/${prefix}`];
  if (spec.broadcast !== undefined) args.push('brd', spec.broadcast);
  args.push('dev', iface);
  const r = await exec(ctx, 'ip', args, { timeoutMs: ipTimeoutMs });
  if (r.code !== 0 || r.timedOut) return runFailure('ip', args, r);
  await announce(ctx, iface, spec.address);
  return success(`added ${spec.address}/${prefix} on ${iface}`);
}

async function stop(spec: IpaddrSpec, ctx: AgentContext): Promise<AgentResult> {
  const listing = await listAddresses(ctx);
  if (!listing.ok) return listing.result;
  const present = listing.addresses.filter((a) => a.address === spec.address);
  if (present.length === 0) return success(`${spec.address} is not up`);
  // Deleted wherever it is: the resource is the address, whichever interface it ended up on.
  for (const a of present) {
    const args = ['addr', 'del', `${a.address}/${a.prefix}`, 'dev', a.iface];
    const r = await exec(ctx, 'ip', args, { timeoutMs: ipTimeoutMs });
    if (r.code !== 0 || r.timedOut) return runFailure('ip', args, r);
  }
  return success(`deleted ${where(present)}`);
}

async function status(spec: IpaddrSpec, ctx: AgentContext): Promise<AgentResult> {
  const listing = await listAddresses(ctx);
  if (!listing.ok) return listing.result;
  const present = listing.addresses.filter((a) => a.address === spec.address);
  if (present.length === 0) return success(`${spec.address} is not up`, false);
  return success(`${spec.address} is up: ${where(present)}`, true);
}

function makeIpaddrAgent(name: string): Agent {
  return {
    name,
    async run(action: AgentAction, args: readonly string[], ctx: AgentContext): Promise<AgentResult> {
      if (args.length > 1) {
        return failure(
          'AGENT_BAD_ARGS',
          `${name} takes one argument IP[/CIDR[/IFACE[/BROADCAST]]], found ${args.length}`,
        );
      }
      const parsed = parseIpaddrArg(args[0]);
      if (!parsed.ok) return failure('AGENT_BAD_ARGS', parsed.message);
      switch (action) {
        case 'start':
          return start(parsed.spec, ctx);
        case 'stop':
          return stop(parsed.spec, ctx);
        case 'status':
          return status(parsed.spec, ctx);
        default:
          return unknownAction(action);
      }
    },
  };
}

export const ipaddrAgent: Agent = makeIpaddrAgent('IPaddr');
export const ipaddr2Agent: Agent = makeIpaddrAgent('IPaddr2');
