// The incremental path of record-level changes (CreateLookupRecord, UpdateLookupRecord,
// DeleteLookupRecord, BulkLoadLookupRecords MERGE): a million-record document is not re-validated,
// re-compiled and re-diffed for one record.
//
// The store keeps a RecordIndex of its current document: each record's position by `vsid/ca`, how
// many records use each `vsid/mac`, and what of the rest of the document the record rules read
// (virtual subnets, provider addresses, port addresses and MACs, next hops of customer routes).
// A change that touches records only (objects.ts says which, RecordsHint) is checked here:
//   - the changed records' shape with the record schema (policy/schema.ts lookupRecordSchema),
//     their issues named by their path in the document, as parsePolicy names them;
//   - the per-record rules of policy/validate.ts (checkRecordPlace, checkRecordTarget), the very
//     functions the full validation calls, in the same order;
// and falls back to the full path (validate, compile and diff the whole document) whenever a rule
// that relates a record to other objects could be involved: the record is a port's address or
// carries a port's MAC, its CA is a customer route's next hop, its MAC is shared with another
// record (the "one adapter per MAC" rule depends on document order), or anything but
// lookupRecords changed. Removing a record can only resolve a rule, never break one, except for
// a port's address or a next hop, which objects.ts refuses before (FAILED_PRECONDITION). Under those conditions
// the full validation can report nothing but the changed records' own issues, so both paths
// accept and refuse the same changes with the same messages (test/unit/records-fast.test.ts
// checks it with random operation sequences).
//
// The datapath side gets a RecordDelta (the records to upsert, the keys to remove); a backend
// that can apply one (ReconcilerBackend, the HostAgent) compiles just those entries
// (compiler/records.ts) and applies them through the same staged transaction as a whole policy.

import { checkRecordPlace, checkRecordTarget, type RecordRuleContext } from '../policy/validate.js';
import {
  caKey,
  PolicyError,
  shapeIssues,
  subnetsByVsid,
  type LookupRecord,
  type Policy,
  type PolicyDocument,
  type PolicyIssue,
} from '../policy/index.js';
import { lookupRecordSchema, policyErrorMap, policySchema } from '../policy/schema.js';
import { recordKey, recordValue } from '../compiler/records.js';
import type { TableDelta } from '../reconciler/delta.js';
import { KINDS, stableJson, type KindDiff, type PolicyDiff } from './diff.js';
import { recordKeyText, registerRecordPositions, type RecordsHint } from './records-hint.js';

/** The datapath work of a record-level change. */
export interface RecordDelta {
  /** Records added or replaced (validated, canonical). */
  readonly upserts: readonly LookupRecord[];
  /** Keys of records removed. */
  readonly removes: readonly { readonly vsid: number; readonly ca: string }[];
}

/**
 * The records table's part of a delta, as compile() would write it: none of these records is a
 * port's address (records-fast falls back for those), so none is LOCAL.
 */
export function recordsTableDelta(delta: RecordDelta): TableDelta<'records'> {
  return {
    table: 'records',
    upserts: delta.upserts.map((r) => ({ key: recordKey(r), value: recordValue(r) })),
    removes: delta.removes.map(recordKey),
  };
}

/** Indexes of one policy document for record-level changes. */
export class RecordIndex {
  readonly positions = new Map<string, number>();
  /** `vsid/mac` -> records with that MAC. */
  readonly macCount = new Map<string, number>();
  readonly ctx: RecordRuleContext;
  /** `vsid/ca` of port addresses; `vsid/mac` of port MACs. */
  readonly portCas = new Set<string>();
  readonly portMacs = new Set<string>();
  /** Next-hop CAs of customer routes (any routing domain: conservative). */
  readonly nextHops = new Set<string>();

  private constructor(public policy: Policy) {
    const pas = new Set(policy.providerAddresses.map((p) => p.address));
    this.ctx = { subnets: subnetsByVsid(policy), isProviderAddress: (pa) => pas.has(pa) };
    for (const port of policy.ports) {
      this.portMacs.add(`${port.vsid}/${port.mac}`);
      for (const ca of port.addresses) this.portCas.add(caKey(port.vsid, ca));
    }
    for (const r of policy.customerRoutes)
      if (r.nextHop !== undefined) this.nextHops.add(r.nextHop);
    policy.lookupRecords.forEach((r, i) => {
      this.positions.set(recordKeyText(r.vsid, r.ca), i);
      const m = `${r.vsid}/${r.mac}`;
      this.macCount.set(m, (this.macCount.get(m) ?? 0) + 1);
    });
    registerRecordPositions(policy.lookupRecords, this.positions);
  }

