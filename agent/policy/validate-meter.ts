// Metering classes of a port (its `meter` ACL rules) as a whole: what a port's classes are, the
// stable number each class gets in the datapath, and the rules that make a port's set of classes
// unambiguous. A packet's remote address selects the class of the longest matching remote prefix
// per direction, so two meter rules with the same prefix and an overlapping direction must name
// the same class; class numbers are a hash of the name, so two names of one port must not
// collide. The default class (traffic no prefix covers) is implicit and has number 0.

import { prefixOf } from './addr.js';
import type { PolicyIssue } from './errors.js';
import type { AclDirection, PolicyDocument, PortAcl } from './model.js';

/** The implicit class of traffic no meter prefix covers (TENET_METER_CLASS_DEFAULT). */
export const DEFAULT_METER_CLASS = 'default';
export const DEFAULT_METER_CLASS_ID = 0;

/** Metering direction of the datapath: inbound = to the VM, outbound = from the VM. */
export type MeterDirection = 'inbound' | 'outbound';
export const METER_DIRECTIONS: readonly MeterDirection[] = ['inbound', 'outbound'];

export function meterDirections(d: AclDirection): MeterDirection[] {
  return d === 'both' ? ['inbound', 'outbound'] : [d];
}

/**
 * A class's number in the datapath: 32-bit FNV-1a of its name (stable across hosts, restarts and
 * policy changes, so counters keep their meaning when other classes come and go), never 0.
 */
export function meterClassId(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h === DEFAULT_METER_CLASS_ID ? 1 : h >>> 0;
}

/** One metering prefix of a port. */
export interface MeterPrefix {
  readonly className: string;
  readonly classId: number;
  readonly direction: MeterDirection;
  /** Canonical prefix text. */
  readonly prefix: string;
  /** portAcls[i].rules[r] */
  readonly path: string;
}

/** The meter prefixes of one port ACL, in rule order (one per rule and direction). */
export function meterPrefixes(acl: PortAcl, aclIndex: number): MeterPrefix[] {
  const out: MeterPrefix[] = [];
  acl.rules.forEach((rule, r) => {
    if (rule.action !== 'meter' || rule.meteringClass === undefined) return;
    if (rule.remotePrefix === undefined) return;
    for (const direction of meterDirections(rule.direction)) {
      out.push({
        className: rule.meteringClass,
        classId: meterClassId(rule.meteringClass),
        direction,
        prefix: rule.remotePrefix,
        path: `portAcls[${aclIndex}].rules[${r}]`,
      });
    }
  });
  return out;
}

/** Class names of a port ACL (default first, then in rule order). */
export function meterClassNames(acl: PortAcl | undefined): string[] {
  const names = [DEFAULT_METER_CLASS];
  for (const r of acl?.rules ?? [])
    if (r.action === 'meter' && r.meteringClass !== undefined && !names.includes(r.meteringClass))
      names.push(r.meteringClass);
  return names;
}

export function validateMeters(doc: PolicyDocument): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  doc.portAcls.forEach((acl, i) => {
    const byKey = new Map<string, MeterPrefix>();
    const byId = new Map<number, string>();
    for (const m of meterPrefixes(acl, i)) {
      if (m.className === DEFAULT_METER_CLASS) {
        issues.push({
          path: `${m.path}.meteringClass`,
          message: `"${DEFAULT_METER_CLASS}" is the implicit class of unmatched traffic; name the class differently`,
        });
        continue;
      }
      const other = byId.get(m.classId);
      if (other !== undefined && other !== m.className) {
        issues.push({
          path: `${m.path}.meteringClass`,
          message: `class "${m.className}" has the same datapath number as "${other}" on this port; rename one of them`,
        });
      }
      byId.set(m.classId, m.className);
      let canonical: string;
      try {
        canonical = prefixOf(m.prefix).text;
      } catch {
        continue; // reported by the schema
      }
      const key = `${m.direction}/${canonical}`;
      const prev = byKey.get(key);
      if (prev !== undefined && prev.className !== m.className) {
        issues.push({
          path: `${m.path}.remotePrefix`,
          message: `${m.prefix} (${m.direction}) is already metered as class "${prev.className}" by ${prev.path}`,
        });
      } else if (prev === undefined) byKey.set(key, m);
    }
  });
  return issues;
}
