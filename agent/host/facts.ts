// Facts about the host's interfaces that the compiler needs (name -> ifindex, MAC, MTU) and that
// the agent checks (addresses, state), read from the kernel of the network namespace the agent
// manages with one `ip -j address show`.
//
// Why iproute2 and not /sys/class/net: an agent started in a lab with `nsenter --net=` keeps the
// mount namespace it came from, so /sys shows the interfaces of the namespace that mounted it (the
// root namespace), not the agent's. Netlink, which `ip` speaks, always answers for the caller's
// network namespace.

import type { InterfaceFacts } from '../compiler/index.js';
import { CommandError, type CommandRunner } from './command.js';

export interface InterfaceAddress {
  readonly family: 4 | 6;
  readonly address: string;
  readonly prefixLength: number;
}

/** One interface as the agent sees it; a superset of the compiler's InterfaceFacts. */
export interface HostInterface extends InterfaceFacts {
  readonly name: string;
  /** `UP`, `LOWER_UP`, ... as iproute2 prints them. */
  readonly flags: readonly string[];
  /** `UP`, `DOWN`, `UNKNOWN`, ... */
  readonly operstate: string;
  /** `ether`, `loopback`, `none` (tun) ... */
  readonly linkType: string;
  readonly addresses: readonly InterfaceAddress[];
}

/** The host's interfaces by name (a HostFacts the compiler accepts). */
export type HostInterfaces = ReadonlyMap<string, HostInterface>;

interface IpAddrJson {
  ifindex?: unknown;
  ifname?: unknown;
  flags?: unknown;
  mtu?: unknown;
  operstate?: unknown;
  link_type?: unknown;
  address?: unknown;
  addr_info?: Array<{ family?: unknown; local?: unknown; prefixlen?: unknown }>;
}

const ZERO_MAC = '00:00:00:00:00:00';

/**
 * Parses `ip -j address show` output. Interfaces without an Ethernet address (loopback, tun)
 * get the all-zero MAC; the compiler rejects them where it needs a MAC.
 */
export function parseIpAddressJson(text: string): Map<string, HostInterface> {
  const parsed = JSON.parse(text.trim() === '' ? '[]' : text) as unknown;
  if (!Array.isArray(parsed)) throw new Error('`ip -j address show` did not print a JSON array');
  const out = new Map<string, HostInterface>();
  for (const raw of parsed as IpAddrJson[]) {
    if (typeof raw.ifname !== 'string' || typeof raw.ifindex !== 'number') continue;
    const mac =
      typeof raw.address === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(raw.address)
        ? raw.address.toLowerCase()
        : ZERO_MAC;
    const addresses: InterfaceAddress[] = [];
    for (const a of raw.addr_info ?? []) {
      if (typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      addresses.push({
        family: a.family === 'inet' ? 4 : 6,
        address: a.local,
        prefixLength: a.prefixlen,
      });
    }
    // `ip` prints "eth0@if12" only in the text format; JSON has the bare name.
    out.set(raw.ifname, {
      name: raw.ifname,
      ifindex: raw.ifindex,
      mac,
      mtu: typeof raw.mtu === 'number' ? raw.mtu : 0,
      flags: Array.isArray(raw.flags) ? raw.flags.filter((f) => typeof f === 'string') : [],
      operstate: typeof raw.operstate === 'string' ? raw.operstate : 'UNKNOWN',
      linkType: typeof raw.link_type === 'string' ? raw.link_type : 'unknown',
      addresses,
    });
  }
  return out;
}

/** Reads every interface of the namespace `runner` runs in. */
export async function readHostInterfaces(runner: CommandRunner): Promise<HostInterfaces> {
  const r = await runner.run(['ip', '-j', 'address', 'show']);
  if (r.code !== 0) throw new CommandError(r);
  return parseIpAddressJson(r.stdout);
}