  static build(policy: Policy): RecordIndex {
    return new RecordIndex(policy);
  }
}

export type FastOutcome =
  | { readonly kind: 'fallback'; readonly reason: string }
  | {
      readonly kind: 'ok';
      readonly policy: Policy;
      readonly diff: PolicyDiff;
      readonly delta: RecordDelta;
      /** Makes the index describe `policy` (call once the change is committed). */
      readonly commitIndex: () => void;
    };

const fallback = (reason: string): FastOutcome => ({ kind: 'fallback', reason });

/**
 * Most records one change may touch on this path. Checking records one at a time (a schema parse
 * per record, single map lookups per key) costs more per record than the full path's whole-list
 * passes: measured on the benchmark, a 100k-record load on this path took several times longer.
 * Larger changes take the full path.
 */
export const MAX_INCREMENTAL_RECORDS = 4096;

function emptyKind(): KindDiff {
  return {
    addedCount: 0,
    changedCount: 0,
    removedCount: 0,
    added: [],
    changed: [],
    removed: [],
    truncated: false,
  };
}

/**
 * Checks and describes a record-level change from `index.policy` to `next` (built by objects.ts,
 * which reported the touched records in `hint`). Throws PolicyError with exactly the issues the
 * full validation would report; returns `fallback` when it cannot be sure of that.
 */
export function fastRecordChange(
  index: RecordIndex,
  next: unknown,
  hint: RecordsHint,
): FastOutcome {
  const before = index.policy;
  if (next === null || typeof next !== 'object') return fallback('not a document');
  const doc = next as Record<string, unknown>;
  for (const k of Object.keys(before) as (keyof PolicyDocument)[]) {
    if (k !== 'lookupRecords' && doc[k] !== before[k]) return fallback(`${k} changed`);
  }
  if (Object.keys(doc).length !== Object.keys(before).length) return fallback('fields changed');
  const list = doc.lookupRecords;
  if (!Array.isArray(list)) return fallback('lookupRecords is not a list');
  if (hint.removedAt !== undefined) return removal(index, doc, list, hint.removedAt, hint);
  const appended = list.length - before.lookupRecords.length;
  if (appended < 0) return fallback('records removed');
  if (hint.upserted.length > MAX_INCREMENTAL_RECORDS) return fallback('a large change');

  // Shape first (parsePolicy's first pass): only the changed records can be ill-formed.
  const parsed: { i: number; rec: LookupRecord }[] = [];
  const shape: PolicyIssue[] = [];
  for (const i of hint.upserted) {
    const r = lookupRecordSchema.safeParse(list[i], { error: policyErrorMap });
    if (r.success) parsed.push({ i, rec: r.data as LookupRecord });
    else shape.push(...shapeIssues(r.error.issues, ['lookupRecords', i]));
  }
  if (shape.length > 0) throw new PolicyError(shape);

  // Cross-object rules that depend on more than the record itself: the full path decides.
  const macs = new Map<string, number>();
  for (const { i, rec } of parsed) {
    const key = caKey(rec.vsid, rec.ca);
    const at = index.positions.get(key);
    if (at !== undefined && at !== i) return fallback('a record changed position');
    if (at === undefined && i < before.lookupRecords.length) return fallback('unknown position');
    if (index.portCas.has(key)) return fallback('a port address');
    if (index.nextHops.has(rec.ca)) return fallback('a next hop');
    const mac = `${rec.vsid}/${rec.mac}`;
    if (index.portMacs.has(mac)) return fallback('a port MAC');
    const old = at === undefined ? undefined : before.lookupRecords[at];
    const others =
      (index.macCount.get(mac) ?? 0) -
      (old !== undefined && `${old.vsid}/${old.mac}` === mac ? 1 : 0) +
      (macs.get(mac) ?? 0);
    if (others > 0) return fallback('a shared MAC');
    macs.set(mac, (macs.get(mac) ?? 0) + 1);
  }
  // Untouched positions must hold the records they held (appended ones are all in the hint).
  for (let i = before.lookupRecords.length; i < list.length; i++) {
    if (!hint.upserted.includes(i)) return fallback('an appended record is not in the hint');
  }

  // The per-record rules, in the full validation's order (by position).
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  for (const { i, rec } of [...parsed].sort((a, b) => a.i - b.i)) {
    const path = `lookupRecords[${i}]`;
    checkRecordPlace(index.ctx, rec, path, report);
    checkRecordTarget(index.ctx, rec, path, report);
  }
  if (issues.length > 0) throw new PolicyError(issues);

  // The next policy: the validated (canonical) records in place of the raw ones.
  const records = list as LookupRecord[];
  const diff = Object.fromEntries(KINDS.map((k) => [k, emptyKind()])) as PolicyDiff;
  const d = diff.lookupRecords;
  const upserts: LookupRecord[] = [];
  for (const { i, rec } of parsed) {
    records[i] = rec;
    const old = i < before.lookupRecords.length ? before.lookupRecords[i] : undefined;
    const key = recordKeyText(rec.vsid, rec.ca);
    if (old === undefined) {
      d.addedCount++;
      if (d.added.length < 1000) d.added.push(key);
      else d.truncated = true;
      upserts.push(rec);
    } else if (stableJson(old) !== stableJson(rec)) {
      d.changedCount++;
      if (d.changed.length < 1000) d.changed.push(key);
      else d.truncated = true;
      upserts.push(rec);
    }
  }
  const policy = { ...(doc as unknown as Policy), lookupRecords: records } as Policy;
  return {
    kind: 'ok',
    policy,
    diff,
    delta: { upserts, removes: [] },
    commitIndex: () => {
      for (const { i, rec } of parsed) {
        const old = i < before.lookupRecords.length ? before.lookupRecords[i] : undefined;
        if (old !== undefined) {
          const m = `${old.vsid}/${old.mac}`;
          const n = (index.macCount.get(m) ?? 1) - 1;
          if (n === 0) index.macCount.delete(m);
          else index.macCount.set(m, n);
        }
        const m = `${rec.vsid}/${rec.mac}`;
        index.macCount.set(m, (index.macCount.get(m) ?? 0) + 1);
        index.positions.set(recordKeyText(rec.vsid, rec.ca), i);
      }
      index.policy = policy;
      registerRecordPositions(policy.lookupRecords, index.positions);
    },
  };
}

