// The demo behind `scripts/demo`: a self-contained lab (an underlay switch, two hypervisor hosts,
// one VM on each) with tenet's datapath loaded in each host: the XDP program on the host's
// physical NIC, the tc programs on its VM port. VMs ping each other and the per-port counters the
// programs keep in their pinned per-CPU maps are printed as they grow. Ctrl-C (or --duration)
// tears the whole lab down.
//
// This is the foundation stage of the demo: the hosts still route between the VMs with the
// kernel's own stack; the NVGRE overlay replaces that path when it lands.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CounterReader } from '../datapath/counters.js';
import { loadObject } from '../datapath/objects.js';
import { attachTc, xdpAttach, type BpfObject } from '../bpf/index.js';
import { Lab, buildTopology, type Topology } from '../lab/index.js';

const HOSTS = ['hv1', 'hv2'] as const;

function topologySpec(): Parameters<typeof buildTopology>[1] {
  return {
    hosts: [
      {
        name: 'hv1',
        phys: { addrs: ['198.18.0.1/24'] },
        forwarding: true,
        routes: [{ dst: '198.18.2.0/24', via: '198.18.0.2' }],
        vms: [
          {
            name: 'vm1',
            port: 'vm1p',
            mac: '02:00:00:00:01:01',
            addrs: ['198.18.1.10/24'],
            portAddrs: ['198.18.1.1/24'],
            routes: [{ dst: 'default', via: '198.18.1.1' }],
          },
        ],
      },
      {
        name: 'hv2',
        phys: { addrs: ['198.18.0.2/24'] },
        forwarding: true,
        routes: [{ dst: '198.18.1.0/24', via: '198.18.0.1' }],
        vms: [
          {
            name: 'vm2',
            port: 'vm2p',
            mac: '02:00:00:00:02:01',
            addrs: ['198.18.2.10/24'],
            portAddrs: ['198.18.2.1/24'],
            routes: [{ dst: 'default', via: '198.18.2.1' }],
          },
        ],
      },
    ],
  };
}

interface HostDatapath {
  host: string;
  objects: BpfObject[];
  counters: CounterReader;
  names: Map<number, string>;
  detach: Array<() => void>;
}

async function loadHost(lab: Lab, topo: Topology, host: string): Promise<HostDatapath> {
  const h = topo.host(host);
  const pinRoot = join(await lab.bpffsDir(), host);
  mkdirSync(pinRoot, { recursive: true });
  const xdp = await loadObject('tenet_xdp', pinRoot);
  const tc = await loadObject('tenet_tc', pinRoot);
  const netns = h.ns.path;
  const detach: Array<() => void> = [];
  const names = new Map<number, string>();

  xdpAttach({ ifname: 'phys0', netns, prog: xdp.program('tenet_xdp_rx'), mode: 'native' });
  names.set(await h.ns.ifindex('phys0'), 'phys0');
  for (const vm of h.vms) {
    const port = vm.port.name;
    names.set(await h.ns.ifindex(port), `${port} (${vm.name})`);
    for (const [prog, direction] of [
      ['tenet_tc_rx', 'ingress'],
      ['tenet_tc_tx', 'egress'],
    ] as const) {
      const att = attachTc(tc.program(prog), { ifname: port, netns, direction });
      detach.push(() => att.detach());
    }
  }
  return { host, objects: [xdp, tc], counters: new CounterReader(pinRoot), names, detach };
}

function printCounters(hosts: HostDatapath[]): void {
  const rows: string[] = [];
  for (const h of hosts) {
    for (const t of h.counters.portTraffic()) {
      const name = h.names.get(t.ifindex) ?? `ifindex ${t.ifindex}`;
      rows.push(
        `  ${h.host.padEnd(4)} ${name.padEnd(14)} ${t.direction}  ` +
          `${String(t.packets).padStart(8)} pkts ${String(t.bytes).padStart(10)} bytes`,
      );
    }
    for (const d of h.counters.dropTotals()) {
      rows.push(`  ${h.host.padEnd(4)} drop ${d.reason.padEnd(22)} ${d.packets} pkts`);
    }
  }
  process.stdout.write(`\n[${new Date().toISOString()}] per-port counters (from pinned maps)\n`);
  process.stdout.write(rows.join('\n') + '\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { duration: { type: 'string' }, interval: { type: 'string', default: '2' } },
  });
  const durationS = values.duration ? Number(values.duration) : Infinity;
  const intervalS = Number(values.interval);
  if (!(durationS > 0) || !(intervalS > 0)) {
    throw new Error('--duration and --interval take a positive number of seconds');
  }

  const lab = await Lab.create('demo');
  const hosts: HostDatapath[] = [];
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.once('SIGINT', () => stop());
  process.once('SIGTERM', () => stop());
  try {
    console.log(`tenet demo: building lab ${lab.prefix} (switch, hv1, hv2, vm1, vm2)`);
    const topo = await buildTopology(lab, topologySpec());
    for (const host of HOSTS) hosts.push(await loadHost(lab, topo, host));
    console.log('datapath loaded: XDP on each phys0, tc ingress/egress on each VM port');

    // Bounded traffic: 5 pings a second for at most 10 minutes, stopped at teardown anyway.
    const pingCount = Math.min(3000, Number.isFinite(durationS) ? Math.ceil(durationS * 5) : 3000);
    topo.vm('vm1').ns.spawn(['ping', '-q', '-i', '0.2', '-c', String(pingCount), '198.18.2.10'], {
      timeoutMs: 610_000,
    });
    console.log(`vm1 pings vm2 (198.18.2.10); explore from another shell, e.g.:`);
    console.log(`  ip netns exec ${lab.prefix}-hv1 ip -d link show phys0`);
    console.log(`  ip netns exec ${lab.prefix}-hv1 bpftool net show`);
    console.log(`  ip netns exec ${lab.prefix}-vm1 ping -c 3 198.18.2.10`);
    console.log('Ctrl-C tears everything down.');

    const timer = setInterval(() => printCounters(hosts), intervalS * 1000);
    const deadline = Number.isFinite(durationS) ? setTimeout(stop, durationS * 1000) : undefined;
    await stopped;
    clearInterval(timer);
    if (deadline) clearTimeout(deadline);
    printCounters(hosts);
  } finally {
    for (const h of hosts) {
      for (const d of h.detach) d();
      h.counters.close();
      for (const o of h.objects) o.close();
    }
    await lab.teardown();
    console.log('lab torn down');
  }
}

main().catch((e: unknown) => {
  console.error(`tenet demo failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
