// QoS benchmark (`npm run bench:qos`, root): on the QoS lab (agent/lab/qos.ts, two hosts, real
// iperf3 and ping through the NVGRE overlay) and through BPF_PROG_TEST_RUN:
//   - achieved / configured rate for outbound caps of 10, 100 and 1000 Mbit/s with UDP packets of
//     64, 512 and 1458 bytes (IP size; 1458 is the tenant MTU, the largest a VM can send here) and
//     with TCP, next to what the same traffic achieves without a cap (the path's limit, measured
//     in the same run);
//   - weighted shares achieved vs configured (1:2:5 on a 1 Gbit/s uplink);
//   - ping p50/p99 through a path at its 10 Mbit/s cap vs the same load without a cap;
//   - per-packet cost of the QoS stage: tenet_port_ingress delivering host-locally with and
//     without QoS on both ports (classification, source policer, destination policer) as ratios
//     to the no-op tc program, interleaved, medians.
// Rates count the VM's IP bytes (what caps count): iperf3's payload rate times IP size / payload.
//
// Usage: npm run bench:qos [-- --quick]   writes bench/results/qos-<date>.json

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Maps } from '../../agent/abi/generated.js';
import { BpfMap, BpfObject, TypedMap } from '../../agent/bpf/index.js';
import { compile } from '../../agent/compiler/index.js';
import { bpfBuildDir, loadObject } from '../../agent/datapath/objects.js';
import { HostAgent } from '../../agent/host/index.js';
import { Lab, buildTopology, type Netns } from '../../agent/lab/index.js';
import {
  percentile,
  pingRtts,
  qosLabSpec,
  qosPolicy,
  runStreams,
  SINK_IP,
} from '../../agent/lab/qos.js';
import { packet } from '../../agent/packet/index.js';
import type { PortQos } from '../../agent/policy/index.js';
import { BpfPolicyTables } from '../../agent/reconciler/bpf-tables.js';
import { reconcile } from '../../agent/reconciler/index.js';
import type { BenchFigure, Section, SectionResult } from './section.js';
import { machineDescription, summarize } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)).replace('/dist/', '/'));
const CAPS = [10, 100, 1000] as const;
const SIZES = [64, 512, 1458] as const;
const MEASURE_S = 2;

function fig(
  key: string,
  label: string,
  unit: string,
  values: number[],
  extra: Partial<BenchFigure> = {},
): BenchFigure {
  return { key, label, unit, value: summarize(values), ...extra };
}

