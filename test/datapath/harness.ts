// Runs the NVGRE datapath programs (tenet_port_ingress, tenet_xdp_rx) through BPF_PROG_TEST_RUN
// against tables a test installs, and reports what they did in the reference model's terms
// (agent/model/): verdict, redirect target (from the per-CPU redirect debug slot), output bytes,
// and the counter deltas of the port, VSID and drop counters. The objects are loaded once per test
// file with their maps pinned under a private /sys/fs/bpf/tenet-test-<random>/ (useObjects), so
// nothing here touches a live datapath.
//
// Test-runs happen in the test process's network namespace: without a ctx the tc program sees the
// loopback device (ifindex 1) and so does XDP, so the tables give the VM port and the physical NIC
// ifindex 1; every other ifindex in them is only a number the programs redirect to.

import { join } from 'node:path';
import { beforeAll, afterAll } from 'vitest';
import {
  DropReasonByValue,
  GenerationCodec,
  Maps,
  type DropReasonName,
  type MapName,
} from '../../agent/abi/generated.js';
import { U32 } from '../../agent/abi/codec.js';
import {
  BpfMap,
  PerCpuTypedMap,
  TypedMap,
  sumPerCpu,
  type BpfProgram,
} from '../../agent/bpf/index.js';
import type { CounterDeltas, Verdict } from '../../agent/model/index.js';
import type { DatapathTables } from '../../agent/model/index.js';
import { useObjects } from '../helpers/datapath.js';

export const LOOPBACK_IFINDEX = 1;

export interface RunOptions {
  /** struct __sk_buff gso_size / gso_segs for the tc test-run (a GSO skb). */
  gsoSize?: number;
  gsoSegs?: number;
}

export interface RunResult {
  retval: number;
  verdict: Verdict;
  data: Buffer;
  redirectIfindex?: number;
  counters: CounterDeltas;
  /** Output ctx of a tc run with a ctx: gso_size after the program. */
  gsoSizeOut?: number;
}

const POLICY_MAPS = [
  'tenet_ports',
  'tenet_vsubnets',
  'tenet_records',
  'tenet_routes',
  'tenet_local_pas',
  'tenet_underlay',
] as const satisfies readonly MapName[];

// struct __sk_buff (6.x): offsets of the fields a test-run ctx may set.
const SKB_CTX_SIZE = 192;
const SKB_GSO_SEGS = 164;
const SKB_GSO_SIZE = 176;

const TC_VERDICTS: Record<number, Verdict> = { 0: 'pass', 2: 'drop', 7: 'redirect' };
const XDP_VERDICTS: Record<number, Verdict> = { 1: 'drop', 2: 'pass', 4: 'redirect' };

interface Snapshot {
  ports: Map<string, { packets: bigint; bytes: bigint }>;
  vsids: Map<string, { packets: bigint; bytes: bigint }>;
  drops: Map<number, { packets: bigint; bytes: bigint }>;
  redirect: Array<{ ifindex: number; count: bigint }>;
}

export interface Datapath {
  readonly pinRoot: string;
  /** Replaces the contents of every policy map (and the generation) with tables. */
  install(tables: DatapathTables, generation: number): void;
  /** tc ingress on the VM port (the loopback device). */
  runPort(frame: Uint8Array, opts?: RunOptions): RunResult;
  /** XDP on the physical NIC (the loopback device). */
  runXdp(frame: Uint8Array): RunResult;
  /** New handles on the two programs, for callers that test-run in bulk (close them after). */
  programs(): { port: BpfProgram; xdp: BpfProgram };
  /** Another XDP program (sharing these maps) run like runXdp; prog is closed afterwards. */
  runXdpWith(prog: BpfProgram, frame: Uint8Array): RunResult;
  /** A program of the loaded tenet_xdp object (a new fd: close it). */
  xdpProgram(name: string): BpfProgram;
}

function openMap(pinRoot: string, name: MapName): BpfMap {
  return BpfMap.openPinned(join(pinRoot, name));
}

