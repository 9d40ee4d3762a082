// Receive steering through BPF_PROG_TEST_RUN: tenet_xdp_rx hands an NVGRE frame for a steered VM
// port to the cpumap queue of the port's CPU (XDP_REDIRECT, the CPU in the per-CPU redirect debug
// slot) instead of decapsulating it; a spread (vRSS) port's flows each hash to one CPU, as the
// reference model (agent/model/steer.ts) says; ports without an entry, frames steering cannot
// place and CPUs without a queue run in place as before; and the cpumap program tenet_xdp_cpu
// runs the whole decapsulation and delivery.
//
// bpf_get_smp_processor_id() in a test-run is the CPU of the calling thread, so the test pins
// this process to CPU 0 (taskset) for the file and restores its mask afterwards: a port fixed to
// CPU 1 must then be redirected, one fixed to CPU 0 must run in place.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Maps, SteerMode } from '../../agent/abi/generated.js';
import { U32 } from '../../agent/abi/codec.js';
import { BpfMap, BpfObject, PerCpuTypedMap, TypedMap, sumPerCpu } from '../../agent/bpf/index.js';
import { bpfBuildDir } from '../../agent/datapath/objects.js';
import { steerCpu, type SteerFlow } from '../../agent/model/index.js';
import { ipToBytes, packet, type PacketBuilder } from '../../agent/packet/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { BLUE1, PA_A, PA_B, VM2, VM2_IFINDEX, VM4, baseTables } from './fixture.js';
import { useDatapath } from './harness.js';

const WIRE_B = '02:00:00:00:10:02';
const NIC_A = '02:00:00:00:10:01';
const XDP_PASS = 2;
const XDP_REDIRECT = 4;
const CPUMAP_FLAG = 0x80000000;

const nvgre = (o: { dst?: string } = {}): PacketBuilder =>
  packet()
    .eth({ src: WIRE_B, dst: NIC_A })
    .ipv4({ src: PA_B, dst: o.dst ?? PA_A, df: true, ttl: 63 })
    .nvgre({ vsid: BLUE1, flowId: 0x11 });

type L4 = { proto: 'udp' | 'tcp'; sport: number; dport: number };
const inner = (l4: L4, v6 = false) => {
  const b = packet().eth({ src: VM4.mac, dst: VM2.mac });
  const ip = v6
    ? b.ipv6({ src: VM4.ip6, dst: VM2.ip6, hopLimit: 64 })
    : b.ipv4({ src: VM4.ip4, dst: VM2.ip4, ttl: 64, id: 9 });
  return (
    l4.proto === 'udp'
      ? ip.udp({ sport: l4.sport, dport: l4.dport })
      : ip.tcp({ sport: l4.sport, dport: l4.dport, seq: 1, ack: 0, flags: 'S' })
  ).payload('steered');
};
const frame = (l4: L4, v6 = false, o: { dst?: string } = {}) =>
  nvgre(o).payload(inner(l4, v6).build()).build();
const flowOf = (l4: L4, v6 = false): SteerFlow => ({
  src: ipToBytes(v6 ? VM4.ip6 : VM4.ip4),
  dst: ipToBytes(v6 ? VM2.ip6 : VM2.ip4),
  sport: l4.sport,
  dport: l4.dport,
  proto: l4.proto === 'udp' ? 17 : 6,
});

function cpuMask(): string {
  return execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' })
    .trim()
    .split(':')
    .pop()!
    .trim();
}

