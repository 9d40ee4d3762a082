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
import { applyPlan, type ApplyResult } from './apply.js';
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

/** Makes the keys of one hash table hold the delta, as one staged transaction. */
export async function reconcileDelta<T extends TableName>(
  tables: PolicyTables,
  delta: TableDelta<T>,
): Promise<ApplyResult> {
  return applyPlan(tables, await planDelta(tables, delta));
}