/** DeleteLookupRecord: one record removed, the others shifted down by one. */
function removal(
  index: RecordIndex,
  doc: Record<string, unknown>,
  list: unknown[],
  at: number,
  hint: RecordsHint,
): FastOutcome {
  const before = index.policy;
  const old = before.lookupRecords[at];
  if (
    old === undefined ||
    hint.upserted.length > 0 ||
    list.length !== before.lookupRecords.length - 1
  )
    return fallback('not a single removal');
  const key = caKey(old.vsid, old.ca);
  if (index.portCas.has(key) || index.nextHops.has(old.ca)) return fallback('a referenced record');
  const diff = Object.fromEntries(KINDS.map((k) => [k, emptyKind()])) as PolicyDiff;
  diff.lookupRecords.removedCount = 1;
  diff.lookupRecords.removed.push(recordKeyText(old.vsid, old.ca));
  const policy = { ...(doc as unknown as Policy), lookupRecords: list as LookupRecord[] } as Policy;
  return {
    kind: 'ok',
    policy,
    diff,
    delta: { upserts: [], removes: [{ vsid: old.vsid, ca: old.ca }] },
    commitIndex: () => {
      index.positions.delete(recordKeyText(old.vsid, old.ca));
      for (const [k, i] of index.positions) if (i > at) index.positions.set(k, i - 1);
      const m = `${old.vsid}/${old.mac}`;
      const n = (index.macCount.get(m) ?? 1) - 1;
      if (n === 0) index.macCount.delete(m);
      else index.macCount.set(m, n);
      index.policy = policy;
      registerRecordPositions(policy.lookupRecords, index.positions);
    },
  };
}

/**
 * A whole document (Apply, BulkLoad REPLACE) that differs from the store's only in its lookup
 * records: the records whose fields are not exactly the stored ones are checked like a
 * record-level change; the unchanged ones are taken as they are (they were valid and nothing
 * they relate to changed). Falls back like fastRecordChange, and also when the records' shapes
 * or the rest of the document differ in any way.
 */
