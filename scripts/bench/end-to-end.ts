// End to end across a lab, VM to VM on two hosts, for tenet's NVGRE overlay against the physical
// limit and against what a user would build from kernel parts, all built by this section in
// namespaces of one lab (addresses from 198.18.0.0/15 only) and measured interleaved, round by
// round:
//
//   overlay    tenet: a host agent per host (XDP on the host NIC, tc on the VM ports), one
//              virtual subnet, VM MTU 1458 (1500 - 42 bytes of NVGRE);
//   limit      the same shape joined by plain routed veths: no overlay, no programs, VM MTU 1500;
//   limit_xdp  limit with a no-op XDP program on both host NICs (no RR test): XDP on a veth changes
//              how the peer hands it packets (no GSO/GRO batching through the XDP path), so this
//              separates what XDP's presence costs from what tenet's work costs;
//   vxlan      the kernel-native alternative: VXLAN (VNI 5001, UDP 4789) on the host NIC and a
//              Linux bridge per host with the VM port, VM MTU 1450. (nftables rules equivalent to
//              port ACLs and HTB for caps belong here once tenet has those features.)
//
// Each host is a namespace whose eth0 is wired to an underlay switch namespace (a bridge whose
// ports finish checksums and segment in software, as a NIC does before the wire: the demo lab's
// convention, the same for all topologies). Per round and topology: iperf3 TCP single stream and 4
// streams, iperf3 UDP with 64-byte payloads at an unlimited rate (packets per second received),
// and TCP request/response (scripts/bench/c/tcp_rr.c, compiled into build/bench/: transactions/s,
// p50/p99). For UDP the packets of every hop are counted from the device counters (ip -s link),
// and for the overlay from tenet's own counters too, so loss is placed where it happens.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject, xdpAttach, xdpDetach, type BpfProgram } from '../../agent/bpf/index.js';
import { CounterReader } from '../../agent/datapath/counters.js';
import { bpfBuildDir } from '../../agent/datapath/objects.js';
import { HostAgent } from '../../agent/host/index.js';
import {
  Lab,
  buildTopology,
  iperf3,
  type Netns,
  type Topology,
  type TopologySpec,
} from '../../agent/lab/index.js';
import { parsePolicy } from '../../agent/policy/index.js';
import type { BenchFigure, Section, SectionResult } from './section.js';
import { summarize } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const RR_SRC = join(REPO, 'scripts', 'bench', 'c', 'tcp_rr.c');
const RR_BIN = join(REPO, 'build', 'bench', 'tcp_rr');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** build/bench/tcp_rr, compiled when missing or older than its source. */
export function buildRrTool(): string {
  if (!existsSync(RR_BIN) || statSync(RR_BIN).mtimeMs < statSync(RR_SRC).mtimeMs) {
    mkdirSync(join(REPO, 'build', 'bench'), { recursive: true });
    // clang: always there (scripts/setup installs it for the BPF build).
    execFileSync('clang', ['-O2', '-Wall', '-o', RR_BIN, RR_SRC], { stdio: 'inherit' });
  }
  return RR_BIN;
}

type TopoKey = 'overlay' | 'limit' | 'limit_xdp' | 'vxlan';
const LABELS: Record<TopoKey, string> = {
  overlay: 'tenet NVGRE overlay',
  limit: 'plain routed veths (limit)',
  limit_xdp: 'plain routed veths + no-op XDP on host NICs',
  vxlan: 'VXLAN + Linux bridge',
};

interface Hop {
  name: string;
  ns: Netns;
  ifname: string;
  dir: 'rx' | 'tx';
}

interface Built {
  key: TopoKey;
  topo: Topology;
  client: Netns;
  server: Netns;
  dst: string;
  hops: Hop[];
  /** Overlay only: the pin roots of hv1 and hv2 (tenet's counters). */
  pinRoots?: [string, string];
}

