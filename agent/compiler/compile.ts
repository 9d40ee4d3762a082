// The compiler: a pure function from a validated policy, a host name and facts about that host's
// interfaces to the contents of the datapath's policy tables on that host. No I/O, no clock, no
// randomness: the same input always gives the same tables, in the same order.
//
// What each table gets (bpf/abi/policy.h):
//   vsubnets  every virtual subnet: its routing domain id, gateway MAC and gateway addresses;
//   records   every lookup record (LOCAL with the port's ifindex when the CA is a port of this
//             host), plus a GATEWAY record per subnet gateway address (gateway MAC, PA 0);
//   routes    an ONLINK route per subnet prefix and every customer route of every domain;
//   ports     this host's VM ports: VSID, rdid, MAC, tenant MTU, the PA they send from;
//   localPas  this host's provider addresses with their NIC's ifindex, MAC and MTU.

import {
  addr16,
  caKey,
  gatewayMac,
  ipOf,
  ipv4ToNumber,
  macBytes,
  parseMac,
  prefixContains,
  prefixOf,
  subnetsByVsid,
  type Policy,
  type PolicyIssue,
} from '../policy/index.js';
import { formatIssue } from '../policy/errors.js';
import { compileMeterClasses } from './meter.js';
import { recordKey, recordValue } from './records.js';
import {
  Family,
  NVGRE_OVERHEAD,
  RecordFlags,
  ROUTE_KEY_FIXED_BITS,
  RouteFlags,
  TABLES,
  type CompiledTables,
  type KeyOf,
  type Row,
  type Rows,
  type TableName,
  type ValueOf,
} from './tables.js';

/** What the agent found about one interface of its host. */
export interface InterfaceFacts {
  readonly ifindex: number;
  /** `aa:bb:cc:dd:ee:ff` */
  readonly mac: string;
  readonly mtu: number;
}

/** This host's interfaces by name: the VM ports and the physical NICs the policy names. */
export type HostFacts =
  | ReadonlyMap<string, InterfaceFacts>
  | Readonly<Record<string, InterfaceFacts>>;

export class CompileError extends Error {
  override readonly name = 'CompileError';
  readonly issues: readonly PolicyIssue[];

  constructor(host: string, issues: readonly PolicyIssue[]) {
    super(
      [
        `cannot compile the policy for host ${host}:`,
        ...issues.map((i) => `  ${formatIssue(i)}`),
      ].join('\n'),
    );
    this.issues = issues;
  }
}

/** 32-bit FNV-1a of the UTF-8 bytes of s. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A routing domain's id in the datapath: FNV-1a of its name, stable across hosts and restarts. */
export const routingDomainId = fnv1a32;

export { gatewayMac };

/** The smallest MTU a tenant port may get (the IPv4 minimum datagram every host must accept). */
const MIN_TENANT_MTU = 576;

function factsOf(facts: HostFacts, name: string): InterfaceFacts | undefined {
  if (facts instanceof Map) return facts.get(name);
  const rec = facts as Readonly<Record<string, InterfaceFacts>>;
  return Object.hasOwn(rec, name) ? rec[name] : undefined;
}

class TableBuilder<T extends TableName> {
  private readonly rows = new Map<string, Row<KeyOf<T>, ValueOf<T>>>();
  constructor(
    private readonly table: T,
    private readonly report: (path: string, message: string) => void,
  ) {}

  add(path: string, key: KeyOf<T>, value: ValueOf<T>): void {
    const id = TABLES[this.table].keyId(key);
    if (this.rows.has(id)) {
      this.report(path, `gives a second ${this.table} entry for the same key (${id})`);
      return;
    }
    this.rows.set(id, { key, value });
  }