async function trafficFigures(
  quick: boolean,
  log: (l: string) => void,
): Promise<{ figures: BenchFigure[]; notes: string[] }> {
  const reps = quick ? 1 : 3;
  const figures: BenchFigure[] = [];
  const notes: string[] = [];
  const lab = await Lab.create('bench-qos');
  const agents: HostAgent[] = [];
  try {
    const topo = await buildTopology(lab, qosLabSpec());
    const bpffs = await lab.bpffsDir();
    for (const h of ['hv1', 'hv2']) {
      const a = await HostAgent.start({
        hostName: h,
        pinRoot: join(bpffs, h),
        netns: topo.host(h).ns.path,
      });
      agents.push(a);
      await a.applyPolicy(qosPolicy());
    }
    const vm = (n: string): Netns => topo.vm(n).ns;
    const apply = async (portQos: PortQos[], capacityMbps = 10_000): Promise<void> => {
      const p = qosPolicy({
        uplinks: [{ host: 'hv1', interface: 'eth0', capacityMbps, defaultBucket: { weight: 1 } }],
        portQos,
      });
      for (const a of agents) await a.applyPolicy(p);
    };
    const udpIp = async (size: number, bitrate: string, port: number): Promise<number> => {
      const [r] = await runStreams(
        vm('sink'),
        [{ from: vm('q1'), port, udp: true, bitrate, length: size - 28 }],
        MEASURE_S,
      );
      return (r!.receivedBps * size) / (size - 28);
    };
    const tcpIp = async (port: number): Promise<number> => {
      const [r] = await runStreams(vm('sink'), [{ from: vm('q1'), port }], MEASURE_S);
      return (r!.receivedBps * 1458) / 1406;
    };

    // The path's limit per packet size (no cap), then each cap.
    await apply([]);
    const limit = new Map<string, number[]>();
    for (let i = 0; i < reps; i++) {
      for (const size of SIZES) {
        const v = await udpIp(size, '3000M', 5201);
        limit.set(`udp${size}`, [...(limit.get(`udp${size}`) ?? []), v]);
      }
      const t = await tcpIp(5202);
      limit.set('tcp', [...(limit.get('tcp') ?? []), t]);
    }
    for (const [k, v] of limit) {
      figures.push(
        fig(
          `qos.path_limit.${k}.mbps`,
          `no cap: ${k} (IP Mbit/s)`,
          'Mbit/s',
          v.map((x) => x / 1e6),
        ),
      );
    }
    for (const cap of CAPS) {
      await apply([{ port: 'q1', maximum: { outbound: { mbps: cap } } }]);
      log(`qos bench: cap ${cap} Mbit/s`);
      for (const size of SIZES) {
        const ratios: number[] = [];
        for (let i = 0; i < reps; i++) {
          ratios.push((await udpIp(size, `${Math.round(cap * 1.2)}M`, 5203)) / (cap * 1e6));
        }
        const lim = summarize(limit.get(`udp${size}`) ?? [0]).median;
        figures.push(
          fig(
            `qos.cap_${cap}.udp_${size}.ratio`,
            `cap ${cap} Mbit/s, UDP ${size} B: achieved/configured`,
            'ratio',
            ratios,
            {
              target: 'within 5%',
              met: Math.abs(summarize(ratios).median - 1) <= 0.05,
              note:
                lim < cap * 1e6
                  ? `the path carries only ${(lim / 1e6).toFixed(0)} Mbit/s of ${size}-byte UDP without a cap (CPU-bound sender): the cap does not bind`
                  : size < 1458
                    ? 'HTB counts the encapsulated frame (+56 B per packet) and ceilings are scaled for full-size packets, so small packets get less than the cap (never more)'
                    : 'full-size packets: the ceiling scaling is exact',
            },
          ),
        );
      }
      const tcp: number[] = [];
      for (let i = 0; i < reps; i++) tcp.push((await tcpIp(5204)) / (cap * 1e6));
      figures.push(
        fig(
          `qos.cap_${cap}.tcp.ratio`,
          `cap ${cap} Mbit/s, TCP: achieved/configured`,
          'ratio',
          tcp,
          {
            target: 'within 5%',
            met: Math.abs(summarize(tcp).median - 1) <= 0.05,
          },
        ),
      );
    }

    // Weighted shares.
    log('qos bench: weights 1:2:5 on 1 Gbit/s');
    await apply(
      [
        { port: 'q1', minimum: { weight: 1 } },
        { port: 'q2', minimum: { weight: 2 } },
        { port: 'q3', minimum: { weight: 5 } },
      ],
      1000,
    );
    const want = [1 / 8, 2 / 8, 5 / 8];
    const shares: number[][] = [[], [], []];
    const totals: number[] = [];
    for (let i = 0; i < reps; i++) {
      const r = await runStreams(
        vm('sink'),
        ['q1', 'q2', 'q3'].map((n, k) => ({ from: vm(n), port: 5210 + k, parallel: 2 })),
        MEASURE_S,
      );
      const rates = r.map((x) => x.receivedBps);
      const total = rates.reduce((a, b) => a + b, 0);
      totals.push((total * 1458) / 1406 / 1e6);
      rates.forEach((x, k) => shares[k]!.push(x / total));
    }
    shares.forEach((s, k) => {
      const dev = Math.abs(summarize(s).median - want[k]!) / want[k]!;
      figures.push(
        fig(
          `qos.weights_125.q${k + 1}.share`,
          `weights 1:2:5: share of q${k + 1} (configured ${want[k]!.toFixed(3)})`,
          'ratio',
          s,
          {
            target: `${want[k]!.toFixed(3)} within 10%`,
            met: dev <= 0.1,
          },
        ),
      );
    });
    figures.push(
      fig(
        'qos.weights_125.total.mbps',
        'weights 1:2:5: total (IP Mbit/s; the uplink carries 1000 Mbit/s of encapsulated frames)',
        'Mbit/s',
        totals,
      ),
    );

    // Latency at the cap vs unlimited.
    const latency = async (): Promise<number[]> => {
      const load = runStreams(vm('sink'), [{ from: vm('q1'), port: 5220 }], 3, 0);
      await new Promise((r) => setTimeout(r, 500));
      const { rtts } = await pingRtts(vm('q1'), SINK_IP, 100, 20);
      await load;
      return rtts;
    };
    for (const [label, portQos] of [
      ['unlimited', []],
      ['cap_10', [{ port: 'q1', maximum: { outbound: { mbps: 10 } } }]],
      ['cap_100', [{ port: 'q1', maximum: { outbound: { mbps: 100 } } }]],
    ] as const) {
      await apply([...portQos]);
      const p50: number[] = [];
      const p99: number[] = [];
      for (let i = 0; i < reps; i++) {
        const r = await latency();
        p50.push(percentile(r, 50));
        p99.push(percentile(r, 99));
      }
      figures.push(
        fig(`qos.latency.${label}.p50_ms`, `ping under TCP load, ${label}: p50`, 'ms', p50),
      );
      figures.push(
        fig(`qos.latency.${label}.p99_ms`, `ping under TCP load, ${label}: p99`, 'ms', p99),
      );
    }
    const caps = await agents[0]!.qosStatus();
    notes.push(
      `kernel: htb ${caps.capabilities.htb}, fq ${caps.capabilities.fq}, fq_codel ${caps.capabilities.fqCodel}; leaf qdisc ${caps.leafQdisc}`,
    );
  } finally {
    for (const a of agents) await a.stop();
    await lab.teardown();
  }
  return { figures, notes };
}