describePrivileged('receive steering in XDP (BPF_PROG_TEST_RUN)', () => {
  const dp = useDatapath();
  let steer: TypedMap<number, { mode: number; ncpus: number; seed: number; cpus: number[] }>;
  let ctrs: PerCpuTypedMap<
    number,
    { steered: bigint; local: bigint; fallback: bigint; pipeline: bigint }
  >;
  let cpumap: BpfMap;
  let redir: PerCpuTypedMap<number, { ifindex: number; flags: number; count: bigint }>;
  let savedMask = '';

  beforeAll(() => {
    savedMask = cpuMask();
    execFileSync('taskset', ['-a', '-p', '1', String(process.pid)]);
    const open = (n: string) => BpfMap.openPinned(join(dp.pinRoot, n));
    steer = new TypedMap(open('tenet_steer'), U32, Maps.tenet_steer.value);
    ctrs = new PerCpuTypedMap(
      open('tenet_steer_cnt'),
      Maps.tenet_steer_cnt.key,
      Maps.tenet_steer_cnt.value,
    );
    redir = new PerCpuTypedMap(
      open('tenet_redir_dbg'),
      Maps.tenet_redir_dbg.key,
      Maps.tenet_redir_dbg.value,
    );
    cpumap = open('tenet_cpumap');
    dp.install(baseTables(), 0);
    const prog = dp.xdpProgram('tenet_xdp_cpu');
    try {
      for (const cpu of [0, 1]) {
        const v = Buffer.alloc(8);
        v.writeUInt32LE(256, 0);
        v.writeUInt32LE(prog.fd, 4);
        cpumap.update(U32.encode(cpu), v);
      }
    } finally {
      prog.close();
    }
  });
  afterAll(() => {
    if (savedMask) execFileSync('taskset', ['-a', '-p', savedMask, String(process.pid)]);
    steer?.close();
    ctrs?.close();
    redir?.close();
    cpumap?.close();
  });

  const setSteer = (mode: number, cpus: number[], seed = 0) =>
    steer.set(VM2_IFINDEX, {
      mode,
      ncpus: cpus.length,
      seed,
      cpus: [...cpus, ...Array(16 - cpus.length).fill(0)],
    });
  const totals = () => {
    const t = sumPerCpu(ctrs.get(VM2_IFINDEX) ?? [], ['steered', 'local', 'fallback', 'pipeline']);
    return {
      steered: BigInt(t.steered),
      local: BigInt(t.local),
      fallback: BigInt(t.fallback),
      pipeline: BigInt(t.pipeline),
    };
  };
  const delta = (f: () => void) => {
    const a = totals();
    f();
    const b = totals();
    return {
      steered: Number(b.steered - a.steered),
      local: Number(b.local - a.local),
      fallback: Number(b.fallback - a.fallback),
      pipeline: Number(b.pipeline - a.pipeline),
    };
  };
  // The cpumap program's body as a plain XDP program (the kernel refuses test-runs of the cpumap
  // attach type; bpf/testing/steer_cpu.bpf.c), loaded against the same maps.
  let cpuObj: BpfObject | undefined;
  beforeAll(async () => {
    cpuObj = BpfObject.open(join(bpfBuildDir(), 'testing', 'steer_cpu.o'), { pinRoot: dp.pinRoot });
    await cpuObj.load();
  });
  afterAll(() => cpuObj?.close());
  const runCpu = (input: Buffer) => dp.runXdpWith(cpuObj!.program('tenet_test_steer_cpu'), input);
  const lastRedirect = () => (redir.get(0) ?? [])[0];

  it('a port without a steering entry is decapsulated in place (as before)', () => {
    steer.delete(VM2_IFINDEX);
    const r = dp.runXdp(frame({ proto: 'udp', sport: 1000, dport: 2000 }));
    expect(r.verdict).toBe('redirect');
    expect(r.redirectIfindex).toBe(VM2_IFINDEX);
    expect(r.data.length).toBe(inner({ proto: 'udp', sport: 1000, dport: 2000 }).build().length);
  });

  it('a port fixed to CPU 1 is handed to CPU 1 untouched; counted as steered', () => {
    setSteer(SteerMode.fixed, [1]);
    const input = frame({ proto: 'udp', sport: 1000, dport: 2000 });
    let r: ReturnType<typeof dp.runXdp> | undefined;
    const d = delta(() => {
      r = dp.runXdp(input);
    });
    expect(r!.retval).toBe(XDP_REDIRECT);
    expect(r!.data.equals(input)).toBe(true);
    expect(lastRedirect()).toMatchObject({ ifindex: 1, flags: CPUMAP_FLAG });
    expect(r!.counters.vsids).toEqual([]); // not decapsulated on this CPU
    expect(d).toEqual({ steered: 1, local: 0, fallback: 0, pipeline: 0 });
  });

  it('a port fixed to the receiving CPU (0) is queued to CPU 0 too (order); counted as local', () => {
    setSteer(SteerMode.fixed, [0]);
    const input = frame({ proto: 'udp', sport: 1000, dport: 2000 });
    let r: ReturnType<typeof dp.runXdp> | undefined;
    const d = delta(() => {
      r = dp.runXdp(input);
    });
    expect(r!.retval).toBe(XDP_REDIRECT);
    expect(r!.data.equals(input)).toBe(true);
    expect(lastRedirect()).toMatchObject({ ifindex: 0, flags: CPUMAP_FLAG });
    expect(d).toEqual({ steered: 0, local: 1, fallback: 0, pipeline: 0 });
  });

  it('mode none runs in place and counts nothing', () => {
    setSteer(SteerMode.none, [1]);
    let r: ReturnType<typeof dp.runXdp> | undefined;
    const d = delta(() => {
      r = dp.runXdp(frame({ proto: 'udp', sport: 1000, dport: 2000 }));
    });
    expect(r!.redirectIfindex).toBe(VM2_IFINDEX);
    expect(d).toEqual({ steered: 0, local: 0, fallback: 0, pipeline: 0 });
  });

  it('a CPU without a cpumap queue falls back to in place, counted', () => {
    setSteer(SteerMode.fixed, [7]);
    let r: ReturnType<typeof dp.runXdp> | undefined;
    const d = delta(() => {
      r = dp.runXdp(frame({ proto: 'udp', sport: 1000, dport: 2000 }));
    });
    expect(r!.redirectIfindex).toBe(VM2_IFINDEX);
    expect(r!.counters.vsids).toEqual([
      { vsid: BLUE1, kind: 'decap', packets: 1, bytes: r!.data.length },
    ]);
    expect(d).toEqual({ steered: 0, local: 0, fallback: 1, pipeline: 0 });
  });

  it('frames steering cannot place go through the pipeline (which drops or passes them)', () => {
    setSteer(SteerMode.fixed, [1]);
    // Not to a local PA: host traffic, passes.
    expect(
      dp.runXdp(frame({ proto: 'udp', sport: 1, dport: 2 }, false, { dst: '198.18.0.9' })).retval,
    ).toBe(XDP_PASS);
    // Bad GRE flags: dropped with the pipeline's reason on the receiving CPU.
    const bad = frame({ proto: 'udp', sport: 1, dport: 2 });
    bad.writeUInt16BE(0x3000, 14 + 20);
    const r = dp.runXdp(bad);
    expect(r.verdict).toBe('drop');
    expect(r.counters.drops.map((x) => x.reason)).toEqual(['nvgre_bad_flags']);
  });

  describe('spread (vRSS) over CPUs {0, 1}', () => {
    const flows: Array<{ l4: L4; v6: boolean }> = [];
    for (let i = 0; i < 24; i++)
      flows.push({
        l4: { proto: i % 2 ? 'tcp' : 'udp', sport: 10000 + i * 7, dport: 443 + (i % 3) },
        v6: i % 4 === 3,
      });

    it('each flow goes where the model says, every time, and both CPUs get flows', () => {
      const seed = 0x5eed1234;
      setSteer(SteerMode.spread, [0, 1], seed);
      const seen = new Set<number>();
      for (const f of flows) {
        const want = steerCpu({ mode: 'spread', cpus: [0, 1], seed }, flowOf(f.l4, f.v6));
        seen.add(want!);
        for (let rep = 0; rep < 3; rep++) {
          const r = dp.runXdp(frame(f.l4, f.v6));
          expect(r.retval, `flow ${JSON.stringify(f)}`).toBe(XDP_REDIRECT);
          expect(lastRedirect(), `flow ${JSON.stringify(f)}`).toMatchObject({
            ifindex: want,
            flags: CPUMAP_FLAG,
          });
        }
      }
      expect(seen).toEqual(new Set([0, 1]));
    });

    it('another seed moves some flows (ports do not all hash alike)', () => {
      const a = flows.map((f) =>
        steerCpu({ mode: 'spread', cpus: [0, 1], seed: 1 }, flowOf(f.l4, f.v6)),
      );
      const b = flows.map((f) =>
        steerCpu({ mode: 'spread', cpus: [0, 1], seed: 2 }, flowOf(f.l4, f.v6)),
      );
      expect(a).not.toEqual(b);
      setSteer(SteerMode.spread, [0, 1], 2);
      flows.forEach((f, i) => {
        const r = dp.runXdp(frame(f.l4, f.v6));
        expect(r.retval).toBe(XDP_REDIRECT);
        expect(lastRedirect(), `flow ${JSON.stringify(f)}`).toMatchObject({
          ifindex: b[i],
          flags: CPUMAP_FLAG,
        });
      });
    });
  });

  it('the cpumap program decapsulates and delivers, counting pipeline work for the port', () => {
    setSteer(SteerMode.fixed, [0]);
    const l4: L4 = { proto: 'tcp', sport: 33000, dport: 80 };
    let r: ReturnType<typeof dp.runXdp> | undefined;
    const d = delta(() => {
      r = runCpu(frame(l4));
    });
    expect(r!.verdict).toBe('redirect');
    expect(r!.redirectIfindex).toBe(VM2_IFINDEX);
    expect(r!.data.equals(inner(l4).build())).toBe(true);
    // The NIC's rx was counted on the receiving CPU; here only the delivery (port tx) and VSID.
    expect(r!.counters.ports).toEqual([
      { ifindex: VM2_IFINDEX, direction: 'tx', packets: 1, bytes: r!.data.length },
    ]);
    expect(r!.counters.vsids).toEqual([
      { vsid: BLUE1, kind: 'decap', packets: 1, bytes: r!.data.length },
    ]);
    expect(d).toEqual({ steered: 0, local: 0, fallback: 0, pipeline: 1 });
  });

  it('the cpumap program drops malformed frames with the pipeline reason', () => {
    const bad = frame({ proto: 'udp', sport: 1, dport: 2 });
    bad.writeUInt16BE(0x1234, 14 + 20 + 2); // GRE protocol
    const r = runCpu(bad);
    expect(r.verdict).toBe('drop');
    expect(r.counters.drops.map((x) => x.reason)).toEqual(['nvgre_bad_protocol']);
  });
});
