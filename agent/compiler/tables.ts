// The policy tables of bpf/abi/policy.h as the compiler produces them and the reconciler installs
// them. Keys and values are the interfaces generated from the objects' BTF (agent/abi/generated.ts,
// C member names), and so is every byte: a key's id is the hex of its encoded bytes and two values
// are equal when they encode to the same bytes.
//
// Each table is a Map from key id to { key, value }, so that two compilations, or a compilation
// and what is installed, are compared by id in O(n). Installed entries carry both generations'
// values and the live mask (struct tenet_X_entry).

import type { Codec } from '../abi/codec.js';
import {
  LocalPaCodec,
  LookupRecordCodec,
  Maps,
  MeterClassCodec,
  PortCodec,
  RouteCodec,
  VsubnetCodec,
  type CaKey,
  type LocalPa,
  type LookupRecord,
  type MapName,
  type MeterClass,
  type MeterKey,
  type Port,
  type Route,
  type RouteKey,
  type Vsubnet,
} from '../abi/generated.js';

export { Family, RecordFlags, RouteFlags } from '../abi/generated.js';
export type { CaKey, LocalPa, LookupRecord, MeterClass, MeterKey, Port, Route, RouteKey, Vsubnet };

/** TENET_ROUTE_KEY_FIXED_BITS (a macro, so not in BTF): route prefixlen = 64 + the CA prefix length. */
export const ROUTE_KEY_FIXED_BITS = 64;
/** TENET_METER_KEY_FIXED_BITS: meter prefixlen = 64 + the remote prefix length. */
export const METER_KEY_FIXED_BITS = 64;
/** NVGRE overhead on the underlay: outer Ethernet 14 + IPv4 20 + GRE with key 8. */
export const NVGRE_OVERHEAD = 42;

/** Keys and values of every table, by table name. */
export interface TableTypes {
  /** tenet_ports: host-side port ifindex (__u32) -> struct tenet_port */
  ports: { key: number; value: Port };
  /** tenet_vsubnets: VSID (__u32) -> struct tenet_vsubnet */
  vsubnets: { key: number; value: Vsubnet };
  /** tenet_records: struct tenet_ca_key -> struct tenet_lookup_record */
  records: { key: CaKey; value: LookupRecord };
  /** tenet_routes (LPM trie): struct tenet_route_key -> struct tenet_route */
  routes: { key: RouteKey; value: Route };
  /** tenet_local_pas: PA (__be32, the number the wire means) -> struct tenet_local_pa */
  localPas: { key: number; value: LocalPa };
  /** tenet_meter_cls (LPM trie): struct tenet_meter_key -> struct tenet_meter_class */
  meterClasses: { key: MeterKey; value: MeterClass };
}

export type TableName = keyof TableTypes;
export type KeyOf<T extends TableName> = TableTypes[T]['key'];
export type ValueOf<T extends TableName> = TableTypes[T]['value'];

/** In the order the reconciler walks them (any order is correct; this one reads well in logs). */
export const TABLE_NAMES: readonly TableName[] = [
  'vsubnets',
  'routes',
  'records',
  'localPas',
  'ports',
  'meterClasses',
];

export interface Row<K, V> {
  readonly key: K;
  readonly value: V;
}

/** A table's contents by key id. */
export type Rows<T extends TableName> = ReadonlyMap<string, Row<KeyOf<T>, ValueOf<T>>>;

/** The compiler's output: what the active generation of each table should hold. */
export type CompiledTables = { readonly [T in TableName]: Rows<T> };

/** struct tenet_X_entry: the live mask (bit g = exists in generation g) and both versions. */
export interface Entry<V> {
  live: number;
  v: V[];
}

/** What a map holds for one key. */
export interface InstalledRow<K, V> {
  readonly key: K;
  readonly entry: Entry<V>;
}

export type InstalledRows<T extends TableName> = ReadonlyMap<
  string,
  InstalledRow<KeyOf<T>, ValueOf<T>>
>;

/** What the maps hold, by table and key id (see reconciler/readInstalled). */
export type InstalledTables = { readonly [T in TableName]: InstalledRows<T> };

/** TENET_LIVE(g). */
export const liveBit = (g: 0 | 1): number => 1 << g;

