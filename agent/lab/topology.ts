// Declarative lab topology in the shape tenet needs:
//
//              [ switch namespace: bridge br0 ]
//               | port p-h1           | port p-h2        (bridge ports, one per host)
//        phys0 [ host h1 ]      phys0 [ host h2 ]          ("physical NIC" of each hypervisor)
//          vm1p |   | vm2p         vm3p |
//      eth0 [vm1] [vm2]          eth0 [vm3]                (VMs: eth0 peered with a host port)
//
// The switch plays the underlay L2 network. Host namespaces are where tenet's agent and
// datapath run; VM ports are where the tc programs attach.

import { type Netns, type Lab, LabError, assertIfname, randomMac } from './lab.js';
import { parseCidr } from '../packet/addr.js';

export interface RouteSpec {
  /** CIDR in the lab ranges, or 'default'. */
  dst: string;
  via?: string;
  dev?: string;
  extra?: string[];
}

export interface NeighborSpec {
  dev: string;
  ip: string;
  mac: string;
}

export interface VmSpec {
  /** Namespace short name; unique in the lab. */
  name: string;
  /** Name of the VM port (the veth end in the host namespace). */
  port: string;
  /** Interface name inside the VM (default eth0). */
  ifname?: string;
  mac?: string;
  addrs?: string[];
  /** MTU of the VM's interface only; the host-side port keeps its own (see portMtu). */
  mtu?: number;
  /**
   * MTU of the host-side port (default: the kernel's 1500). It must take whatever the VM may
   * send, so that an oversized frame reaches tc and gets ICMP "fragmentation needed" back instead
   * of being dropped silently by the veth.
   */
  portMtu?: number;
  /** MAC and addresses of the host-side port (usually none: tenet owns that port). */
  portMac?: string;
  portAddrs?: string[];
  routes?: RouteSpec[];
  neighbors?: NeighborSpec[];
  /**
   * Turn GRO on for the VM's interface. A veth receives frames that XDP redirects into its peer
   * only when it runs NAPI, that is with an XDP program or GRO on it; tenet's decapsulation
   * redirects from XDP on the physical NIC to the VM port, so overlay VMs need it.
   */
  gro?: boolean;
}

export interface HostSpec {
  /** Namespace short name; unique in the lab. */
  name: string;
  phys?: {
    /** Default phys0. */
    name?: string;
    mac?: string;
    /** Provider (underlay) addresses. */
    addrs?: string[];
    mtu?: number;
    /** Name of the bridge port in the switch namespace (default `p-<host>`, ≤ 15 chars). */
    switchPort?: string;
  };
  /** Enable IPv4/IPv6 forwarding in the host namespace. */
  forwarding?: boolean;
  routes?: RouteSpec[];
  neighbors?: NeighborSpec[];
  vms?: VmSpec[];
}

export interface TopologySpec {
  switch?: {
    /** Namespace short name, default 'sw'. */
    name?: string;
    /** Bridge name, default 'br0'. */
    bridge?: string;
    mtu?: number;
    vlanFiltering?: boolean;
    /**
     * Keep checksum offload on the switch's ports (default false). A real wire only ever carries
     * frames with complete checksums, but a veth passes CHECKSUM_PARTIAL skbs straight to its
     * peer, and a host's XDP program (which sees bytes, not skb metadata) would forward TCP with
     * an unfinished checksum. With offload off the switch finishes checksums (and segments GSO
     * packets) in software on transmit, as a NIC would before the wire.
     */
    offloads?: boolean;
  };
  hosts: HostSpec[];
}

export interface Iface {
  ns: Netns;
  name: string;
  mac: string;
  /** As given (CIDR). */
  addrs: string[];
  /** First address of the family without prefix length, if any. */
  ip4?: string;
  ip6?: string;
  ifindex(): Promise<number>;
}

export interface VmHandle {
  name: string;
  ns: Netns;
  host: HostHandle;
  /** The VM's interface (eth0). */
  eth0: Iface;
  /** The host-side port. */
  port: Iface;
}

export interface HostHandle {
  name: string;
  ns: Netns;
  phys: Iface;
  /** The bridge port in the switch namespace that phys0 is wired to. */
  switchPort: Iface;
  vms: VmHandle[];
  vm(name: string): VmHandle;
}

export interface Topology {
  lab: Lab;
  switch: { ns: Netns; bridge: string; ports: Iface[] };
  hosts: HostHandle[];
  vms: VmHandle[];
  host(name: string): HostHandle;
  vm(name: string): VmHandle;
}

function iface(ns: Netns, name: string, mac: string, addrs: string[] = []): Iface {
  const first = (fam: 4 | 6): string | undefined => {
    for (const a of addrs) {
      const c = parseCidr(a);
      if (c.family === fam) return c.address;
    }
    return undefined;
  };
  const i: Iface = { ns, name, mac, addrs: [...addrs], ifindex: () => ns.ifindex(name) };
  const v4 = first(4);
  const v6 = first(6);
  if (v4) i.ip4 = v4;
  if (v6) i.ip6 = v6;
  return i;
}

async function applyRoutes(
  ns: Netns,
  routes: RouteSpec[] = [],
  neighbors: NeighborSpec[] = [],
): Promise<void> {
  for (const n of neighbors) await ns.addNeighbor(n.dev, n.ip, n.mac);
  for (const r of routes) {
    const o: { via?: string; dev?: string; extra?: string[] } = {};
    if (r.via) o.via = r.via;
    if (r.dev) o.dev = r.dev;
    if (r.extra) o.extra = r.extra;
    await ns.addRoute(r.dst, o);
  }
}

