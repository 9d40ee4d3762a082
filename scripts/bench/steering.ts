// Receive steering benchmark (npm run bench:steering): what steering buys on the demo lab.
//
// hv2's VMs send UDP to hv1's VMs (blue-vm2 -> blue-vm1, red-vm2 -> red-vm1, equal load, 64-byte
// payloads, as fast as one Python sender each can), so NVGRE arrives at hv1's eth0 and tenet's
// XDP decapsulates it. A veth runs XDP on the CPU that transmitted into it, so pinning both
// senders to CPU 0 puts every frame's receive on CPU 0: the lab's stand-in for a NIC that
// delivers all traffic on one queue, which is the situation VMQ exists for. Compared in one run,
// interleaved, median of the repetitions:
//   one-cpu  no steering: decapsulation and delivery for both VMs run on CPU 0 too;
//   steered  blue-vm1 fixed on CPU 0, red-vm1 fixed on CPU 1 (VMQ): CPU 0 parses, picks the CPU
//            and hands red-vm1's frames to CPU 1's cpumap queue.
// Figures: the share of pipeline work (frames delivered, from the per-CPU port counters) on CPU 0
// (target with steering: within 60/40), and the frames per second the VMs received (their eth0
// rx counters) with steering as a ratio to one-cpu. The senders share CPU 0 with the receive path
// in both configurations (the lab has no separate wire), so the ratio says how much CPU 0 gains
// when half the pipeline leaves it.
//
// Reordering with vRSS: blue-vm1 spread over {0, 1}; 8 flows at 20,000 datagrams/s in total with
// per-flow sequence numbers, counted by a receiver in blue-vm1 ("late": a datagram that arrives
// after a higher number of its flow). Three variants: rss-like (flows 0-3 received on CPU 0,
// flows 4-7 on CPU 1, as NIC RSS would: some flows cross CPUs, some stay), and a sender that
// migrates between the CPUs every 500 datagrams (a flow's receiving CPU keeps changing, which
// NIC RSS never does) with and without steering.
//
// Usage: npm run bench:steering [-- --quick]   (root; writes bench/results/steering-<date>.json)

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HostAgent } from '../../agent/host/index.js';
import { Lab, buildTopology, loadLabFile, type Topology } from '../../agent/lab/index.js';
import type { Netns } from '../../agent/lab/index.js';
import { loadPolicyFile, parsePolicy, type Policy } from '../../agent/policy/index.js';
import type { BenchFigure, Section, SectionOptions, SectionResult } from './section.js';
import { machineDescription, summarize } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)).replace('/dist/', '/'));
const LAB_DIR = join(REPO, 'scripts', 'lab');
const PY = '/usr/bin/python3';
const FLOWS = join(REPO, 'scripts', 'bench', 'py', 'steer_flows.py');
const CA = '198.19.1.11'; // blue-vm1 and red-vm1 (different VSIDs)
const PORT_IF = { 'blue-vm1': 'vm-blue1', 'red-vm1': 'vm-red1' } as const;
type Port = keyof typeof PORT_IF;

interface Trial {
  config: 'one-cpu' | 'steered';
  /** share: both VMs get the same fixed rate; max: each sender as fast as it can. */
  kind: 'share' | 'max';
  seconds: number;
  /** Frames delivered by each CPU (both ports), from the per-CPU port counters. */
  deliveredPerCpu: number[];
  cpu0Share: number;
  /** Frames the two VMs' eth0 received, per second. */
  receivedPps: number;
  sent: number;
  /** Drop and error counters of the receive path's veths that grew during the trial. */
  lost: Record<string, number>;
}

