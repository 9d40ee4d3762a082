// PolicyTables over the real BPF maps: the pinned policy maps of bpf/abi/maps.h through TypedMap
// with the entry codecs of the compiler's TABLES, the generation map, and a grace barrier.
//
// The contract of reconciler/tables.ts holds here as it does in memory.ts:
//   - upsertBatch writes whole entries (struct tenet_X_entry) in order with the kernel's batch
//     update (per element on map types without one, the LPM trie); when the kernel stops part-way
//     it returns { done, error } instead of throwing. A full map (E2BIG from a hash map, ENOSPC
//     from an LPM trie) becomes a MapFullError, which the daemon turns into RESOURCE_EXHAUSTED;
//   - deleteBatch counts a key that is already absent as deleted (the kernel's batch delete stops
//     at it with ENOENT; we step over it and go on), so a rollback can be repeated safely;
//   - graceBarrier() is one update of a slot of a private ARRAY_OF_MAPS: the kernel returns from
//     a map-in-map update only after synchronize_rcu() (kernel/bpf/syscall.c,
//     maybe_wait_bpf_programs), i.e. after every XDP/tc program that was running has finished —
//     the same fact the kernel selftests rely on. No program uses the outer map; it exists for
//     this wait only.
// Every write is counted in `ops`, so callers (and tests) can prove that a no-op reconcile wrote
// nothing.

import { join } from 'node:path';
import { U32 } from '../abi/codec.js';
import { GenerationCodec, Maps, type Generation as GenerationValue } from '../abi/generated.js';
import {
  BatchError,
  BpfMap,
  MapType,
  TypedMap,
  isBpfError,
  setInner,
  type BpfError,
} from '../bpf/index.js';
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

/** A policy map has no room for another key. The API reports it as RESOURCE_EXHAUSTED. */
export class MapFullError extends Error {
  override readonly name = 'MapFullError';
  /** errno name of the kernel's answer: 'E2BIG' (hash) or 'ENOSPC' (LPM trie). */
  readonly code: string;

  constructor(
    readonly table: TableName,
    readonly map: string,
    readonly capacity: number,
    cause: BpfError,
  ) {
    super(`map ${map} (${table}) is full: it holds at most ${capacity} entries`, { cause });
    this.code = cause.code;
  }
}

/** True if e, or any error in its cause chain, is a MapFullError (StageError wraps it). */
export function isMapFull(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++) {
    if (cur instanceof MapFullError) return true;
    cur = cur.cause;
  }
  return false;
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** An update failed because the map is full (hash: E2BIG; LPM trie: ENOSPC). */
function isFullError(e: unknown, mapType: number): e is BpfError {
  if (!isBpfError(e)) return false;
  if (e.code === 'E2BIG') return true;
  return e.code === 'ENOSPC' && mapType === MapType.LPM_TRIE;
}

/** Write operations carried out, for tests and metrics. */
export interface TableOps {
  /** Entries written (stage, settle, rollback). */
  upserts: number;
  /** Keys deleted (absent keys not counted). */
  deletes: number;
  generationWrites: number;
  barriers: number;
}

export interface BpfPolicyTablesOptions {
  /** Elements per batch syscall (default: TypedMap's). */
  chunkSize?: number;
}

/** The policy maps, by table name, plus the generation map. */
export type PolicyMaps = { readonly [T in TableName]: BpfMap } & { readonly generation: BpfMap };

class BpfTable<K, V> implements PolicyTable<K, V> {
  private readonly typed: TypedMap<K, Entry<V>>;

  constructor(
    private readonly def: TableDef<K, V>,
    private readonly map: BpfMap,
    private readonly ops: TableOps,
    private readonly chunkSize: number | undefined,
  ) {
    this.typed = new TypedMap(map, def.key, def.entry);
  }

  private get batchOpts(): { chunkSize?: number } {
    return this.chunkSize === undefined ? {} : { chunkSize: this.chunkSize };
  }

  getAll(): InstalledRow<K, V>[] {
    return this.typed.getBatch(this.batchOpts).map(([key, entry]) => ({ key, entry }));
  }

  getMany(keys: readonly K[]): InstalledRow<K, V>[] {
    const out: InstalledRow<K, V>[] = [];
    for (const key of keys) {
      const entry = this.typed.get(key);
      if (entry !== undefined) out.push({ key, entry });
    }
    return out;
  }

  upsertBatch(rows: readonly InstalledRow<K, V>[]): BatchResult {
    if (rows.length === 0) return { done: 0 };
    try {
      const { done } = this.typed.setBatch(
        rows.map((r) => [r.key, r.entry] as const),
        this.batchOpts,
      );
      this.ops.upserts += done;
      return { done };
    } catch (e) {
      if (!(e instanceof BatchError)) return { done: 0, error: asError(e) }; // codec: nothing written
      this.ops.upserts += e.done;
      const cause = e.cause as BpfError;
      const error = isFullError(cause, this.map.type)
        ? new MapFullError(this.def.name, this.def.map, this.map.maxEntries, cause)
        : e;
      return { done: e.done, error };
    }
  }