/** Validate a spec without touching the system (names, lengths, uniqueness). */
export function validateTopology(spec: TopologySpec): void {
  const nsNames = new Set<string>();
  const claim = (n: string): void => {
    if (nsNames.has(n))
      throw new LabError(`topology: namespace name ${JSON.stringify(n)} used twice`);
    nsNames.add(n);
  };
  claim(spec.switch?.name ?? 'sw');
  assertIfname(spec.switch?.bridge ?? 'br0');
  const swPorts = new Set<string>([spec.switch?.bridge ?? 'br0']);
  for (const h of spec.hosts) {
    claim(h.name);
    const sp = h.phys?.switchPort ?? `p-${h.name}`.slice(0, 15);
    assertIfname(sp);
    if (swPorts.has(sp))
      throw new LabError(`topology: switch port ${sp} used twice (set phys.switchPort)`);
    swPorts.add(sp);
    const physName = h.phys?.name ?? 'phys0';
    assertIfname(physName);
    const hostIfs = new Set<string>([physName]);
    for (const v of h.vms ?? []) {
      claim(v.name);
      assertIfname(v.port);
      assertIfname(v.ifname ?? 'eth0');
      if (hostIfs.has(v.port))
        throw new LabError(`topology: port ${v.port} used twice in host ${h.name}`);
      hostIfs.add(v.port);
    }
  }
}

/** Build the topology inside `lab`; on failure the lab still owns (and tears down) what was made. */
export async function buildTopology(lab: Lab, spec: TopologySpec): Promise<Topology> {
  validateTopology(spec);
  const swName = spec.switch?.name ?? 'sw';
  const bridge = spec.switch?.bridge ?? 'br0';
  const swNs = await lab.netns(swName);
  const brOpts: { mtu?: number; vlanFiltering?: boolean } = {};
  if (spec.switch?.mtu) brOpts.mtu = spec.switch.mtu;
  if (spec.switch?.vlanFiltering) brOpts.vlanFiltering = true;
  await lab.bridge(swNs, bridge, brOpts);

  const hosts: HostHandle[] = [];
  const vms: VmHandle[] = [];
  const ports: Iface[] = [];
  for (const h of spec.hosts) {
    const ns = await lab.netns(h.name);
    const physName = h.phys?.name ?? 'phys0';
    const swPort = h.phys?.switchPort ?? `p-${h.name}`.slice(0, 15);
    const mtu = h.phys?.mtu ?? spec.switch?.mtu;
    const pair = await lab.veth(
      {
        ns,
        name: physName,
        mac: h.phys?.mac ?? randomMac(),
        addrs: h.phys?.addrs ?? [],
        ...(mtu ? { mtu } : {}),
      },
      { ns: swNs, name: swPort, ...(mtu ? { mtu } : {}) },
    );
    await lab.bridgePort(swNs, bridge, swPort);
    if (!spec.switch?.offloads) await swNs.execOk(['ethtool', '-K', swPort, 'tx', 'off']);
    if (h.forwarding) {
      await ns.sysctls({ 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 });
    }
    const handleVms: VmHandle[] = [];
    const host: HostHandle = {
      name: h.name,
      ns,
      phys: iface(ns, physName, pair.a.mac, h.phys?.addrs),
      switchPort: iface(swNs, swPort, pair.b.mac),
      vms: handleVms,
      vm(name: string) {
        const v = handleVms.find((x) => x.name === name);
        if (!v) throw new LabError(`host ${h.name} has no VM ${name}`);
        return v;
      },
    };
    ports.push(host.switchPort);
    for (const v of h.vms ?? []) {
      const vns = await lab.netns(v.name);
      const ifname = v.ifname ?? 'eth0';
      const vp = await lab.veth(
        {
          ns: vns,
          name: ifname,
          mac: v.mac ?? randomMac(),
          addrs: v.addrs ?? [],
          ...(v.mtu ? { mtu: v.mtu } : {}),
        },
        {
          ns,
          name: v.port,
          mac: v.portMac ?? randomMac(),
          addrs: v.portAddrs ?? [],
          ...(v.portMtu ? { mtu: v.portMtu } : {}),
        },
      );
      if (v.gro) await vns.execOk(['ethtool', '-K', ifname, 'gro', 'on']);
      const vm: VmHandle = {
        name: v.name,
        ns: vns,
        host,
        eth0: iface(vns, ifname, vp.a.mac, v.addrs),
        port: iface(ns, v.port, vp.b.mac, v.portAddrs),
      };
      handleVms.push(vm);
      vms.push(vm);
    }
    hosts.push(host);
  }
  // Routes last: gateways must be reachable on already-configured interfaces.
  for (const h of spec.hosts) {
    await applyRoutes(lab.get(h.name), h.routes, h.neighbors);
    for (const v of h.vms ?? []) await applyRoutes(lab.get(v.name), v.routes, v.neighbors);
  }
  return {
    lab,
    switch: { ns: swNs, bridge, ports },
    hosts,
    vms,
    host(name: string) {
      const x = hosts.find((y) => y.name === name);
      if (!x) throw new LabError(`topology has no host ${name}`);
      return x;
    },
    vm(name: string) {
      const x = vms.find((y) => y.name === name);
      if (!x) throw new LabError(`topology has no VM ${name}`);
      return x;
    },
  };
}
