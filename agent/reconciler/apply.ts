// The applier: carries out a TransactionPlan on PolicyTables, and the two steps around it
// (readInstalled to adopt what the maps hold, reconcile to do all of it).
//
// Failure handling follows what readers can have seen:
//   - staging fails (map full, E2BIG, any error) or the flip fails: the active generation never
//     changed, so no packet saw anything; the staged entries are rolled back (previous entries
//     restored, new keys deleted) and StageError says which table failed and how many entries;
//   - the grace barrier or settle fails: the flip happened and readers see the whole new policy;
//     SettleError says so; the entries left unsettled are repaired by the next reconcile, whose
//     plan touches every entry that is not settled at the desired value.
// One reconcile at a time per set of maps: the caller serialises them.

import {
  TABLE_NAMES,
  TABLES,
  type CompiledTables,
  type Entry,
  type InstalledRow,
  type InstalledTables,
  type KeyOf,
  type TableDef,
  type TableName,
  type ValueOf,
} from '../compiler/tables.js';
import {
  isEmptyPlan,
  planTransaction,
  type Generation,
  type TableChanges,
  type TransactionPlan,
} from './plan.js';
import type { BatchResult, PolicyTable, PolicyTables } from './tables.js';

/** Entries of one table that an operation did not get through. */
export interface TableFailure {
  /** null for the generation map and the grace barrier. */
  readonly table: TableName | null;
  readonly op: 'upsert' | 'delete' | 'generation' | 'barrier';
  readonly attempted: number;
  readonly done: number;
  readonly cause: Error;
}

/** Staging or the flip failed; nothing became visible, and staged entries were rolled back. */
export class StageError extends Error {
  override readonly name = 'StageError';
  constructor(
    readonly failure: TableFailure,
    /** Rollback steps that failed too (the inactive slots are then untidy until the next run). */
    readonly rollbackFailures: readonly TableFailure[],
  ) {
    super(
      `policy not applied: ${describe(failure)}; nothing became visible` +
        (rollbackFailures.length === 0
          ? ', staged entries rolled back'
          : `; rollback incomplete: ${rollbackFailures.map(describe).join('; ')}`),
      { cause: failure.cause },
    );
  }
}

/** The new generation is live, but tidying up after it failed; the next reconcile finishes it. */
export class SettleError extends Error {
  override readonly name = 'SettleError';
  constructor(
    readonly generation: Generation,
    readonly failure: TableFailure,
  ) {
    super(
      `policy applied (generation ${generation} active) but settling failed: ${describe(failure)}`,
      {
        cause: failure.cause,
      },
    );
  }
}

function describe(f: TableFailure): string {
  if (f.op === 'generation' || f.op === 'barrier')
    return `${f.op} update failed: ${f.cause.message}`;
  return `${f.op} of ${f.attempted - f.done} of ${f.attempted} ${f.table} entries failed: ${f.cause.message}`;
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

async function runBatch(
  table: TableName,
  op: 'upsert' | 'delete',
  attempted: number,
  call: () => BatchResult | Promise<BatchResult>,
): Promise<{ done: number; failure?: TableFailure }> {
  if (attempted === 0) return { done: 0 };
  let result: BatchResult;
  try {
    result = await call();
  } catch (e) {
    // A throw says nothing about how far it got: assume every element may have landed.
    return { done: attempted, failure: { table, op, attempted, done: 0, cause: asError(e) } };
  }
  if (result.done >= attempted && result.error === undefined) return { done: attempted };
  const cause = result.error ?? new Error(`only ${result.done} of ${attempted} applied`);
  return { done: result.done, failure: { table, op, attempted, done: result.done, cause } };
}

function tableOf<T extends TableName>(
  tables: PolicyTables,
  t: T,
): PolicyTable<KeyOf<T>, ValueOf<T>> {
  return tables.table(t);
}

/** Builds InstalledTables from what the maps hold: how a restarted agent adopts them. */
export async function readInstalled(tables: PolicyTables): Promise<InstalledTables> {
  const out = {} as Record<TableName, Map<string, InstalledRow<unknown, unknown>>>;
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const rows = await (tableOf(tables, t) as PolicyTable<unknown, unknown>).getAll();
    out[t] = new Map(rows.map((r) => [def.keyId(r.key), r]));
  }
  return out as unknown as InstalledTables;
}

