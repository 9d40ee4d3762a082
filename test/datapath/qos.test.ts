// The QoS stage through BPF_PROG_TEST_RUN (lib/qos.h): classification of what a VM sends
// (skb->priority = the HTB leaf of the port or of its destination class), the inbound policer on
// NVGRE decapsulation (XDP) and host-local delivery, the local outbound policer, counters and drop
// reasons, and per-CPU correctness: two processes pinned to CPU 0 and CPU 1 drawing from one
// bucket never admit more than burst + rate * elapsed. Expected values come from the
// configuration the test writes (rates, bursts, frame sizes), never from the program.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, afterAll, expect, it } from 'vitest';
import { Maps } from '../../agent/abi/generated.js';
import {
  BpfMap,
  PerCpuTypedMap,
  TypedMap,
  sumPerCpu,
  type BpfObject,
} from '../../agent/bpf/index.js';
import { loadObject } from '../../agent/datapath/objects.js';
import { gcra, qosPriority, type QosModelTables } from '../../agent/model/index.js';
import { ipToBytes, packet, type PacketBuilder } from '../../agent/packet/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import {
  BLUE1,
  PA_A,
  PA_B,
  PORT_IFINDEX,
  VM1,
  VM2,
  VM2_IFINDEX,
  VM4,
  addr16,
  baseTables,
} from './fixture.js';
import { useDatapath } from './harness.js';

const SKB_CTX_SIZE = 192;
const SKB_PRIORITY = 32; // struct __sk_buff.priority
const classid = (minor: number): number => ((0x7e << 16) | minor) >>> 0;
const PORT_CLASS = classid(0x1001);
const DEST_CLASS = classid(0x3001);
const ETH = 14;

interface QosRate {
  bytes_per_sec: bigint;
  burst_bytes: bigint;
}
const NONE: QosRate = { bytes_per_sec: 0n, burst_bytes: 0n };
const rate = (bytesPerSec: number, burst: number): QosRate => ({
  bytes_per_sec: BigInt(bytesPerSec),
  burst_bytes: BigInt(burst),
});

const udp4 = (o: { dst: string; dmac: string; size?: number }): PacketBuilder =>
  packet()
    .eth({ src: VM1.mac, dst: o.dmac })
    .ipv4({ src: VM1.ip4, dst: o.dst, ttl: 64, df: true })
    .udp({ sport: 4000, dport: 5000 })
    .payload(Buffer.alloc(o.size ?? 100, 0x61));

const udp6 = (o: { dst: string; dmac: string }): PacketBuilder =>
  packet()
    .eth({ src: VM1.mac, dst: o.dmac })
    .ipv6({ src: VM1.ip6, dst: o.dst, hopLimit: 64 })
    .udp({ sport: 4000, dport: 5000 })
    .payload('six');

/** NVGRE from host B for vm2 (local, port VM2_IFINDEX), inner payload of `size` bytes. */
const nvgreToVm2 = (size: number): Buffer => {
  const inner = packet()
    .eth({ src: VM4.mac, dst: VM2.mac })
    .ipv4({ src: VM4.ip4, dst: VM2.ip4, ttl: 64 })
    .udp({ sport: 5353, dport: 9999 })
    .payload(Buffer.alloc(size, 0x62))
    .build();
  return packet()
    .eth({ src: '02:00:00:00:10:02', dst: '02:00:00:00:10:01' })
    .ipv4({ src: PA_B, dst: PA_A, df: true, ttl: 63 })
    .nvgre({ vsid: BLUE1, flowId: 0x5a })
    .payload(inner)
    .build();
};

