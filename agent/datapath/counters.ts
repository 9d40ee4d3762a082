// Reading the datapath's counters: per-CPU maps summed over CPUs at read time. The datapath never
// resets them; readers compute rates from differences.

import {
  DropReasonByValue,
  Maps,
  type Counter,
  type PortKey,
  type VsidCounters,
} from '../abi/generated.js';
import { sumPerCpu, type PerCpuTypedMap } from '../bpf/index.js';
import { openPinnedPerCpu } from './pinned.js';

export interface PortTraffic {
  ifindex: number;
  direction: 'rx' | 'tx';
  packets: bigint;
  bytes: bigint;
}

export interface VsidTraffic extends VsidCounters {
  vsid: number;
}

export interface DropTotal {
  reason: string;
  packets: bigint;
  bytes: bigint;
}

function sumCounters(perCpu: readonly Counter[]): Counter {
  return sumPerCpu(perCpu, ['packets', 'bytes']) as Counter;
}

/** Typed views of the counter maps pinned under pinRoot. Close them with close(). */
export class CounterReader {
  private readonly ports: PerCpuTypedMap<PortKey, Counter>;
  private readonly drops: PerCpuTypedMap<number, Counter>;
  private readonly vsids: PerCpuTypedMap<number, VsidCounters>;

  constructor(pinRoot: string) {
    this.ports = openPinnedPerCpu(pinRoot, Maps.tenet_port_ctrs);
    this.drops = openPinnedPerCpu(pinRoot, Maps.tenet_drop_ctrs);
    this.vsids = openPinnedPerCpu(pinRoot, Maps.tenet_vsid_ctrs);
  }

  /** NVGRE traffic per virtual subnet: encapsulated towards and decapsulated from the underlay. */
  vsidTraffic(): VsidTraffic[] {
    const out: VsidTraffic[] = [];
    for (const [vsid, perCpu] of this.vsids.entries()) {
      const sum = sumPerCpu(perCpu, [
        'encap_packets',
        'encap_bytes',
        'decap_packets',
        'decap_bytes',
      ]) as VsidCounters;
      out.push({ vsid, ...sum });
    }
    return out.sort((a, b) => a.vsid - b.vsid);
  }

  portTraffic(): PortTraffic[] {
    const out: PortTraffic[] = [];
    for (const [key, perCpu] of this.ports.entries()) {
      const c = sumCounters(perCpu);
      out.push({
        ifindex: key.ifindex,
        direction: key.direction === 0 ? 'rx' : 'tx',
        packets: c.packets,
        bytes: c.bytes,
      });
    }
    return out.sort((a, b) => a.ifindex - b.ifindex || a.direction.localeCompare(b.direction));
  }

  /** Non-zero drop counters by reason label. */
  dropTotals(): DropTotal[] {
    const out: DropTotal[] = [];
    for (const [reason, perCpu] of this.drops.entries()) {
      const c = sumCounters(perCpu);
      if (c.packets === 0n) continue;
      out.push({ reason: DropReasonByValue[reason] ?? `unknown_${reason}`, ...c });
    }
    return out;
  }

  close(): void {
    this.ports.close();
    this.drops.close();
    this.vsids.close();
  }
}