export function fastDocumentChange(index: RecordIndex, next: unknown): FastOutcome {
  const before = index.policy;
  if (next === null || typeof next !== 'object' || Array.isArray(next))
    return fallback('not a document');
  const doc = next as Record<string, unknown>;
  const list = doc.lookupRecords;
  if (!Array.isArray(list)) return fallback('lookupRecords is not a list');
  if (list === before.lookupRecords) return fallback('records unchanged');
  // The rest of the document: the same canonical content (shape-checked, never cross-checked
  // here: it equals the validated one).
  const restIn = { ...doc, lookupRecords: [] };
  let same = true;
  for (const k of Object.keys(before) as (keyof PolicyDocument)[]) {
    if (k !== 'lookupRecords' && doc[k] !== before[k]) same = false;
  }
  if (!same || Object.keys(doc).some((k) => !Object.hasOwn(before, k))) {
    const shaped = policySchema.safeParse(restIn, { error: policyErrorMap });
    if (!shaped.success) return fallback('the rest of the document is ill-formed');
    if (
      stableJson({ ...shaped.data, lookupRecords: [] }) !==
      stableJson({ ...before, lookupRecords: [] })
    )
      return fallback('the rest of the document changed');
  }

  const out: LookupRecord[] = new Array<LookupRecord>(list.length);
  const seen = new Set<string>();
  const changed: { i: number; rec: LookupRecord; old: LookupRecord | undefined }[] = [];
  const shape: PolicyIssue[] = [];
  for (let j = 0; j < list.length; j++) {
    const r = list[j] as Record<string, unknown> | null;
    const at =
      r !== null && typeof r === 'object'
        ? index.positions.get(`${String(r.vsid)}/${String(r.ca)}`)
        : undefined;
    const s = at === undefined ? undefined : before.lookupRecords[at];
    if (
      s !== undefined &&
      r !== null &&
      r.vsid === s.vsid &&
      r.ca === s.ca &&
      r.mac === s.mac &&
      r.pa === s.pa &&
      Object.keys(r).length === 4
    ) {
      const key = recordKeyText(s.vsid, s.ca);
      if (seen.has(key)) return fallback('a duplicate record');
      seen.add(key);
      out[j] = s;
      continue;
    }
    if (changed.length + shape.length >= MAX_INCREMENTAL_RECORDS) return fallback('a large change');
    const p = lookupRecordSchema.safeParse(r, { error: policyErrorMap });
    if (!p.success) {
      shape.push(...shapeIssues(p.error.issues, ['lookupRecords', j]));
      continue;
    }
    const rec = p.data as LookupRecord;
    const key = recordKeyText(rec.vsid, rec.ca);
    if (seen.has(key)) return fallback('a duplicate record');
    seen.add(key);
    const oldAt = index.positions.get(key);
    const old = oldAt === undefined ? undefined : before.lookupRecords[oldAt];
    out[j] = rec;
    if (old === undefined || stableJson(old) !== stableJson(rec)) changed.push({ i: j, rec, old });
  }
  if (shape.length > 0) throw new PolicyError(shape);

  const removes: { vsid: number; ca: string }[] = [];
  for (const s of before.lookupRecords) {
    if (seen.has(recordKeyText(s.vsid, s.ca))) continue;
    if (changed.length + removes.length >= MAX_INCREMENTAL_RECORDS)
      return fallback('a large change');
    if (index.portCas.has(caKey(s.vsid, s.ca)) || index.nextHops.has(s.ca))
      return fallback('a referenced record is removed');
    removes.push({ vsid: s.vsid, ca: s.ca });
  }

  // The cross-object rules, as for a record-level change.
  const macs = new Map<string, number>();
  for (const { rec, old } of changed) {
    const key = caKey(rec.vsid, rec.ca);
    if (index.portCas.has(key)) return fallback('a port address');
    if (index.nextHops.has(rec.ca)) return fallback('a next hop');
    const mac = `${rec.vsid}/${rec.mac}`;
    if (index.portMacs.has(mac)) return fallback('a port MAC');
    const others =
      (index.macCount.get(mac) ?? 0) -
      (old !== undefined && `${old.vsid}/${old.mac}` === mac ? 1 : 0) +
      (macs.get(mac) ?? 0);
    if (others > 0) return fallback('a shared MAC');
    macs.set(mac, (macs.get(mac) ?? 0) + 1);
  }
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  for (const { i, rec } of changed) {
    checkRecordPlace(index.ctx, rec, `lookupRecords[${i}]`, report);
    checkRecordTarget(index.ctx, rec, `lookupRecords[${i}]`, report);
  }
  if (issues.length > 0) throw new PolicyError(issues);

  const diff = Object.fromEntries(KINDS.map((k) => [k, emptyKind()])) as PolicyDiff;
  const d = diff.lookupRecords;
  const note = (list: string[], key: string): void => {
    if (list.length < 1000) list.push(key);
    else d.truncated = true;
  };
  for (const { rec, old } of changed) {
    const key = recordKeyText(rec.vsid, rec.ca);
    if (old === undefined) {
      d.addedCount++;
      note(d.added, key);
    } else {
      d.changedCount++;
      note(d.changed, key);
    }
  }
  for (const k of removes) {
    d.removedCount++;
    note(d.removed, recordKeyText(k.vsid, k.ca));
  }
  const policy = { ...before, lookupRecords: out } as Policy;
  return {
    kind: 'ok',
    policy,
    diff,
    delta: { upserts: changed.map((c) => c.rec), removes },
    // Positions may all have moved: the index is rebuilt when next needed.
    commitIndex: () => {},
  };
}