/** Switch + two hosts with one VM each; names prefixed so several topologies share one lab. */
function spec(
  p: string,
  vm: { mtu: number; addrs: [string, string]; gw?: [string, string]; macs?: [string, string] },
  host: { forwarding?: boolean; portAddrs?: [string, string] } = {},
): TopologySpec {
  const h = (i: 0 | 1): TopologySpec['hosts'][number] => ({
    name: `${p}-h${i + 1}`,
    phys: { name: 'eth0', addrs: [`198.18.0.${i + 1}/24`], switchPort: `p-${p}-h${i + 1}` },
    ...(host.forwarding ? { forwarding: true } : {}),
    ...(host.portAddrs
      ? {
          routes: [
            { dst: host.portAddrs[1 - i]!.replace(/\.1\/24$/, '.0/24'), via: `198.18.0.${2 - i}` },
          ],
        }
      : {}),
    vms: [
      {
        name: `${p}-vm${i + 1}`,
        port: `vm${i + 1}`,
        ...(vm.macs ? { mac: vm.macs[i] } : {}),
        addrs: [vm.addrs[i]],
        mtu: vm.mtu,
        gro: true,
        ...(host.portAddrs ? { portAddrs: [host.portAddrs[i]] } : {}),
        ...(vm.gw ? { routes: [{ dst: 'default', via: vm.gw[i] }] } : {}),
      },
    ],
  });
  return { switch: { name: `${p}-sw` }, hosts: [h(0), h(1)] };
}

function hops(t: Topology): Hop[] {
  const [h1, h2] = t.hosts as [Topology['hosts'][number], Topology['hosts'][number]];
  const v1 = h1.vms[0]!;
  const v2 = h2.vms[0]!;
  return [
    { name: 'vm1 eth0 tx', ns: v1.ns, ifname: 'eth0', dir: 'tx' },
    { name: 'host1 vm port rx', ns: h1.ns, ifname: v1.port.name, dir: 'rx' },
    { name: 'host1 eth0 tx', ns: h1.ns, ifname: 'eth0', dir: 'tx' },
    { name: 'switch port1 rx', ns: t.switch.ns, ifname: h1.switchPort.name, dir: 'rx' },
    { name: 'switch port2 tx', ns: t.switch.ns, ifname: h2.switchPort.name, dir: 'tx' },
    { name: 'host2 eth0 rx', ns: h2.ns, ifname: 'eth0', dir: 'rx' },
    { name: 'host2 vm port tx', ns: h2.ns, ifname: v2.port.name, dir: 'tx' },
    { name: 'vm2 eth0 rx', ns: v2.ns, ifname: 'eth0', dir: 'rx' },
  ];
}

interface DevStats {
  packets: number;
  dropped: number;
}

async function hopStats(hs: Hop[]): Promise<DevStats[]> {
  const byNs = new Map<Netns, Record<string, { rx: DevStats; tx: DevStats }>>();
  for (const h of hs) {
    if (byNs.has(h.ns)) continue;
    const r = await h.ns.ip('-s', '-j', 'link', 'show');
    const links = JSON.parse(r.stdout) as Array<{
      ifname: string;
      stats64: { rx: DevStats; tx: DevStats };
    }>;
    byNs.set(h.ns, Object.fromEntries(links.map((l) => [l.ifname, l.stats64])));
  }
  return hs.map((h) => {
    const s = byNs.get(h.ns)![h.ifname]![h.dir];
    return { packets: s.packets, dropped: s.dropped };
  });
}

function tenetSample(pinRoot: string): { encap: bigint; decap: bigint; drops: bigint } {
  const r = new CounterReader(pinRoot);
  try {
    let encap = 0n;
    let decap = 0n;
    for (const v of r.vsidTraffic()) {
      encap += v.encap_packets;
      decap += v.decap_packets;
    }
    const drops = r.dropTotals().reduce((a, d) => a + d.packets, 0n);
    return { encap, decap, drops };
  } finally {
    r.close();
  }
}

