// Rules that relate the fields of a well-shaped policy document to each other: uniqueness,
// references, containment, overlaps, and the consistency of ports with lookup records. Every
// problem is collected (none stops the others) and named by the path of the field at fault; the
// later of two clashing entries is the one reported, pointing at the earlier one.

import {
  familyName,
  formatMac,
  ipOf,
  networkOf,
  prefixContains,
  prefixesOverlap,
  prefixOf,
  type IpAddress,
  type IpPrefix,
} from './addr.js';
import type { PolicyIssue } from './errors.js';
import { validateAcls } from './validate-acl.js';
import { validateMeters } from './validate-meter.js';
import { validateSteering } from './validate-steering.js';
import { validateQos } from './validate-qos.js';
import {
  gatewayMac,
  type LookupRecord,
  type PolicyDocument,
  type RoutingDomain,
  type VirtualSubnet,
} from './model.js';

/** A virtual subnet with where it sits in the document and its parsed prefixes. */
export interface SubnetRef {
  readonly domain: RoutingDomain;
  readonly subnet: VirtualSubnet;
  readonly path: string;
  readonly prefixes: readonly IpPrefix[];
}

/** Virtual subnets by VSID (the first definition of a VSID wins). */
export function subnetsByVsid(doc: PolicyDocument): Map<number, SubnetRef> {
  const out = new Map<number, SubnetRef>();
  doc.routingDomains.forEach((domain, d) =>
    domain.virtualSubnets.forEach((subnet, s) => {
      if (!out.has(subnet.vsid)) {
        out.set(subnet.vsid, {
          domain,
          subnet,
          path: `routingDomains[${d}].virtualSubnets[${s}]`,
          prefixes: subnet.prefixes.map(prefixOf),
        });
      }
    }),
  );
  return out;
}

/** Key of a CA within a VSID: `5001/198.19.1.10`. Addresses are canonical, so text compares. */
export function caKey(vsid: number, ca: string): string {
  return `${vsid}/${ca}`;
}

function listPrefixes(ref: SubnetRef): string {
  return ref.prefixes.map((p) => p.text).join(', ');
}

function subnetLabel(ref: SubnetRef): string {
  return `virtual subnet "${ref.subnet.name}" (VSID ${ref.subnet.vsid})`;
}

/** What the per-record rules need of the rest of the document. */
export interface RecordRuleContext {
  readonly subnets: ReadonlyMap<number, SubnetRef>;
  readonly isProviderAddress: (pa: string) => boolean;
}

type Report = (path: string, message: string) => void;

/** The gateway address of `vsid` of either family is `ca`. */
export function isGatewayCa(subnets: ReadonlyMap<number, SubnetRef>, vsid: number, ca: string) {
  const gw = subnets.get(vsid)?.subnet.gateway;
  return gw !== undefined && (gw.ipv4 === ca || gw.ipv6 === ca);
}

/** A lookup record's place: a known VSID, the CA inside its prefixes and not its gateway. */
export function checkRecordPlace(
  ctx: RecordRuleContext,
  rec: LookupRecord,
  path: string,
  report: Report,
): void {
  const ref = ctx.subnets.get(rec.vsid);
  if (ref === undefined) {
    report(`${path}.vsid`, `VSID ${rec.vsid} is not defined by any routing domain`);
  } else if (!ref.prefixes.some((p) => prefixContains(p, ipOf(rec.ca)))) {
    report(
      `${path}.ca`,
      `${rec.ca} is outside the prefixes of ${subnetLabel(ref)}: ${listPrefixes(ref)}`,
    );
  } else if (isGatewayCa(ctx.subnets, rec.vsid, rec.ca)) {
    report(
      `${path}.ca`,
      `${rec.ca} is the gateway address of VSID ${rec.vsid}; the distributed router owns it`,
    );
  }
}

