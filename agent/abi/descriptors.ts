// Shapes of the descriptors agent/abi/generated.ts exports for the maps, programs and load-time
// knobs of tenet's BPF objects. The values come from the objects' BTF and ELF symbols; these
// types are what the loader, TypedMap and the metrics collector program against.

import type { Codec } from './codec.js';

/** Lower-case BPF_MAP_TYPE_* name without the prefix: `percpu_hash`, `ringbuf`. */
export type MapTypeName =
  | 'unspec'
  | 'hash'
  | 'array'
  | 'prog_array'
  | 'perf_event_array'
  | 'percpu_hash'
  | 'percpu_array'
  | 'stack_trace'
  | 'cgroup_array'
  | 'lru_hash'
  | 'lru_percpu_hash'
  | 'lpm_trie'
  | 'array_of_maps'
  | 'hash_of_maps'
  | 'devmap'
  | 'sockmap'
  | 'cpumap'
  | 'xskmap'
  | 'sockhash'
  | 'cgroup_storage'
  | 'reuseport_sockarray'
  | 'percpu_cgroup_storage'
  | 'queue'
  | 'stack'
  | 'sk_storage'
  | 'devmap_hash'
  | 'struct_ops'
  | 'ringbuf'
  | 'inode_storage'
  | 'task_storage'
  | 'bloom_filter'
  | 'user_ringbuf'
  | 'cgrp_storage'
  | 'arena';

/** The inner map of a map-in-map (`__array(values, ...)`). */
export interface InnerMapDescriptor {
  readonly type: MapTypeName;
  readonly typeId: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
}

export interface MapDescriptor<K, V> {
  /** The C identifier: the map's name in libbpf and, when pinned, its file name. */
  readonly name: string;
  readonly type: MapTypeName;
  /** BPF_MAP_TYPE_* number. */
  readonly typeId: number;
  readonly keySize: number;
  /** Per CPU for per-CPU maps. */
  readonly valueSize: number;
  /** Entries, or bytes for ring buffers. */
  readonly maxEntries: number;
  /** BPF_F_* map_flags. */
  readonly flags: number;
  /** `by_name`: pinned as <pin root>/<name> (TENET_PIN_ROOT). */
  readonly pinning: 'none' | 'by_name';
  /** Lookups return one value per possible CPU. */
  readonly perCpu: boolean;
  /** null when the map has no key or value (ring buffers) or its type is not a tenet struct. */
  readonly key: Codec<K> | null;
  readonly value: Codec<V> | null;
  readonly inner: InnerMapDescriptor | null;
  /** Objects that define the map; they share one pinned instance. */
  readonly objects: readonly string[];
}

export type KnobType = 'u8' | 'u16' | 'u32' | 'u64' | 's8' | 's16' | 's32' | 's64';

/** A `const volatile` load-time knob: a place in the object's .rodata, set before load. */
export interface KnobDescriptor {
  readonly name: string;
  readonly type: KnobType;
  /** Offset and size in the object's .rodata section. */
  readonly offset: number;
  readonly size: number;
  /** The value compiled into the object. */
  readonly default: number | bigint;
}

export interface ProgramDescriptor {
  readonly name: string;
  /** ELF section, which tells libbpf the program type and attach point: `xdp`, `tc`. */
  readonly section: string;
}

export interface ObjectDescriptor {
  /** File name under build/bpf/. */
  readonly file: string;
  readonly programs: Readonly<Record<string, ProgramDescriptor>>;
  readonly maps: readonly string[];
  readonly knobs: Readonly<Record<string, KnobDescriptor>>;
  /** Size of .rodata, the buffer the knobs' offsets index. */
  readonly rodataSize: number;
}
