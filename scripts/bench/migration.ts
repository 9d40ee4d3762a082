// Live-migration cutover benchmark: packets lost while a VM under a 1,000 pps ping moves between
// hosts.
//
// Two streams run during each move: ping at 1,000 pps (what the issue asks for) and a fixed-rate
// 1,000 pps UDP stream with sequence numbers (scripts/bench/py/seq_stream.py). ping pauses while
// no replies come back, so its loss understates the outage; the UDP sender keeps its schedule, so
// its longest run of missing sequence numbers is the outage in milliseconds. Both are reported.
//
// On the demo lab, blue-vm1 (hv1) pings blue-vm2 at 1,000 packets per second. Mid-stream
// blue-vm2 moves to the other hypervisor: its link is unplugged from the old host and plugged
// into the new one (the lab's stand-in for the VM's blackout and resume), and the policy change
// is applied on the destination host, then on the source host, as an orchestrator would. The
// VM moves back and forth RUNS times; each run reports the echo requests lost, which at 1,000 pps
// is the outage in milliseconds, and when each step finished relative to the unplug.
//
// Usage: npm run bench:migration [-- --runs N]   (root; writes bench/results/migration-<date>.json)

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HostAgent } from '../../agent/host/index.js';
import { Lab, buildTopology, loadLabFile, type Topology } from '../../agent/lab/index.js';
import { loadPolicyFile, parsePolicy, type Policy } from '../../agent/policy/index.js';
import type { PolicyDocument } from '../../agent/policy/index.js';
import { machineDescription, summarize } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)).replace('/dist/', '/'));
const LAB_DIR = join(REPO, 'scripts', 'lab');
const PY = '/usr/bin/python3';
const STREAM = join(REPO, 'scripts', 'bench', 'py', 'seq_stream.py');
const PA = { hv1: '198.18.0.1', hv2: '198.18.0.2' } as const;
type Host = keyof typeof PA;

/** The demo policy with blue-vm2 (198.19.1.12, fd00:1:1::12) living on `host`. */
function blueVm2On(base: Policy, host: Host): Policy {
  const doc = structuredClone(base) as unknown as PolicyDocument;
  return parsePolicy({
    ...doc,
    ports: doc.ports.map((p) => (p.name === 'blue-vm2' ? { ...p, host } : p)),
    lookupRecords: doc.lookupRecords.map((r) =>
      r.vsid === 5001 && r.mac === '02:00:00:b1:00:12' ? { ...r, pa: PA[host] } : r,
    ),
  });
}

interface RunResult {
  from: Host;
  to: Host;
  transmitted: number;
  received: number;
  lost: number;
  pingTimeMs: number;
  udpSent: number;
  udpReceived: number;
  udpLost: number;
  udpOutageMs: number;
  replugMs: number;
  destinationAppliedMs: number;
  sourceAppliedMs: number;
}

