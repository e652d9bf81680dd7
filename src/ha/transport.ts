// The heartbeat links of ha.cf as UDP sockets: `ucast IFACE HOST` (one socket per
// link, sending to HOST:udpport; a ucast naming one of this node's own addresses is
// skipped, so both nodes share one ha.cf), `bcast IFACE` (broadcast on the interface)
// and `mcast IFACE GROUP PORT TTL LOOP`. Every link listens on its udpport; what it
// receives goes to `onPacket` with the link's name, so membership can tell links apart.
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import type { HaLink } from '../config/hacf-model.js';

export interface LinkInfo {
  /** For status: `ucast eth1 10.0.0.2`, `bcast eth0`, `mcast eth0 239.0.0.1`. */
  readonly name: string;
}

export interface HeartbeatTransport {
  readonly links: readonly LinkInfo[];
  /** Sends one packet on every link. */
  send(packet: Buffer): void;
  close(): Promise<void>;
}

export interface TransportOptions {
  readonly links: readonly HaLink[];
  readonly onPacket: (packet: Buffer, link: string, from: string) => void;
  readonly log: (message: string) => void;
  /** This node's addresses (ucast to one of them is skipped); default: every interface's. */
  readonly ownAddresses?: readonly string[];
}

function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

function ipv4Of(iface: string): string | undefined {
  return networkInterfaces()[iface]?.find((x) => x.family === 'IPv4')?.address;
}

/** The IPv4 broadcast address of an interface, from its address and netmask. */
function broadcastOf(iface: string): string | undefined {
  const a = networkInterfaces()[iface]?.find((x) => x.family === 'IPv4');
  if (!a) return undefined;
  const ip = a.address.split('.').map(Number);
  const mask = a.netmask.split('.').map(Number);
  return ip.map((b, i) => (b | (~mask[i]! & 0xff)) & 0xff).join('.');
}

interface Bound {
  readonly info: LinkInfo;
  readonly socket: Socket;
  readonly to: { host: string; port: number } | undefined;
}

/** Opens a UDP socket per usable link; links that cannot be opened are logged and skipped. */
export async function openTransport(o: TransportOptions): Promise<HeartbeatTransport> {
  const own = new Set(o.ownAddresses ?? localAddresses());
  const bound: Bound[] = [];
  for (const link of o.links) {
    if (link.kind === 'ucast' && own.has(link.host)) continue;
    const name =
      link.kind === 'ucast'
        ? `ucast ${link.iface} ${link.host}`
        : link.kind === 'mcast'
          ? `mcast ${link.iface} ${link.group}`
          : `bcast ${link.iface}`;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (msg, rinfo) => o.onPacket(msg, name, rinfo.address));
    socket.on('error', (e) => o.log(`${name}: ${e.message}`));
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        // A ucast link listens on its interface's address, so two links on one port stay
        // apart (and a packet is counted on the link it came in on); broadcast and
        // multicast need the wildcard address.
        const address = link.kind === 'ucast' ? ipv4Of(link.iface) : undefined;
        socket.bind({ port: link.port, ...(address === undefined ? {} : { address }) }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      let to: { host: string; port: number } | undefined;
      if (link.kind === 'ucast') to = { host: link.host, port: link.port };
      if (link.kind === 'bcast') {
        socket.setBroadcast(true);
        const b = broadcastOf(link.iface);
        if (b === undefined) throw new Error(`interface ${link.iface} has no IPv4 address`);
        to = { host: b, port: link.port };
      }
      if (link.kind === 'mcast') {
        socket.addMembership(link.group);
        socket.setMulticastTTL(link.ttl);
        socket.setMulticastLoopback(link.loop);
        to = { host: link.group, port: link.port };
      }
      bound.push({ info: { name }, socket, to });
    } catch (e) {
      o.log(`${name}: cannot open (${(e as Error).message}); this link is not used`);
      socket.close();
    }
  }
  return {
    links: bound.map((b) => b.info),
    send(packet) {
      for (const b of bound) {
        if (b.to === undefined) continue;
        b.socket.send(packet, b.to.port, b.to.host, (err) => {
          // A down interface or an unreachable peer is what heartbeats are there to find out.
          if (err) o.log(`${b.info.name}: send: ${err.message}`);
        });
      }
    },
    async close() {
      await Promise.all(bound.map((b) => new Promise<void>((resolve) => b.socket.close(() => resolve()))));
    },
  };
}
