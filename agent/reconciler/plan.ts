// The reconcile planner: a pure function from what the maps hold (both generations of every
// entry) and what the compiler wants, to the map operations of one atomic transaction
// (bpf/abi/policy.h, "Atomic multi-table changes"):
//
//   stage   whole-entry upserts that set the inactive generation `next` to the desired state and
//           leave the active one as readers see it now;
//   flip    write `next` into the generation map (only when some reader-visible state changes);
//   settle  after an RCU grace period, both generations = desired (live in both) for every
//           touched key, and delete the keys that are no longer wanted.
//
// Only keys whose entry is not already "settled at the desired value" are touched, so applying
// the same policy twice plans nothing. Entries left half-done by an agent that died between
// stage and settle are not settled, so the next plan repairs them.
//
// Longest-prefix-match tables need one more rule. The datapath looks a CA up once in the LPM
// trie and treats an entry whose live bit for its generation is clear as a miss: it cannot fall
// back to a shorter prefix. So a key that exists in only one generation would hide, for readers
// of the other generation, the shorter route that covers it. The planner therefore gives such a
// key, in the generation where it is not a route, the value that generation's longest covering
// route has (or a clear live bit when none covers it). Every reader then gets exactly the answer
// of its own generation's routing table, whichever keys the trie holds.

import {
  liveBit,
  TABLE_NAMES,
  TABLES,
  type CompiledTables,
  type Entry,
  type InstalledRow,
  type InstalledTables,
  type KeyOf,
  type Row,
  type TableDef,
  type TableName,
  type ValueOf,
} from '../compiler/tables.js';

export type Generation = 0 | 1;

/** One whole-entry write, with what the key held before (for rolling a failed stage back). */
export interface StagedEntry<K, V> {
  readonly key: K;
  readonly entry: Entry<V>;
  /** The entry before staging; undefined when the key is new. */
  readonly previous: Entry<V> | undefined;
}

export interface SettleOps<K, V> {
  readonly upserts: readonly InstalledRow<K, V>[];
  readonly deletes: readonly K[];
}

/** What changes for readers of the active generation once the flip happens. */
export interface TableChanges {
  readonly added: number;
  readonly changed: number;
  readonly removed: number;
}

export interface TransactionPlan {
  readonly active: Generation;
  /** The generation readers use after the transaction; equals active when nothing visible changes. */
  readonly nextGeneration: Generation;
  readonly stage: { readonly [T in TableName]: readonly StagedEntry<KeyOf<T>, ValueOf<T>>[] };
  readonly settle: { readonly [T in TableName]: SettleOps<KeyOf<T>, ValueOf<T>> };
  readonly changes: { readonly [T in TableName]: TableChanges };
}

export function isEmptyPlan(plan: TransactionPlan): boolean {
  return TABLE_NAMES.every(
    (t) =>
      plan.stage[t].length === 0 &&
      plan.settle[t].upserts.length === 0 &&
      plan.settle[t].deletes.length === 0,
  );
}

/** A slot's meaning for a reader: a value id, `miss` (LPM entry not live), or `absent`. */
type State = string;
const ABSENT = 'absent';
const MISS = 'miss';

interface TablePlan<K, V> {
  stage: StagedEntry<K, V>[];
  settle: { upserts: InstalledRow<K, V>[]; deletes: K[] };
  changes: TableChanges;
  visible: boolean;
}

/** The value a generation's table gives for LPM key k: its longest covering route, if any. */
type Resolver<K, V> = (key: K) => { value: V } | undefined;

function lpmResolver<K, V>(
  def: TableDef<K, V>,
  rows: Iterable<{ key: K; value: V | undefined }>,
): Resolver<K, V> {
  const all = [...rows];
  return (key) => {
    let best: { key: K; value: V | undefined } | undefined;
    let bestLen = -1;
    for (const row of all) {
      if (def.lpm === undefined || !def.lpm.covers(row.key, key)) continue;
      const len = def.lpm.prefixLength(row.key);
      if (len > bestLen) {
        best = row;
        bestLen = len;
      }
    }
    return best?.value === undefined ? undefined : { value: best.value };
  };
}

function sameEntry<V>(def: TableDef<unknown, V>, a: Entry<V>, b: Entry<V>): boolean {
  if (a.live !== b.live) return false;
  for (const g of [0, 1] as const) {
    if ((a.live & liveBit(g)) === 0) continue;
    const va = a.v[g];
    const vb = b.v[g];
    if (va === undefined || vb === undefined || def.valueId(va) !== def.valueId(vb)) return false;
  }
  return true;
}