/** Datagrams per second each VM gets in the share trials (equal load). */
const SHARE_RATE = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const steeringSection: Section = async (opts: SectionOptions): Promise<SectionResult> => {
  const reps = opts.quick ? 3 : 5;
  const seconds = opts.quick ? 2 : 3;
  const lab = await Lab.create('bench-steer');
  const agents: HostAgent[] = [];
  try {
    const topo: Topology = await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml')));
    const base = await loadPolicyFile(join(LAB_DIR, 'demo-policy.yaml'));
    const root = await lab.bpffsDir();
    const hv1 = await HostAgent.start({
      hostName: 'hv1',
      pinRoot: join(root, 'hv1'),
      netns: topo.host('hv1').ns.path,
    });
    agents.push(hv1);
    const hv2 = await HostAgent.start({
      hostName: 'hv2',
      pinRoot: join(root, 'hv2'),
      netns: topo.host('hv2').ns.path,
    });
    agents.push(hv2);
    await hv1.applyPolicy(base);
    await hv2.applyPolicy(base);
    const vm = (n: string): Netns => topo.vm(n).ns;
    const withSteering = (entries: unknown[]): Policy =>
      parsePolicy({ ...structuredClone(base), portSteering: entries });
    for (const v of ['blue-vm2', 'red-vm2'])
      await vm(v).execOk(['ping', '-c', '2', '-i', '0.2', '-W', '2', CA]);
    const ifs = await hv1.readInterfaces();
    const ifindex = (p: Port): number => ifs.get(PORT_IF[p])!.ifindex;
    const delivered = (): number[] => {
      const out = [0, 0];
      for (const p of Object.keys(PORT_IF) as Port[]) {
        for (const c of hv1.steering!.counters(ifindex(p))) {
          if (c.cpu < 2) out[c.cpu]! += Number(c.delivered);
        }
      }
      return out;
    };
    const vmRx = async (): Promise<number> => {
      let n = 0;
      for (const v of ['blue-vm1', 'red-vm1']) {
        const r = await vm(v).execOk(['cat', '/sys/class/net/eth0/statistics/rx_packets']);
        n += Number(r.stdout.trim());
      }
      return n;
    };
    /** Non-zero drop and error counters of the veths on the receive path (ethtool -S). */
    const losses = async (): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      const where: Array<[Netns, string, string]> = [
        [topo.host('hv1').ns, 'eth0', 'hv1/eth0'],
        [topo.host('hv1').ns, 'vm-blue1', 'hv1/vm-blue1'],
        [topo.host('hv1').ns, 'vm-red1', 'hv1/vm-red1'],
        [vm('blue-vm1'), 'eth0', 'blue-vm1/eth0'],
        [vm('red-vm1'), 'eth0', 'red-vm1/eth0'],
      ];
      for (const [ns, dev, label] of where) {
        const r = await ns.exec(['ethtool', '-S', dev]);
        for (const line of r.stdout.split('\n')) {
          const m = /^\s*(\S*(?:drop|err|full)\S*):\s*(\d+)/.exec(line);
          if (m && Number(m[2]) > 0)
            out.set(`${label}:${m[1]}`, (out.get(`${label}:${m[1]}`) ?? 0) + Number(m[2]));
        }
      }
      return out;
    };
    const lossDelta = (a: Map<string, number>, b: Map<string, number>): Record<string, number> =>
      Object.fromEntries(
        [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, v]) => v > 0),
      );
    const send = (
      from: string,
      o: {
        sport: number;
        flows: number;
        secs: number;
        rate: number;
        migrate: number;
        cpu?: number;
      },
    ) =>
      vm(from).execOk(
        [
          ...(o.cpu === undefined ? [] : ['taskset', '-c', String(o.cpu)]),
          PY,
          FLOWS,
          'send',
          CA,
          '9',
          String(o.sport),
          String(o.flows),
          String(o.secs),
          String(o.rate),
          String(o.migrate),
        ],
        { timeoutMs: (o.secs + 20) * 1000 },
      );

    const configs = {
      'one-cpu': base,
      steered: withSteering([
        { port: 'blue-vm1', mode: 'fixed', cpus: [0] },
        { port: 'red-vm1', mode: 'fixed', cpus: [1] },
      ]),
    } as const;
    const trials: Trial[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const order = (rep % 2 === 0 ? ['one-cpu', 'steered'] : ['steered', 'one-cpu']) as Array<
        keyof typeof configs
      >;
      for (const [config, kind] of order.flatMap((c) =>
        (['share', 'max'] as const).map((k) => [c, k] as const),
      )) {
        const rate = kind === 'share' ? SHARE_RATE : 0;
        await hv1.applyPolicy(configs[config]);
        await sleep(200);
        const d0 = delivered();
        const r0 = await vmRx();
        const l0 = await losses();
        const runs = await Promise.all([
          send('blue-vm2', { sport: 43000, flows: 4, secs: seconds, rate, migrate: 0, cpu: 0 }),
          send('red-vm2', { sport: 43100, flows: 4, secs: seconds, rate, migrate: 0, cpu: 0 }),
        ]);
        await sleep(300);
        const d1 = delivered();
        const r1 = await vmRx();
        const lost = lossDelta(l0, await losses());
        const per = d1.map((x, i) => x - d0[i]!);
        const total = per[0]! + per[1]!;
        const t: Trial = {
          config,
          kind,
          seconds,
          deliveredPerCpu: per,
          cpu0Share: total === 0 ? 0 : per[0]! / total,
          receivedPps: (r1 - r0) / seconds,
          sent: runs.reduce((a, r) => a + (JSON.parse(r.stdout) as { sent: number }).sent, 0),
          lost,
        };
        trials.push(t);
        opts.log(
          `${config} ${kind}: CPU0 share ${(t.cpu0Share * 100).toFixed(1)}% ` +
            `(delivered ${per.join(' / ')}), VMs received ${Math.round(t.receivedPps)} pps, ` +
            `sent ${t.sent}, lost ${JSON.stringify(lost)}`,
        );
      }
    }
    const of = (c: Trial['config'], k: Trial['kind'] = 'max') =>
      trials.filter((t) => t.config === c && t.kind === k);
    const ratios: number[] = [];
    for (let i = 0; i < reps; i++) {
      const a = of('one-cpu')[i]!;
      const b = of('steered')[i]!;
      ratios.push(b.receivedPps / a.receivedPps);
    }
    const share = (c: Trial['config']) =>
      summarize(of(c, 'share').map((t) => +(t.cpu0Share * 100).toFixed(1)));
    const steeredShare = share('steered');
    const withinTarget = steeredShare.median >= 40 && steeredShare.median <= 60;

    // Reordering with vRSS.
    const reorder: Array<{
      variant: string;
      steering: boolean;
      received: number;
      late: number;
      flows: number;
      sent: number;
    }> = [];
    const variants = [
      { variant: 'rss-like', steering: true },
      { variant: 'migrating-sender', steering: true },
      { variant: 'migrating-sender', steering: false },
    ];
    const rsecs = opts.quick ? 2 : 3;
    for (const v of variants) {
      await hv1.applyPolicy(
        v.steering ? withSteering([{ port: 'blue-vm1', mode: 'spread', cpus: [0, 1] }]) : base,
      );
      await sleep(200);
      const rx = vm('blue-vm1').spawn([PY, FLOWS, 'recv', '9', String(rsecs + 1.5)], {
        timeoutMs: (rsecs + 15) * 1000,
      });
      await sleep(300);
      const senders =
        v.variant === 'rss-like'
          ? [
              send('blue-vm2', {
                sport: 44000,
                flows: 4,
                secs: rsecs,
                rate: 10000,
                migrate: 0,
                cpu: 0,
              }),
              send('blue-vm2', {
                sport: 44100,
                flows: 4,
                secs: rsecs,
                rate: 10000,
                migrate: 0,
                cpu: 1,
              }),
            ]
          : [send('blue-vm2', { sport: 44200, flows: 8, secs: rsecs, rate: 20000, migrate: 500 })];
      const sent = (await Promise.all(senders)).reduce(
        (a, r) => a + (JSON.parse(r.stdout) as { sent: number }).sent,
        0,
      );
      const done = await rx.exited;
      const res = JSON.parse(done.stdout.trim().split('\n').pop() ?? '{}') as {
        received: number;
        late: number;
        flows: number;
      };
      reorder.push({ ...v, ...res, sent });
      opts.log(
        `reordering, ${v.variant}, steering ${v.steering ? 'spread {0,1}' : 'off'}: ` +
          `${res.late} late of ${res.received} received (${sent} sent, ${res.flows} flows)`,
      );
    }
    await hv1.applyPolicy(base);

    const figures: BenchFigure[] = [
      {
        key: 'steering.two_vms.cpu0_share_steered.percent',
        label: `pipeline work on CPU 0, two VMs at ${SHARE_RATE} pps each, steered (VMQ: one VM per CPU)`,
        unit: '%',
        value: steeredShare,
        target: 'within 60/40',
        met: withinTarget,
      },
      {
        key: 'steering.two_vms.cpu0_share_unsteered.percent',
        label: `pipeline work on CPU 0, two VMs at ${SHARE_RATE} pps each, no steering (all received on CPU 0)`,
        unit: '%',
        value: share('one-cpu'),
      },
      {
        key: 'steering.two_vms.received_steered.pps',
        label: 'decapsulated frames received by the two VMs, steered',
        unit: 'pps',
        value: summarize(of('steered').map((t) => Math.round(t.receivedPps))),
      },
      {
        key: 'steering.two_vms.received_one_cpu.pps',
        label: 'decapsulated frames received by the two VMs, everything on CPU 0',
        unit: 'pps',
        value: summarize(of('one-cpu').map((t) => Math.round(t.receivedPps))),
      },
      {
        key: 'steering.two_vms.received.ratio_one_cpu',
        label: 'receive throughput, steered / everything on one CPU (same repetition)',
        unit: 'ratio',
        value: summarize(ratios.map((r) => +r.toFixed(3))),
        note: 'senders share CPU 0 with the receive path in both configurations (veth lab)',
      },
      ...reorder.map(
        (r): BenchFigure => ({
          key: `steering.reorder.${r.variant.replace('-', '_')}.${r.steering ? 'spread' : 'off'}.late_packets`,
          label: `datagrams reordered within their flow, ${r.variant}, steering ${r.steering ? 'spread {0,1}' : 'off'}`,
          unit: 'packets',
          value: summarize([r.late]),
          ...(r.variant === 'rss-like' ? { target: 'none', met: r.late === 0 } : {}),
          note: `${r.received} received of ${r.sent} sent, ${r.flows} flows`,
        }),
      ),
    ];
    return {
      section: 'steering',
      title: 'Receive steering (VMQ / vRSS) on the demo lab',
      figures,
      notes: [
        `${reps} interleaved repetitions of ${seconds} s per configuration; medians quoted`,
        'receive CPU chosen by pinning the senders (a veth runs XDP on the transmitting CPU)',
        `trials: ${JSON.stringify(trials)}`,
        `reordering: ${JSON.stringify(reorder)}`,
      ],
    };
  } finally {
    for (const a of agents) await a.stop();
    await lab.teardown();
  }
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const result = await steeringSection({
    quick: values.quick === true,
    log: (l) => console.error(l),
  });
  const summary = {
    benchmark: 'steering',
    date: new Date().toISOString(),
    machine: machineDescription(),
    ...result,
  };
  const dir = join(REPO, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `steering-${summary.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
  for (const f of result.figures) {
    console.log(
      `${f.label}: median ${f.value.median} ${f.unit} (min ${f.value.min}, max ${f.value.max})` +
        (f.target === undefined ? '' : ` target ${f.target}: ${f.met ? 'met' : 'MISSED'}`),
    );
  }
  console.log(`written to ${file}`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`bench:steering failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    process.exit(1);
  });
}

export default steeringSection;