  build(): Rows<T> {
    return new Map([...this.rows].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

/**
 * Compiles the policy for one host. Throws CompileError listing every problem (unknown
 * interfaces, rdid collisions, an MTU too small) and nothing else: the policy is valid already.
 */
export function compile(policy: Policy, hostName: string, facts: HostFacts): CompiledTables {
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  const vsubnets = new TableBuilder('vsubnets', report);
  const records = new TableBuilder('records', report);
  const routes = new TableBuilder('routes', report);
  const ports = new TableBuilder('ports', report);
  const localPas = new TableBuilder('localPas', report);

  // Routing domain ids: a hash must not map two domains to one id (it would merge tenants).
  const rdidOf = new Map<string, number>();
  const rdidOwner = new Map<number, string>();
  policy.routingDomains.forEach((domain, d) => {
    const rdid = routingDomainId(domain.name);
    const owner = rdidOwner.get(rdid);
    if (owner !== undefined && owner !== domain.name) {
      report(
        `routingDomains[${d}].name`,
        `routing domain "${domain.name}" hashes to rdid 0x${rdid.toString(16)} like "${owner}"; rename one of them`,
      );
    }
    rdidOwner.set(rdid, domain.name);
    rdidOf.set(domain.name, rdid);
  });
  const subnets = subnetsByVsid(policy);
  const rdidOfVsid = (vsid: number): number =>
    rdidOf.get(subnets.get(vsid)?.domain.name ?? '') ?? 0;

  // This host's provider addresses and the NICs that own them.
  const hostPas = new Map<string, InterfaceFacts>(); // PA text -> NIC facts
  let hasPa = false;
  policy.providerAddresses.forEach((pa, i) => {
    if (pa.host !== hostName) return;
    hasPa = true;
    const nic = factsOf(facts, pa.interface);
    if (nic === undefined) {
      report(
        `providerAddresses[${i}].interface`,
        `interface "${pa.interface}" of PA ${pa.address} does not exist on host ${hostName}`,
      );
      return;
    }
    const mac = parseMac(nic.mac);
    if (!mac.ok) {
      report(`providerAddresses[${i}].interface`, `interface "${pa.interface}": ${mac.message}`);
      return;
    }
    hostPas.set(pa.address, nic);
    localPas.add(`providerAddresses[${i}]`, ipv4ToNumber(ipOf(pa.address)), {
      ifindex: nic.ifindex,
      mac: mac.value.bytes,
      mtu: nic.mtu,
    });
  });
  if (!hasPa)
    report('providerAddresses', `host ${hostName} has no provider address in this policy`);

  // Records of CAs, to find a port's PA.
  const recordPa = new Map<string, string>();
  for (const rec of policy.lookupRecords) recordPa.set(caKey(rec.vsid, rec.ca), rec.pa);

  // This host's ports; their CAs become LOCAL records.
  const localCa = new Map<string, number>(); // vsid/ca -> ifindex
  policy.ports.forEach((port, i) => {
    if (port.host !== hostName) return;
    const path = `ports[${i}]`;
    const dev = factsOf(facts, port.interface);
    if (dev === undefined) {
      report(
        `${path}.interface`,
        `interface "${port.interface}" of port "${port.name}" does not exist on host ${hostName}`,
      );
      return;
    }
    for (const ca of port.addresses) localCa.set(caKey(port.vsid, ca), dev.ifindex);
    const pa = recordPa.get(caKey(port.vsid, port.addresses[0] as string)) as string;
    const nic = hostPas.get(pa);
    if (nic === undefined) return; // its PA's interface is missing: reported above
    let mtu = nic.mtu - NVGRE_OVERHEAD;
    if (port.mtu !== undefined) mtu = Math.min(mtu, port.mtu);
    const v6 = subnets.get(port.vsid)?.prefixes.some((p) => p.family === 6) ?? false;
    if (mtu < MIN_TENANT_MTU || (v6 && mtu < 1280)) {
      report(
        `${path}.mtu`,
        `port "${port.name}" would get tenant MTU ${mtu} (underlay MTU ${nic.mtu} - ${NVGRE_OVERHEAD}), below ${v6 ? 1280 : MIN_TENANT_MTU}`,
      );
      return;
    }
    ports.add(path, dev.ifindex, {
      vsid: port.vsid,
      rdid: rdidOfVsid(port.vsid),
      mac: macBytes(port.mac),
      mtu,
      pa: ipv4ToNumber(ipOf(pa)),
      flags: 0,
    });
  });

  // Virtual subnets, their gateway records and on-link routes.
  policy.routingDomains.forEach((domain, d) => {
    const rdid = rdidOf.get(domain.name) as number;
    domain.virtualSubnets.forEach((subnet, s) => {
      const path = `routingDomains[${d}].virtualSubnets[${s}]`;
      const gwMac = gatewayMac(subnet.vsid);
      const { ipv4, ipv6 } = subnet.gateway;
      vsubnets.add(path, subnet.vsid, {
        rdid,
        gw_mac: gwMac,
        flags: 0,
        gw_ip4: ipv4 === undefined ? 0 : ipv4ToNumber(ipOf(ipv4)),
        gw_ip6: ipv6 === undefined ? new Uint8Array(16) : ipOf(ipv6).bytes,
      });
      for (const gw of [subnet.gateway.ipv4, subnet.gateway.ipv6]) {
        if (gw === undefined) continue;
        const addr = ipOf(gw);
        records.add(
          `${path}.gateway`,
          {
            vsid: subnet.vsid,
            family: addr.family === 4 ? Family.ipv4 : Family.ipv6,
            addr: addr16(addr),
          },
          { mac: gwMac, flags: RecordFlags.gateway, pa: 0, ifindex: 0 },
        );
      }
      subnet.prefixes.forEach((text, k) => {
        const prefix = prefixOf(text);
        routes.add(
          `${path}.prefixes[${k}]`,
          {
            prefixlen: ROUTE_KEY_FIXED_BITS + prefix.length,
            rdid,
            family: prefix.family === 4 ? Family.ipv4 : Family.ipv6,
            addr: addr16(prefix),
          },
          { vsid: subnet.vsid, flags: RouteFlags.onlink, nexthop: new Uint8Array(16) },
        );
      });
    });
  });

  // Every lookup record, LOCAL where the CA is a port of this host.
  policy.lookupRecords.forEach((rec, i) => {
    const ifindex = localCa.get(caKey(rec.vsid, rec.ca));
    records.add(`lookupRecords[${i}]`, recordKey(rec), recordValue(rec, ifindex));
  });

  // Customer routes: on-link in another subnet of the domain, or via a next hop CA.
  policy.customerRoutes.forEach((route, i) => {
    const path = `customerRoutes[${i}]`;
    const rdid = rdidOf.get(route.routingDomain) as number;
    const prefix = prefixOf(route.prefix);
    const key = {
      prefixlen: ROUTE_KEY_FIXED_BITS + prefix.length,
      rdid,
      family: prefix.family === 4 ? Family.ipv4 : Family.ipv6,
      addr: addr16(prefix),
    };
    if (route.virtualSubnet !== undefined) {
      routes.add(path, key, {
        vsid: route.virtualSubnet,
        flags: RouteFlags.onlink,
        nexthop: new Uint8Array(16),
      });
      return;
    }
    const hop = ipOf(route.nextHop as string);
    const via = [...subnets.values()].find(
      (ref) =>
        ref.domain.name === route.routingDomain && ref.prefixes.some((p) => prefixContains(p, hop)),
    );
    routes.add(path, key, {
      vsid: via?.subnet.vsid ?? 0,
      flags: RouteFlags.gateway,
      nexthop: addr16(hop),
    });
  });

  if (issues.length > 0) throw new CompileError(hostName, issues);
  return {
    ports: ports.build(),
    vsubnets: vsubnets.build(),
    records: records.build(),
    routes: routes.build(),
    localPas: localPas.build(),
    meterClasses: compileMeterClasses(policy, hostName, facts),
  };
}
