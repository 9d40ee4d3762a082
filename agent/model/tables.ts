// The datapath's tables as the reference model reads them: the contents of the policy maps of
// bpf/abi/policy.h (both generations of every entry, with the live mask) and the underlay next
// hops. Keys and values are the generated ABI types (agent/abi/generated.ts), so the compiler's
// installed tables and a test's hand-written tables meet the model in the same shape, and the
// datapath tests write exactly these values into the maps with the generated codecs.

import type {
  CaKey,
  LocalPaEntry,
  LookupRecordEntry,
  MeterClassEntry,
  MeterKey,
  PortEntry,
  RouteEntry,
  RouteKey,
  UnderlayNh,
  VsubnetEntry,
} from '../abi/generated.js';

export interface DatapathTables {
  /** tenet_ports: host-side port ifindex -> entry. */
  readonly ports: ReadonlyMap<number, PortEntry>;
  /** tenet_vsubnets: VSID -> entry. */
  readonly vsubnets: ReadonlyMap<number, VsubnetEntry>;
  /** tenet_records: (VSID, family, CA) -> entry. Keys must be distinct (see caKeyId). */
  readonly records: ReadonlyArray<{ readonly key: CaKey; readonly entry: LookupRecordEntry }>;
  /** tenet_routes (LPM trie). Keys must be distinct (prefixlen and the bits it covers). */
  readonly routes: ReadonlyArray<{ readonly key: RouteKey; readonly entry: RouteEntry }>;
  /** tenet_local_pas: PA (the number the wire means: 198.18.0.1 = 0xc6120001) -> entry. */
  readonly localPas: ReadonlyMap<number, LocalPaEntry>;
  /** tenet_underlay: remote PA -> next hop (no generations). */
  readonly underlay: ReadonlyMap<number, UnderlayNh>;
  /** tenet_meter_cls (LPM trie), when the caller models metering (agent/model/meter.ts). */
  readonly meterClasses?: ReadonlyArray<{
    readonly key: MeterKey;
    readonly entry: MeterClassEntry;
  }>;
}

export function emptyTables(): DatapathTables {
  return {
    ports: new Map(),
    vsubnets: new Map(),
    records: [],
    routes: [],
    localPas: new Map(),
    underlay: new Map(),
  };
}

/** Canonical id of a CA key: equal keys in the map, equal ids. */
export function caKeyId(key: CaKey): string {
  return `${key.vsid}/${key.family}/${Buffer.from(key.addr).toString('hex').padEnd(32, '0')}`;
}

/** TENET_LIVE(g). */
export const liveBit = (g: number): number => 1 << (g & 1);

/** The generation's version of an entry, or undefined when it is not live there. */
export function pick<V>(entry: { live: number; v: V[] } | undefined, gen: number): V | undefined {
  if (!entry || (entry.live & liveBit(gen)) === 0) return undefined;
  return entry.v[gen & 1];
}