async function moveOnce(
  lab: Lab,
  topo: Topology,
  agents: Record<Host, HostAgent>,
  base: Policy,
  from: Host,
  to: Host,
): Promise<RunResult> {
  const blue2 = topo.vm('blue-vm2').ns;
  const blue1 = topo.vm('blue-vm1').ns;
  const receiver = blue2.spawn([PY, STREAM, 'recv', '9000', '20'], { timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 300));
  const ping = ['ping', '-q', '-i', '0.001', '-c', '6000', '-W', '1', '198.19.1.12'];
  const pinger = blue1.spawn(ping, { timeoutMs: 30_000 });
  const stream = [PY, STREAM, 'send', '198.19.1.12', '9000', '6000', '1000'];
  const sender = blue1.spawn(stream, { timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 2000));

  const t0 = performance.now();
  await topo.host(from).ns.execOk(['ip', 'link', 'del', `vm-blue2`]);
  await lab.veth(
    {
      ns: blue2,
      name: 'eth0',
      mac: '02:00:00:b1:00:12',
      mtu: 1458,
      addrs: ['198.19.1.12/24', 'fd00:1:1::12/64'],
    },
    { ns: topo.host(to).ns, name: 'vm-blue2' },
  );
  await blue2.execOk(['ethtool', '-K', 'eth0', 'gro', 'on']);
  await blue2.execOk(['ip', 'route', 'add', 'default', 'via', '198.19.1.1']);
  await blue2.execOk(['ip', '-6', 'route', 'add', 'default', 'via', 'fd00:1:1::1']);
  const t1 = performance.now();
  const moved = blueVm2On(base, to);
  await agents[to].applyPolicy(moved);
  const t2 = performance.now();
  await agents[from].applyPolicy(moved);
  const t3 = performance.now();

  const done = await pinger.exited;
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(done.stdout);
  if (!m) throw new Error(`ping output not understood: ${done.stdout} ${done.stderr}`);
  const transmitted = Number(m[1]);
  const received = Number(m[2]);
  const sent = /sent (\d+)/.exec((await sender.exited).stdout);
  const got = /received (\d+) max_gap (\d+)/.exec((await receiver.exited).stdout);
  if (!sent || !got) throw new Error('UDP stream output not understood');
  return {
    from,
    to,
    transmitted,
    received,
    lost: transmitted - received,
    pingTimeMs: Number(m[3]),
    udpSent: Number(sent[1]),
    udpReceived: Number(got[1]),
    udpLost: Number(sent[1]) - Number(got[1]),
    udpOutageMs: Number(got[2]),
    replugMs: t1 - t0,
    destinationAppliedMs: t2 - t0,
    sourceAppliedMs: t3 - t0,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error('--runs takes 1..50');
  const summary = await measureMigration(runs, (l) => console.log(l));
  const dir = join(REPO, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `migration-${summary.date.slice(0, 10)}.json`);
  writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
  const fmt = (x: { min: number; median: number; max: number }): string =>
    `min ${x.min}, median ${x.median}, max ${x.max}`;
  console.log(`\nping packets lost per move: ${fmt(summary.lost_packets)}`);
  console.log(`UDP packets lost per move: ${fmt(summary.udp_lost_packets)}`);
  console.log(`UDP outage per move (ms): ${fmt(summary.udp_outage_ms)}`);
  console.log(`written to ${file}`);
}

/** Moves blue-vm2 back and forth `runs` times under traffic on a fresh demo lab (no files). */
export async function measureMigration(runs: number, log: (line: string) => void) {
  const lab = await Lab.create('bench-mig');
  const agents: Partial<Record<Host, HostAgent>> = {};
  try {
    const topo = await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml')));
    const base = await loadPolicyFile(join(LAB_DIR, 'demo-policy.yaml'));
    const root = await lab.bpffsDir();
    for (const h of ['hv1', 'hv2'] as const) {
      agents[h] = await HostAgent.start({
        hostName: h,
        pinRoot: join(root, h),
        netns: topo.host(h).ns.path,
      });
      await agents[h].applyPolicy(base);
    }
    const all = agents as Record<Host, HostAgent>;
    const results: RunResult[] = [];
    let where: Host = 'hv2';
    for (let i = 0; i < runs; i++) {
      const to: Host = where === 'hv1' ? 'hv2' : 'hv1';
      const r = await moveOnce(lab, topo, all, base, where, to);
      results.push(r);
      where = to;
      log(
        `run ${i + 1}: ${r.from} -> ${r.to}: ping lost ${r.lost} of ${r.transmitted} ` +
          `(took ${r.pingTimeMs} ms for 6,000 ms of schedule); UDP lost ${r.udpLost} of ` +
          `${r.udpSent}, longest outage ${r.udpOutageMs} ms ` +
          `(re-plug ${r.replugMs.toFixed(0)} ms, destination applied at ` +
          `${r.destinationAppliedMs.toFixed(0)} ms, source at ${r.sourceAppliedMs.toFixed(0)} ms)`,
      );
    }
    const summary = {
      benchmark: 'live-migration-cutover',
      date: new Date().toISOString(),
      machine: machineDescription(),
      rate_pps: 1000,
      runs: results,
      lost_packets: summarize(results.map((r) => r.lost)),
      udp_lost_packets: summarize(results.map((r) => r.udpLost)),
      udp_outage_ms: summarize(results.map((r) => r.udpOutageMs)),
      destination_applied_ms: summarize(results.map((r) => r.destinationAppliedMs)),
    };
    return summary;
  } finally {
    for (const a of Object.values(agents)) await a.stop();
    await lab.teardown();
  }
}

// Run as a command only (the suite imports measureMigration).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`bench:migration failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    process.exit(1);
  });
}
