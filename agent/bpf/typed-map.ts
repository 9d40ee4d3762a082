// Typed views over raw BPF maps. The binding moves bytes; these classes give the agent keys and
// values as JS objects through the ABI codecs generated from BTF (agent/abi/generated.ts), batch
// operations that are chunked to bounded syscalls and say how far they got when one fails, per-CPU
// values as arrays with a sum helper, and map-in-map slots.

import { endianness } from 'node:os';
import type { Codec } from '../abi/codec.js';
import { MAP_IN_MAP_TYPES, PER_CPU_MAP_TYPES, UpdateFlags } from './constants.js';
import { BatchError, BpfError, isBpfError } from './errors.js';
import { BpfMap, numPossibleCpus } from './native.js';

/** Elements per batch syscall unless told otherwise: bounded kernel time and buffer size. */
export const DEFAULT_BATCH_CHUNK = 4096;

/** A lookup batch smaller than one hash bucket fails with ENOSPC; it is grown up to this. */
const MAX_LOOKUP_CHUNK = 1 << 20;

export interface BatchOptions {
  /** Elements per syscall (default DEFAULT_BATCH_CHUNK). */
  chunkSize?: number;
}

export interface SetBatchOptions extends BatchOptions {
  /** UpdateFlags: ANY (default), NOEXIST, EXIST. */
  flags?: number;
}

/** Result of a batch write that completed: every element was applied. */
export interface BatchProgress {
  done: number;
}

// Codecs generated from BTF can also write into a larger buffer; using that avoids one Buffer
// allocation per element when filling a batch.
interface WritableCodec<T> extends Codec<T> {
  write(view: DataView, offset: number, value: T): void;
}

function isWritable<T>(c: Codec<T>): c is WritableCodec<T> {
  return typeof (c as Partial<WritableCodec<T>>).write === 'function';
}

function encodeInto<T>(
  codec: Codec<T>,
  value: T,
  buf: Buffer,
  view: DataView,
  offset: number,
): void {
  if (isWritable(codec)) {
    codec.write(view, offset, value);
    return;
  }
  const bytes = codec.encode(value);
  if (bytes.length !== codec.size) {
    throw new RangeError(`codec produced ${bytes.length} bytes, declared size ${codec.size}`);
  }
  bytes.copy(buf, offset);
}

function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function checkChunk(n: number | undefined): number {
  const chunk = n ?? DEFAULT_BATCH_CHUNK;
  if (!Number.isInteger(chunk) || chunk <= 0) {
    throw new TypeError(`chunkSize must be a positive integer, got ${String(n)}`);
  }
  return chunk;
}

