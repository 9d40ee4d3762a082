// The demo behind `scripts/demo`, the README's main job: the lab of scripts/lab/demo-lab.yaml (an
// underlay switch, two hypervisor hosts, five VMs of two tenants whose addresses overlap), one
// tenet host agent per hypervisor applying scripts/lab/demo-policy.yaml, then a short tour:
// same-tenant VMs reach each other across hosts over NVGRE, the distributed router routes between
// blue's two subnets, and red never reaches blue although the addresses are the same. Then the
// VMs keep pinging and the counters the datapath keeps in its pinned maps are printed until
// Ctrl-C (or --duration), and everything is torn down.

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CounterReader } from '../datapath/counters.js';
import { HostAgent } from '../host/index.js';
import { Lab, buildTopology, loadLabFile, ping, type Netns, type Topology } from '../lab/index.js';
import { loadPolicyFile, type Policy } from '../policy/index.js';

const LAB_DIR = resolve(fileURLToPath(new URL('../../scripts/lab/', import.meta.url)));
// From dist/agent/demo/ the scripts are one level further up.
const labDir = (): string =>
  LAB_DIR.includes('/dist/') ? LAB_DIR.replace('/dist/', '/') : LAB_DIR;

const HOSTS = ['hv1', 'hv2'] as const;

interface Check {
  what: string;
  from: string;
  to: string;
  expect: 'reach' | 'isolated';
}

// The tour. Addresses are customer addresses: blue-vm2 and red-vm2 are both 198.19.1.12.
const CHECKS: Check[] = [
  { what: 'blue, across hosts, IPv4', from: 'blue-vm1', to: '198.19.1.12', expect: 'reach' },
  { what: 'blue, across hosts, IPv6', from: 'blue-vm1', to: 'fd00:1:1::12', expect: 'reach' },
  { what: 'red, same addresses, own VMs', from: 'red-vm1', to: '198.19.1.12', expect: 'reach' },
  { what: 'blue, routed to blue-db', from: 'blue-vm1', to: '198.19.2.21', expect: 'reach' },
  { what: 'blue, routed to blue-db, IPv6', from: 'blue-vm1', to: 'fd00:1:2::21', expect: 'reach' },
  { what: 'red to blue-db (other tenant)', from: 'red-vm1', to: '198.19.2.21', expect: 'isolated' },
];

/** ICMP echo requests this VM has received (its namespace's /proc/net/snmp). */
async function echoRequestsReceived(ns: Netns): Promise<number> {
  const lines = (await ns.execOk(['cat', '/proc/net/snmp'])).stdout.split('\n');
  const [names, values] = lines.filter((l) => l.startsWith('Icmp: '));
  const i = (names ?? '').split(/\s+/).indexOf('InEchos');
  return Number((values ?? '').split(/\s+/)[i]);
}

async function tour(topo: Topology): Promise<boolean> {
  let ok = true;
  const report = (good: boolean, text: string): void => {
    ok &&= good;
    console.log(`  ${good ? 'ok  ' : 'FAIL'} ${text}`);
  };
  console.log('\nconnectivity (3 pings each):');
  for (const c of CHECKS) {
    const r = await ping(topo.vm(c.from).ns, c.to, { count: 3, intervalMs: 200, timeoutS: 2 });
    report(
      (c.expect === 'reach') === r.received > 0,
      `${c.what.padEnd(30)} ${c.from.padEnd(9)} -> ${c.to.padEnd(13)}` +
        ` ${r.received}/${r.transmitted} replies (expected: ${c.expect})`,
    );
  }
  // blue-vm2 and red-vm2 are both 198.19.1.12: red's echoes must all land at red-vm2 and none
  // at blue-vm2.
  const blue2 = topo.vm('blue-vm2').ns;
  const red2 = topo.vm('red-vm2').ns;
  const [blueBefore, redBefore] = [
    await echoRequestsReceived(blue2),
    await echoRequestsReceived(red2),
  ];
  await ping(topo.vm('red-vm1').ns, '198.19.1.12', { count: 3, intervalMs: 200, timeoutS: 2 });
  const blueGot = (await echoRequestsReceived(blue2)) - blueBefore;
  const redGot = (await echoRequestsReceived(red2)) - redBefore;
  report(
    blueGot === 0 && redGot === 3,
    `red-vm1 -> 198.19.1.12: red-vm2 got ${redGot} echo requests, blue-vm2 (same address) ${blueGot}`,
  );
  return ok;
}

