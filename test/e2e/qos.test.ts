// QoS end to end on a two-host lab (agent/lab/qos.ts) with real TCP and UDP from iperf3: caps on
// the shaped uplink path hold within 5% (issue), weighted minimums share a 1 Gbit/s uplink within
// 10% of 1:2:5, an unreserved VM gets the default bucket's share, unused share is lent to others,
// inbound caps are policed, ping through a capped path stays bounded, and a restarted agent
// changes nothing and grants no extra credit. Each run is short (1 s warm-up + 2 s measured).
// The path's own limit (no QoS) is measured first and every figure is printed.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { HostAgent } from '../../agent/host/index.js';
import { readQosCounters } from '../../agent/host/qos.js';
import { defaultBurstBytes } from '../../agent/compiler/qos.js';
import {
  pingRtts,
  percentile,
  qosLabSpec,
  qosPolicy,
  runStreams,
  SINK_IP,
  type QosSender,
} from '../../agent/lab/qos.js';
import type { PortQos } from '../../agent/policy/index.js';
import { buildTopology, useLab, type Netns, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { join } from 'node:path';
import { Maps } from '../../agent/abi/generated.js';
import { BpfMap, TypedMap } from '../../agent/bpf/index.js';

const MEASURE_S = 2;
const report: Record<string, unknown> = {};
const mbit = (bps: number): number => Math.round(bps / 1e4) / 100;

describePrivileged('QoS end to end (iperf3 on a two-host lab)', () => {
  const ref = useLab('qos', async (lab) => ({
    topo: await buildTopology(lab, qosLabSpec()),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const vm = (n: QosSender | 'sink'): Netns => topo().vm(n).ns;
  const agents = new Map<string, HostAgent>();
  const hv1 = (): HostAgent => agents.get('hv1') as HostAgent;
  let baselineTcp = 0;
  let baselineUdp = 0;

  const apply = async (portQos: PortQos[], capacityMbps = 1000, defaultWeight = 1) => {
    const policy = qosPolicy({
      uplinks: [
        { host: 'hv1', interface: 'eth0', capacityMbps, defaultBucket: { weight: defaultWeight } },
      ],
      portQos,
    });
    for (const a of agents.values()) await a.applyPolicy(policy);
  };

  beforeAll(async () => {
    for (const h of ['hv1', 'hv2']) {
      const agent = await HostAgent.start({
        hostName: h,
        pinRoot: join(ref.value.bpffs, h),
        netns: topo().host(h).ns.path,
      });
      agents.set(h, agent);
      await agent.applyPolicy(qosPolicy());
    }
  }, 60_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.stop();
    console.log(`QoS e2e figures: ${JSON.stringify(report, null, 1)}`);
  });

  it('measures the path without QoS (the limit every figure is read against)', async () => {
    const [tcp] = await runStreams(vm('sink'), [{ from: vm('q1'), port: 5201 }], MEASURE_S);
    baselineTcp = tcp!.receivedBps;
    const [udp] = await runStreams(
      vm('sink'),
      [{ from: vm('q1'), port: 5202, udp: true, bitrate: '3000M', length: 1400 }],
      MEASURE_S,
    );
    baselineUdp = udp!.receivedBps;
    report.pathLimit = { tcpMbps: mbit(baselineTcp), udpMbps: mbit(baselineUdp) };
    expect(baselineTcp).toBeGreaterThan(50e6);
  }, 30_000);

  for (const cap of [10, 100, 1000]) {
    // At 10 Mbit/s a 2 s window carries 2.5 MB: one TCP retransmission timeout (200 ms) would be
    // 10% of it, so the slowest cap is measured for longer.
    const seconds = cap === 10 ? 4 : MEASURE_S;
    it(`an outbound cap of ${cap} Mbit/s holds within 5% for TCP and UDP`, async () => {
      await apply([{ port: 'q1', maximum: { outbound: { mbps: cap } } }], 10_000);
      let [tcp] = await runStreams(vm('sink'), [{ from: vm('q1'), port: 5201 }], seconds);
      // A TCP sender starved of CPU by the test files running beside this one (CI runs two at a
      // time on two cores) falls short of a cap it would fill on its own: one longer second
      // measurement then decides. Never above the cap is asserted on every measurement.
      const tcpIpOf = (bps: number): number => (bps * 1458) / 1406;
      expect(tcpIpOf(tcp!.receivedBps)).toBeLessThanOrEqual(cap * 1e6 * 1.05);
      if (tcpIpOf(tcp!.receivedBps) < cap * 1e6 * 0.95) {
        [tcp] = await runStreams(vm('sink'), [{ from: vm('q1'), port: 5201 }], seconds * 2);
      }
      const [udp] = await runStreams(
        vm('sink'),
        [
          {
            from: vm('q1'),
            port: 5202,
            udp: true,
            bitrate: `${Math.round(cap * 1.3)}M`,
            length: 1400,
          },
        ],
        MEASURE_S,
      );
      // Caps count the VM's IP bytes; iperf3 reports payload. Full-size TCP segments carry
      // 1458 - 20 (IP) - 32 (TCP with timestamps) = 1406 payload bytes; UDP datagrams of 1400
      // bytes are 1428-byte IP packets. The IP rate is the payload rate times that ratio.
      const tcpIp = tcpIpOf(tcp!.receivedBps);
      const udpIp = (udp!.receivedBps * 1428) / 1400;
      report[`cap${cap}`] = {
        tcpGoodputMbps: mbit(tcp!.receivedBps),
        udpGoodputMbps: mbit(udp!.receivedBps),
        tcpIpRatio: Math.round((tcpIp / (cap * 1e6)) * 1000) / 1000,
        udpIpRatio: Math.round((udpIp / (cap * 1e6)) * 1000) / 1000,
        tcpRetransmits: tcp!.retransmits,
      };
      // Never above the cap; within 5% below it wherever the path itself can carry the cap
      // (measured above: a single UDP stream of 1400-byte datagrams is CPU-bound well below
      // 1 Gbit/s here, so the UDP 1000 Mbit/s case can only show that the cap does not bind).
      expect(tcpIp).toBeLessThanOrEqual(cap * 1e6 * 1.05);
      expect(udpIp).toBeLessThanOrEqual(cap * 1e6 * 1.05);
      if (cap * 1e6 <= baselineTcp * 0.9) {
        expect(tcpIp).toBeGreaterThanOrEqual(cap * 1e6 * 0.95);
      }
      if (cap * 1e6 <= baselineUdp * 0.9) {
        expect(udpIp).toBeGreaterThanOrEqual(cap * 1e6 * 0.95);
      }
      // The counters say what happened: the QoS stage passed q1's packets, its HTB class sent
      // them and held some back (delayed: over the ceiling).
      const st = await hv1().qosStatus();
      const q1Class = st.uplinks[0]?.classes.find((k) => k.port === 'q1');
      expect(q1Class?.sentBytes ?? 0).toBeGreaterThan(0);
      if (cap * 1e6 <= baselineTcp * 0.9) expect(q1Class?.overlimits ?? 0).toBeGreaterThan(0);
      const out = st.ports.find((p) => p.port === 'q1' && p.direction === 'outbound');
      expect(out?.passedPackets ?? 0n).toBeGreaterThan(0n);
    }, 40_000);
  }

  const shares = (rates: number[]): number[] => {
    const total = rates.reduce((a, b) => a + b, 0);
    return rates.map((r) => r / total);
  };

  it('three VMs with weights 1:2:5 saturating a 1 Gbit/s uplink share it 1:2:5 (within 10%)', async () => {
    await apply([
      { port: 'q1', minimum: { weight: 1 } },
      { port: 'q2', minimum: { weight: 2 } },
      { port: 'q3', minimum: { weight: 5 } },
    ]);
    const r = await runStreams(
      vm('sink'),
      // Two streams each, so every class stays backlogged on a busy 2-core machine.
      (['q1', 'q2', 'q3'] as const).map((n, i) => ({ from: vm(n), port: 5201 + i, parallel: 2 })),
      MEASURE_S,
    );
    const rates = r.map((x) => x.receivedBps);
    const got = shares(rates);
    const want = [1 / 8, 2 / 8, 5 / 8];
    report.weights125 = {
      mbps: rates.map(mbit),
      totalMbps: mbit(rates.reduce((a, b) => a + b, 0)),
      shares: got.map((x) => Math.round(x * 1000) / 1000),
      want,
    };
    got.forEach((g, i) =>
      expect(Math.abs(g - (want[i] as number)) / (want[i] as number)).toBeLessThanOrEqual(0.1),
    );
    // Saturated: the uplink's 1 Gbit/s of encapsulated frames, seen as TCP goodput.
    expect(rates.reduce((a, b) => a + b, 0)).toBeGreaterThan(0.85e9);
  }, 40_000);

  it("a VM without a reservation gets the default bucket's share; an idle share is lent", async () => {
    await apply(
      [
        { port: 'q1', minimum: { weight: 1 } },
        { port: 'q2', minimum: { weight: 2 } },
        { port: 'q3', minimum: { weight: 5 } },
      ],
      // 500 Mbit/s: four VMs of two streams each keep every class backlogged on 2 cores.
      500,
      2,
    );
    const all = await runStreams(
      vm('sink'),
      (['q1', 'q2', 'q3', 'q4'] as const).map((n, i) => ({
        from: vm(n),
        port: 5201 + i,
        parallel: 2,
      })),
      MEASURE_S,
    );
    const rates = all.map((x) => x.receivedBps);
    const got = shares(rates);
    const want = [1 / 10, 2 / 10, 5 / 10, 2 / 10];
    // q3 (weight 5) stops: q1, q2 and q4 use its share (work-conserving), still 1:2:2.
    const lent = await runStreams(
      vm('sink'),
      (['q1', 'q2', 'q4'] as const).map((n, i) => ({ from: vm(n), port: 5211 + i, parallel: 2 })),
      MEASURE_S,
    );
    const lentRates = lent.map((x) => x.receivedBps);
    const total = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    report.defaultBucket = {
      mbps: rates.map(mbit),
      shares: got.map((x) => Math.round(x * 1000) / 1000),
      want,
      afterQ3StopsMbps: lentRates.map(mbit),
      totalBeforeMbps: mbit(total(rates)),
      totalAfterMbps: mbit(total(lentRates)),
    };
    got.forEach((g, i) =>
      expect(Math.abs(g - (want[i] as number)) / (want[i] as number)).toBeLessThanOrEqual(0.1),
    );
    expect(total(lentRates)).toBeGreaterThan(total(rates) * 0.9);
    lentRates.forEach((r, i) =>
      expect(r).toBeGreaterThan((rates[[0, 1, 3][i] as number] as number) * 1.5),
    );
  }, 60_000);

  it('an inbound cap polices what reaches the VM (TCP and UDP)', async () => {
    // The policer's burst (default 300 ms at the rate) can be spent inside the measured window,
    // so a run may exceed the cap by at most burst / measured time.
    const cap = 100e6;
    const burstBytes = defaultBurstBytes(cap);
    const slack = (burstBytes * 8) / MEASURE_S;
    await apply([{ port: 'q1', maximum: { inbound: { mbps: cap / 1e6 } } }]);
    const [tcp] = await runStreams(
      vm('sink'),
      [{ from: vm('q1'), port: 5201, reverse: true }],
      MEASURE_S,
    );
    const [udp] = await runStreams(
      vm('sink'),
      [{ from: vm('q1'), port: 5202, reverse: true, udp: true, bitrate: '130M', length: 1400 }],
      MEASURE_S,
    );
    const ctr = readQosCounters(join(ref.value.bpffs, 'hv1')).find(
      (c) => c.direction === 'inbound' && c.droppedPackets > 0n,
    );
    report.inbound100 = {
      tcpMbps: mbit(tcp!.receivedBps),
      udpMbps: mbit(udp!.receivedBps),
      udpLostPercent: udp!.lostPercent,
      burstBytes,
      policedPackets: Number(ctr?.droppedPackets ?? 0n),
    };
    expect(tcp!.receivedBps).toBeLessThanOrEqual(cap * 1.05 + slack);
    expect(udp!.receivedBps).toBeLessThanOrEqual(cap * 1.05 + slack);
    expect(tcp!.receivedBps).toBeGreaterThanOrEqual(cap * 0.8);
    expect(udp!.receivedBps).toBeGreaterThanOrEqual(cap * 0.7);
    expect(ctr?.droppedPackets ?? 0n).toBeGreaterThan(0n);
  }, 40_000);

  it('ping through the capped path of a VM stays bounded while the VM sends at its cap', async () => {
    const under = async (): Promise<number[]> => {
      const load = runStreams(vm('sink'), [{ from: vm('q1'), port: 5201 }], 3, 0);
      await new Promise((r) => setTimeout(r, 500));
      const { rtts } = await pingRtts(vm('q1'), SINK_IP, 100, 20);
      await load;
      return rtts;
    };
    await apply([]);
    const free = await under();
    await apply([{ port: 'q1', maximum: { outbound: { mbps: 10 } } }]);
    const capped = await under();
    report.latency = {
      unlimited: { p50: percentile(free, 50), p99: percentile(free, 99), replies: free.length },
      cap10: { p50: percentile(capped, 50), p99: percentile(capped, 99), replies: capped.length },
    };
    expect(capped.length).toBeGreaterThanOrEqual(90);
    // The leaf queue holds at most max(20 ms at the cap, two 64 KiB packets): ~110 ms at 10 Mbit/s.
    expect(percentile(capped, 99)).toBeLessThan(200);
  }, 40_000);

  const dumpBuckets = (): { key: string; tat: bigint }[] => {
    const m = new TypedMap(
      BpfMap.openPinned(join(ref.value.bpffs, 'hv1', Maps.tenet_qos_bkts.name)),
      Maps.tenet_qos_bkts.key,
      Maps.tenet_qos_bkts.value,
    );
    try {
      return [...m.entries()]
        .map(([k, v]) => ({ key: `${k.ifindex}/${k.direction}`, tat: v.tat_ns }))
        .sort((a, b) => a.key.localeCompare(b.key));
    } finally {
      m.close();
    }
  };

  it('a restarted agent changes nothing and grants no extra credit', async () => {
    await apply([{ port: 'q1', maximum: { outbound: { mbps: 100 }, inbound: { mbps: 50 } } }]);
    await runStreams(vm('sink'), [{ from: vm('q1'), port: 5201, reverse: true }], 1, 0);
    const hv1Ns = topo().host('hv1').ns;
    const classes = async (): Promise<string> =>
      (await hv1Ns.execOk(['tc', '-s', 'class', 'show', 'dev', 'eth0'])).stdout;
    const before = await classes();
    const bkts = dumpBuckets();
    await hv1().stop();
    const again = await HostAgent.start({
      hostName: 'hv1',
      pinRoot: join(ref.value.bpffs, 'hv1'),
      netns: hv1Ns.path,
    });
    agents.set('hv1', again);
    const r = await again.applyPolicy(
      qosPolicy({
        uplinks: [
          { host: 'hv1', interface: 'eth0', capacityMbps: 1000, defaultBucket: { weight: 1 } },
        ],
        portQos: [{ port: 'q1', maximum: { outbound: { mbps: 100 }, inbound: { mbps: 50 } } }],
      }),
    );
    expect(r.qos.tc, r.qos.tc.join('; ')).toEqual([]);
    expect(r.qos.mapWrites).toBe(0);
    expect(r.qos.mapDeletes).toBe(0);
    // The classes were not recreated (their byte counters go on) and the buckets are untouched.
    const sent = (text: string): number[] =>
      [...text.matchAll(/Sent (\d+) bytes/g)].map((m) => Number(m[1]));
    const after = await classes();
    expect(sent(after).length).toBe(sent(before).length);
    sent(after).forEach((n, i) => expect(n).toBeGreaterThanOrEqual(sent(before)[i] as number));
    expect(sent(before).some((n) => n > 0)).toBe(true);
    // Same buckets, none reset: a reset (tat 0) would be a full bucket, extra credit. tat only
    // moves forward (stray packets of the finished stream may still move it).
    const bktsAfter = dumpBuckets();
    expect(bktsAfter.map((x) => x.key)).toEqual(bkts.map((x) => x.key));
    bktsAfter.forEach((b, i) => expect(b.tat).toBeGreaterThanOrEqual(bkts[i]!.tat));
    expect(bkts.length).toBeGreaterThan(0);
  }, 40_000);
});
