// The QoS lab shared by test/e2e/qos.test.ts and scripts/bench/qos.ts: two hypervisors on one
// underlay switch; hv1 holds four VMs (q1..q4) that send, hv2 one sink VM that receives (an
// iperf3 server per sender). All five VMs are in one virtual subnet, so everything q1..q4 send
// to the sink leaves hv1 NVGRE-encapsulated through eth0, the uplink that QoS shapes.
//
// Measurements are bounded (iperf3 -t, hard time limits) and taken after a warm-up (iperf3 -O).

import { parsePolicy, type Policy, type PolicyDocument, type PortQos } from '../policy/index.js';
import type { TenantQos, Uplink } from '../policy/model-qos.js';
import { parseLabFile } from './lab-file.js';
import type { Netns } from './lab.js';
import type { TopologySpec } from './topology.js';
import { iperf3Server, parseIperf3Json, type Iperf3Result } from './traffic.js';

export const QOS_SENDERS = ['q1', 'q2', 'q3', 'q4'] as const;
export type QosSender = (typeof QOS_SENDERS)[number];
export const SINK_IP = '198.19.7.21';
export const VSID = 7001;

const vmIp = (i: number): string => `198.19.7.${10 + i}`;
const vmMac = (i: number): string => `02:00:00:70:00:${(10 + i).toString(16).padStart(2, '0')}`;

export function qosLabSpec(): TopologySpec {
  const vm = (name: string, port: string, ip: string, mac: string): string => `
      - name: ${name}
        port: ${port}
        mac: ${mac}
        addrs: [${ip}/24]
        mtu: 1458
        gro: true`;
  const senders = QOS_SENDERS.map((n, i) => vm(n, `vm-${n}`, vmIp(i + 1), vmMac(i + 1))).join('');
  return parseLabFile(
    `hosts:
  - name: hv1
    phys: { name: eth0, addrs: [198.18.0.1/24] }
    vms:${senders}
  - name: hv2
    phys: { name: eth0, addrs: [198.18.0.2/24] }
    vms:${vm('sink', 'vm-sink', SINK_IP, vmMac(11))}
`,
    'qos lab',
  );
}

/** The lab's policy with the given QoS parts. */
export function qosPolicy(
  qos: { uplinks?: Uplink[]; portQos?: PortQos[]; tenantQos?: TenantQos[] } = {},
): Policy {
  const ports: {
    name: string;
    host: string;
    interface: string;
    mac: string;
    vsid: number;
    addresses: string[];
  }[] = QOS_SENDERS.map((n, i) => ({
    name: n,
    host: 'hv1',
    interface: `vm-${n}`,
    mac: vmMac(i + 1),
    vsid: VSID,
    addresses: [vmIp(i + 1)],
  }));
  ports.push({
    name: 'sink',
    host: 'hv2',
    interface: 'vm-sink',
    mac: vmMac(11),
    vsid: VSID,
    addresses: [SINK_IP],
  });
  const doc: PolicyDocument = {
    providerAddresses: [
      { host: 'hv1', address: '198.18.0.1', interface: 'eth0', prefixLength: 24 },
      { host: 'hv2', address: '198.18.0.2', interface: 'eth0', prefixLength: 24 },
    ],
    routingDomains: [
      {
        name: 'qt',
        virtualSubnets: [{ name: 'qt-web', vsid: VSID, prefixes: ['198.19.7.0/24'], gateway: {} }],
      },
    ],
    ports,
    lookupRecords: ports.map((p) => ({
      vsid: VSID,
      ca: p.addresses[0] as string,
      mac: p.mac,
      pa: p.host === 'hv1' ? '198.18.0.1' : '198.18.0.2',
    })),
    customerRoutes: [],
    portAcls: [],
    portSteering: [],
    uplinks: qos.uplinks ?? [],
    portQos: qos.portQos ?? [],
    tenantQos: qos.tenantQos ?? [],
  };
  return parsePolicy(doc);
}

export interface Stream {
  readonly from: Netns;
  readonly port: number;
  readonly udp?: boolean;
  /** iperf3 -b (UDP: required; TCP: unlimited when absent). */
  readonly bitrate?: string;
  /** UDP datagram size (-l). */
  readonly length?: number;
  readonly parallel?: number;
  /** The sink sends to `from` (-R): inbound to the VM. */
  readonly reverse?: boolean;
}

/**
 * Runs the streams at the same time to servers in `sink` (one per stream port) for `seconds`
 * after `warmup` seconds that are not counted (-O). Returns each stream's receiver rate.
 */
export async function runStreams(
  sink: Netns,
  streams: readonly Stream[],
  seconds: number,
  warmup = 1,
): Promise<Iperf3Result[]> {
  const servers = await Promise.all(
    streams.map((s) =>
      iperf3Server(sink, { port: s.port, timeoutMs: (seconds + warmup) * 1000 + 20_000 }),
    ),
  );
  try {
    return await Promise.all(
      streams.map(async (s) => {
        const argv = ['iperf3', '-c', SINK_IP, '-p', String(s.port), '-t', String(seconds)];
        argv.push('-O', String(warmup), '-J', '--connect-timeout', '3000');
        if (s.udp) argv.push('-u');
        if (s.bitrate) argv.push('-b', s.bitrate);
        if (s.length) argv.push('-l', String(s.length));
        if (s.parallel) argv.push('-P', String(s.parallel));
        if (s.reverse) argv.push('-R');
        const r = await s.from.exec(argv, { timeoutMs: (seconds + warmup) * 1000 + 15_000 });
        return parseIperf3Json(r.stdout);
      }),
    );
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** Receiver-side rate of a result, bit/s (UDP: what arrived, not what was sent). */
export function receivedBps(r: Iperf3Result): number {
  return r.receivedBps;
}

/** Round-trip times (ms) of `count` pings at `intervalMs`, bounded. */
export async function pingRtts(
  from: Netns,
  to: string,
  count: number,
  intervalMs: number,
): Promise<{ rtts: number[]; sent: number }> {
  const deadline = Math.ceil((count * intervalMs) / 1000) + 3;
  const r = await from.exec(
    [
      'ping',
      '-4',
      '-n',
      '-c',
      String(count),
      '-i',
      (intervalMs / 1000).toFixed(3),
      '-w',
      String(deadline),
      to,
    ],
    { timeoutMs: deadline * 1000 + 3000 },
  );
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { rtts, sent: count };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}
