// CRUD on the objects of a policy document, as pure functions: each takes the current document
// and a request's object, checks what only the API can know (the key exists or not, the object is
// still referenced), and returns the next whole document for the store to validate and apply.
// Keys are compared in canonical text form, so `FD00::1` finds `fd00::1`.

import {
  parseIp,
  parsePrefix,
  type CustomerRoute,
  type LookupRecord,
  type Port,
  type PolicyDocument,
  type ProviderAddress,
  type RoutingDomain,
  type VirtualSubnet,
} from '../policy/index.js';
import {
  alreadyExists,
  failedPrecondition,
  invalidArgument,
  notFound,
  type PathRewrite,
} from './errors.js';
import { indexedPosition, recordKeyText, type RecordsHint } from './records-hint.js';

export interface Change {
  readonly next: PolicyDocument;
  readonly rewrite?: PathRewrite;
  /** A record-level change: which lookup records it touched (records-fast.ts). */
  readonly records?: RecordsHint;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A key field of a request: present and a string. */
export function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw invalidArgument(field, 'is required');
  return value;
}

export function requireVsid(value: unknown, field: string): number {
  if (typeof value !== 'number' || value === 0) throw invalidArgument(field, 'is required');
  return value;
}

/** A request's object field: present (a message). */
export function requireObject<T>(value: unknown, field: string): T {
  if (value === undefined || value === null || typeof value !== 'object') {
    throw invalidArgument(field, 'is required');
  }
  return value as T;
}

/** Canonical text of an address key; invalid text is an INVALID_ARGUMENT on `field`. */
export function ipKey(value: unknown, field: string): string {
  const text = requireString(value, field);
  const parsed = parseIp(text);
  if (!parsed.ok) throw invalidArgument(field, parsed.message);
  return parsed.value.text;
}

export function prefixKey(value: unknown, field: string): string {
  const text = requireString(value, field);
  const parsed = parsePrefix(text);
  if (!parsed.ok) throw invalidArgument(field, parsed.message);
  return parsed.value.text;
}

/** Canonical form when it parses, the text itself otherwise (validation will report it). */
function canonIp(text: unknown): unknown {
  if (typeof text !== 'string') return text;
  const p = parseIp(text);
  return p.ok ? p.value.text : text;
}

function canonPrefix(text: unknown): unknown {
  if (typeof text !== 'string') return text;
  const p = parsePrefix(text);
  return p.ok ? p.value.text : text;
}

