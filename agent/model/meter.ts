// The reference model of port metering (bpf/lib/meter.h): which metering class a frame counts in
// and what the per-class counters gain. The class table is the tenet_meter_cls LPM trie with its
// generations: the longest prefix present for (port, direction, family) answers whatever its live
// bits, and when that entry is not live in the packet's generation the frame counts in the
// default class 0 (the reconciler keeps that right while a longer prefix is staged).

import type { MeterClassEntry, MeterKey } from '../abi/generated.js';
import { pick } from './tables.js';

/** TENET_METER_KEY_FIXED_BITS */
const FIXED_BITS = 64;
export const DIR_OUTBOUND = 0; // TENET_DIR_RX at the VM port: from the VM
export const DIR_INBOUND = 1; // TENET_DIR_TX at the VM port: to the VM

export type MeterClassRows = ReadonlyArray<{
  readonly key: MeterKey;
  readonly entry: MeterClassEntry;
}>;

/** One frame counted in a class: the delta of one tenet_meter_ctr entry. */
export interface MeterDelta {
  ifindex: number;
  classId: number;
  direction: 'inbound' | 'outbound';
  packets: number;
  bytes: number;
}

function prefixCovers(prefix: Uint8Array, addr: Uint8Array, bits: number): boolean {
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (prefix[i] !== addr[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return (((prefix[full] as number) ^ (addr[full] as number)) & mask) === 0;
}

/** The class id of remote address addr (4 or 16 bytes) at port ifindex, direction dir, in gen. */
export function meterClassOf(
  rows: MeterClassRows,
  gen: number,
  ifindex: number,
  dir: number,
  addr: Uint8Array,
): number {
  const family = addr.length === 4 ? 4 : 6;
  let best: (typeof rows)[number] | undefined;
  for (const row of rows) {
    const k = row.key;
    if (k.ifindex !== ifindex || k.direction !== dir || k.family !== family) continue;
    const bits = k.prefixlen - FIXED_BITS;
    if (bits < 0 || bits > addr.length * 8) continue;
    if (!prefixCovers(k.addr, addr, bits)) continue;
    if (best === undefined || k.prefixlen > best.key.prefixlen) best = row;
  }
  return pick(best?.entry, gen)?.class_id ?? 0;
}

/** What tenet_meter() adds for a frame of len bytes. */
export function meterDelta(
  rows: MeterClassRows,
  gen: number,
  ifindex: number,
  dir: number,
  remote: Uint8Array,
  len: number,
): MeterDelta {
  return {
    ifindex,
    classId: meterClassOf(rows, gen, ifindex, dir, remote),
    direction: dir === DIR_OUTBOUND ? 'outbound' : 'inbound',
    packets: 1,
    bytes: len,
  };
}