function printCounters(root: string, names: Map<string, Map<number, string>>): void {
  const lines: string[] = [`\n[${new Date().toISOString()}] counters from the pinned maps`];
  for (const h of HOSTS) {
    const reader = new CounterReader(join(root, h));
    try {
      for (const t of reader.portTraffic()) {
        const name = names.get(h)?.get(t.ifindex) ?? `ifindex ${t.ifindex}`;
        lines.push(
          `  ${h}  port ${name.padEnd(11)} ${t.direction}  ${String(t.packets).padStart(7)} pkts` +
            `  ${String(t.bytes).padStart(9)} bytes`,
        );
      }
      for (const v of reader.vsidTraffic()) {
        lines.push(
          `  ${h}  vsid ${String(v.vsid).padEnd(11)} encap ${v.encap_packets} pkts, ` +
            `decap ${v.decap_packets} pkts`,
        );
      }
      for (const d of reader.dropTotals()) {
        lines.push(`  ${h}  drop ${d.reason.padEnd(24)} ${d.packets} pkts`);
      }
    } finally {
      reader.close();
    }
  }
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { duration: { type: 'string' }, interval: { type: 'string', default: '5' } },
  });
  const durationS = values.duration ? Number(values.duration) : Infinity;
  const intervalS = Number(values.interval);
  if (!(durationS > 0) || !(intervalS > 0)) {
    throw new Error('--duration and --interval take a positive number of seconds');
  }

  let stop: () => void = () => {};
  const stopped = new Promise<void>((r) => (stop = r));
  process.once('SIGINT', () => stop());
  process.once('SIGTERM', () => stop());

  const lab = await Lab.create('demo');
  const agents: HostAgent[] = [];
  let ok = false;
  try {
    console.log(`tenet demo: lab ${lab.prefix} from scripts/lab/demo-lab.yaml`);
    const topo = await buildTopology(lab, loadLabFile(join(labDir(), 'demo-lab.yaml')));
    const policy: Policy = await loadPolicyFile(join(labDir(), 'demo-policy.yaml'));
    const root = await lab.bpffsDir();
    const names = new Map<string, Map<number, string>>();
    for (const h of HOSTS) {
      const agent = await HostAgent.start({
        hostName: h,
        pinRoot: join(root, h),
        netns: topo.host(h).ns.path,
      });
      agents.push(agent);
      const report = await agent.applyPolicy(policy);
      console.log(
        `${h}: policy applied in ${report.durationMs.toFixed(0)} ms, ` +
          `${report.attached.length} programs attached (pins under ${join(root, h)})`,
      );
      const byIndex = new Map<number, string>();
      for (const iface of [topo.host(h).phys, ...topo.host(h).vms.map((v) => v.port)]) {
        byIndex.set(await iface.ifindex(), iface.name);
      }
      names.set(h, byIndex);
    }

    ok = await tour(topo);

    // Keep traffic flowing for the counters: bounded pings, stopped at teardown at the latest.
    const count = String(
      Math.min(3000, Number.isFinite(durationS) ? Math.ceil(durationS * 2) : 3000),
    );
    for (const [from, to] of [
      ['blue-vm1', '198.19.1.12'],
      ['red-vm2', '198.19.1.11'],
      ['blue-vm2', '198.19.2.21'],
    ] as const) {
      topo
        .vm(from)
        .ns.spawn(['ping', '-q', '-i', '0.5', '-c', count, to], { timeoutMs: 1_510_000 });
    }
    const ns = (n: string): string => `${lab.prefix}-${n}`;
    console.log(`
explore from another shell while this runs:
  ip netns exec ${ns('blue-vm1')} ping 198.19.1.12          # blue-vm2, across the overlay
  ip netns exec ${ns('red-vm1')} ping 198.19.1.12           # red-vm2: same address, other tenant
  ip netns exec ${ns('sw')} tcpdump -ni p-hv1 ip proto 47    # NVGRE on the underlay
  nsenter --net=/run/netns/${ns('hv1')} bpftool net show     # tenet's programs on hv1
  bpftool map dump pinned ${join(root, 'hv1', 'tenet_records')}
Ctrl-C tears everything down.`);

    const timer = setInterval(() => printCounters(root, names), intervalS * 1000);
    const deadline = Number.isFinite(durationS) ? setTimeout(stop, durationS * 1000) : undefined;
    await stopped;
    clearInterval(timer);
    if (deadline) clearTimeout(deadline);
    printCounters(root, names);
  } finally {
    for (const a of agents) await a.stop();
    await lab.teardown();
    console.log('lab torn down');
  }
  if (!ok) {
    console.error('tenet demo: some connectivity checks failed (see above)');
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  console.error(`tenet demo failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