/** Loads tenet_port and tenet_xdp for the calling test file. */
export function useDatapath(): Datapath {
  const loaded = useObjects('tenet_port', 'tenet_xdp');
  const raw = new Map<MapName, BpfMap>();
  let gen: TypedMap<number, { active: number }>;
  let portCtrs: PerCpuTypedMap<
    { ifindex: number; direction: number },
    { packets: bigint; bytes: bigint }
  >;
  let dropCtrs: PerCpuTypedMap<number, { packets: bigint; bytes: bigint }>;
  let vsidCtrs: PerCpuTypedMap<
    number,
    { encap_packets: bigint; encap_bytes: bigint; decap_packets: bigint; decap_bytes: bigint }
  >;
  let redir: PerCpuTypedMap<number, { ifindex: number; flags: number; count: bigint }>;

  beforeAll(() => {
    for (const name of POLICY_MAPS) raw.set(name, openMap(loaded.pinRoot, name));
    gen = new TypedMap(openMap(loaded.pinRoot, 'tenet_gen'), U32, GenerationCodec);
    portCtrs = new PerCpuTypedMap(
      openMap(loaded.pinRoot, 'tenet_port_ctrs'),
      Maps.tenet_port_ctrs.key,
      Maps.tenet_port_ctrs.value,
    );
    dropCtrs = new PerCpuTypedMap(
      openMap(loaded.pinRoot, 'tenet_drop_ctrs'),
      Maps.tenet_drop_ctrs.key,
      Maps.tenet_drop_ctrs.value,
    );
    vsidCtrs = new PerCpuTypedMap(
      openMap(loaded.pinRoot, 'tenet_vsid_ctrs'),
      Maps.tenet_vsid_ctrs.key,
      Maps.tenet_vsid_ctrs.value,
    );
    redir = new PerCpuTypedMap(
      openMap(loaded.pinRoot, 'tenet_redir_dbg'),
      Maps.tenet_redir_dbg.key,
      Maps.tenet_redir_dbg.value,
    );
  });
  afterAll(() => {
    for (const m of raw.values()) m.close();
    gen?.close();
    portCtrs?.close();
    dropCtrs?.close();
    vsidCtrs?.close();
    redir?.close();
  });

  const clear = (m: BpfMap): void => {
    for (;;) {
      const k = m.nextKey(null);
      if (k === null) return;
      m.delete(k);
    }
  };

  const typed = <K, V>(name: (typeof POLICY_MAPS)[number]): TypedMap<K, V> => {
    const d = Maps[name];
    return new TypedMap(raw.get(name) as BpfMap, d.key as never, d.value as never);
  };

  const snapshot = (): Snapshot => {
    const ports = new Map<string, { packets: bigint; bytes: bigint }>();
    for (const [k, v] of portCtrs.entries())
      ports.set(`${k.ifindex}/${k.direction}`, sumPerCpu(v, ['packets', 'bytes']));
    const vsids = new Map<string, { packets: bigint; bytes: bigint }>();
    for (const [k, v] of vsidCtrs.entries()) {
      const s = sumPerCpu(v, ['encap_packets', 'encap_bytes', 'decap_packets', 'decap_bytes']);
      vsids.set(`${k}/encap`, { packets: s.encap_packets, bytes: s.encap_bytes });
      vsids.set(`${k}/decap`, { packets: s.decap_packets, bytes: s.decap_bytes });
    }
    const drops = new Map<number, { packets: bigint; bytes: bigint }>();
    for (const [k, v] of dropCtrs.entries()) drops.set(k, sumPerCpu(v, ['packets', 'bytes']));
    const r = redir.get(0) ?? [];
    return {
      ports,
      vsids,
      drops,
      redirect: r.map((x) => ({ ifindex: x.ifindex, count: x.count })),
    };
  };

  const diff = (
    a: Snapshot,
    b: Snapshot,
  ): { counters: CounterDeltas; redirectIfindex?: number } => {
    const counters: CounterDeltas = { ports: [], vsids: [], drops: [] };
    const zero = { packets: 0n, bytes: 0n };
    for (const [k, v] of b.ports) {
      const o = a.ports.get(k) ?? zero;
      if (v.packets === o.packets && v.bytes === o.bytes) continue;
      const [ifindex, dir] = k.split('/').map(Number) as [number, number];
      counters.ports.push({
        ifindex,
        direction: dir === 0 ? 'rx' : 'tx',
        packets: Number(v.packets - o.packets),
        bytes: Number(v.bytes - o.bytes),
      });
    }
    for (const [k, v] of b.vsids) {
      const o = a.vsids.get(k) ?? zero;
      if (v.packets === o.packets && v.bytes === o.bytes) continue;
      const [vsid, kind] = k.split('/') as [string, 'encap' | 'decap'];
      counters.vsids.push({
        vsid: Number(vsid),
        kind,
        packets: Number(v.packets - o.packets),
        bytes: Number(v.bytes - o.bytes),
      });
    }
    for (const [k, v] of b.drops) {
      const o = a.drops.get(k) ?? zero;
      if (v.packets === o.packets && v.bytes === o.bytes) continue;
      counters.drops.push({
        reason: (DropReasonByValue[k] ?? `unknown_${k}`) as DropReasonName,
        packets: Number(v.packets - o.packets),
        bytes: Number(v.bytes - o.bytes),
      });
    }
    let redirectIfindex: number | undefined;
    b.redirect.forEach((r, cpu) => {
      if (r.count !== a.redirect[cpu]?.count) redirectIfindex = r.ifindex;
    });
    return { counters: normalizeCounters(counters), redirectIfindex };
  };

  return {
    get pinRoot() {
      return loaded.pinRoot;
    },
    programs() {
      return {
        port: loaded.get('tenet_port').program('tenet_port_ingress'),
        xdp: loaded.get('tenet_xdp').program('tenet_xdp_rx'),
      };
    },
    install(tables, generation) {
      for (const name of POLICY_MAPS) clear(raw.get(name) as BpfMap);
      const ports = typed<number, unknown>('tenet_ports');
      for (const [k, v] of tables.ports) ports.set(k, v);
      const vsubnets = typed<number, unknown>('tenet_vsubnets');
      for (const [k, v] of tables.vsubnets) vsubnets.set(k, v);
      const records = typed<unknown, unknown>('tenet_records');
      for (const r of tables.records) records.set(r.key, r.entry);
      const routes = typed<unknown, unknown>('tenet_routes');
      for (const r of tables.routes) routes.set(r.key, r.entry);
      const localPas = typed<number, unknown>('tenet_local_pas');
      for (const [k, v] of tables.localPas) localPas.set(k, v);
      const underlay = typed<number, unknown>('tenet_underlay');
      for (const [k, v] of tables.underlay) underlay.set(k, v);
      gen.set(0, { active: generation & 1 });
    },
    runPort(frame, opts = {}) {
      const prog = loaded.get('tenet_port').program('tenet_port_ingress');
      try {
        let ctx: Buffer | null = null;
        if (opts.gsoSize !== undefined || opts.gsoSegs !== undefined) {
          ctx = Buffer.alloc(SKB_CTX_SIZE);
          ctx.writeUInt32LE(opts.gsoSegs ?? 0, SKB_GSO_SEGS);
          ctx.writeUInt32LE(opts.gsoSize ?? 0, SKB_GSO_SIZE);
        }
        const before = snapshot();
        const r = prog.testRun({ data: frame, ctx, dataOutSize: frame.length + 512 });
        const d = diff(before, snapshot());
        return {
          retval: r.retval,
          verdict: TC_VERDICTS[r.retval] ?? (`retval ${r.retval}` as Verdict),
          data: r.data,
          redirectIfindex: r.retval === 7 ? d.redirectIfindex : undefined,
          counters: d.counters,
          gsoSizeOut: r.ctx ? r.ctx.readUInt32LE(SKB_GSO_SIZE) : undefined,
        };
      } finally {
        prog.close();
      }
    },
    xdpProgram(name) {
      return loaded.get('tenet_xdp').program(name);
    },
    runXdp(frame) {
      return this.runXdpWith(loaded.get('tenet_xdp').program('tenet_xdp_rx'), frame);
    },
    runXdpWith(prog, frame) {
      try {
        const before = snapshot();
        const r = prog.testRun({ data: frame, dataOutSize: frame.length + 512 });
        const d = diff(before, snapshot());
        return {
          retval: r.retval,
          verdict: XDP_VERDICTS[r.retval] ?? (`retval ${r.retval}` as Verdict),
          data: r.data,
          redirectIfindex: r.retval === 4 ? d.redirectIfindex : undefined,
          counters: d.counters,
        };
      } finally {
        prog.close();
      }
    },
  };
}

/** Counter deltas in one canonical order, so two of them compare with toEqual. */
export function normalizeCounters(c: CounterDeltas): CounterDeltas {
  const by =
    <T>(key: (x: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  return {
    ports: [...c.ports].sort(by((x) => `${x.ifindex}/${x.direction}`)),
    vsids: [...c.vsids].sort(by((x) => `${x.vsid}/${x.kind}`)),
    drops: [...c.drops].sort(by((x) => x.reason)),
  };
}