/** How the reconciler handles one table's keys and values without knowing their types. */
export interface TableDef<K, V> {
  readonly name: TableName;
  /** The pinned map that holds the table. */
  readonly map: MapName;
  readonly key: Codec<K>;
  /** One generation's value (struct tenet_X). */
  readonly value: Codec<V>;
  /** The whole entry (struct tenet_X_entry): live mask and both values. */
  readonly entry: Codec<Entry<V>>;
  /** Hex of the encoded key: equal keys, equal ids. */
  keyId(key: K): string;
  /** Hex of the encoded value: equal values, equal ids. */
  valueId(value: V): string;
  /** An all-zero value: the content of a slot whose live bit is clear. */
  zero(): V;
  /** LPM tables: the prefix length of a key and whether outer covers inner (or equals it). */
  readonly lpm?: {
    prefixLength(key: K): number;
    covers(outer: K, inner: K): boolean;
  };
}

function maskedEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return (((a[full] as number) ^ (b[full] as number)) & mask) === 0;
}

function defineTable<K, V>(
  name: TableName,
  map: MapName,
  key: Codec<K> | null,
  value: Codec<V>,
  entry: Codec<Entry<V>> | null,
  lpm?: TableDef<K, V>['lpm'],
): TableDef<K, V> {
  if (key === null || entry === null) throw new Error(`map ${map} has no key or value codec`);
  const zero = Buffer.alloc(value.size);
  return {
    name,
    map,
    key,
    value,
    entry,
    keyId: (k) => key.encode(k).toString('hex'),
    valueId: (v) => value.encode(v).toString('hex'),
    zero: () => value.decode(zero),
    ...(lpm === undefined ? {} : { lpm }),
  };
}

export const TABLES: { readonly [T in TableName]: TableDef<KeyOf<T>, ValueOf<T>> } = {
  ports: defineTable(
    'ports',
    'tenet_ports',
    Maps.tenet_ports.key,
    PortCodec,
    Maps.tenet_ports.value,
  ),
  vsubnets: defineTable(
    'vsubnets',
    'tenet_vsubnets',
    Maps.tenet_vsubnets.key,
    VsubnetCodec,
    Maps.tenet_vsubnets.value,
  ),
  records: defineTable(
    'records',
    'tenet_records',
    Maps.tenet_records.key,
    LookupRecordCodec,
    Maps.tenet_records.value,
  ),
  routes: defineTable(
    'routes',
    'tenet_routes',
    Maps.tenet_routes.key,
    RouteCodec,
    Maps.tenet_routes.value,
    {
      prefixLength: (k) => k.prefixlen,
      covers: (outer, inner) =>
        outer.rdid === inner.rdid &&
        outer.family === inner.family &&
        outer.prefixlen <= inner.prefixlen &&
        maskedEqual(outer.addr, inner.addr, outer.prefixlen - ROUTE_KEY_FIXED_BITS),
    },
  ),
  localPas: defineTable(
    'localPas',
    'tenet_local_pas',
    Maps.tenet_local_pas.key,
    LocalPaCodec,
    Maps.tenet_local_pas.value,
  ),
  meterClasses: defineTable(
    'meterClasses',
    'tenet_meter_cls',
    Maps.tenet_meter_cls.key,
    MeterClassCodec,
    Maps.tenet_meter_cls.value,
    {
      prefixLength: (k) => k.prefixlen,
      covers: (outer, inner) =>
        outer.ifindex === inner.ifindex &&
        outer.direction === inner.direction &&
        outer.family === inner.family &&
        outer.prefixlen <= inner.prefixlen &&
        maskedEqual(outer.addr, inner.addr, outer.prefixlen - METER_KEY_FIXED_BITS),
    },
  ),
};

/** Builds a table from rows, sorted by key id so the result does not depend on input order. */
export function rowsOf<T extends TableName>(
  table: T,
  rows: Iterable<Row<KeyOf<T>, ValueOf<T>>>,
): Rows<T> {
  const def = TABLES[table] as TableDef<KeyOf<T>, ValueOf<T>>;
  const byId = new Map<string, Row<KeyOf<T>, ValueOf<T>>>();
  for (const row of rows) byId.set(def.keyId(row.key), row);
  return new Map([...byId].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
