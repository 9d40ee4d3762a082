// The difference between two policy documents, per object kind, by the objects' identities:
// provider addresses by address, routing domains and ports by name, virtual subnets by VSID,
// lookup records as `vsid/ca`, customer routes as `routing-domain/prefix`, port steering by port.
// Documents are validated (canonical text), so equal objects serialise equally.

import type { PolicyDocument } from '../policy/index.js';

export const KINDS = [
  'providerAddresses',
  'routingDomains',
  'virtualSubnets',
  'ports',
  'lookupRecords',
  'customerRoutes',
  'portAcls',
  'portSteering',
  'uplinks',
  'portQos',
  'tenantQos',
] as const;
export type Kind = (typeof KINDS)[number];

/** At most this many keys per list in a diff; the counts are always complete. */
export const MAX_DIFF_KEYS = 1000;

export interface KindDiff {
  addedCount: number;
  changedCount: number;
  removedCount: number;
  added: string[];
  changed: string[];
  removed: string[];
  truncated: boolean;
}

export type PolicyDiff = Record<Kind, KindDiff>;

const EMPTY: PolicyDocument = {
  providerAddresses: [],
  routingDomains: [],
  ports: [],
  lookupRecords: [],
  customerRoutes: [],
  portAcls: [],
  portSteering: [],
  uplinks: [],
  portQos: [],
  tenantQos: [],
};

/** JSON with object keys sorted: a canonical form to compare objects by. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Every object of a kind by key, with its canonical JSON. */
export function objectsByKey(doc: PolicyDocument, kind: Kind): Map<string, string> {
  const out = new Map<string, string>();
  switch (kind) {
    case 'providerAddresses':
      for (const o of doc.providerAddresses) out.set(o.address, stableJson(o));
      break;
    case 'routingDomains':
      for (const o of doc.routingDomains) out.set(o.name, stableJson(o));
      break;
    case 'virtualSubnets':
      for (const d of doc.routingDomains)
        for (const s of d.virtualSubnets)
          out.set(String(s.vsid), stableJson({ routingDomain: d.name, ...s }));
      break;
    case 'ports':
      for (const o of doc.ports) out.set(o.name, stableJson(o));
      break;
    case 'lookupRecords':
      for (const o of doc.lookupRecords) out.set(`${o.vsid}/${o.ca}`, stableJson(o));
      break;
    case 'customerRoutes':
      for (const o of doc.customerRoutes) out.set(`${o.routingDomain}/${o.prefix}`, stableJson(o));
      break;
    case 'portAcls':
      for (const o of doc.portAcls) out.set(o.port, stableJson(o));
      break;
    case 'portSteering':
      for (const o of doc.portSteering ?? []) out.set(o.port, stableJson(o));
      break;
    case 'uplinks':
      for (const o of doc.uplinks) out.set(`${o.host}/${o.interface}`, stableJson(o));
      break;
    case 'portQos':
      for (const o of doc.portQos) out.set(o.port, stableJson(o));
      break;
    case 'tenantQos':
      for (const o of doc.tenantQos) out.set(o.routingDomain, stableJson(o));
      break;
  }
  return out;
}

function push(list: string[], key: string, diff: KindDiff): void {
  if (list.length < MAX_DIFF_KEYS) list.push(key);
  else diff.truncated = true;
}

export function diffKind(before: PolicyDocument, after: PolicyDocument, kind: Kind): KindDiff {
  const a = objectsByKey(before, kind);
  const b = objectsByKey(after, kind);
  const diff: KindDiff = {
    addedCount: 0,
    changedCount: 0,
    removedCount: 0,
    added: [],
    changed: [],
    removed: [],
    truncated: false,
  };
  for (const [key, json] of b) {
    const prev = a.get(key);
    if (prev === undefined) {
      diff.addedCount++;
      push(diff.added, key, diff);
    } else if (prev !== json) {
      diff.changedCount++;
      push(diff.changed, key, diff);
    }
  }
  for (const key of a.keys()) {
    if (b.has(key)) continue;
    diff.removedCount++;
    push(diff.removed, key, diff);
  }
  return diff;
}

/** What changes from `before` (undefined: nothing known, compare with an empty document). */
export function diffPolicies(
  before: PolicyDocument | undefined,
  after: PolicyDocument,
): PolicyDiff {
  const from = before ?? EMPTY;
  return Object.fromEntries(KINDS.map((k) => [k, diffKind(from, after, k)])) as PolicyDiff;
}

export function isEmptyDiff(diff: PolicyDiff): boolean {
  return KINDS.every((k) => diff[k].addedCount + diff[k].changedCount + diff[k].removedCount === 0);
}

/** One line per kind that changed: `ports +2 ~1 -0`. */
export function summarizeDiff(diff: PolicyDiff): string {
  const parts = KINDS.filter(
    (k) => diff[k].addedCount + diff[k].changedCount + diff[k].removedCount > 0,
  ).map((k) => `${k} +${diff[k].addedCount} ~${diff[k].changedCount} -${diff[k].removedCount}`);
  return parts.length === 0 ? 'no changes' : parts.join(', ');
}