/** The gateway MAC of a VSID as text; memoised (a million records share a few VSIDs). */
const gatewayMacs = new Map<number, string>();
function gatewayMacText(vsid: number): string {
  let mac = gatewayMacs.get(vsid);
  if (mac === undefined) {
    mac = formatMac(gatewayMac(vsid));
    if (gatewayMacs.size > 65536) gatewayMacs.clear();
    gatewayMacs.set(vsid, mac);
  }
  return mac;
}

/** A lookup record's target: a known provider address, a MAC that is not the gateway's. */
export function checkRecordTarget(
  ctx: RecordRuleContext,
  rec: LookupRecord,
  path: string,
  report: Report,
): void {
  if (!ctx.isProviderAddress(rec.pa)) {
    report(`${path}.pa`, `${rec.pa} is not a provider address of any host`);
  }
  if (rec.mac === gatewayMacText(rec.vsid)) {
    report(`${path}.mac`, `${rec.mac} is the gateway MAC of VSID ${rec.vsid}`);
  }
}

export function validatePolicy(doc: PolicyDocument): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };

  // Provider addresses: one owner per PA; a next hop must be on-link.
  const paOwner = new Map<string, { host: string; path: string }>();
  const hostPas = new Map<string, string[]>();
  const hostPaInterfaces = new Map<string, Set<string>>();
  doc.providerAddresses.forEach((pa, i) => {
    const path = `providerAddresses[${i}]`;
    const prev = paOwner.get(pa.address);
    if (prev !== undefined) {
      report(
        `${path}.address`,
        `${pa.address} is already the provider address of host ${prev.host} (${prev.path})`,
      );
    } else {
      paOwner.set(pa.address, { host: pa.host, path });
      hostPas.set(pa.host, [...(hostPas.get(pa.host) ?? []), pa.address]);
    }
    const ifaces = hostPaInterfaces.get(pa.host) ?? new Set<string>();
    ifaces.add(pa.interface);
    hostPaInterfaces.set(pa.host, ifaces);
    const addr = ipOf(pa.address);
    if (
      addr.bytes.every((b) => b === 0) ||
      (addr.bytes[0] as number) >= 224 ||
      addr.bytes[0] === 127
    ) {
      report(`${path}.address`, `${pa.address} is not a unicast address a host can own`);
    }
    if (pa.underlayNextHop !== undefined) {
      if (pa.underlayNextHop === pa.address) {
        report(`${path}.underlayNextHop`, `${pa.underlayNextHop} is the provider address itself`);
      } else if (pa.prefixLength !== undefined) {
        const onLink = networkOf(addr, pa.prefixLength);
        if (!prefixContains(onLink, ipOf(pa.underlayNextHop))) {
          report(
            `${path}.underlayNextHop`,
            `${pa.underlayNextHop} is not on-link: outside ${pa.address}/${pa.prefixLength}`,
          );
        }
      }
    }
  });

  // Routing domains and virtual subnets: unique names, unique VSIDs, no overlapping prefixes.
  const domainByName = new Map<string, { domain: RoutingDomain; path: string }>();
  const vsidAt = new Map<number, string>();
  doc.routingDomains.forEach((domain, d) => {
    const dpath = `routingDomains[${d}]`;
    const prev = domainByName.get(domain.name);
    if (prev !== undefined) {
      report(`${dpath}.name`, `routing domain "${domain.name}" is already defined at ${prev.path}`);
    } else {
      domainByName.set(domain.name, { domain, path: dpath });
    }
    const subnetNames = new Map<string, string>();
    const seen: { prefix: IpPrefix; path: string; subnet: string }[] = [];
    domain.virtualSubnets.forEach((subnet, s) => {
      const spath = `${dpath}.virtualSubnets[${s}]`;
      const prevName = subnetNames.get(subnet.name);
      if (prevName !== undefined) {
        report(
          `${spath}.name`,
          `virtual subnet "${subnet.name}" is already defined in this routing domain at ${prevName}`,
        );
      } else {
        subnetNames.set(subnet.name, spath);
      }
      const prevVsid = vsidAt.get(subnet.vsid);
      if (prevVsid !== undefined) {
        report(`${spath}.vsid`, `VSID ${subnet.vsid} is already used by ${prevVsid}`);
      } else {
        vsidAt.set(subnet.vsid, `${spath} ("${subnet.name}" in routing domain "${domain.name}")`);
      }
      const prefixes = subnet.prefixes.map(prefixOf);
      prefixes.forEach((p, k) => {
        const ppath = `${spath}.prefixes[${k}]`;
        const clash = seen.find((o) => prefixesOverlap(o.prefix, p));
        if (clash !== undefined) {
          report(
            ppath,
            `${p.text} overlaps ${clash.prefix.text} of virtual subnet "${clash.subnet}" (${clash.path}) in routing domain "${domain.name}"`,
          );
        } else {
          seen.push({ prefix: p, path: ppath, subnet: subnet.name });
        }
      });
      for (const family of [4, 6] as const) {
        const gw = family === 4 ? subnet.gateway.ipv4 : subnet.gateway.ipv6;
        if (gw === undefined) continue;
        const addr = ipOf(gw);
        if (!prefixes.some((p) => prefixContains(p, addr))) {
          report(
            `${spath}.gateway.ipv${family}`,
            `${gw} is not inside any ${familyName(family)} prefix of virtual subnet "${subnet.name}" (${prefixes.map((p) => p.text).join(', ')})`,
          );
        }
      }
    });
  });

  const subnets = subnetsByVsid(doc);
  const gatewayOf = (vsid: number, ca: string): boolean => {
    const gw = subnets.get(vsid)?.subnet.gateway;
    return gw !== undefined && (gw.ipv4 === ca || gw.ipv6 === ca);
  };
  const gatewayMacOf = gatewayMacText;
  const unknownVsid = (vsid: number): string => `VSID ${vsid} is not defined by any routing domain`;
  const outside = (addr: string, ref: SubnetRef): string =>
    `${addr} is outside the prefixes of ${subnetLabel(ref)}: ${listPrefixes(ref)}`;
  const inSubnet = (ref: SubnetRef, addr: IpAddress): boolean =>
    ref.prefixes.some((p) => prefixContains(p, addr));

  // Lookup records: known VSID, CA inside it, one record per CA, a known PA, one adapter per MAC.
  // The per-record rules are shared with the API's incremental path (agent/api/records-fast.ts).
  const recordCtx: RecordRuleContext = { subnets, isProviderAddress: (pa) => paOwner.has(pa) };
  const recordByCa = new Map<string, { index: number; mac: string; pa: string }>();
  const recordMacs = new Map<string, { pa: string; path: string }>(); // key vsid/mac
  doc.lookupRecords.forEach((rec, i) => {
    const path = `lookupRecords[${i}]`;
    checkRecordPlace(recordCtx, rec, path, report);
    const key = caKey(rec.vsid, rec.ca);
    const prev = recordByCa.get(key);
    if (prev !== undefined) {
      report(
        `${path}.ca`,
        `${rec.ca} in VSID ${rec.vsid} already has a lookup record (lookupRecords[${prev.index}])`,
      );
    } else {
      recordByCa.set(key, { index: i, mac: rec.mac, pa: rec.pa });
    }
    checkRecordTarget(recordCtx, rec, path, report);
    const macKey = `${rec.vsid}/${rec.mac}`;
    const prevMac = recordMacs.get(macKey);
    if (prevMac === undefined) {
      recordMacs.set(macKey, { pa: rec.pa, path });
    } else if (prevMac.pa !== rec.pa) {
      report(
        `${path}.mac`,
        `${rec.mac} already identifies an adapter on PA ${prevMac.pa} in VSID ${rec.vsid} (${prevMac.path}); a MAC names one adapter`,
      );
    }
  });

  // Ports: a host with a PA, a known VSID, a unique interface and MAC, CAs backed by records.
  const portNames = new Map<string, number>();
  const portIfaces = new Map<string, number>(); // key host/interface
  const portMacs = new Map<string, number>(); // key vsid/mac
  const portCas = new Map<string, number>(); // key vsid/ca
  doc.ports.forEach((port, i) => {
    const path = `ports[${i}]`;
    const prevName = portNames.get(port.name);
    if (prevName !== undefined)
      report(`${path}.name`, `port "${port.name}" is already defined at ports[${prevName}]`);
    else portNames.set(port.name, i);

    const pas = hostPas.get(port.host);
    if (pas === undefined) report(`${path}.host`, `host "${port.host}" has no provider address`);

    const ifKey = `${port.host}/${port.interface}`;
    const prevIf = portIfaces.get(ifKey);
    if (prevIf !== undefined) {
      report(
        `${path}.interface`,
        `interface "${port.interface}" of host ${port.host} is already port "${doc.ports[prevIf]?.name}" (ports[${prevIf}])`,
      );
    } else {
      portIfaces.set(ifKey, i);
    }
    if (hostPaInterfaces.get(port.host)?.has(port.interface)) {
      report(
        `${path}.interface`,
        `interface "${port.interface}" of host ${port.host} is a provider address's physical interface`,
      );
    }

    const ref = subnets.get(port.vsid);
    if (ref === undefined) report(`${path}.vsid`, unknownVsid(port.vsid));
    if (port.mtu !== undefined && port.mtu < 1280 && ref?.prefixes.some((p) => p.family === 6)) {
      report(
        `${path}.mtu`,
        `${port.mtu} is below 1280, the IPv6 minimum, and VSID ${port.vsid} carries IPv6`,
      );
    }

    const macKey = `${port.vsid}/${port.mac}`;
    const prevMac = portMacs.get(macKey);
    if (prevMac !== undefined) {
      report(
        `${path}.mac`,
        `${port.mac} is already the MAC of port "${doc.ports[prevMac]?.name}" (ports[${prevMac}]) in VSID ${port.vsid}`,
      );
    } else {
      portMacs.set(macKey, i);
    }
    if (port.mac === gatewayMacOf(port.vsid)) {
      report(`${path}.mac`, `${port.mac} is the gateway MAC of VSID ${port.vsid}`);
    }

    const own = new Set<string>();
    let portPa: { pa: string; path: string } | undefined;
    port.addresses.forEach((ca, k) => {
      const apath = `${path}.addresses[${k}]`;
      if (own.has(ca)) {
        report(apath, `${ca} is listed twice`);
        return;
      }
      own.add(ca);
      const caK = caKey(port.vsid, ca);
      const prevCa = portCas.get(caK);
      if (prevCa !== undefined) {
        report(
          apath,
          `${ca} in VSID ${port.vsid} is already an address of port "${doc.ports[prevCa]?.name}" (ports[${prevCa}])`,
        );
      } else {
        portCas.set(caK, i);
      }
      if (ref === undefined) return;
      if (!inSubnet(ref, ipOf(ca))) {
        report(apath, outside(ca, ref));
        return;
      }
      if (gatewayOf(port.vsid, ca)) {
        report(
          apath,
          `${ca} is the gateway address of VSID ${port.vsid}; the distributed router owns it`,
        );
        return;
      }
      const rec = recordByCa.get(caK);
      if (rec === undefined) {
        report(apath, `${ca} has no lookup record in VSID ${port.vsid}`);
        return;
      }
      const rpath = `lookupRecords[${rec.index}]`;
      if (rec.mac !== port.mac) {
        report(
          apath,
          `the lookup record of ${ca} (${rpath}) has MAC ${rec.mac}, not the port's MAC ${port.mac}`,
        );
      }
      if (pas !== undefined && !pas.includes(rec.pa)) {
        report(
          apath,
          `the lookup record of ${ca} (${rpath}) points at PA ${rec.pa}, which is not a provider address of host ${port.host} (${pas.join(', ')})`,
        );
      } else if (portPa === undefined) {
        portPa = { pa: rec.pa, path: apath };
      } else if (portPa.pa !== rec.pa) {
        report(
          apath,
          `the lookup record of ${ca} (${rpath}) points at PA ${rec.pa} but that of ${portPa.path} at ${portPa.pa}; a port sends from one PA`,
        );
      }
    });
  });

  // A record whose MAC is a port's must be for one of that port's CAs (a MAC names one adapter).
  doc.lookupRecords.forEach((rec, i) => {
    const portIndex = portMacs.get(`${rec.vsid}/${rec.mac}`);
    if (portIndex === undefined) return;
    const port = doc.ports[portIndex];
    if (port !== undefined && !port.addresses.includes(rec.ca)) {
      report(
        `lookupRecords[${i}].mac`,
        `${rec.mac} is the MAC of port "${port.name}" (ports[${portIndex}]) in VSID ${rec.vsid}, which does not have address ${rec.ca}`,
      );
    }
  });

  // Customer routes: a known domain, one target inside it, no duplicate of another route.
  const routeAt = new Map<string, number>(); // key domain/prefix
  doc.customerRoutes.forEach((route, i) => {
    const path = `customerRoutes[${i}]`;
    const entry = domainByName.get(route.routingDomain);
    if (entry === undefined) {
      report(`${path}.routingDomain`, `routing domain "${route.routingDomain}" is not defined`);
      return;
    }
    const { domain } = entry;
    const prefix = prefixOf(route.prefix);
    const key = `${domain.name}/${prefix.text}`;
    const prevRoute = routeAt.get(key);
    if (prevRoute !== undefined) {
      report(
        `${path}.prefix`,
        `${prefix.text} in routing domain "${domain.name}" already has a route (customerRoutes[${prevRoute}])`,
      );
    } else {
      routeAt.set(key, i);
    }
    const domainSubnets = domain.virtualSubnets
      .map((s) => subnets.get(s.vsid))
      .filter((r): r is SubnetRef => r !== undefined && r.domain === domain);
    const onLink = domainSubnets.find((r) => r.prefixes.some((p) => p.text === prefix.text));
    if (onLink !== undefined) {
      report(`${path}.prefix`, `${prefix.text} is the on-link prefix of ${subnetLabel(onLink)}`);
    }
    if ((route.virtualSubnet === undefined) === (route.nextHop === undefined)) {
      report(path, 'give exactly one of virtualSubnet and nextHop');
      return;
    }
    if (route.virtualSubnet !== undefined) {
      const target = subnets.get(route.virtualSubnet);
      if (target === undefined) {
        report(`${path}.virtualSubnet`, unknownVsid(route.virtualSubnet));
      } else if (target.domain !== domain) {
        report(
          `${path}.virtualSubnet`,
          `VSID ${route.virtualSubnet} belongs to routing domain "${target.domain.name}", not "${domain.name}"`,
        );
      } else if (!target.prefixes.some((p) => p.family === prefix.family)) {
        report(
          `${path}.virtualSubnet`,
          `${subnetLabel(target)} has no ${familyName(prefix.family)} prefix`,
        );
      }
      return;
    }
    const hop = ipOf(route.nextHop as string);
    if (hop.family !== prefix.family) {
      report(
        `${path}.nextHop`,
        `${familyName(hop.family)} next hop ${hop.text} for an ${familyName(prefix.family)} prefix`,
      );
      return;
    }
    const via = domainSubnets.find((r) => inSubnet(r, hop));
    if (via === undefined) {
      report(
        `${path}.nextHop`,
        `${hop.text} is not inside any virtual subnet of routing domain "${domain.name}"`,
      );
    } else if (gatewayOf(via.subnet.vsid, hop.text)) {
      report(
        `${path}.nextHop`,
        `${hop.text} is the gateway of VSID ${via.subnet.vsid}, the distributed router itself`,
      );
    } else if (!recordByCa.has(caKey(via.subnet.vsid, hop.text))) {
      report(`${path}.nextHop`, `${hop.text} has no lookup record in VSID ${via.subnet.vsid}`);
    }
  });

  issues.push(...validateAcls(doc));
  issues.push(...validateMeters(doc));
  issues.push(...validateSteering(doc));
  issues.push(...validateQos(doc));
  return issues;
}