async function tcpRr(b: Built, seconds: number, rr: string): Promise<Record<string, number>> {
  const port = 7777;
  const srv = b.server.spawn([rr, 'server', String(port), String(Math.ceil(seconds) + 20)], {
    timeoutMs: (seconds + 25) * 1000,
  });
  try {
    for (let i = 0; ; i++) {
      const r = await b.server.exec(['ss', '-Hltn', `sport = :${port}`], { timeoutMs: 5000 });
      if (r.stdout.trim() !== '') break;
      if (i > 100) throw new Error(`tcp_rr server in ${b.server.name} did not listen`);
      await sleep(50);
    }
    const r = await b.client.exec([rr, 'client', b.dst, String(port), String(seconds), '1'], {
      timeoutMs: (seconds + 15) * 1000,
    });
    if (r.code !== 0) throw new Error(`tcp_rr client in ${b.client.name}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, number>;
  } finally {
    await srv.kill('SIGTERM', 1000);
  }
}

/** The receiving VM's UDP counters (/proc/net/snmp is per network namespace). */
async function udpSnmp(ns: Netns): Promise<{ inDatagrams: number; rcvbufErrors: number }> {
  const r = await ns.execOk(['cat', '/proc/net/snmp'], { timeoutMs: 5000 });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/).map(Number);
  const get = (k: string): number => vals[names.indexOf(k)] ?? NaN;
  return { inDatagrams: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors') };
}

interface UdpRun {
  pps: number;
  /** Packets per second that reached vm2's eth0 (the path's rate, before the receiving app). */
  forwardedPps: number;
  sentPps: number;
  hops: number[];
  /** The devices' own drop counters over the run, per hop. */
  hopDrops: number[];
  /** Receiving VM: datagrams delivered to sockets, and dropped for a full socket buffer. */
  socket: { delivered: number; rcvbufErrors: number };
  tenet?: { encap: number; decap: number; drops: number };
}

async function udp64(b: Built, seconds: number): Promise<UdpRun> {
  const before = await hopStats(b.hops);
  const s0 = await udpSnmp(b.server);
  const t0 = b.pinRoots?.map(tenetSample);
  const r = await iperf3(b.server, b.client, b.dst, {
    udp: true,
    length: 64,
    bitrate: '0',
    seconds,
  });
  await sleep(200); // late packets reach the counters
  const after = await hopStats(b.hops);
  const s1 = await udpSnmp(b.server);
  const t1 = b.pinRoots?.map(tenetSample);
  const sum = (
    r.json.end as { sum?: { packets?: number; lost_packets?: number; seconds?: number } }
  ).sum;
  const packets = sum?.packets ?? 0;
  const lost = sum?.lost_packets ?? 0;
  const secs = sum?.seconds ?? seconds;
  const hopDeltas = after.map((a, i) => a.packets - before[i]!.packets);
  const run: UdpRun = {
    pps: (packets - lost) / secs,
    forwardedPps: hopDeltas[hopDeltas.length - 1]! / secs,
    sentPps: packets / secs,
    hops: hopDeltas,
    hopDrops: after.map((a, i) => a.dropped - before[i]!.dropped),
    socket: {
      delivered: s1.inDatagrams - s0.inDatagrams,
      rcvbufErrors: s1.rcvbufErrors - s0.rcvbufErrors,
    },
  };
  if (t0 && t1) {
    run.tenet = {
      encap: Number(t1[0]!.encap - t0[0]!.encap),
      decap: Number(t1[1]!.decap - t0[1]!.decap),
      drops: Number(t1[0]!.drops - t0[0]!.drops + t1[1]!.drops - t0[1]!.drops),
    };
  }
  return run;
}

function overlayPolicy(): unknown {
  const mac = (i: number): string => `02:00:00:b1:00:1${i}`;
  return {
    providerAddresses: [
      { host: 'hv1', address: '198.18.0.1', interface: 'eth0', prefixLength: 24 },
      { host: 'hv2', address: '198.18.0.2', interface: 'eth0', prefixLength: 24 },
    ],
    routingDomains: [
      {
        name: 'bench',
        virtualSubnets: [
          { name: 'web', vsid: 5001, prefixes: ['198.19.1.0/24'], gateway: { ipv4: '198.19.1.1' } },
        ],
      },
    ],
    ports: [1, 2].map((i) => ({
      name: `vm${i}`,
      host: `hv${i}`,
      interface: `vm${i}`,
      mac: mac(i),
      vsid: 5001,
      addresses: [`198.19.1.1${i}`],
    })),
    lookupRecords: [1, 2].map((i) => ({
      vsid: 5001,
      ca: `198.19.1.1${i}`,
      mac: mac(i),
      pa: `198.18.0.${i}`,
    })),
    customerRoutes: [],
  };
}

export interface E2eLab {
  readonly built: Record<'overlay' | 'limit' | 'vxlan', Built>;
  /** No-op XDP on (or off) the limit topology's host NICs. */
  xdpOn(on: boolean): void;
  /** Stops the agents, frees the no-op program (the lab is the caller's to tear down). */
  close(): Promise<void>;
}

/** Builds the three topologies in `lab` and checks each path with a ping. */
export async function buildE2eLab(lab: Lab, log: (line: string) => void): Promise<E2eLab> {
  const agents: HostAgent[] = [];
  let noopObj: BpfObject | undefined;
  let noop: BpfProgram | undefined;
  const close = async (): Promise<void> => {
    for (const a of agents) await a.stop().catch(() => undefined);
    noop?.close();
    noopObj?.close();
  };
  try {
    log('end-to-end: building the lab (overlay, limit, vxlan)');
    const bpffs = await lab.bpffsDir();
    // (a) tenet overlay
    const o = await buildTopology(
      lab,
      spec('o', {
        mtu: 1458,
        addrs: ['198.19.1.11/24', '198.19.1.12/24'],
        gw: ['198.19.1.1', '198.19.1.1'],
        macs: ['02:00:00:b1:00:11', '02:00:00:b1:00:12'],
      }),
    );
    const policy = parsePolicy(overlayPolicy());
    const pinRoots: [string, string] = [join(bpffs, 'hv1'), join(bpffs, 'hv2')];
    for (const [i, h] of o.hosts.entries()) {
      const a = await HostAgent.start({
        hostName: `hv${i + 1}`,
        pinRoot: pinRoots[i]!,
        netns: h.ns.path,
      });
      agents.push(a);
      await a.applyPolicy(policy);
    }
    // (b) plain routed veths
    const l = await buildTopology(
      lab,
      spec(
        'l',
        {
          mtu: 1500,
          addrs: ['198.19.11.11/24', '198.19.12.12/24'],
          gw: ['198.19.11.1', '198.19.12.1'],
        },
        { forwarding: true, portAddrs: ['198.19.11.1/24', '198.19.12.1/24'] },
      ),
    );
    // (c) VXLAN + bridge
    const v = await buildTopology(
      lab,
      spec('v', { mtu: 1450, addrs: ['198.19.1.11/24', '198.19.1.12/24'] }),
    );
    for (const [i, h] of v.hosts.entries()) {
      await h.ns.ip(
        'link',
        'add',
        'vx0',
        'type',
        'vxlan',
        'id',
        '5001',
        'local',
        `198.18.0.${i + 1}`,
        'remote',
        `198.18.0.${2 - i}`,
        'dstport',
        '4789',
        'dev',
        'eth0',
      );
      await lab.bridge(h.ns, 'br-vm');
      await lab.bridgePort(h.ns, 'br-vm', 'vx0');
      await lab.bridgePort(h.ns, 'br-vm', h.vms[0]!.port.name);
    }
    noopObj = BpfObject.open(join(bpfBuildDir(), 'testing', 'noop.o'));
    await noopObj.load();
    noop = noopObj.program('noop_xdp');
    const xdpOn = (on: boolean): void => {
      for (const h of l.hosts) {
        if (on) xdpAttach({ prog: noop!, netns: h.ns.path, ifname: 'eth0', mode: 'native' });
        else xdpDetach({ netns: h.ns.path, ifname: 'eth0', mode: 'native' });
      }
    };

    const built: Record<'overlay' | 'limit' | 'vxlan', Built> = {
      overlay: {
        key: 'overlay',
        topo: o,
        client: o.vms[0]!.ns,
        server: o.vms[1]!.ns,
        dst: '198.19.1.12',
        hops: hops(o),
        pinRoots,
      },
      limit: {
        key: 'limit',
        topo: l,
        client: l.vms[0]!.ns,
        server: l.vms[1]!.ns,
        dst: '198.19.12.12',
        hops: hops(l),
      },
      vxlan: {
        key: 'vxlan',
        topo: v,
        client: v.vms[0]!.ns,
        server: v.vms[1]!.ns,
        dst: '198.19.1.12',
        hops: hops(v),
      },
    };
    // Warm-up: neighbour resolution, the overlay's ARP answers, and a check that each path works.
    for (const b of Object.values(built)) {
      const r = await b.client.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', b.dst], {
        timeoutMs: 10_000,
      });
      if (r.code !== 0) throw new Error(`end-to-end: ${b.key}: ${b.dst} unreachable: ${r.stdout}`);
    }

    return { built, xdpOn, close };
  } catch (e) {
    await close();
    throw e;
  }
}

export const endToEnd: Section = async ({ quick, log }): Promise<SectionResult> => {
  const rounds = quick ? 3 : 5;
  const secs = quick ? 2 : 5;
  const rr = buildRrTool();
  const lab = await Lab.create('bench-e2e');
  let e2e: E2eLab | undefined;
  try {
    e2e = await buildE2eLab(lab, log);
    const { built, xdpOn } = e2e;
    const m = new Map<string, number[]>();
    const add = (k: string, x: number): void => void m.set(k, [...(m.get(k) ?? []), x]);
    const udpRuns = new Map<TopoKey, UdpRun[]>();
    const order: TopoKey[] = ['overlay', 'limit', 'limit_xdp', 'vxlan'];
    for (let r = 0; r < rounds; r++) {
      for (const key of order) {
        const b = key === 'limit_xdp' ? built.limit : built[key];
        if (key === 'limit_xdp') xdpOn(true);
        try {
          const t1 = await iperf3(b.server, b.client, b.dst, { seconds: secs });
          add(`tcp_1.${key}`, t1.receivedBps / 1e6);
          const t4 = await iperf3(b.server, b.client, b.dst, { seconds: secs, parallel: 4 });
          add(`tcp_4.${key}`, t4.receivedBps / 1e6);
          const u = await udp64(b, secs);
          add(`udp64.${key}`, u.pps);
          add(`udp64fwd.${key}`, u.forwardedPps);
          if (key === 'limit_xdp') {
            log(
              `end-to-end: round ${r + 1}/${rounds} limit_xdp: TCP ${(t1.receivedBps / 1e6).toFixed(0)} / ${(t4.receivedBps / 1e6).toFixed(0)} Mbit/s, UDP64 ${u.pps.toFixed(0)} pps`,
            );
            continue;
          }
          udpRuns.set(key, [...(udpRuns.get(key) ?? []), u]);
          const q = await tcpRr(b, secs, rr);
          add(`rr.${key}.tps`, q.tps!);
          add(`rr.${key}.p50`, q.p50_us!);
          add(`rr.${key}.p99`, q.p99_us!);
        } finally {
          if (key === 'limit_xdp') xdpOn(false);
        }
        log(
          `end-to-end: round ${r + 1}/${rounds} ${key}: TCP ${m.get(`tcp_1.${key}`)!.at(-1)!.toFixed(0)} / ` +
            `${m.get(`tcp_4.${key}`)!.at(-1)!.toFixed(0)} Mbit/s` +
            `, UDP64 ${m.get(`udp64.${key}`)!.at(-1)!.toFixed(0)} pps, RR ${m.get(`rr.${key}.tps`)!.at(-1)!.toFixed(0)}/s`,
        );
      }
    }

    const figures: BenchFigure[] = [];
    const ratio = (a: string, b: string): number[] => m.get(a)!.map((x, i) => x / m.get(b)![i]!);
    for (const [t, what] of [
      ['tcp_1', 'TCP 1 stream'],
      ['tcp_4', 'TCP 4 streams'],
    ] as const) {
      for (const key of order)
        figures.push({
          key: `end_to_end.${t}.${key}.mbps`,
          label: `${what}: ${LABELS[key]}`,
          unit: 'Mbit/s',
          value: summarize(m.get(`${t}.${key}`)!),
        });
      const vs = summarize(ratio(`${t}.overlay`, `${t}.vxlan`));
      figures.push({
        key: `end_to_end.${t}.overlay_vs_vxlan`,
        label: `${what}: overlay / VXLAN+bridge`,
        unit: 'ratio',
        value: vs,
        target: '>= 1.0',
        met: vs.median >= 1,
      });
      const of = summarize(ratio(`${t}.overlay`, `${t}.limit`));
      figures.push({
        key: `end_to_end.${t}.overlay_of_limit`,
        label: `${what}: overlay / plain-veth limit`,
        unit: 'ratio',
        value: of,
        target: '>= 0.9',
        met: of.median >= 0.9,
      });
      figures.push({
        key: `end_to_end.${t}.limit_xdp_of_limit`,
        label: `${what}: limit with no-op XDP / limit`,
        unit: 'ratio',
        value: summarize(ratio(`${t}.limit_xdp`, `${t}.limit`)),
        note: 'what XDP on the host NIC veths costs by itself (GUIDE: XDP changes veth GSO/GRO)',
      });
    }
    for (const key of ['overlay', 'limit', 'vxlan'] as const) {
      const runs = udpRuns.get(key)!;
      const last = runs[runs.length - 1]!;
      const chain = built[key].hops
        .map(
          (h, i) =>
            `${h.name} ${last.hops[i]}${last.hopDrops[i] ? ` (dropped ${last.hopDrops[i]})` : ''}`,
        )
        .join(' -> ');
      const tenet = last.tenet
        ? `; tenet counters: encapsulated ${last.tenet.encap} (hv1), decapsulated ${last.tenet.decap} (hv2), dropped ${last.tenet.drops}`
        : '';
      figures.push({
        key: `end_to_end.udp64.${key}.pps`,
        label: `UDP 64-byte payload, received: ${LABELS[key]}`,
        unit: 'pps',
        value: summarize(m.get(`udp64.${key}`)!),
        note: `sender offered ${summarize(runs.map((x) => x.sentPps)).median.toFixed(0)} pps (median); last run per hop: ${chain}; vm2 UDP sockets: delivered ${last.socket.delivered}, dropped for a full receive buffer ${last.socket.rcvbufErrors}${tenet}`,
      });
    }
    for (const key of ['overlay', 'limit', 'vxlan'] as const) {
      const runs = udpRuns.get(key)!;
      const pct = (num: (x: UdpRun) => number): number[] =>
        runs.map((x) => (100 * num(x)) / Math.max(1, x.hops[0]!));
      figures.push(
        {
          key: `end_to_end.udp64.${key}.path_loss_pct`,
          label: `UDP 64-byte: lost between vm1 eth0 and vm2 eth0: ${LABELS[key]}`,
          unit: '%',
          value: summarize(pct((x) => x.hops[0]! - x.hops[x.hops.length - 1]!)),
        },
        {
          key: `end_to_end.udp64.${key}.socket_drop_pct`,
          label: `UDP 64-byte: dropped at vm2's full socket buffer: ${LABELS[key]}`,
          unit: '%',
          value: summarize(pct((x) => x.socket.rcvbufErrors)),
        },
      );
    }
    const u = summarize(ratio('udp64.overlay', 'udp64.vxlan'));
    figures.push({
      key: 'end_to_end.udp64.overlay_vs_vxlan',
      label: 'UDP 64-byte pps: overlay / VXLAN+bridge',
      unit: 'ratio',
      value: u,
      target: '>= 1.5',
      met: u.median >= 1.5,
    });
    for (const key of ['overlay', 'limit', 'vxlan'] as const)
      figures.push({
        key: `end_to_end.udp64.${key}.forwarded_pps`,
        label: `UDP 64-byte, reaching vm2's eth0: ${LABELS[key]}`,
        unit: 'pps',
        value: summarize(m.get(`udp64fwd.${key}`)!),
        note: "the path's rate before the receiving application (bounded by the sender on 2 cores)",
      });
    figures.push({
      key: 'end_to_end.udp64.forwarded_overlay_vs_vxlan',
      label: 'UDP 64-byte reaching vm2 eth0: overlay / VXLAN+bridge',
      unit: 'ratio',
      value: summarize(ratio('udp64fwd.overlay', 'udp64fwd.vxlan')),
    });
    figures.push({
      key: 'end_to_end.udp64.limit_xdp_of_limit',
      label: 'UDP 64-byte reaching vm2 eth0: limit with no-op XDP / limit',
      unit: 'ratio',
      value: summarize(ratio('udp64fwd.limit_xdp', 'udp64fwd.limit')),
      note: 'what XDP on the host NIC veths costs by itself, per packet',
    });
    figures.push({
      key: 'end_to_end.udp64.overlay_of_limit',
      label: 'UDP 64-byte pps: overlay / plain-veth limit',
      unit: 'ratio',
      value: summarize(ratio('udp64.overlay', 'udp64.limit')),
    });
    for (const key of ['overlay', 'limit', 'vxlan'] as const) {
      figures.push(
        {
          key: `end_to_end.rr.${key}.tps`,
          label: `TCP request/response: ${LABELS[key]}`,
          unit: 'tps',
          value: summarize(m.get(`rr.${key}.tps`)!),
        },
        {
          key: `end_to_end.rr.${key}.p50_us`,
          label: `TCP RR latency p50: ${LABELS[key]}`,
          unit: 'us',
          value: summarize(m.get(`rr.${key}.p50`)!),
        },
        {
          key: `end_to_end.rr.${key}.p99_us`,
          label: `TCP RR latency p99: ${LABELS[key]}`,
          unit: 'us',
          value: summarize(m.get(`rr.${key}.p99`)!),
        },
      );
    }
    figures.push({
      key: 'end_to_end.rr.overlay_vs_vxlan',
      label: 'TCP RR transactions/s: overlay / VXLAN+bridge',
      unit: 'ratio',
      value: summarize(ratio('rr.overlay.tps', 'rr.vxlan.tps')),
    });
    const udpNote = (['overlay', 'limit', 'vxlan'] as const)
      .map((key) => {
        const runs = udpRuns.get(key)!;
        const path = runs.reduce((a, x) => a + x.hops[0]! - x.hops[x.hops.length - 1]!, 0);
        const sock = runs.reduce((a, x) => a + x.socket.rcvbufErrors, 0);
        const sent = runs.reduce((a, x) => a + x.hops[0]!, 0);
        return `${key}: ${path} of ${sent} lost on the path, ${sock} dropped at the full socket buffer`;
      })
      .join('; ');
    return {
      section: 'end_to_end',
      title: 'End to end, VM to VM across two hosts',
      figures,
      notes: [
        `${rounds} interleaved rounds of ${secs} s per test; order per round: overlay, limit, limit + no-op XDP, VXLAN.`,
        'VM MTUs: overlay 1458 (NVGRE 42 bytes), VXLAN 1450 (50 bytes), limit 1500; underlay MTU 1500 everywhere.',
        'The underlay switch ports segment GSO packets and finish checksums in software (lab convention: a NIC ' +
          'does it before the wire), for every topology alike; the two hosts, the switch and both VMs share 2 cores, ' +
          'so sender, receiver and every softirq compete: absolute figures are far below a real NIC, ratios are the point.',
        "UDP: iperf3 -u -l 64 -b 0 (64-byte payload, 106-byte frames), received packets per second as iperf3's " +
          'server counts them; per-hop packet counts (ip -s link) of the last run are in the notes of each figure.',
        `UDP loss over all rounds, by where it happened: ${udpNote}. Where the path loses nothing and the ` +
          'socket buffer overflows, the received rate measures how much CPU the receive path leaves the ' +
          'receiving application on these 2 cores; `forwarded_pps` is the rate that reached the VM.',
        'TCP RR: build/bench/tcp_rr (scripts/bench/c/tcp_rr.c), one connection, 1-byte request and response, TCP_NODELAY.',
        'Not measured yet: VXLAN baseline with nftables ACLs and HTB caps (tenet has no ACL/QoS on this branch).',
      ],
    };
  } finally {
    await e2e?.close();
    await lab.teardown();
  }
};
