// Restart under load: packets lost across kill -9 and restart of tenetd, counted by sequence
// numbers. The demo lab (scripts/lab/demo-lab.yaml) with a real tenetd per hypervisor (run in the
// host's network namespace with `nsenter --net=`, pins in the lab's bpffs directory) and the demo
// policy; fixed-rate sequenced UDP streams (scripts/bench/py/seq_stream.py) cross the overlay both
// ways while both daemons are killed with SIGKILL and started again, ROUNDS times, each time
// waiting until both are SERVING (gRPC health). The senders stop by themselves after a bound;
// every stream reports what it sent and what arrived and the longest run of missing numbers.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TenetClient } from '../../agent/api/client.js';
import { CounterReader } from '../../agent/datapath/counters.js';
import {
  Lab,
  buildTopology,
  loadLabFile,
  type BgProcess,
  type Topology,
} from '../../agent/lab/index.js';
import { Traffic, type StreamSpec } from '../../test/resilience/harness.js';
import {
  ROOT,
  killDaemon,
  startDaemon,
  tenetdConfig,
  waitServing,
  type DaemonProc,
} from '../../test/helpers/tenetd.js';
import type { BenchFigure, Section, SectionResult } from './section.js';
import { summarize } from './stats.js';

const LAB_DIR = join(ROOT, 'scripts', 'lab');
const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const STREAMS: readonly StreamSpec[] = [
  {
    name: 'blue-vm1 -> blue-vm2 (IPv4)',
    from: 'blue-vm1',
    to: 'blue-vm2',
    dst: '198.19.1.12',
    port: 7101,
  },
  {
    name: 'blue-vm2 -> blue-vm1 (IPv6)',
    from: 'blue-vm2',
    to: 'blue-vm1',
    dst: 'fd00:1:1::11',
    port: 7102,
  },
  {
    name: 'red-vm1 -> red-vm2 (IPv4)',
    from: 'red-vm1',
    to: 'red-vm2',
    dst: '198.19.1.12',
    port: 7103,
  },
];

/**
 * Drop counters along the lab: every interface's rx/tx dropped (ip -s link) in the hosts, the
 * switch and the VMs, and tenet's per-reason drop counters of both hosts; keyed by where.
 */
async function pathDrops(topo: Topology, bpffs: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const nss = [topo.switch.ns, ...topo.hosts.map((h) => h.ns), ...topo.vms.map((v) => v.ns)];
  for (const ns of nss) {
    const r = await ns.ip('-s', '-j', 'link', 'show');
    const links = JSON.parse(r.stdout) as Array<{
      ifname: string;
      stats64?: { rx: { dropped: number }; tx: { dropped: number } };
    }>;
    for (const l of links) {
      if (l.stats64 === undefined || l.ifname === 'lo') continue;
      out.set(`${ns.short} ${l.ifname} rx dropped`, l.stats64.rx.dropped);
      out.set(`${ns.short} ${l.ifname} tx dropped`, l.stats64.tx.dropped);
    }
  }
  for (const h of HOSTS) {
    const c = new CounterReader(join(bpffs, h));
    try {
      for (const d of c.dropTotals()) out.set(`tenet ${h} ${d.reason}`, Number(d.packets));
    } finally {
      c.close();
    }
  }
  return out;
}

