// The reconciler's view of the maps: a small interface the real implementation (pinned BPF maps
// through TypedMap) and the in-memory one for tests both provide.
//
// Batch operations report how far they got instead of throwing on the first failed element
// (map full, E2BIG), like the kernel's batch ops do: `done` elements were applied, in order, and
// `error` says why the next one was not. deleteBatch treats an absent key as deleted (idempotent),
// so rolling back is safe even when it is unclear how much of a batch landed.
// Every method may be synchronous or return a promise.

import type { InstalledRow, KeyOf, TableName, ValueOf } from '../compiler/tables.js';
import type { Generation } from './plan.js';

export type MaybePromise<T> = T | Promise<T>;

export interface BatchResult {
  /** Elements applied, from the start of the batch. */
  readonly done: number;
  /** Why element `done` failed; absent when the whole batch was applied. */
  readonly error?: Error;
}

export interface PolicyTable<K, V> {
  /** Every entry in the map. */
  getAll(): MaybePromise<readonly InstalledRow<K, V>[]>;
  /** Optional: the entries of these keys that exist (single lookups; delta.ts). */
  getMany?(keys: readonly K[]): MaybePromise<readonly InstalledRow<K, V>[]>;
  /** Writes whole entries (struct tenet_X_entry), creating or replacing, in order. */
  upsertBatch(rows: readonly InstalledRow<K, V>[]): MaybePromise<BatchResult>;
  /** Deletes keys, in order; an absent key counts as done. */
  deleteBatch(keys: readonly K[]): MaybePromise<BatchResult>;
}

export interface PolicyTables {
  table<T extends TableName>(name: T): PolicyTable<KeyOf<T>, ValueOf<T>>;
  /** The active generation (TENET_MAP_GENERATION). */
  readGeneration(): MaybePromise<Generation>;
  writeGeneration(generation: Generation): MaybePromise<void>;
  /** Returns once every packet that started before the call has finished (synchronize_rcu()). */
  graceBarrier(): MaybePromise<void>;
}