/** The kernel has no batch implementation for this map type (e.g. LPM trie). */
function isBatchUnsupported(e: unknown): boolean {
  // ENOTSUPP (524) is kernel-internal and has no libc name, hence 'E524'.
  return isBpfError(e) && (e.code === 'E524' || e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUP');
}

/**
 * What TypedMap and PerCpuTypedMap share. VIn is what set() takes, VOut what get() returns; they
 * differ for per-CPU maps (one value per CPU).
 */
abstract class TypedMapBase<K, V, VIn, VOut> {
  /** Bytes of one value in the binding's buffers (map.valueBufferSize). */
  protected readonly stride: number;

  constructor(
    /** The underlying map; owned by the caller unless close() is used. */
    readonly map: BpfMap,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
  ) {
    if (keyCodec.size !== map.keySize) {
      throw new TypeError(`key codec is ${keyCodec.size} bytes, map key is ${map.keySize} bytes`);
    }
    if (valueCodec.size !== map.valueSize) {
      throw new TypeError(
        `value codec is ${valueCodec.size} bytes, map value is ${map.valueSize} bytes`,
      );
    }
    this.stride = map.valueBufferSize;
  }

  protected abstract writeValue(value: VIn, buf: Buffer, view: DataView, offset: number): void;
  protected abstract readValue(buf: Buffer, offset: number): VOut;

  protected encodeKey(key: K): Buffer {
    const buf = Buffer.alloc(this.keyCodec.size);
    encodeInto(this.keyCodec, key, buf, viewOf(buf), 0);
    return buf;
  }

  protected encodeValue(value: VIn): Buffer {
    const buf = Buffer.alloc(this.stride);
    this.writeValue(value, buf, viewOf(buf), 0);
    return buf;
  }

  /** The value, or undefined if the key is absent. */
  get(key: K): VOut | undefined {
    const v = this.map.lookup(this.encodeKey(key));
    return v === null ? undefined : this.readValue(v, 0);
  }

  /** Creates or updates (flags: UpdateFlags.ANY / NOEXIST / EXIST). */
  set(key: K, value: VIn, flags: number = UpdateFlags.ANY): void {
    this.map.update(this.encodeKey(key), this.encodeValue(value), flags);
  }

  /** False if the key was absent. */
  delete(key: K): boolean {
    return this.map.delete(this.encodeKey(key));
  }

  has(key: K): boolean {
    return this.map.lookup(this.encodeKey(key)) !== null;
  }

  /**
   * Keys by bpf_map_get_next_key. Like any walk of a live hash map it may miss or repeat keys
   * that are deleted or inserted while walking.
   */
  *keys(): IterableIterator<K> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = this.map.nextKey(prev);
      if (next === null) return;
      yield this.keyCodec.decode(next, 0);
      prev = next;
    }
  }

  /** Entries by key walk; keys deleted between the walk and the lookup are skipped. */
  *entries(): IterableIterator<[K, VOut]> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = this.map.nextKey(prev);
      if (next === null) return;
      const v = this.map.lookup(next);
      if (v !== null) yield [this.keyCodec.decode(next, 0), this.readValue(v, 0)];
      prev = next;
    }
  }

  [Symbol.iterator](): IterableIterator<[K, VOut]> {
    return this.entries();
  }

  /**
   * Every entry, read with batch lookups of chunkSize elements (falling back to a key walk on map
   * types without batch support).
   */
  getBatch(opts: BatchOptions = {}): Array<[K, VOut]> {
    let chunk = checkChunk(opts.chunkSize);
    const ks = this.keyCodec.size;
    const out: Array<[K, VOut]> = [];
    let token: Buffer | null = null;
    for (;;) {
      let r;
      try {
        r = this.map.lookupBatch({ inBatch: token, count: chunk });
      } catch (e) {
        // A hash bucket holds more elements than fit in one chunk: retry bigger.
        if (isBpfError(e, 'ENOSPC') && chunk < MAX_LOOKUP_CHUNK) {
          chunk *= 2;
          continue;
        }
        if (token === null && isBatchUnsupported(e)) return [...this.entries()];
        throw e;
      }
      for (let i = 0; i < r.count; i++) {
        out.push([this.keyCodec.decode(r.keys, i * ks), this.readValue(r.values, i * this.stride)]);
      }
      if (r.nextBatch === null) return out;
      token = r.nextBatch;
    }
  }

  /**
   * Writes entries with batch updates of chunkSize elements. All entries are encoded before the
   * first write, so a codec error leaves the map untouched. If the kernel fails part-way, throws a
   * BatchError whose `done` counts the entries that were applied (in order).
   */
  setBatch(entries: Iterable<readonly [K, VIn]>, opts: SetBatchOptions = {}): BatchProgress {
    const chunk = checkChunk(opts.chunkSize);
    const flags = opts.flags ?? UpdateFlags.ANY;
    const list = Array.isArray(entries)
      ? (entries as ReadonlyArray<readonly [K, VIn]>)
      : [...entries];
    const ks = this.keyCodec.size;
    const vs = this.stride;
    const keys = Buffer.alloc(list.length * ks);
    const values = Buffer.alloc(list.length * vs);
    const kview = viewOf(keys);
    const vview = viewOf(values);
    for (let i = 0; i < list.length; i++) {
      const [k, v] = list[i] as readonly [K, VIn];
      encodeInto(this.keyCodec, k, keys, kview, i * ks);
      this.writeValue(v, values, vview, i * vs);
    }
    return this.applyChunks(
      list.length,
      chunk,
      (start, n) =>
        this.map.updateBatch(
          keys.subarray(start * ks, (start + n) * ks),
          values.subarray(start * vs, (start + n) * vs),
          n,
          flags,
        ),
      (start) => {
        this.map.update(
          keys.subarray(start * ks, (start + 1) * ks),
          values.subarray(start * vs, (start + 1) * vs),
          flags,
        );
      },
    );
  }

  /**
   * Deletes keys with batch deletes of chunkSize elements. A missing key fails the batch (ENOENT)
   * with a BatchError whose `done` counts the keys deleted before it.
   */
  deleteBatch(keysIn: Iterable<K>, opts: BatchOptions = {}): BatchProgress {
    const chunk = checkChunk(opts.chunkSize);
    const list = Array.isArray(keysIn) ? (keysIn as readonly K[]) : [...keysIn];
    const ks = this.keyCodec.size;
    const keys = Buffer.alloc(list.length * ks);
    const kview = viewOf(keys);
    for (let i = 0; i < list.length; i++)
      encodeInto(this.keyCodec, list[i] as K, keys, kview, i * ks);
    return this.applyChunks(
      list.length,
      chunk,
      (start, n) => this.map.deleteBatch(keys.subarray(start * ks, (start + n) * ks), n),
      (start) => {
        if (!this.map.delete(keys.subarray(start * ks, (start + 1) * ks))) {
          // Same contract as the batch path: a missing key stops the operation.
          throw new BpfError('bpf_map_delete_elem: No such file or directory', {
            code: 'ENOENT',
            errno: 2,
            op: 'bpf_map_delete_elem',
          });
        }
      },
    );
  }

  /**
   * Runs `batch` over [0, total) in chunks; on a map type without batch support, falls back to
   * `single` per element. Wraps failures in BatchError with the overall progress.
   */
  private applyChunks(
    total: number,
    chunk: number,
    batch: (start: number, n: number) => number,
    single: (index: number) => void,
  ): BatchProgress {
    let done = 0;
    let batched = true;
    while (done < total) {
      const n = Math.min(chunk, total - done);
      try {
        if (batched) {
          done += batch(done, n);
        } else {
          single(done);
          done += 1;
        }
      } catch (e) {
        if (batched && done === 0 && isBatchUnsupported(e)) {
          batched = false;
          continue;
        }
        if (e instanceof BpfError) throw new BatchError(done + (e.processed ?? 0), e);
        throw e;
      }
    }
    return { done };
  }

  /** Closes the underlying map handle. */
  close(): void {
    this.map.close();
  }
}