function withDoc(doc: PolicyDocument, patch: Partial<Mutable<PolicyDocument>>): PolicyDocument {
  return { ...doc, ...patch };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

// ---- provider addresses ------------------------------------------------------------------------

export const providerAddressKey = (pa: ProviderAddress): unknown => canonIp(pa.address);

export function findProviderAddress(doc: PolicyDocument, address: string): number {
  return doc.providerAddresses.findIndex((p) => p.address === address);
}

export function createProviderAddress(doc: PolicyDocument, pa: ProviderAddress): Change {
  const key = providerAddressKey(pa);
  if (typeof key === 'string' && findProviderAddress(doc, key) >= 0) {
    throw alreadyExists(`provider address ${key} already exists`);
  }
  const n = doc.providerAddresses.length;
  return {
    next: withDoc(doc, { providerAddresses: [...doc.providerAddresses, pa] }),
    rewrite: { documentPath: `providerAddresses[${n}]`, requestField: 'provider_address' },
  };
}

export function updateProviderAddress(doc: PolicyDocument, pa: ProviderAddress): Change {
  const key = ipKey(pa.address, 'provider_address.address');
  const i = findProviderAddress(doc, key);
  if (i < 0) throw notFound(`provider address ${key} does not exist`);
  const list = [...doc.providerAddresses];
  list[i] = pa;
  return {
    next: withDoc(doc, { providerAddresses: list }),
    rewrite: { documentPath: `providerAddresses[${i}]`, requestField: 'provider_address' },
  };
}

export function deleteProviderAddress(doc: PolicyDocument, address: string): Change {
  const i = findProviderAddress(doc, address);
  if (i < 0) throw notFound(`provider address ${address} does not exist`);
  const users = doc.lookupRecords.filter((r) => r.pa === address).length;
  if (users > 0) {
    throw failedPrecondition(
      `provider address ${address} is still used by ${plural(users, 'lookup record')}`,
    );
  }
  return {
    next: withDoc(doc, { providerAddresses: doc.providerAddresses.filter((_, k) => k !== i) }),
  };
}

// ---- routing domains and virtual subnets -------------------------------------------------------

export function findRoutingDomain(doc: PolicyDocument, name: string): number {
  return doc.routingDomains.findIndex((d) => d.name === name);
}

export function findVirtualSubnet(
  doc: PolicyDocument,
  vsid: number,
): { domain: number; subnet: number } | undefined {
  for (let d = 0; d < doc.routingDomains.length; d++) {
    const s = (doc.routingDomains[d] as RoutingDomain).virtualSubnets.findIndex(
      (x) => x.vsid === vsid,
    );
    if (s >= 0) return { domain: d, subnet: s };
  }
  return undefined;
}

/** What in the document still refers to a VSID (empty: nothing). */
function vsidUsers(doc: PolicyDocument, vsid: number): string[] {
  const ports = doc.ports.filter((p) => p.vsid === vsid).length;
  const records = doc.lookupRecords.filter((r) => r.vsid === vsid).length;
  const routes = doc.customerRoutes.filter((r) => r.virtualSubnet === vsid).length;
  const out: string[] = [];
  if (ports > 0) out.push(plural(ports, 'port'));
  if (records > 0) out.push(plural(records, 'lookup record'));
  if (routes > 0) out.push(plural(routes, 'customer route'));
  return out;
}

function checkVsidUnused(doc: PolicyDocument, vsid: number, what: string): void {
  const users = vsidUsers(doc, vsid);
  if (users.length > 0) {
    throw failedPrecondition(`${what} (VSID ${vsid}) is still used by ${users.join(', ')}`);
  }
}

export function createRoutingDomain(doc: PolicyDocument, rd: RoutingDomain): Change {
  if (typeof rd.name === 'string' && findRoutingDomain(doc, rd.name) >= 0) {
    throw alreadyExists(`routing domain "${rd.name}" already exists`);
  }
  for (const s of Array.isArray(rd.virtualSubnets) ? rd.virtualSubnets : []) {
    if (typeof s?.vsid === 'number' && findVirtualSubnet(doc, s.vsid) !== undefined) {
      throw alreadyExists(`a virtual subnet with VSID ${s.vsid} already exists`);
    }
  }
  const n = doc.routingDomains.length;
  return {
    next: withDoc(doc, { routingDomains: [...doc.routingDomains, rd] }),
    rewrite: { documentPath: `routingDomains[${n}]`, requestField: 'routing_domain' },
  };
}

export function updateRoutingDomain(doc: PolicyDocument, rd: RoutingDomain): Change {
  const name = requireString(rd.name, 'routing_domain.name');
  const i = findRoutingDomain(doc, name);
  if (i < 0) throw notFound(`routing domain "${name}" does not exist`);
  const old = doc.routingDomains[i] as RoutingDomain;
  const kept = new Set(
    (Array.isArray(rd.virtualSubnets) ? rd.virtualSubnets : []).map((s) => s?.vsid),
  );
  for (const s of old.virtualSubnets) {
    if (!kept.has(s.vsid)) checkVsidUnused(doc, s.vsid, `virtual subnet "${s.name}"`);
  }
  for (const s of Array.isArray(rd.virtualSubnets) ? rd.virtualSubnets : []) {
    const at = typeof s?.vsid === 'number' ? findVirtualSubnet(doc, s.vsid) : undefined;
    if (at !== undefined && at.domain !== i) {
      throw alreadyExists(
        `a virtual subnet with VSID ${s.vsid} already exists in another routing domain`,
      );
    }
  }
  const list = [...doc.routingDomains];
  list[i] = rd;
  return {
    next: withDoc(doc, { routingDomains: list }),
    rewrite: { documentPath: `routingDomains[${i}]`, requestField: 'routing_domain' },
  };
}

export function deleteRoutingDomain(doc: PolicyDocument, name: string): Change {
  const i = findRoutingDomain(doc, name);
  if (i < 0) throw notFound(`routing domain "${name}" does not exist`);
  const domain = doc.routingDomains[i] as RoutingDomain;
  for (const s of domain.virtualSubnets) {
    checkVsidUnused(doc, s.vsid, `its virtual subnet "${s.name}"`);
  }
  const routes = doc.customerRoutes.filter((r) => r.routingDomain === name).length;
  if (routes > 0) {
    throw failedPrecondition(
      `routing domain "${name}" still has ${plural(routes, 'customer route')}`,
    );
  }
  return { next: withDoc(doc, { routingDomains: doc.routingDomains.filter((_, k) => k !== i) }) };
}

export function createVirtualSubnet(
  doc: PolicyDocument,
  domainName: string,
  vs: VirtualSubnet,
): Change {
  const d = findRoutingDomain(doc, domainName);
  if (d < 0) throw notFound(`routing domain "${domainName}" does not exist`);
  if (typeof vs.vsid === 'number' && findVirtualSubnet(doc, vs.vsid) !== undefined) {
    throw alreadyExists(`a virtual subnet with VSID ${vs.vsid} already exists`);
  }
  const domain = doc.routingDomains[d] as RoutingDomain;
  const list = [...doc.routingDomains];
  list[d] = { ...domain, virtualSubnets: [...domain.virtualSubnets, vs] };
  return {
    next: withDoc(doc, { routingDomains: list }),
    rewrite: {
      documentPath: `routingDomains[${d}].virtualSubnets[${domain.virtualSubnets.length}]`,
      requestField: 'virtual_subnet',
    },
  };
}

export function updateVirtualSubnet(doc: PolicyDocument, vs: VirtualSubnet): Change {
  const vsid = requireVsid(vs.vsid, 'virtual_subnet.vsid');
  const at = findVirtualSubnet(doc, vsid);
  if (at === undefined) throw notFound(`virtual subnet ${vsid} does not exist`);
  const domain = doc.routingDomains[at.domain] as RoutingDomain;
  const subnets = [...domain.virtualSubnets];
  subnets[at.subnet] = vs;
  const list = [...doc.routingDomains];
  list[at.domain] = { ...domain, virtualSubnets: subnets };
  return {
    next: withDoc(doc, { routingDomains: list }),
    rewrite: {
      documentPath: `routingDomains[${at.domain}].virtualSubnets[${at.subnet}]`,
      requestField: 'virtual_subnet',
    },
  };
}

export function deleteVirtualSubnet(doc: PolicyDocument, vsid: number): Change {
  const at = findVirtualSubnet(doc, vsid);
  if (at === undefined) throw notFound(`virtual subnet ${vsid} does not exist`);
  const domain = doc.routingDomains[at.domain] as RoutingDomain;
  const subnet = domain.virtualSubnets[at.subnet] as VirtualSubnet;
  checkVsidUnused(doc, vsid, `virtual subnet "${subnet.name}"`);
  if (domain.virtualSubnets.length === 1) {
    throw failedPrecondition(
      `virtual subnet ${vsid} is the last one of routing domain "${domain.name}", which needs at least one: delete the routing domain instead`,
    );
  }
  const list = [...doc.routingDomains];
  list[at.domain] = {
    ...domain,
    virtualSubnets: domain.virtualSubnets.filter((_, k) => k !== at.subnet),
  };
  return { next: withDoc(doc, { routingDomains: list }) };
}

// ---- ports -------------------------------------------------------------------------------------

export function findPort(doc: PolicyDocument, name: string): number {
  return doc.ports.findIndex((p) => p.name === name);
}

export function createPort(doc: PolicyDocument, port: Port): Change {
  if (typeof port.name === 'string' && findPort(doc, port.name) >= 0) {
    throw alreadyExists(`port "${port.name}" already exists`);
  }
  return {
    next: withDoc(doc, { ports: [...doc.ports, port] }),
    rewrite: { documentPath: `ports[${doc.ports.length}]`, requestField: 'port' },
  };
}

export function updatePort(doc: PolicyDocument, port: Port): Change {
  const name = requireString(port.name, 'port.name');
  const i = findPort(doc, name);
  if (i < 0) throw notFound(`port "${name}" does not exist`);
  const list = [...doc.ports];
  list[i] = port;
  return {
    next: withDoc(doc, { ports: list }),
    rewrite: { documentPath: `ports[${i}]`, requestField: 'port' },
  };
}

export function deletePort(doc: PolicyDocument, name: string): Change {
  const i = findPort(doc, name);
  if (i < 0) throw notFound(`port "${name}" does not exist`);
  return { next: withDoc(doc, { ports: doc.ports.filter((_, k) => k !== i) }) };
}

// ---- lookup records ----------------------------------------------------------------------------

export function findLookupRecord(doc: PolicyDocument, vsid: number, ca: string): number {
  const indexed = indexedPosition(doc.lookupRecords, vsid, ca);
  if (indexed !== undefined) return indexed;
  return doc.lookupRecords.findIndex((r) => r.vsid === vsid && r.ca === ca);
}

export function createLookupRecord(doc: PolicyDocument, rec: LookupRecord): Change {
  const ca = canonIp(rec.ca);
  if (typeof ca === 'string' && findLookupRecord(doc, rec.vsid, ca) >= 0) {
    throw alreadyExists(`a lookup record for ${ca} in VSID ${rec.vsid} already exists`);
  }
  return {
    next: withDoc(doc, { lookupRecords: [...doc.lookupRecords, rec] }),
    rewrite: {
      documentPath: `lookupRecords[${doc.lookupRecords.length}]`,
      requestField: 'lookup_record',
    },
    records: { upserted: [doc.lookupRecords.length] },
  };
}

export function updateLookupRecord(doc: PolicyDocument, rec: LookupRecord): Change {
  const vsid = requireVsid(rec.vsid, 'lookup_record.vsid');
  const ca = ipKey(rec.ca, 'lookup_record.ca');
  const i = findLookupRecord(doc, vsid, ca);
  if (i < 0) throw notFound(`no lookup record for ${ca} in VSID ${vsid}`);
  const list = doc.lookupRecords.slice();
  list[i] = rec;
  return {
    next: withDoc(doc, { lookupRecords: list }),
    rewrite: { documentPath: `lookupRecords[${i}]`, requestField: 'lookup_record' },
    records: { upserted: [i] },
  };
}

export function deleteLookupRecord(doc: PolicyDocument, vsid: number, ca: string): Change {
  const i = findLookupRecord(doc, vsid, ca);
  if (i < 0) throw notFound(`no lookup record for ${ca} in VSID ${vsid}`);
  const port = doc.ports.find((p) => p.vsid === vsid && p.addresses.includes(ca));
  if (port !== undefined) {
    throw failedPrecondition(`${ca} in VSID ${vsid} is an address of port "${port.name}"`);
  }
  const domain = doc.routingDomains.find((d) => d.virtualSubnets.some((s) => s.vsid === vsid));
  const route = doc.customerRoutes.find(
    (r) => r.nextHop === ca && r.routingDomain === domain?.name,
  );
  if (route !== undefined) {
    throw failedPrecondition(
      `${ca} in VSID ${vsid} is the next hop of customer route ${route.prefix} in routing domain "${route.routingDomain}"`,
    );
  }
  return {
    next: withDoc(doc, { lookupRecords: doc.lookupRecords.filter((_, k) => k !== i) }),
    records: { upserted: [], removedAt: i },
  };
}

/** The bulk load's MERGE as a Change that says which records it touched. */
export function mergeLookupRecordsChange(
  doc: PolicyDocument,
  records: readonly LookupRecord[],
): Change {
  const out = doc.lookupRecords.slice();
  const added = new Map<string, number>();
  const upserted = new Set<number>();
  for (const r of records) {
    const ca = canonIp(r.ca);
    const key = recordKeyText(r.vsid, String(ca));
    let at = added.get(key);
    if (at === undefined) {
      // As mergeLookupRecords matches: by the key text (a vsid that is not a number still
      // matches its text, and validation then reports it where the record is).
      const i =
        typeof ca === 'string' && typeof r.vsid === 'number'
          ? findLookupRecord(doc, r.vsid, ca)
          : doc.lookupRecords.findIndex((x) => recordKeyText(x.vsid, x.ca) === key);
      if (i >= 0) at = i;
    }
    if (at === undefined) {
      at = out.length;
      added.set(key, at);
      out.push(r);
    } else {
      out[at] = r;
    }
    upserted.add(at);
  }
  return {
    next: withDoc(doc, { lookupRecords: out }),
    records: { upserted: [...upserted].sort((a, b) => a - b) },
  };
}

/** Lookup records keyed `vsid/ca`: the bulk load's merge. */
export function mergeLookupRecords(
  doc: PolicyDocument,
  records: readonly LookupRecord[],
  replace: boolean,
): PolicyDocument {
  if (replace) return withDoc(doc, { lookupRecords: [...records] });
  const index = new Map<string, number>();
  const out = [...doc.lookupRecords];
  out.forEach((r, i) => index.set(`${r.vsid}/${r.ca}`, i));
  for (const r of records) {
    const key = `${r.vsid}/${String(canonIp(r.ca))}`;
    const at = index.get(key);
    if (at === undefined) {
      index.set(key, out.length);
      out.push(r);
    } else {
      out[at] = r;
    }
  }
  return withDoc(doc, { lookupRecords: out });
}

// ---- customer routes ---------------------------------------------------------------------------

export function findCustomerRoute(doc: PolicyDocument, domain: string, prefix: string): number {
  return doc.customerRoutes.findIndex((r) => r.routingDomain === domain && r.prefix === prefix);
}

export function createCustomerRoute(doc: PolicyDocument, route: CustomerRoute): Change {
  if (typeof route.routingDomain === 'string' && route.routingDomain !== '') {
    if (findRoutingDomain(doc, route.routingDomain) < 0) {
      throw notFound(`routing domain "${route.routingDomain}" does not exist`);
    }
    const prefix = canonPrefix(route.prefix);
    if (typeof prefix === 'string' && findCustomerRoute(doc, route.routingDomain, prefix) >= 0) {
      throw alreadyExists(
        `a route for ${prefix} in routing domain "${route.routingDomain}" already exists`,
      );
    }
  }
  return {
    next: withDoc(doc, { customerRoutes: [...doc.customerRoutes, route] }),
    rewrite: {
      documentPath: `customerRoutes[${doc.customerRoutes.length}]`,
      requestField: 'customer_route',
    },
  };
}

export function updateCustomerRoute(doc: PolicyDocument, route: CustomerRoute): Change {
  const domain = requireString(route.routingDomain, 'customer_route.routing_domain');
  const prefix = prefixKey(route.prefix, 'customer_route.prefix');
  const i = findCustomerRoute(doc, domain, prefix);
  if (i < 0) throw notFound(`no route for ${prefix} in routing domain "${domain}"`);
  const list = [...doc.customerRoutes];
  list[i] = route;
  return {
    next: withDoc(doc, { customerRoutes: list }),
    rewrite: { documentPath: `customerRoutes[${i}]`, requestField: 'customer_route' },
  };
}

export function deleteCustomerRoute(doc: PolicyDocument, domain: string, prefix: string): Change {
  const i = findCustomerRoute(doc, domain, prefix);
  if (i < 0) throw notFound(`no route for ${prefix} in routing domain "${domain}"`);
  return { next: withDoc(doc, { customerRoutes: doc.customerRoutes.filter((_, k) => k !== i) }) };
}