  deleteBatch(keys: readonly K[]): BatchResult {
    let done = 0;
    while (done < keys.length) {
      const rest = done === 0 ? keys : keys.slice(done);
      try {
        const r = this.typed.deleteBatch(rest, this.batchOpts);
        this.ops.deletes += r.done;
        return { done: keys.length };
      } catch (e) {
        if (!(e instanceof BatchError)) return { done, error: asError(e) };
        this.ops.deletes += e.done;
        done += e.done;
        // Absent: already deleted, which is what was asked. Step over it.
        if (e.code === 'ENOENT') done += 1;
        else return { done, error: e };
      }
    }
    return { done };
  }
}

/** The reconciler's tables over BPF maps. close() releases the handles (the maps stay pinned). */
export class BpfPolicyTables implements PolicyTables {
  readonly ops: TableOps = { upserts: 0, deletes: 0, generationWrites: 0, barriers: 0 };
  private readonly tables: { [T in TableName]: BpfTable<KeyOf<T>, ValueOf<T>> };
  private readonly generation: TypedMap<number, GenerationValue>;
  private readonly barrierOuter: BpfMap;
  private readonly barrierInner: BpfMap;
  private readonly barrierKey = Buffer.alloc(4);
  private closed = false;

  /**
   * Takes ownership of the map handles (close() closes them). Every map must have the layout of
   * its descriptor in agent/abi/generated.ts (TypedMap checks key and value sizes).
   */
  constructor(
    readonly maps: PolicyMaps,
    opts: BpfPolicyTablesOptions = {},
  ) {
    const tables = {} as Record<TableName, BpfTable<unknown, unknown>>;
    for (const t of TABLE_NAMES) {
      tables[t] = new BpfTable(
        TABLES[t] as TableDef<unknown, unknown>,
        maps[t],
        this.ops,
        opts.chunkSize,
      );
    }
    this.tables = tables as unknown as BpfPolicyTables['tables'];
    this.generation = new TypedMap(maps.generation, U32, GenerationCodec);
    // The barrier: an outer ARRAY_OF_MAPS whose one slot we rewrite with the same inner map.
    this.barrierInner = BpfMap.create({
      type: MapType.ARRAY,
      keySize: 4,
      valueSize: 4,
      maxEntries: 1,
      name: 'tenet_barrier_i',
    });
    try {
      this.barrierOuter = BpfMap.create({
        type: MapType.ARRAY_OF_MAPS,
        keySize: 4,
        valueSize: 4,
        maxEntries: 1,
        innerMap: this.barrierInner,
        name: 'tenet_barrier',
      });
    } catch (e) {
      this.barrierInner.close();
      throw e;
    }
  }

  /** Opens the policy maps pinned by name under pinRoot (as the product objects pin them). */
  static openPinned(pinRoot: string, opts: BpfPolicyTablesOptions = {}): BpfPolicyTables {
    const opened: BpfMap[] = [];
    const open = (name: string): BpfMap => {
      const m = BpfMap.openPinned(join(pinRoot, name));
      opened.push(m);
      return m;
    };
    try {
      const maps = {
        generation: open(Maps.tenet_gen.name),
      } as Record<TableName | 'generation', BpfMap>;
      for (const t of TABLE_NAMES) maps[t] = open(TABLES[t].map);
      return new BpfPolicyTables(maps, opts);
    } catch (e) {
      for (const m of opened) m.close();
      throw e;
    }
  }

  table<T extends TableName>(name: T): PolicyTable<KeyOf<T>, ValueOf<T>> {
    return this.tables[name] as unknown as PolicyTable<KeyOf<T>, ValueOf<T>>;
  }

  readGeneration(): Generation {
    const g = this.generation.get(0);
    const active = g?.active ?? 0;
    if (active !== 0 && active !== 1) {
      throw new Error(`${Maps.tenet_gen.name} holds generation ${active}; expected 0 or 1`);
    }
    return active;
  }

  writeGeneration(generation: Generation): void {
    this.generation.set(0, { active: generation });
    this.ops.generationWrites++;
  }

  graceBarrier(): void {
    setInner(this.barrierOuter, this.barrierKey, this.barrierInner);
    this.ops.barriers++;
  }

  /** Total map writes so far (entries, deletes, generation flips). */
  get writes(): number {
    return this.ops.upserts + this.ops.deletes + this.ops.generationWrites;
  }

  /** Closes every map handle (idempotent). The pinned maps are not affected. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of TABLE_NAMES) this.maps[t].close();
    this.maps.generation.close();
    this.barrierOuter.close();
    this.barrierInner.close();
  }
}
