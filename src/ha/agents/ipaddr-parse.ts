// Pure parsing for the IPaddr agent: its argument `IP[/CIDR[/IFACE[/BROADCAST]]]` and the lines of
// `ip -o -4 addr show`, plus the subnet arithmetic that picks an interface. No I/O.
import { isIPv4 } from 'node:net';

export interface IpaddrSpec {
  readonly address: string;
  /** Absent: the prefix of the subnet on the interface that contains the address. */
  readonly prefix?: number;
  /** Absent: the interface whose subnet contains the address. */
  readonly iface?: string;
  /** An address or `+` (ip computes it); absent: none given to ip. */
  readonly broadcast?: string;
}

export type ParsedIpaddrArg =
  | { readonly ok: true; readonly spec: IpaddrSpec }
  | { readonly ok: false; readonly message: string };

/** One IPv4 address of `ip -o -4 addr show`. */
export interface InterfaceAddress {
  readonly iface: string;
  readonly address: string;
  readonly prefix: number;
}

/** Linux keeps interface names below IFNAMSIZ (16 bytes with the NUL). */
export const ifaceNameCharsMax = 15;
/** Bounds the work on a host with a pathological number of addresses. */
export const addressesMax = 4096;

// No leading '-' (it would read as an option to ip or arping) and nothing a kernel name refuses.
const ifaceName = new RegExp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,${ifaceNameCharsMax - 1}}$`);

const usage = 'IP[/CIDR[/IFACE[/BROADCAST]]]';

/** A contiguous dotted netmask as a prefix length, else undefined. */
export function netmaskPrefix(mask: string): number | undefined {
  if (!isIPv4(mask)) return undefined;
  const bits = ipv4ToInt(mask);
  const prefix = 32 - Math.log2((~bits >>> 0) + 1);
  return Number.isInteger(prefix) ? prefix : undefined;
}

export function ipv4ToInt(address: string): number {
  let n = 0;
  for (const part of address.split('.')) n = n * 256 + Number(part);
  return n >>> 0;
}

/** Whether `address` lies in `network/prefix`. */
export function inSubnet(address: string, network: string, prefix: number): boolean {
  if (prefix === 0) return true;
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  return (ipv4ToInt(address) & mask) >>> 0 === (ipv4ToInt(network) & mask) >>> 0;
}

function bad(what: string, found: string, expected: string): ParsedIpaddrArg {
  return { ok: false, message: `IPaddr ${what} ${JSON.stringify(found)}: expected ${expected} (${usage})` };
}

/** Heartbeat's IPaddr argument; an empty field (`10.0.0.5//eth0`) takes its default. */
export function parseIpaddrArg(arg: string | undefined): ParsedIpaddrArg {
  if (arg === undefined || arg === '') return { ok: false, message: `IPaddr needs an argument ${usage}` };
  const fields = arg.split('/');
  if (fields.length > 4) return bad('argument', arg, 'at most four /-separated fields');
  const [address = '', cidr = '', iface = '', broadcast = ''] = fields;
  if (!isIPv4(address)) return bad('address', address, 'an IPv4 dotted quad like 10.0.0.5');
  let prefix: number | undefined;
  if (cidr !== '') {
    prefix = /^\d{1,2}$/.test(cidr) ? Number(cidr) : netmaskPrefix(cidr);
    if (prefix === undefined || prefix < 1 || prefix > 32) {
      return bad('CIDR', cidr, 'a prefix length from 1 to 32 or a netmask like 255.255.255.0');
    }
  }
  if (iface !== '' && !ifaceName.test(iface)) {
    return bad(
      'interface',
      iface,
      `an interface name of at most ${ifaceNameCharsMax} letters, digits, _ . -`,
    );
  }
  if (broadcast !== '' && broadcast !== '+' && !isIPv4(broadcast)) {
    return bad('broadcast', broadcast, 'an IPv4 dotted quad or +');
  }
  return {
    ok: true,
    spec: {
      address,
      ...(prefix !== undefined ? { prefix } : {}),
      ...(iface !== '' ? { iface } : {}),
      ...(broadcast !== '' ? { broadcast } : {}),
    },
  };
}

// `4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever …`
const addrLine = /^\d+:\s+(\S+)\s+inet\s+(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?(?:\s|$)/;

/** The IPv4 addresses in `ip -o -4 addr show` output; lines that are not addresses are skipped. */
export function parseIpAddrShow(out: string): InterfaceAddress[] {
  const found: InterfaceAddress[] = [];
  for (const line of out.split('\n')) {
    if (found.length >= addressesMax) break;
    const m = addrLine.exec(line);
    if (!m || !isIPv4(m[2]!)) continue;
    const prefix = m[3] === undefined ? 32 : Number(m[3]);
    if (prefix > 32) continue;
    // veth and vlan devices may be listed as `eth0@if12`; the name is what comes before the '@'.
    const iface = m[1]!.split('@')[0]!;
    found.push({ iface, address: m[2]!, prefix });
  }
  return found;
}

/**
 * The address to put `spec` next to: on spec.iface if given, the one whose subnet contains the
 * address, the most specific subnet first (a /24 inside a /16 wins), the first listed on a tie.
 */
export function findContainingSubnet(
  spec: IpaddrSpec,
  addresses: readonly InterfaceAddress[],
): InterfaceAddress | undefined {
  let best: InterfaceAddress | undefined;
  for (const a of addresses) {
    if (spec.iface !== undefined && a.iface !== spec.iface) continue;
    if (!inSubnet(spec.address, a.address, a.prefix)) continue;
    if (best === undefined || a.prefix > best.prefix) best = a;
  }
  return best;
}