/** A map whose values are one V each (every map type except the per-CPU ones). */
export class TypedMap<K, V> extends TypedMapBase<K, V, V, V> {
  constructor(map: BpfMap, keyCodec: Codec<K>, valueCodec: Codec<V>) {
    if (PER_CPU_MAP_TYPES.has(map.type)) {
      throw new TypeError(`map type ${map.type} is per-CPU: use PerCpuTypedMap`);
    }
    super(map, keyCodec, valueCodec);
  }

  protected writeValue(value: V, buf: Buffer, view: DataView, offset: number): void {
    encodeInto(this.valueCodec, value, buf, view, offset);
  }

  protected readValue(buf: Buffer, offset: number): V {
    return this.valueCodec.decode(buf, offset);
  }
}

/**
 * A per-CPU map: get() returns one V per possible CPU (index = CPU number); set() takes one V per
 * possible CPU, setAll() the same V for every CPU.
 */
export class PerCpuTypedMap<K, V> extends TypedMapBase<K, V, readonly V[], V[]> {
  /** Possible CPUs: the length of every value array. */
  readonly ncpus: number;
  /** Bytes between two CPUs' values: the kernel aligns each to 8. */
  private readonly slot: number;

  constructor(map: BpfMap, keyCodec: Codec<K>, valueCodec: Codec<V>) {
    if (!PER_CPU_MAP_TYPES.has(map.type)) {
      throw new TypeError(`map type ${map.type} is not per-CPU: use TypedMap`);
    }
    super(map, keyCodec, valueCodec);
    this.ncpus = numPossibleCpus();
    this.slot = (valueCodec.size + 7) & ~7;
  }

  /** Sets every CPU's value to `value` (e.g. to reset counters). */
  setAll(key: K, value: V, flags: number = UpdateFlags.ANY): void {
    this.set(key, new Array<V>(this.ncpus).fill(value), flags);
  }

  protected writeValue(values: readonly V[], buf: Buffer, view: DataView, offset: number): void {
    if (values.length !== this.ncpus) {
      throw new RangeError(
        `per-CPU value needs ${this.ncpus} entries (one per possible CPU), got ${values.length}`,
      );
    }
    // Slot padding is zeroed so the bytes handed to the kernel are deterministic.
    buf.fill(0, offset, offset + this.stride);
    for (let cpu = 0; cpu < this.ncpus; cpu++) {
      encodeInto(this.valueCodec, values[cpu] as V, buf, view, offset + cpu * this.slot);
    }
  }

