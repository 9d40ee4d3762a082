// The network virtualization policy: one cluster-wide document (the same on every host; each
// agent compiles what concerns its host). Field names are camelCase in YAML and JSON alike.
//
// A `Policy` is a document that passed `parsePolicy`: every address, prefix and MAC in it is in
// canonical text form (RFC 5952 IPv6, lower-case colon MACs, prefixes with host bits zero) and
// every cross-reference resolves. The compiler accepts only a `Policy`, so nothing unvalidated
// reaches the datapath.

import type { PortSteering } from './schema-steering.js';

/** Lowest and highest VSID a virtual subnet may have (RFC 7637: 24 bits, 0..4095 reserved). */
export const VSID_MIN = 4096;
export const VSID_MAX = 16777214;

/**
 * The distributed router's MAC in a virtual subnet: 02:74:6e ("tn", a locally administered
 * prefix) followed by the 24-bit VSID. No port or lookup record may use it.
 */
export function gatewayMac(vsid: number): Uint8Array {
  return Uint8Array.of(0x02, 0x74, 0x6e, (vsid >>> 16) & 0xff, (vsid >>> 8) & 0xff, vsid & 0xff);
}

import type { PortQos, TenantQos, Uplink } from './model-qos.js';

export type * from './model-qos.js';

/** Linux IFNAMSIZ - 1. */
export const IFNAME_MAX = 15;

/** A provider address (PA): an IPv4 address a host owns on a physical interface. */
export interface ProviderAddress {
  /** The hypervisor host; matches the agent's host name. */
  readonly host: string;
  readonly address: string;
  /** The physical NIC (or VF) on that host that owns the address. */
  readonly interface: string;
  /** Length of the on-link underlay prefix the address sits in. */
  readonly prefixLength?: number;
  /** Underlay router towards PAs outside the on-link prefix (resolved via the neighbour table). */
  readonly underlayNextHop?: string;
}

export interface Gateway {
  readonly ipv4?: string;
  readonly ipv6?: string;
}

/** A virtual subnet: one L2 broadcast domain of a tenant, named by its VSID on the wire. */
export interface VirtualSubnet {
  readonly name: string;
  readonly vsid: number;
  /** Customer address (CA) prefixes, IPv4 and IPv6. */
  readonly prefixes: readonly string[];
  /** The distributed router's address in this subnet, per family. */
  readonly gateway: Gateway;
}

/** A tenant's isolated L3 space; its virtual subnets route to each other and to nothing else. */
export interface RoutingDomain {
  readonly name: string;
  readonly virtualSubnets: readonly VirtualSubnet[];
}

/** A VM network adapter: a host-side port (veth, tap) attached to one virtual subnet. */
export interface Port {
  readonly name: string;
  readonly host: string;
  /** The host-side interface of the adapter. */
  readonly interface: string;
  readonly mac: string;
  readonly vsid: number;
  /** The adapter's CAs; each must have a lookup record with this MAC and a PA of this host. */
  readonly addresses: readonly string[];
  /** Tenant MTU cap; the port gets min(this, underlay MTU - 42). */
  readonly mtu?: number;
}

/** Where a CA lives: (VSID, CA) -> (MAC, PA), for local and remote VMs alike. */
export interface LookupRecord {
  readonly vsid: number;
  readonly ca: string;
  readonly mac: string;
  readonly pa: string;
}

/** A route of the distributed router: exactly one of virtualSubnet and nextHop. */
export interface CustomerRoute {
  readonly routingDomain: string;
  readonly prefix: string;
  /** On-link in that virtual subnet (a VSID of the same routing domain). */
  readonly virtualSubnet?: number;
  /** Via this CA (inside one of the domain's virtual subnets, with a lookup record). */
  readonly nextHop?: string;
}

/** Which traffic of a port a rule sees: what the VM receives, what it sends, or both. */
export type AclDirection = 'inbound' | 'outbound' | 'both';

/**
 * allow/deny decide a packet's fate; meter only counts it in a metering class (Hyper-V's Meter
 * action) and never changes the verdict.
 */
export type AclAction = 'allow' | 'deny' | 'meter';

/** An inclusive range of TCP/UDP ports; YAML accepts `80`, `"80"` or `"1024-65535"`. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/**
 * One rule of a port's ACL. Basic rules (Windows Server 2012) match a remote or local prefix or a
 * remote MAC; extended rules (2012 R2) add protocol, port ranges, weight, statefulness and an
 * isolation scope. Omitted match fields match anything. "Local" is the VM's side of the port,
 * "remote" the other end, in both directions.
 */
export interface AclRule {
  /** Unique within the port's ACL; names the rule in counters, logs and the API. */
  readonly name: string;
  readonly direction: AclDirection;
  readonly action: AclAction;
  /** When several allow/deny rules match, the highest weight decides (ties: see the compiler). */
  readonly weight?: number;
  /** IP protocol number (names like tcp, udp, icmp, icmpv6 are canonicalised to numbers). */
  readonly protocol?: number;
  readonly localPrefix?: string;
  readonly remotePrefix?: string;
  readonly remoteMac?: string;
  /** TCP/UDP only (protocol 6 or 17 must be set). */
  readonly localPorts?: PortRange;
  readonly remotePorts?: PortRange;
  /** An allowed flow admits its return traffic (allow rules only). */
  readonly stateful?: boolean;
  /** Idle timeout of a stateful rule's flows. */
  readonly idleTimeoutSeconds?: number;
  /** Isolation scope: the rule applies only to traffic whose remote end is in this VSID. */
  readonly isolationVsid?: number;
  /** The metering class a meter rule counts into (meter rules only, required there). */
  readonly meteringClass?: string;
}

/** The ACL of one VM port (at most one entry per port). */
export interface PortAcl {
  /** A port's name (ports[].name). */
  readonly port: string;
  readonly rules: readonly AclRule[];
}

export interface PolicyDocument {
  readonly providerAddresses: readonly ProviderAddress[];
  readonly routingDomains: readonly RoutingDomain[];
  readonly ports: readonly Port[];
  readonly lookupRecords: readonly LookupRecord[];
  readonly customerRoutes: readonly CustomerRoute[];
  readonly portAcls: readonly PortAcl[];
  readonly portSteering: readonly PortSteering[];
  readonly uplinks: readonly Uplink[];
  readonly portQos: readonly PortQos[];
  readonly tenantQos: readonly TenantQos[];
}

declare const validated: unique symbol;

/** A policy document that passed parsePolicy (a compile-time mark only). */
export type Policy = PolicyDocument & { readonly [validated]: true };