/** Per-packet cost of the QoS stage on tc local delivery, as ratios to the no-op tc program. */
async function perPacket(quick: boolean): Promise<BenchFigure[]> {
  const pinRoot = `/sys/fs/bpf/tenet-bench-qos-${randomBytes(4).toString('hex')}`;
  mkdirSync(pinRoot, { recursive: true });
  const noopObj = BpfObject.open(join(bpfBuildDir(), 'testing', 'noop.o'));
  let port: BpfObject | undefined;
  try {
    await noopObj.load();
    port = await loadObject('tenet_port', pinRoot);
    // q1 on the loopback (test-runs see ifindex 1), q2 a local port the program redirects to.
    const facts = new Map([
      ['eth0', { ifindex: 2, mac: '02:00:00:00:00:01', mtu: 1500 }],
      ['vm-q1', { ifindex: 1, mac: '02:00:00:70:00:0b', mtu: 1458 }],
      ['vm-q2', { ifindex: 50, mac: '02:00:00:70:00:0c', mtu: 1458 }],
      ['vm-q3', { ifindex: 51, mac: '02:00:00:70:00:0d', mtu: 1458 }],
      ['vm-q4', { ifindex: 52, mac: '02:00:00:70:00:0e', mtu: 1458 }],
    ]);
    const tables = BpfPolicyTables.openPinned(pinRoot);
    try {
      await reconcile(tables, compile(qosPolicy(), 'hv1', facts));
    } finally {
      tables.close();
    }
    const qosPorts = new TypedMap(
      BpfMap.openPinned(join(pinRoot, Maps.tenet_qos_ports.name)),
      Maps.tenet_qos_ports.key,
      Maps.tenet_qos_ports.value,
    );
    const noop = noopObj.program('noop_tc');
    const prog = port.program('tenet_port_ingress');
    const repeat = quick ? 200_000 : 1_000_000;
    const huge = { bytes_per_sec: 1n << 40n, burst_bytes: 1n << 30n };
    const none = { bytes_per_sec: 0n, burst_bytes: 0n };
    const out: BenchFigure[] = [];
    try {
      for (const size of [64, 512, 1458]) {
        const frame = packet()
          .eth({ src: '02:00:00:70:00:0b', dst: '02:00:00:70:00:0c' })
          .ipv4({ src: '198.19.7.11', dst: '198.19.7.12', ttl: 64, df: true })
          .udp({ sport: 4000, dport: 5000 })
          .payload(Buffer.alloc(size - 28, 0x61))
          .build();
        const ns = { noop: [] as number[], plain: [] as number[], qos: [] as number[] };
        for (let i = 0; i < (quick ? 5 : 11); i++) {
          ns.noop.push(noop.testRun({ data: frame, repeat }).durationNs);
          qosPorts.delete(1);
          qosPorts.delete(50);
          const plain = prog.testRun({ data: frame, repeat });
          if (plain.retval !== 7) throw new Error(`local delivery returned ${plain.retval}`);
          ns.plain.push(plain.durationNs);
          qosPorts.set(1, { classid: 0x7e100b, flags: 0, inbound: none, outbound: huge });
          qosPorts.set(50, { classid: 0x7e1032, flags: 0, inbound: huge, outbound: none });
          const q = prog.testRun({ data: frame, repeat });
          if (q.retval !== 7) throw new Error(`local delivery with QoS returned ${q.retval}`);
          ns.qos.push(q.durationNs);
        }
        const noopMed = summarize(ns.noop).median;
        out.push(
          fig(`qos.per_packet.noop_tc_${size}.ns`, `no-op tc program, ${size} B`, 'ns', ns.noop),
        );
        out.push(
          fig(
            `qos.per_packet.local_${size}.ratio_noop`,
            `port ingress, local delivery, no QoS, ${size} B`,
            'ratio',
            ns.plain.map((x) => x / noopMed),
          ),
        );
        out.push(
          fig(
            `qos.per_packet.local_qos_${size}.ratio_noop`,
            `port ingress, local delivery, QoS on both ports, ${size} B`,
            'ratio',
            ns.qos.map((x) => x / noopMed),
          ),
        );
        out.push(
          fig(
            `qos.per_packet.stage_${size}.ratio_noop`,
            `QoS stage alone (with - without), ${size} B`,
            'ratio',
            ns.qos.map((x, i) => (x - ns.plain[i]!) / noopMed),
            {
              note: 'classification + source policer (GCRA, one compare-and-swap) + destination policer + per-CPU counters',
            },
          ),
        );
      }
    } finally {
      noop.close();
      prog.close();
      qosPorts.close();
    }
    return out;
  } finally {
    port?.close();
    noopObj.close();
    rmSync(pinRoot, { recursive: true, force: true });
  }
}