  protected readValue(buf: Buffer, offset: number): V[] {
    const out = new Array<V>(this.ncpus);
    for (let cpu = 0; cpu < this.ncpus; cpu++) {
      out[cpu] = this.valueCodec.decode(buf, offset + cpu * this.slot);
    }
    return out;
  }
}

type NumericKeys<V> = { [P in keyof V]-?: V[P] extends number | bigint ? P : never }[keyof V];

/**
 * Sums per-CPU values: numbers or bigints directly, or the named numeric/bigint fields of structs.
 *   sumPerCpu([1n, 2n]) === 3n
 *   sumPerCpu(stats, ['packets', 'bytes']) -> { packets, bytes }
 */
export function sumPerCpu(values: readonly number[]): number;
export function sumPerCpu(values: readonly bigint[]): bigint;
export function sumPerCpu<V, F extends NumericKeys<V>>(
  values: readonly V[],
  fields: readonly F[],
): { [P in F]: V[P] };
export function sumPerCpu(values: readonly unknown[], fields?: readonly PropertyKey[]): unknown {
  const add = (a: unknown, b: unknown): number | bigint => {
    if (typeof a === 'bigint' && typeof b === 'bigint') return a + b;
    if (typeof a === 'number' && typeof b === 'number') return a + b;
    throw new TypeError(`cannot sum ${typeof a} and ${typeof b}`);
  };
  if (fields === undefined) {
    if (values.length === 0) return 0;
    return values.reduce((acc, v) => add(acc, v));
  }
  const out: Record<PropertyKey, unknown> = {};
  for (const f of fields) {
    let acc: unknown;
    for (const v of values) {
      const x = (v as Record<PropertyKey, unknown>)[f];
      acc = acc === undefined ? x : add(acc, x);
    }
    out[f] = acc ?? 0;
  }
  return out;
}

// ---- map-in-map ------------------------------------------------------------------------------------

// Map-in-map values are u32 in host byte order: an fd when written, an id when read.
const HOST_LE = endianness() === 'LE';

/** Stores `inner` in slot `key` of a map-of-maps (the kernel takes the inner map's fd). */
export function setInner(
  outer: BpfMap,
  key: Uint8Array,
  inner: BpfMap,
  flags: number = UpdateFlags.ANY,
): void {
  const value = Buffer.alloc(4);
  if (HOST_LE) value.writeUInt32LE(inner.fd);
  else value.writeUInt32BE(inner.fd);
  outer.update(key, value, flags);
}

/** The id of the inner map in slot `key`, or null if the slot is empty. */
export function getInnerId(outer: BpfMap, key: Uint8Array): number | null {
  const v = outer.lookup(key);
  if (v === null) return null;
  return HOST_LE ? v.readUInt32LE(0) : v.readUInt32BE(0);
}

/**
 * A typed ARRAY_OF_MAPS / HASH_OF_MAPS. Swapping one slot is how a multi-map policy change is
 * published atomically: stage the new inner map completely, then set() it.
 */
export class MapOfMaps<K> {
  constructor(
    readonly outer: BpfMap,
    readonly keyCodec: Codec<K>,
  ) {
    if (!MAP_IN_MAP_TYPES.has(outer.type)) {
      throw new TypeError(`map type ${outer.type} is not a map-of-maps`);
    }
    if (keyCodec.size !== outer.keySize) {
      throw new TypeError(`key codec is ${keyCodec.size} bytes, map key is ${outer.keySize} bytes`);
    }
  }

  set(key: K, inner: BpfMap, flags: number = UpdateFlags.ANY): void {
    setInner(this.outer, this.keyCodec.encode(key), inner, flags);
  }

  /** The inner map's id, or null if the slot is empty. */
  getId(key: K): number | null {
    return getInnerId(this.outer, this.keyCodec.encode(key));
  }

  /** A new handle on the inner map in the slot, or null if empty. */
  open(key: K): BpfMap | null {
    const id = this.getId(key);
    return id === null ? null : BpfMap.fromId(id);
  }

  delete(key: K): boolean {
    return this.outer.delete(this.keyCodec.encode(key));
  }
}