export const restart: Section = async ({ quick, log }): Promise<SectionResult> => {
  const rounds = quick ? 3 : 10;
  const rate = quick ? 1000 : 2000;
  const lab = await Lab.create('bench-restart');
  const tmp = mkdtempSync(join(tmpdir(), 'bench-restart-'));
  const daemons = new Map<Host, DaemonProc>();
  let traffic: Traffic | undefined;
  let bulkServer: BgProcess | undefined;
  let bulkClient: BgProcess | undefined;
  try {
    const topo = await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml')));
    const bpffs = await lab.bpffsDir();
    const configs = new Map<Host, string>();
    for (const h of HOSTS)
      configs.set(
        h,
        tenetdConfig(join(tmp, h), {
          hostName: h,
          pinRoot: join(bpffs, h),
          datapath: 'datapath:\n  backend: host\n',
          metricsListen: null,
          logLevel: 'info',
        }),
      );
    const socket = (h: Host): string => join(tmp, h, 'run', 'tenetd.sock');
    const up = async (h: Host): Promise<number> => {
      const t0 = performance.now();
      const d = startDaemon(
        configs.get(h)!,
        {},
        {
          wrap: ['nsenter', `--net=${topo.host(h).ns.path}`, '--'],
        },
      );
      daemons.set(h, d);
      return Promise.race([
        waitServing(socket(h), t0, 30_000),
        d.exited.then((code): number => {
          throw new Error(`tenetd on ${h} exited (${code}) before SERVING`);
        }),
      ]);
    };
    await Promise.all(HOSTS.map(up));
    const policy = readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8');
    for (const h of HOSTS) {
      const c = new TenetClient(socket(h));
      try {
        await c.policy('Apply', { text: policy }, { timeoutMs: 60_000 });
      } finally {
        c.close();
      }
    }
    // The paths work (and neighbours are resolved) before the streams start.
    for (const s of STREAMS) {
      const r = await topo.vm(s.from).ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', s.dst], {
        timeoutMs: 10_000,
      });
      if (r.code !== 0) throw new Error(`restart: ${s.name}: ${s.dst} unreachable`);
    }

    const maxSeconds = rounds * 15 + 30;
    // Load besides the streams: a bulk TCP transfer red-vm2 -> red-vm1 across the overlay for the
    // whole phase (bounded by -t and a process time limit; stopped when the rounds are done).
    const red1 = topo.vm('red-vm1').ns;
    bulkServer = red1.spawn(['iperf3', '-s', '-1', '-p', '5299'], {
      timeoutMs: (maxSeconds + 30) * 1000,
    });
    await sleep(300);
    bulkClient = topo
      .vm('red-vm2')
      .ns.spawn(['iperf3', '-c', '198.19.1.11', '-p', '5299', '-t', String(maxSeconds), '-J'], {
        timeoutMs: (maxSeconds + 20) * 1000,
      });
    const drops0 = await pathDrops(topo, bpffs);
    traffic = await Traffic.start(topo, STREAMS, [], { rate, maxSeconds });
    await sleep(1000);
    const serving: number[] = [];
    for (let r = 0; r < rounds; r++) {
      await Promise.all(
        HOSTS.map(async (h) => {
          const d = daemons.get(h)!;
          d.child.kill('SIGKILL');
          await d.exited;
        }),
      );
      await sleep(300); // down for a moment, as after a crash
      const ms = await Promise.all(HOSTS.map(up));
      serving.push(...ms);
      log(
        `restart: round ${r + 1}/${rounds}: both tenetd SERVING after ${ms.map((x) => x.toFixed(0)).join(' / ')} ms`,
      );
      await sleep(1000);
    }
    const report = await traffic.stop();
    const drops1 = await pathDrops(topo, bpffs);
    const dropped = [...drops1]
      .map(([k, v]) => [k, v - (drops0.get(k) ?? 0)] as const)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v}`);
    traffic = undefined;
    const bulk = await bulkClient.kill('SIGINT', 3000);
    let bulkMbps = NaN;
    try {
      // Interrupted, iperf3 has no server report: the sender's own average is what there is.
      const j = JSON.parse(bulk.stdout) as { end?: { sum_sent?: { bits_per_second?: number } } };
      bulkMbps = (j.end?.sum_sent?.bits_per_second ?? NaN) / 1e6;
    } catch {
      /* iperf3 interrupted before its summary: reported as NaN */
    }

    const figures: BenchFigure[] = [];
    let lostTotal = 0;
    let sentTotal = 0;
    for (const s of report.streams) {
      lostTotal += s.sent - s.received;
      sentTotal += s.sent;
    }
    figures.push({
      key: 'restart.lost_packets',
      label: `packets lost across ${rounds} kill -9 + restart rounds of both tenetd (${STREAMS.length} streams x ${rate} pps)`,
      unit: 'packets',
      value: summarize([lostTotal]),
      target: 'zero loss',
      met: lostTotal === 0,
      note: report.streams
        .map(
          (s) =>
            `${s.name}: sent ${s.sent}, received ${s.received}, longest gap ${s.maxGap}${s.finSeen ? '' : ', no FIN'}`,
        )
        .join('; '),
    });
    figures.push({
      key: 'restart.streams_longest_gap',
      label: 'longest run of missing sequence numbers in any stream',
      unit: 'packets',
      value: summarize([Math.max(...report.streams.map((s) => s.maxGap))]),
    });
    figures.push({
      key: 'restart.serving_ms',
      label: 'tenetd start to gRPC SERVING after kill -9 (adopting the pinned datapath)',
      unit: 'ms',
      value: summarize(serving),
    });
    return {
      section: 'restart',
      title: 'Restart under load (kill -9 of tenetd)',
      figures,
      notes: [
        `${sentTotal} sequenced UDP packets over ${report.seconds.toFixed(0)} s across hosts through the overlay ` +
          `(blue both ways, IPv4 and IPv6, and red), ${rounds} rounds of kill -9 of both daemons, 300 ms down, ` +
          'restart, SERVING, 1 s of traffic.',
        `Load alongside: an iperf3 TCP bulk transfer red-vm2 -> red-vm1 across the overlay for the whole phase ` +
          `(${bulkMbps.toFixed(0)} Mbit/s on average).`,
        'The datapath (pinned maps and links) keeps forwarding while tenetd is dead; a restarted tenetd adopts it.',
        `Drops during the phase, by where they were counted (device drop counters of every lab interface, ` +
          `tenet's drop counters by reason): ${dropped.length ? dropped.join(', ') : 'none'}.`,
      ],
    };
  } finally {
    await traffic?.abort();
    await bulkClient?.kill('SIGKILL', 0);
    await bulkServer?.kill('SIGKILL', 0);
    await Promise.all([...daemons.values()].map((d) => killDaemon(d)));
    await lab.teardown();
    rmSync(tmp, { recursive: true, force: true });
  }
};