describePrivileged('QoS stage (test-run)', () => {
  const dp = useDatapath();
  let ports: TypedMap<
    number,
    { classid: number; flags: number; inbound: QosRate; outbound: QosRate }
  >;
  let classes: TypedMap<
    { prefixlen: number; ifindex: number; family: number; addr: Uint8Array },
    { classid: number; tenant_bucket: number }
  >;
  let buckets: TypedMap<{ ifindex: number; direction: number }, { tat_ns: bigint }>;
  let tcaps: TypedMap<number, QosRate>;
  let ctrs: PerCpuTypedMap<
    { ifindex: number; direction: number },
    { passed_packets: bigint; passed_bytes: bigint; dropped_packets: bigint; dropped_bytes: bigint }
  >;
  const open = (name: string): BpfMap => BpfMap.openPinned(join(dp.pinRoot, name));
  // A second copy of tenet_port on the same maps, run with an skb ctx to read skb->priority back.
  let portObj: BpfObject | undefined;

  beforeAll(async () => {
    portObj = await loadObject('tenet_port', dp.pinRoot);
    dp.install(baseTables(), 0);
    ports = new TypedMap(
      open('tenet_qos_ports'),
      Maps.tenet_qos_ports.key,
      Maps.tenet_qos_ports.value,
    );
    classes = new TypedMap(open('tenet_qos_cls'), Maps.tenet_qos_cls.key, Maps.tenet_qos_cls.value);
    buckets = new TypedMap(
      open('tenet_qos_bkts'),
      Maps.tenet_qos_bkts.key,
      Maps.tenet_qos_bkts.value,
    );
    tcaps = new TypedMap(
      open('tenet_qos_tcaps'),
      Maps.tenet_qos_tcaps.key,
      Maps.tenet_qos_tcaps.value,
    );
    ctrs = new PerCpuTypedMap(
      open('tenet_qos_ctrs'),
      Maps.tenet_qos_ctrs.key,
      Maps.tenet_qos_ctrs.value,
    );
  });
  afterAll(() => {
    portObj?.close();
    tcaps?.close();
    ports?.close();
    classes?.close();
    buckets?.close();
    ctrs?.close();
  });

  const reset = (): void => {
    for (const m of [ports, buckets, ctrs] as const)
      for (const k of [...m.keys()]) m.delete(k as never);
    for (const k of [...classes.keys()]) classes.delete(k);
    for (const k of [...tcaps.keys()]) tcaps.delete(k);
  };
  const counters = (ifindex: number, direction: number) => {
    const v = ctrs.get({ ifindex, direction });
    if (!v) return { passed_packets: 0n, passed_bytes: 0n, dropped_packets: 0n, dropped_bytes: 0n };
    return sumPerCpu(v, ['passed_packets', 'passed_bytes', 'dropped_packets', 'dropped_bytes']);
  };

  /** tc ingress on vm1's port with a ctx; returns verdict and skb->priority after the program. */
  const runWithPriority = (
    frame: Buffer,
    priority: number,
  ): { retval: number; priority: number } => {
    const ctx = Buffer.alloc(SKB_CTX_SIZE);
    ctx.writeUInt32LE(priority, SKB_PRIORITY);
    const prog = portObj!.program('tenet_port_ingress');
    try {
      const r = prog.testRun({ data: frame, ctx, dataOutSize: frame.length + 512 });
      return { retval: r.retval, priority: (r.ctx as Buffer).readUInt32LE(SKB_PRIORITY) };
    } finally {
      prog.close();
    }
  };

  it("classifies a port's packets to its HTB leaf, or its destination class's leaf", () => {
    reset();
    ports.set(PORT_IFINDEX, { classid: PORT_CLASS, flags: 1, inbound: NONE, outbound: NONE });
    const key = addr16(VM4.ip4);
    classes.set(
      { prefixlen: 64 + 32, ifindex: PORT_IFINDEX, family: 4, addr: key },
      { classid: DEST_CLASS, tenant_bucket: 0 },
    );
    // The oracle: the reference model over the same map contents.
    const model = (flags: number): QosModelTables => ({
      ports: new Map([[PORT_IFINDEX, { classid: PORT_CLASS, flags }]]),
      classes: new Map([
        [PORT_IFINDEX, [{ family: 4, addr: ipToBytes(VM4.ip4), length: 32, classid: DEST_CLASS }]],
      ]),
    });
    const toVm4 = udp4({ dst: VM4.ip4, dmac: VM4.mac }).build();
    const r4 = runWithPriority(toVm4, 0);
    expect(r4.retval).toBe(7); // redirect (encapsulated to the NIC)
    expect(r4.priority).toBe(qosPriority(model(1), PORT_IFINDEX, 4, ipToBytes(VM4.ip4), 0));
    expect(r4.priority).toBe(DEST_CLASS);
    // IPv6 to the same VM: no v6 class, the port's leaf.
    const r6 = runWithPriority(udp6({ dst: VM4.ip6, dmac: VM4.mac }).build(), 0);
    expect(r6.retval).toBe(7);
    expect(r6.priority).toBe(qosPriority(model(1), PORT_IFINDEX, 6, ipToBytes(VM4.ip6), 0));
    expect(r6.priority).toBe(PORT_CLASS);
    // Without the classes flag the class table is not consulted.
    ports.set(PORT_IFINDEX, { classid: PORT_CLASS, flags: 0, inbound: NONE, outbound: NONE });
    expect(runWithPriority(toVm4, 0).priority).toBe(
      qosPriority(model(0), PORT_IFINDEX, 4, ipToBytes(VM4.ip4), 0),
    );
    // Counted as passed by the QoS stage, outbound (rx on the port).
    const c = counters(PORT_IFINDEX, 0);
    expect(c.passed_packets).toBe(3n);
    expect(c.passed_bytes).toBe(
      BigInt(2 * toVm4.length + udp6({ dst: VM4.ip6, dmac: VM4.mac }).build().length),
    );
  });

  it('leaves skb->priority alone for a port without QoS', () => {
    reset();
    const r = runWithPriority(udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(), 0x00050006);
    expect(r.retval).toBe(7);
    expect(r.priority).toBe(0x00050006);
    expect(ctrs.get({ ifindex: PORT_IFINDEX, direction: 0 })).toBeUndefined();
  });

  it('polices NVGRE for a capped VM on decapsulation: burst, then drop with qos_policed', () => {
    reset();
    const burst = 64 * 1024 + 1514;
    // 1 byte/s: nothing refills during the loop.
    ports.set(VM2_IFINDEX, { classid: 0, flags: 0, inbound: rate(1, burst), outbound: NONE });
    const frame = nvgreToVm2(1400);
    const ipLen = 1400 + 8 + 20;
    // The model's GCRA over the same sequence (1 byte/s: time does not matter).
    let tat = 0n;
    let fits = 0;
    for (let i = 0; i < 60; i++) {
      const g = gcra(tat, 10n ** 12n, ipLen, 1n, BigInt(burst));
      tat = g.tatNs;
      if (g.admit) fits++;
    }
    expect(fits).toBe(Math.floor(burst / ipLen));
    let passed = 0;
    let dropped = 0;
    const drops = new Set<string>();
    for (let i = 0; i < fits + 10; i++) {
      const r = dp.runXdp(frame);
      if (r.verdict === 'redirect') passed++;
      else {
        dropped++;
        for (const d of r.counters.drops) drops.add(d.reason);
      }
    }
    expect(passed).toBe(fits);
    expect(dropped).toBe(10);
    expect([...drops]).toEqual(['qos_policed']);
    const c = counters(VM2_IFINDEX, 1);
    expect(c).toEqual({
      passed_packets: BigInt(fits),
      passed_bytes: BigInt(fits * ipLen),
      dropped_packets: 10n,
      dropped_bytes: BigInt(10 * ipLen),
    });
  });

  it('refills at the configured rate', async () => {
    reset();
    const ipLen = 1000 + 8 + 20;
    // Burst of exactly one packet, two packets per second (slow enough for a loaded machine).
    ports.set(VM2_IFINDEX, {
      classid: 0,
      flags: 0,
      inbound: rate(ipLen * 2, ipLen),
      outbound: NONE,
    });
    const frame = nvgreToVm2(1000);
    expect(dp.runXdp(frame).verdict).toBe('redirect');
    expect(dp.runXdp(frame).verdict).toBe('drop');
    await new Promise((r) => setTimeout(r, 600)); // >= 500 ms: one packet's worth
    expect(dp.runXdp(frame).verdict).toBe('redirect');
    expect(dp.runXdp(frame).verdict).toBe('drop');
  });

  it("polices host-local delivery: the source's outbound cap, then the destination's inbound cap", () => {
    reset();
    const frame = udp4({ dst: VM2.ip4, dmac: VM2.mac, size: 500 }).build();
    const ipLen = frame.length - ETH;
    ports.set(PORT_IFINDEX, {
      classid: PORT_CLASS,
      flags: 0,
      inbound: NONE,
      outbound: rate(1000, 2 * ipLen),
    });
    const runs = [1, 2, 3].map(() => dp.runPort(frame));
    expect(runs.map((r) => r.verdict)).toEqual(['redirect', 'redirect', 'drop']);
    expect(runs[0]!.redirectIfindex).toBe(VM2_IFINDEX);
    expect(runs[2]!.counters.drops.map((d) => d.reason)).toEqual(['qos_policed_local']);
    // The destination's inbound cap.
    reset();
    ports.set(VM2_IFINDEX, { classid: 0, flags: 0, inbound: rate(1000, ipLen), outbound: NONE });
    const r2 = [1, 2].map(() => dp.runPort(frame));
    expect(r2.map((r) => r.verdict)).toEqual(['redirect', 'drop']);
    expect(r2[1]!.counters.drops.map((d) => d.reason)).toEqual(['qos_policed']);
    expect(counters(VM2_IFINDEX, 1).passed_packets).toBe(1n);
    expect(counters(VM2_IFINDEX, 1).dropped_packets).toBe(1n);
  });

  it('a tenant class cap polices across destinations with one bucket, keyed by the tenant', () => {
    reset();
    // The port's own class for VM4 (HTB leaf) and the tenant's cap on VM4 and VM5's addresses.
    const frame = udp4({ dst: VM4.ip4, dmac: VM4.mac, size: 500 }).build();
    const ipLen = frame.length - ETH;
    ports.set(PORT_IFINDEX, { classid: PORT_CLASS, flags: 1, inbound: NONE, outbound: NONE });
    classes.set(
      { prefixlen: 64 + 32, ifindex: PORT_IFINDEX, family: 4, addr: addr16(VM4.ip4) },
      { classid: DEST_CLASS, tenant_bucket: 7 },
    );
    tcaps.set(7, rate(1, 2 * ipLen)); // two packets, then nothing refills
    const r = [1, 2, 3].map(() => runWithPriority(frame, 0));
    expect(r.map((x) => x.retval)).toEqual([7, 7, 2]);
    expect(r[0]!.priority).toBe(DEST_CLASS);
    const c = counters(PORT_IFINDEX, 0);
    expect([c.passed_packets, c.dropped_packets]).toEqual([2n, 1n]);
    // The state is the tenant's (pseudo port 0x80000000|7, direction 2), not the port's.
    const tenantKey = { ifindex: 0x80000007, direction: 2 };
    expect(buckets.get(tenantKey)).toBeDefined();
    expect(buckets.get({ ifindex: PORT_IFINDEX, direction: 0 })).toBeUndefined();
    // Another port of the tenant spending the bucket is the same as this one spending it: with
    // the bucket refilled (state reset), traffic passes again; drained, it does not.
    buckets.delete(tenantKey);
    expect(runWithPriority(frame, 0).retval).toBe(7);
    buckets.set(tenantKey, { tat_ns: process.hrtime.bigint() + 10n ** 12n });
    expect(runWithPriority(frame, 0).retval).toBe(2);
  });

  it('two CPUs drawing from one bucket never exceed burst + rate * elapsed', async () => {
    reset();
    const frame = udp4({ dst: VM2.ip4, dmac: VM2.mac, size: 1000 }).build();
    const ipLen = frame.length - ETH;
    const bytesPerSec = 2_000_000; // far below what two CPUs of test-runs offer
    const burst = 64 * 1024 + 1514;
    ports.set(PORT_IFINDEX, {
      classid: 0,
      flags: 0,
      inbound: NONE,
      outbound: rate(bytesPerSec, burst),
    });
    interface Child {
      ready: Promise<void>;
      go(start: bigint, stop: bigint): void;
      done: Promise<{ runs: number; endNs: bigint; code: number | null; err: string }>;
    }
    const child = (cpu: number): Child => {
      const p = spawn(
        'taskset',
        [
          '-c',
          String(cpu),
          process.execPath,
          '--import',
          'tsx',
          'test/datapath/qos-hammer.ts',
        ].concat([dp.pinRoot, frame.toString('hex')]),
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      let onReady: () => void = () => undefined;
      const ready = new Promise<void>((r) => (onReady = r));
      p.stdout.on('data', (d) => {
        out += d;
        if (out.startsWith('ready\n')) onReady();
      });
      p.stderr.on('data', (d) => (err += d));
      const t = setTimeout(() => p.kill('SIGKILL'), 25_000);
      const done = new Promise<{ runs: number; endNs: bigint; code: number | null; err: string }>(
        (resolve) => {
          p.on('close', (code) => {
            clearTimeout(t);
            onReady();
            let runs = 0;
            let endNs = 0n;
            try {
              const j = JSON.parse(out.replace(/^ready\n/, '')) as { runs: number; endNs: string };
              runs = j.runs;
              endNs = BigInt(j.endNs);
            } catch {
              /* reported below */
            }
            resolve({ runs, endNs, code, err });
          });
        },
      );
      return { ready, done, go: (start, stop) => p.stdin.end(`${start} ${stop}\n`) };
    };
    const kids = [child(0), child(1)];
    // Both loaded: start together shortly (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns).
    await Promise.all(kids.map((k) => k.ready));
    const start = process.hrtime.bigint() + 200_000_000n;
    const stop = start + 1_000_000_000n;
    for (const k of kids) k.go(start, stop);
    const [a, b] = await Promise.all(kids.map((k) => k.done));
    expect(a!.code, a!.err).toBe(0);
    expect(b!.code, b!.err).toBe(0);
    const v = ctrs.get({ ifindex: PORT_IFINDEX, direction: 0 }) ?? [];
    // The passes of the local policer are counted by classification, which also ran for every
    // packet: admitted = classified - policed.
    const perCpu = v.map((x) => Number(x.passed_packets - x.dropped_packets));
    const admitted = perCpu.reduce((s, n) => s + n, 0);
    // From the first possible run to the end of the last one (a batch can run past `stop`).
    const end = a!.endNs > b!.endNs ? a!.endNs : b!.endNs;
    const elapsedS = Number(end - start) / 1e9;
    const bound = burst + bytesPerSec * elapsedS;
    console.log(
      `per-CPU policer: ${a!.runs + b!.runs} runs offered ${(((a!.runs + b!.runs) * ipLen) / elapsedS / 1e6).toFixed(1)} MB/s, ` +
        `admitted ${admitted} packets (${perCpu.join(' + ')} per CPU) = ${admitted * ipLen} bytes, bound ${bound}`,
    );
    expect(a!.runs + b!.runs).toBeGreaterThan((bound / ipLen) * 3); // the bucket was the limit
    expect(perCpu[0]).toBeGreaterThan(0);
    expect(perCpu[1]).toBeGreaterThan(0);
    expect(admitted * ipLen).toBeLessThanOrEqual(bound);
    // And it is a rate limiter, not a wall: most of what the rate allows got through.
    expect(admitted * ipLen).toBeGreaterThan(bytesPerSec * Number(stop - start) * 1e-9 * 0.9);
  }, 40_000);
});