export const qosSection: Section = async ({ quick, log }): Promise<SectionResult> => {
  log('qos bench: per-packet cost');
  const pp = await perPacket(quick);
  const traffic = await trafficFigures(quick, log);
  return {
    section: 'qos',
    title: 'QoS: caps, weighted shares, latency, per-packet cost',
    figures: [...pp, ...traffic.figures],
    notes: [
      'Rates are the VM’s IP bytes (iperf3 payload rate times IP size / payload size), measured for 2 s after a 1 s warm-up.',
      'Outbound is shaped by HTB on the uplink (BPF sets skb->priority); inbound is policed (not measured here, see docs/qos.md).',
      ...traffic.notes,
    ],
  };
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const result = await qosSection({
    quick: values.quick === true,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const date = new Date().toISOString().slice(0, 10);
  const dir = join(REPO, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `qos-${date}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      { machine: machineDescription(), date: new Date().toISOString(), ...result },
      null,
      2,
    ) + '\n',
  );
  for (const f of result.figures) {
    const v = f.value;
    process.stdout.write(
      `${f.label}: ${v.median.toFixed(3)} ${f.unit} (min ${v.min.toFixed(3)}, max ${v.max.toFixed(3)}, n ${v.n})${f.target ? ` target ${f.target}: ${f.met ? 'met' : 'MISSED'}` : ''}${f.note ? ` [${f.note}]` : ''}\n`,
    );
  }
  process.stdout.write(`wrote ${file}\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(
      `bench:qos failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  });
}
