// Reconciling a few keys of one table instead of every table: the datapath side of a record-level
// change (agent/api/records-fast.ts). The planner and applier are the same as for a whole policy
// (plan.ts, apply.ts): the plan is made from the touched keys' installed entries (single lookups,
// not a read of the whole map) and their desired rows, with every other table empty on both
// sides, so nothing else is planned. Staging, the generation flip, the grace barrier, settling
// and rollback on failure are the whole-policy transaction's, with the same guarantees.
//
// Valid only for hash tables (the records): an LPM table's plan depends on the covering routes of
// keys outside the delta.

import {
  liveBit,
  TABLE_NAMES,
  TABLES,
  type CompiledTables,
  type InstalledRow,
  type InstalledTables,
  type KeyOf,
  type Row,
  type TableName,
  type ValueOf,
} from '../compiler/tables.js';
import { applyPlan, StageError, type ApplyResult } from './apply.js';
import { planTransaction, type TransactionPlan } from './plan.js';
import type { PolicyTables } from './tables.js';

export interface TableDelta<T extends TableName> {
  readonly table: T;
  /** Rows the keys must hold. */
  readonly upserts: readonly Row<KeyOf<T>, ValueOf<T>>[];
  /** Keys that must be absent. */
  readonly removes: readonly KeyOf<T>[];
}

/** Plans the transaction for a delta of one hash table against what the maps hold now. */
export async function planDelta<T extends TableName>(
  tables: PolicyTables,
  delta: TableDelta<T>,
): Promise<TransactionPlan> {
  const def = TABLES[delta.table];
  if (def.lpm !== undefined) throw new Error(`planDelta: ${delta.table} is an LPM table`);
  const active = await tables.readGeneration();
  const keys = [...delta.upserts.map((r) => r.key), ...delta.removes];
  const table = tables.table(delta.table);
  const wanted = new Set(keys.map((k) => def.keyId(k)));
  const rows =
    table.getMany !== undefined
      ? await table.getMany(keys)
      : (await table.getAll()).filter((r) => wanted.has(def.keyId(r.key)));
  const installed = Object.fromEntries(TABLE_NAMES.map((t) => [t, new Map()])) as Record<
    TableName,
    Map<string, unknown>
  >;
  const desired = Object.fromEntries(TABLE_NAMES.map((t) => [t, new Map()])) as Record<
    TableName,
    Map<string, unknown>
  >;
  for (const r of rows as readonly InstalledRow<KeyOf<T>, ValueOf<T>>[])
    installed[delta.table].set(def.keyId(r.key), r);
  for (const r of delta.upserts) desired[delta.table].set(def.keyId(r.key), r);
  return planTransaction(
    installed as unknown as InstalledTables,
    desired as unknown as CompiledTables,
    active,
  );
}

/**
 * Makes the keys of one hash table hold the delta, as one staged transaction. A delta of ONE key
 * needs no transaction: the kernel replaces a hash element as a whole under RCU, so writing the
 * entry settled at the new value (both generations) or deleting it is atomic for every reader of
 * either generation — no flip, no grace period. Several keys take the staged path, so a packet
 * that looks up two of them never sees one changed and the other not.
 */
export async function reconcileDelta<T extends TableName>(
  tables: PolicyTables,
  delta: TableDelta<T>,
): Promise<ApplyResult> {
  if (delta.upserts.length + delta.removes.length === 1) return singleKey(tables, delta);
  return applyPlan(tables, await planDelta(tables, delta));
}

async function singleKey<T extends TableName>(
  tables: PolicyTables,
  delta: TableDelta<T>,
): Promise<ApplyResult> {
  const def = TABLES[delta.table];
  if (def.lpm !== undefined) throw new Error(`reconcileDelta: ${delta.table} is an LPM table`);
  const active = await tables.readGeneration();
  const table = tables.table(delta.table);
  const up = delta.upserts[0];
  const key = (up?.key ?? delta.removes[0]) as KeyOf<T>;
  const [row] =
    table.getMany !== undefined
      ? await table.getMany([key])
      : (await table.getAll()).filter((r) => def.keyId(r.key) === def.keyId(key));
  const zero = { added: 0, changed: 0, removed: 0 };
  const changes = Object.fromEntries(TABLE_NAMES.map((t) => [t, zero])) as Record<
    TableName,
    typeof zero
  >;
  const result = (unchanged: boolean, settled: number, deleted: number): ApplyResult => ({
    unchanged,
    generation: active,
    flipped: false,
    staged: 0,
    settled,
    deleted,
    changes,
  });
  const fail = (op: 'upsert' | 'delete', done: number, cause: Error): StageError =>
    new StageError({ table: delta.table, op, attempted: 1, done, cause }, []);
  const visible = (r: InstalledRow<KeyOf<T>, ValueOf<T>> | undefined): ValueOf<T> | undefined =>
    r !== undefined && (r.entry.live & liveBit(active)) !== 0 ? r.entry.v[active] : undefined;
  if (up !== undefined) {
    const id = def.valueId(up.value);
    const e = row?.entry;
    if (
      e !== undefined &&
      e.live === 3 &&
      def.valueId(e.v[0] as ValueOf<T>) === id &&
      def.valueId(e.v[1] as ValueOf<T>) === id
    ) {
      return result(true, 0, 0);
    }
    const before = visible(row);
    const r = await table.upsertBatch([{ key, entry: { live: 3, v: [up.value, up.value] } }]);
    if (r.error !== undefined || r.done < 1)
      throw fail('upsert', r.done, r.error ?? new Error('not applied'));
    changes[delta.table] =
      before === undefined
        ? { ...zero, added: 1 }
        : def.valueId(before) === id
          ? zero
          : { ...zero, changed: 1 };
    return result(false, 1, 0);
  }
  if (row === undefined) return result(true, 0, 0);
  const before = visible(row);
  const r = await table.deleteBatch([key]);
  if (r.error !== undefined || r.done < 1)
    throw fail('delete', r.done, r.error ?? new Error('not applied'));
  changes[delta.table] = before === undefined ? zero : { ...zero, removed: 1 };
  return result(false, 0, 1);
}
