// Typed handles on maps pinned under a datapath's pin root, opened by their generated
// descriptor (agent/abi/generated.ts Maps), so the name and both codecs come from one place.

import { join } from 'node:path';
import type { Codec } from '../abi/codec.js';
import { BpfMap, PerCpuTypedMap, TypedMap } from '../bpf/index.js';

/** The part of a map descriptor a typed handle needs (maps with a codec for their key). */
export interface PinnedMapDescriptor<K, V> {
  readonly name: string;
  readonly key: Codec<K>;
  readonly value: Codec<V>;
}

export function openPinnedTyped<K, V>(
  pinRoot: string,
  d: PinnedMapDescriptor<K, V>,
): TypedMap<K, V> {
  return new TypedMap(BpfMap.openPinned(join(pinRoot, d.name)), d.key, d.value);
}

export function openPinnedPerCpu<K, V>(
  pinRoot: string,
  d: PinnedMapDescriptor<K, V>,
): PerCpuTypedMap<K, V> {
  return new PerCpuTypedMap(BpfMap.openPinned(join(pinRoot, d.name)), d.key, d.value);
}