function planTable<K, V>(
  def: TableDef<K, V>,
  installed: ReadonlyMap<string, InstalledRow<K, V>>,
  desired: ReadonlyMap<string, Row<K, V>>,
  active: Generation,
): TablePlan<K, V> {
  const next: Generation = active === 0 ? 1 : 0;
  const lpm = def.lpm !== undefined;
  const isLive = (e: Entry<V>, g: Generation): boolean => (e.live & liveBit(g)) !== 0;

  const activeState = (id: string): State => {
    const row = installed.get(id);
    if (row === undefined) return ABSENT;
    if (!isLive(row.entry, active)) return lpm ? MISS : ABSENT;
    return def.valueId(row.entry.v[active] as V);
  };
  const desiredState = (id: string): State => {
    const row = desired.get(id);
    return row === undefined ? ABSENT : def.valueId(row.value);
  };
  const settled = (id: string): boolean => {
    const row = installed.get(id);
    const want = desired.get(id);
    if (row === undefined || want === undefined || row.entry.live !== 3) return false;
    const id0 = def.valueId(row.entry.v[0] as V);
    return id0 === def.valueId(want.value) && id0 === def.valueId(row.entry.v[1] as V);
  };

  // What readers of each generation resolve a key to, for keys missing from that generation.
  const oldResolve = lpm
    ? lpmResolver(
        def,
        [...installed.values()].map((r) => ({
          key: r.key,
          value: isLive(r.entry, active) ? (r.entry.v[active] as V) : undefined,
        })),
      )
    : undefined;
  const newResolve = lpm ? lpmResolver(def, desired.values()) : undefined;

  const plan: TablePlan<K, V> = {
    stage: [],
    settle: { upserts: [], deletes: [] },
    changes: { added: 0, changed: 0, removed: 0 },
    visible: false,
  };
  const changes = { added: 0, changed: 0, removed: 0 };
  const ids = new Set([...installed.keys(), ...desired.keys()]);
  for (const id of [...ids].sort()) {
    if (settled(id)) continue;
    const row = installed.get(id);
    const want = desired.get(id);
    const key = (want?.key ?? row?.key) as K;
    const before = activeState(id);
    const after = desiredState(id);
    if (before !== after) {
      plan.visible = true;
      const had = before !== ABSENT && before !== MISS;
      const has = after !== ABSENT;
      if (has && !had) changes.added++;
      else if (had && !has) changes.removed++;
      else if (had && has) changes.changed++;
    }

    // Stage: v[next] = desired (or the covering route), v[active] = what readers see now.
    const entry: Entry<V> = { live: 0, v: [def.zero(), def.zero()] };
    const nextValue = want?.value ?? newResolve?.(key)?.value;
    if (nextValue !== undefined) {
      entry.live |= liveBit(next);
      entry.v[next] = nextValue;
    }
    const activeValue =
      row === undefined
        ? oldResolve?.(key)?.value
        : isLive(row.entry, active)
          ? (row.entry.v[active] as V)
          : undefined;
    if (activeValue !== undefined) {
      entry.live |= liveBit(active);
      entry.v[active] = activeValue;
    }
    const needsWrite = row === undefined ? entry.live !== 0 : !sameEntry(def, row.entry, entry);
    if (needsWrite) plan.stage.push({ key, entry, previous: row?.entry });

    // Settle: both generations desired, or gone.
    if (want !== undefined) {
      plan.settle.upserts.push({ key, entry: { live: 3, v: [want.value, want.value] } });
    } else {
      plan.settle.deletes.push(key); // not desired, so installed: the ids are their union
    }
  }
  plan.changes = changes;
  return plan;
}

/**
 * Plans the transaction that makes the maps hold `desired`, given what they hold now and the
 * active generation. Pure: reads nothing but its arguments.
 */
export function planTransaction(
  installed: InstalledTables,
  desired: CompiledTables,
  active: Generation,
): TransactionPlan {
  const tables = {} as Record<TableName, TablePlan<unknown, unknown>>;
  let visible = false;
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const p = planTable(
      def,
      installed[t] as ReadonlyMap<string, InstalledRow<unknown, unknown>>,
      desired[t] as ReadonlyMap<string, Row<unknown, unknown>>,
      active,
    );
    tables[t] = p;
    visible ||= p.visible;
  }
  // Nothing a reader could notice: no flip, no staging; settle alone tidies the inactive slots.
  const stageOf = (t: TableName) => (visible ? tables[t].stage : []);
  const pick = <R>(f: (t: TableName) => R) =>
    Object.fromEntries(TABLE_NAMES.map((t) => [t, f(t)])) as { [T in TableName]: R };
  return {
    active,
    nextGeneration: visible ? (active === 0 ? 1 : 0) : active,
    stage: pick(stageOf) as TransactionPlan['stage'],
    settle: pick((t) => tables[t].settle) as TransactionPlan['settle'],
    changes: pick((t) => tables[t].changes),
  };
}
