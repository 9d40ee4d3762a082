// PolicyTables in memory, for unit tests and dry runs. Behaves like the BPF maps where the
// reconciler can tell: whole-entry replacement per element, a fixed capacity per table (a new
// key beyond it fails with E2BIG as a full hash map does), batch operations that stop at the
// first failing element and report how far they got, idempotent deletes. Faults can be injected
// at any element, and an observer sees every single change (to check what readers see between
// any two steps).

import {
  TABLE_NAMES,
  TABLES,
  type Entry,
  type InstalledRow,
  type KeyOf,
  type TableDef,
  type TableName,
  type ValueOf,
} from '../compiler/tables.js';
import type { Generation } from './plan.js';
import type { BatchResult, PolicyTable, PolicyTables } from './tables.js';

export type MemoryEvent =
  | { readonly kind: 'upsert' | 'delete'; readonly table: TableName; readonly id: string }
  | { readonly kind: 'generation'; readonly generation: Generation }
  | { readonly kind: 'barrier' };

export interface MemoryFault {
  readonly op: 'upsert' | 'delete' | 'generation' | 'barrier';
  /** upsert/delete: the table whose operation fails. */
  readonly table?: TableName;
  /** upsert/delete: fail at this element of the next matching batch (0 = the first). */
  readonly atElement?: number;
  /** Throw instead of reporting partial progress (as a misbehaving implementation might). */
  readonly throws?: boolean;
  readonly error?: Error;
}

export class MapError extends Error {
  override readonly name = 'MapError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

function copyValue<V>(v: V): V {
  if (v instanceof Uint8Array) return Uint8Array.from(v) as V;
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copyValue(x)])) as V;
}

function copyRow<K, V>(row: InstalledRow<K, V>): InstalledRow<K, V> {
  const entry: Entry<V> = { live: row.entry.live, v: row.entry.v.map(copyValue) };
  return { key: copyValue(row.key), entry };
}

export interface MemoryOptions {
  /** Maximum entries per table (default: unlimited). */
  readonly capacity?: Partial<Record<TableName, number>>;
  readonly generation?: Generation;
}

export class MemoryPolicyTables implements PolicyTables {
  private readonly maps = new Map<TableName, Map<string, InstalledRow<unknown, unknown>>>();
  private readonly faults: MemoryFault[] = [];
  private readonly observers: ((event: MemoryEvent) => void)[] = [];
  private generation: Generation;
  /** Operations carried out, for tests that count them. */
  readonly ops = { upserts: 0, deletes: 0, generationWrites: 0, barriers: 0 };

  constructor(private readonly options: MemoryOptions = {}) {
    for (const t of TABLE_NAMES) this.maps.set(t, new Map());
    this.generation = options.generation ?? 0;
  }

  /** Makes the next matching operation fail (each fault fires once, in the order injected). */
  injectFault(fault: MemoryFault): void {
    this.faults.push(fault);
  }

  /** Calls f after every element written or deleted, every flip and every barrier. */
  observe(f: (event: MemoryEvent) => void): void {
    this.observers.push(f);
  }

  /** The stored entries of a table by key id (live view; do not mutate). */
  rows<T extends TableName>(t: T): ReadonlyMap<string, InstalledRow<KeyOf<T>, ValueOf<T>>> {
    return this.map(t) as unknown as ReadonlyMap<string, InstalledRow<KeyOf<T>, ValueOf<T>>>;
  }

  get activeGeneration(): Generation {
    return this.generation;
  }

  private map(t: TableName): Map<string, InstalledRow<unknown, unknown>> {
    return this.maps.get(t) as Map<string, InstalledRow<unknown, unknown>>;
  }

  private emit(event: MemoryEvent): void {
    for (const f of this.observers) f(event);
  }

  /** The first injected fault for op (and table) that fires within `elements`, removed. */
  private takeFault(
    op: MemoryFault['op'],
    table?: TableName,
    elements = 1,
  ): MemoryFault | undefined {
    const i = this.faults.findIndex(
      (f) =>
        f.op === op &&
        (f.table === undefined || f.table === table) &&
        (f.atElement ?? 0) < elements,
    );
    if (i < 0) return undefined;
    return this.faults.splice(i, 1)[0];
  }

  table<T extends TableName>(t: T): PolicyTable<KeyOf<T>, ValueOf<T>> {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const map = this.map(t);
    const capacity = this.options.capacity?.[t] ?? Infinity;
    const table: PolicyTable<unknown, unknown> = {
      getAll: () => [...map.values()].map(copyRow),
      getMany: (keys) =>
        keys.flatMap((k) => {
          const row = map.get(def.keyId(k));
          return row === undefined ? [] : [copyRow(row)];
        }),
      upsertBatch: (rows): BatchResult => {
        const fault = this.takeFault('upsert', t, rows.length);
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i] as InstalledRow<unknown, unknown>;
          if (fault !== undefined && i === (fault.atElement ?? 0)) {
            const error = fault.error ?? new MapError('EIO', `injected ${t} upsert failure`);
            if (fault.throws) throw error;
            return { done: i, error };
          }
          const id = def.keyId(row.key);
          if (!map.has(id) && map.size >= capacity) {
            return { done: i, error: new MapError('E2BIG', `${t} is full (${capacity} entries)`) };
          }
          map.set(id, copyRow(row));
          this.ops.upserts++;
          this.emit({ kind: 'upsert', table: t, id });
        }
        return { done: rows.length };
      },
      deleteBatch: (keys): BatchResult => {
        const fault = this.takeFault('delete', t, keys.length);
        for (let i = 0; i < keys.length; i++) {
          if (fault !== undefined && i === (fault.atElement ?? 0)) {
            const error = fault.error ?? new MapError('EIO', `injected ${t} delete failure`);
            if (fault.throws) throw error;
            return { done: i, error };
          }
          const id = def.keyId(keys[i]);
          if (map.delete(id)) {
            this.ops.deletes++;
            this.emit({ kind: 'delete', table: t, id });
          }
        }
        return { done: keys.length };
      },
    };
    return table as unknown as PolicyTable<KeyOf<T>, ValueOf<T>>;
  }

  readGeneration(): Generation {
    return this.generation;
  }

  writeGeneration(generation: Generation): void {
    const fault = this.takeFault('generation');
    if (fault !== undefined)
      throw fault.error ?? new MapError('EIO', 'injected generation write failure');
    this.generation = generation;
    this.ops.generationWrites++;
    this.emit({ kind: 'generation', generation });
  }

  graceBarrier(): void {
    const fault = this.takeFault('barrier');
    if (fault !== undefined)
      throw fault.error ?? new MapError('EIO', 'injected grace barrier failure');
    this.ops.barriers++;
    this.emit({ kind: 'barrier' });
  }
}
