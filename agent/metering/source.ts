// Where the metering ledger reads the datapath's per-class counters (tenet_meter_ctr, summed over
// CPUs) and the host's interface indexes, and how it removes the counters of an interface that no
// longer is a port here (after their final values were folded into the durable ledger).
//
//   host    the pinned tenet_meter_ctr map under pinRoot; ifindexes from the kernel (in the
//           datapath's network namespace);
//   memory  no datapath: no counters; ifindexes from the config's interfaces.

import { join } from 'node:path';
import { Maps } from '../abi/generated.js';
import type { PerCpuTypedMap } from '../bpf/index.js';
import type { Config } from '../daemon/config.js';
import type { MeterDirection } from '../policy/index.js';

export interface RawMeterCount {
  readonly ifindex: number;
  readonly classId: number;
  readonly direction: MeterDirection;
  readonly packets: bigint;
  readonly bytes: bigint;
}

export interface MeterSource {
  /** Every per-class counter of the datapath, summed over CPUs. */
  read(): Promise<RawMeterCount[]>;
  /** The ifindex of a host interface now, or undefined when it does not exist. */
  ifindexOf(iface: string): Promise<number | undefined>;
  /** Deletes every counter of ifindex (the datapath no longer counts it). */
  remove(ifindex: number): Promise<void>;
  close(): void;
}

const dirOf = (d: number): MeterDirection => (d === 0 ? 'outbound' : 'inbound');

/** The pinned tenet_meter_ctr map of a host datapath. */
export function pinnedMeterSource(pinRoot: string, netns?: string): MeterSource {
  type Map = PerCpuTypedMap<
    { ifindex: number; class_id: number; direction: number },
    { packets: bigint; bytes: bigint }
  >;
  let map: Map | undefined;
  const open = async (): Promise<Map | undefined> => {
    if (map !== undefined) return map;
    const { BpfMap, PerCpuTypedMap } = await import('../bpf/index.js');
    const d = Maps.tenet_meter_ctr;
    try {
      map = new PerCpuTypedMap(BpfMap.openPinned(join(pinRoot, d.name)), d.key, d.value);
    } catch {
      return undefined; // not loaded yet: nothing counted
    }
    return map;
  };
  return {
    async read() {
      const m = await open();
      if (m === undefined) return [];
      const { sumPerCpu } = await import('../bpf/index.js');
      const out: RawMeterCount[] = [];
      for (const [k, v] of m.entries()) {
        const s = sumPerCpu(v, ['packets', 'bytes']);
        out.push({
          ifindex: k.ifindex,
          classId: k.class_id,
          direction: dirOf(k.direction),
          packets: s.packets,
          bytes: s.bytes,
        });
      }
      return out;
    },
    async ifindexOf(iface) {
      const { ifNameToIndex } = await import('../bpf/native.js');
      try {
        return ifNameToIndex({ ifname: iface, ...(netns === undefined ? {} : { netns }) });
      } catch {
        return undefined;
      }
    },
    async remove(ifindex) {
      const m = await open();
      if (m === undefined) return;
      for (const k of [...m.keys()]) if (k.ifindex === ifindex) m.delete(k);
    },
    close() {
      map?.close();
      map = undefined;
    },
  };
}

/** A datapath-less source: interfaces from a table, no counters. */
export function staticMeterSource(interfaces: Readonly<Record<string, { ifindex: number }>>) {
  return {
    read: async () => [],
    ifindexOf: async (iface: string) =>
      Object.hasOwn(interfaces, iface) ? interfaces[iface]?.ifindex : undefined,
    remove: async () => undefined,
    close: () => undefined,
  } satisfies MeterSource;
}

export function meterSourceFor(config: Config): MeterSource {
  return config.datapath.backend === 'memory'
    ? staticMeterSource(config.datapath.interfaces)
    : pinnedMeterSource(config.pinRoot, config.datapath.netns);
}