/** Undoes the first `counts[t]` staged entries of every table: restore or delete. */
async function rollback(
  tables: PolicyTables,
  plan: TransactionPlan,
  counts: Partial<Record<TableName, number>>,
): Promise<TableFailure[]> {
  const failures: TableFailure[] = [];
  for (const t of TABLE_NAMES) {
    const n = counts[t] ?? 0;
    if (n === 0) continue;
    const staged = plan.stage[t].slice(0, n) as readonly {
      key: unknown;
      entry: Entry<unknown>;
      previous: Entry<unknown> | undefined;
    }[];
    const table = tableOf(tables, t) as PolicyTable<unknown, unknown>;
    const restore = staged.flatMap((s) =>
      s.previous === undefined ? [] : [{ key: s.key, entry: s.previous }],
    );
    const remove = staged.filter((s) => s.previous === undefined).map((s) => s.key);
    const r1 = await runBatch(t, 'upsert', restore.length, () => table.upsertBatch(restore));
    if (r1.failure) failures.push(r1.failure);
    const r2 = await runBatch(t, 'delete', remove.length, () => table.deleteBatch(remove));
    if (r2.failure) failures.push(r2.failure);
  }
  return failures;
}

export interface ApplyResult {
  /** Nothing to do: the maps already held the desired policy. */
  readonly unchanged: boolean;
  readonly generation: Generation;
  readonly flipped: boolean;
  readonly staged: number;
  readonly settled: number;
  readonly deleted: number;
  readonly changes: { readonly [T in TableName]: TableChanges };
}

/** Carries out a plan made against the current contents of the maps. */
export async function applyPlan(tables: PolicyTables, plan: TransactionPlan): Promise<ApplyResult> {
  const count = (f: (t: TableName) => number) => TABLE_NAMES.reduce((n, t) => n + f(t), 0);
  const result = {
    unchanged: isEmptyPlan(plan),
    generation: plan.nextGeneration,
    flipped: plan.nextGeneration !== plan.active,
    staged: count((t) => plan.stage[t].length),
    settled: count((t) => plan.settle[t].upserts.length),
    deleted: count((t) => plan.settle[t].deletes.length),
    changes: plan.changes,
  };
  if (result.unchanged) return result;

  // 1. Stage into the inactive generation.
  const staged: Partial<Record<TableName, number>> = {};
  for (const t of TABLE_NAMES) {
    const rows = plan.stage[t] as readonly InstalledRow<unknown, unknown>[];
    const table = tableOf(tables, t) as PolicyTable<unknown, unknown>;
    const r = await runBatch(t, 'upsert', rows.length, () =>
      table.upsertBatch(rows.map((s) => ({ key: s.key, entry: s.entry }))),
    );
    staged[t] = r.done;
    if (r.failure) throw new StageError(r.failure, await rollback(tables, plan, staged));
  }

  // 2. Flip: from here on every new packet sees the whole change.
  if (result.flipped) {
    try {
      await tables.writeGeneration(plan.nextGeneration);
    } catch (e) {
      const failure: TableFailure = {
        table: null,
        op: 'generation',
        attempted: 1,
        done: 0,
        cause: asError(e),
      };
      throw new StageError(failure, await rollback(tables, plan, staged));
    }
  }

  // 3. Settle once no packet of the old generation is left.
  try {
    await tables.graceBarrier();
  } catch (e) {
    throw new SettleError(plan.nextGeneration, {
      table: null,
      op: 'barrier',
      attempted: 1,
      done: 0,
      cause: asError(e),
    });
  }
  for (const t of TABLE_NAMES) {
    const table = tableOf(tables, t) as PolicyTable<unknown, unknown>;
    const { upserts, deletes } = plan.settle[t] as {
      upserts: readonly InstalledRow<unknown, unknown>[];
      deletes: readonly unknown[];
    };
    const r1 = await runBatch(t, 'upsert', upserts.length, () => table.upsertBatch(upserts));
    if (r1.failure) throw new SettleError(plan.nextGeneration, r1.failure);
    const r2 = await runBatch(t, 'delete', deletes.length, () => table.deleteBatch(deletes));
    if (r2.failure) throw new SettleError(plan.nextGeneration, r2.failure);
  }
  return result;
}

/** Makes the maps hold `desired`: adopt what is there, plan the difference, apply it. */
export async function reconcile(
  tables: PolicyTables,
  desired: CompiledTables,
): Promise<ApplyResult> {
  const active = await tables.readGeneration();
  const installed = await readInstalled(tables);
  return applyPlan(tables, planTransaction(installed, desired, active));
}
