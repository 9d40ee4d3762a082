// Receive steering end to end on the demo lab: hv2's VMs send to hv1's VMs, so NVGRE arrives at
// hv1's eth0, where tenet_xdp_rx runs (native XDP on the veth). A veth runs XDP in the NAPI
// context of the CPU that transmitted into it, so pinning the sender (taskset in the VM) picks
// the receiving CPU; the per-CPU counters of hv1's VM port (its tx counter is bumped by the CPU
// that ran the delivery) then show where the pipeline ran.
//
// What must hold: a port fixed to a CPU is processed there whatever CPU received its frames; a
// vRSS (spread) port's flows each stay on one CPU (the one the model's hash names) while the
// receiving CPU alternates; dynamic mode moves a port off an overloaded CPU under induced load,
// once, counted and logged. All traffic is bounded in count and time.

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fnv1a32 } from '../../agent/compiler/index.js';
import { xdpQuery } from '../../agent/bpf/index.js';
import { HostAgent } from '../../agent/host/index.js';
import { recordingLogger, type LogRecord } from '../../agent/host/log.js';
import { steerCpu } from '../../agent/model/index.js';
import { ipv4ToBytes } from '../../agent/packet/index.js';
import { loadPolicyFile, parsePolicy, type Policy } from '../../agent/policy/index.js';
import type { SteeringCpuCounters } from '../../agent/steering/controller.js';
import { buildTopology, loadLabFile, useLab, type Netns, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';

const LAB_DIR = resolve(fileURLToPath(new URL('../../scripts/lab/', import.meta.url)));
const BLUE1_CA = '198.19.1.11';
const BLUE2_CA = '198.19.1.12';
/** hv1's VM ports: policy name -> host interface (demo-policy.yaml). */
const PORT_IF: Record<string, string> = { 'blue-vm1': 'vm-blue1', 'red-vm1': 'vm-red1' };

/** A bounded UDP sender: n datagrams from sport to dst:dport, one per `gapMs`, on CPU `cpu`. */
function udpSend(
  ns: Netns,
  o: { cpu: number; dst: string; sport: number; dport: number; n: number; gapMs: number },
) {
  const py = [
    'import socket, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.bind(("", ${o.sport}))`,
    't0 = time.monotonic()',
    `for i in range(${o.n}):`,
    // An absolute schedule: the rate holds even when a busy machine delays single sleeps.
    `    d = t0 + i * ${o.gapMs / 1000} - time.monotonic()`,
    '    if d > 0: time.sleep(d)',
    `    s.sendto(i.to_bytes(4, "big") + b"x" * 60, ("${o.dst}", ${o.dport}))`,
  ].join('\n');
  return ns.execOk(['taskset', '-c', String(o.cpu), 'python3', '-c', py], {
    timeoutMs: 30_000,
  });
}

describePrivileged('receive steering end to end (demo lab)', () => {
  const ref = useLab('steering', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const vm = (name: string): Netns => topo().vm(name).ns;
  const log = recordingLogger();
  let hv1: HostAgent;
  let hv2: HostAgent;
  let base: Policy;
  const ifindex = new Map<string, number>();

  const withSteering = (entries: unknown[]): Policy =>
    parsePolicy({ ...JSON.parse(JSON.stringify(base)), portSteering: entries });

  beforeAll(async () => {
    base = await loadPolicyFile(join(LAB_DIR, 'demo-policy.yaml'));
    hv1 = await HostAgent.start({
      hostName: 'hv1',
      pinRoot: join(ref.value.bpffs, 'hv1'),
      netns: topo().host('hv1').ns.path,
      logger: log,
      // Small numbers so bounded test traffic (a few hundred packets per second) "saturates".
      steering: {
        intervalMs: 500,
        balance: { capacityPps: 200, high: 0.8, low: 0.5, minDwellMs: 1000, cooldownMs: 1000 },
      },
    });
    hv2 = await HostAgent.start({
      hostName: 'hv2',
      pinRoot: join(ref.value.bpffs, 'hv2'),
      netns: topo().host('hv2').ns.path,
    });
    await hv1.applyPolicy(base);
    await hv2.applyPolicy(base);
    for (const [name, i] of await hv1.readInterfaces()) ifindex.set(name, i.ifindex);
    // Warm up: ARP/ND answered, neighbours resolved.
    await vm('blue-vm2').execOk(['ping', '-c', '2', '-i', '0.2', '-W', '2', BLUE1_CA]);
    await vm('red-vm2').execOk(['ping', '-c', '2', '-i', '0.2', '-W', '2', BLUE1_CA]);
  }, 60_000);

  afterAll(async () => {
    await hv1?.stop();
    await hv2?.stop();
  });

  const counters = (port: string): SteeringCpuCounters[] =>
    hv1.steering!.counters(ifindex.get(PORT_IF[port]!)!);
  const delta = (a: SteeringCpuCounters[], b: SteeringCpuCounters[]) =>
    b.map((x, cpu) => ({
      cpu,
      delivered: Number(x.delivered - (a[cpu]?.delivered ?? 0n)),
      steered: Number(x.steered - (a[cpu]?.steered ?? 0n)),
      pipeline: Number(x.pipeline - (a[cpu]?.pipeline ?? 0n)),
    }));

  it('a port fixed to a CPU is processed on that CPU, whichever CPU received its frames', async () => {
    for (const [pinned, sender] of [
      [1, 0],
      [0, 1],
    ] as const) {
      await hv1.applyPolicy(withSteering([{ port: 'blue-vm1', mode: 'fixed', cpus: [pinned] }]));
      const before = counters('blue-vm1');
      await udpSend(vm('blue-vm2'), {
        cpu: sender,
        dst: BLUE1_CA,
        sport: 40000 + pinned,
        dport: 7,
        n: 50,
        gapMs: 2,
      });
      await new Promise((r) => setTimeout(r, 200));
      const d = delta(before, counters('blue-vm1'));
      const label = `fixed to CPU ${pinned}, sent from CPU ${sender}: ${JSON.stringify(d)}`;
      expect(d[pinned]!.delivered, label).toBeGreaterThanOrEqual(50);
      expect(d[sender]!.delivered, label).toBe(0);
      // Handed over by the receiving CPU, run by the cpumap program on the pinned one.
      expect(d[sender]!.steered, label).toBeGreaterThanOrEqual(50);
      expect(d[pinned]!.pipeline, label).toBeGreaterThanOrEqual(50);
    }
  });

  it("a vRSS port's flows each stay on one CPU (the hash's), while the receiving CPU alternates", async () => {
    await hv1.applyPolicy(withSteering([{ port: 'blue-vm1', mode: 'spread', cpus: [0, 1] }]));
    const seed = fnv1a32('blue-vm1');
    const used = new Set<number>();
    for (let f = 0; f < 8; f++) {
      const sport = 41000 + f * 13;
      const want = steerCpu(
        { mode: 'spread', cpus: [0, 1], seed },
        {
          src: ipv4ToBytes(BLUE2_CA),
          dst: ipv4ToBytes(BLUE1_CA),
          sport,
          dport: 9,
          proto: 17,
        },
      )!;
      used.add(want);
      const before = counters('blue-vm1');
      // The same flow, received first on CPU 0, then on CPU 1.
      for (const cpu of [0, 1])
        await udpSend(vm('blue-vm2'), { cpu, dst: BLUE1_CA, sport, dport: 9, n: 15, gapMs: 2 });
      await new Promise((r) => setTimeout(r, 150));
      const d = delta(before, counters('blue-vm1'));
      const label = `flow ${sport}->9 (hash says CPU ${want}): ${JSON.stringify(d)}`;
      expect(d[want]!.delivered, label).toBeGreaterThanOrEqual(30);
      expect(d[1 - want]!.delivered, label).toBe(0);
    }
    expect(used, 'the flows chosen spread over both CPUs').toEqual(new Set([0, 1]));
  });

  it('dynamic mode moves a port off an overloaded CPU under induced load (once, logged)', async () => {
    // Both ports on CPU 0 first; auto then keeps them where their entries are.
    await hv1.applyPolicy(
      withSteering([
        { port: 'blue-vm1', mode: 'fixed', cpus: [0] },
        { port: 'red-vm1', mode: 'fixed', cpus: [0] },
      ]),
    );
    await hv1.applyPolicy(
      withSteering([
        { port: 'blue-vm1', mode: 'auto' },
        { port: 'red-vm1', mode: 'auto' },
      ]),
    );
    const start = hv1.steering!.status();
    expect(start.ports.map((p) => [p.port, p.current])).toEqual([
      ['blue-vm1', [0]],
      ['red-vm1', [0]],
    ]);
    const movesBefore = hv1.steering!.moves;
    log.records.length = 0;
    // 125 pps to each port for 6 s: CPU 0 carries 250 pps, above 0.8 * 200 = 160, and one
    // port alone (125) fits under it on CPU 1, so exactly one move relieves CPU 0.
    const load = [
      udpSend(vm('blue-vm2'), { cpu: 0, dst: BLUE1_CA, sport: 42000, dport: 9, n: 750, gapMs: 8 }),
      udpSend(vm('red-vm2'), { cpu: 1, dst: BLUE1_CA, sport: 42001, dport: 9, n: 750, gapMs: 8 }),
    ];
    await Promise.all(load);
    const moves: LogRecord[] = log.records.filter((r) => r.message.startsWith('steering: moved'));
    const end = hv1.steering!.status();
    const label = JSON.stringify({ moves, end });
    expect(hv1.steering!.moves - movesBefore, label).toBe(1);
    expect(moves, label).toHaveLength(1);
    expect(moves[0]!.fields).toMatchObject({ from: 0, to: 1 });
    const moved = moves[0]!.fields.port as string;
    // The entry says CPU 1 now, and the moved port's frames are delivered there.
    expect(end.ports.find((p) => p.port === moved)!.current).toEqual([1]);
    const before = counters(moved);
    await udpSend(vm(moved === 'blue-vm1' ? 'blue-vm2' : 'red-vm2'), {
      cpu: 0,
      dst: BLUE1_CA,
      sport: 42002,
      dport: 9,
      n: 30,
      gapMs: 2,
    });
    await new Promise((r) => setTimeout(r, 200));
    const d = delta(before, counters(moved));
    expect(d[1]!.delivered, JSON.stringify(d)).toBeGreaterThanOrEqual(30);
    expect(d[0]!.delivered, JSON.stringify(d)).toBe(0);
  }, 40_000);

  it('works the same with XDP in generic (skb) mode, as on a NIC without driver XDP', async () => {
    // Reattach hv1's programs in generic mode: a new agent on the same pins.
    await hv1.teardown();
    hv1 = await HostAgent.start({
      hostName: 'hv1',
      pinRoot: join(ref.value.bpffs, 'hv1'),
      netns: topo().host('hv1').ns.path,
      xdpMode: 'generic',
    });
    await hv1.applyPolicy(withSteering([{ port: 'blue-vm1', mode: 'fixed', cpus: [1] }]));
    expect(xdpQuery({ ifname: 'eth0', netns: topo().host('hv1').ns.path }).mode).toBe('generic');
    const before = counters('blue-vm1');
    await udpSend(vm('blue-vm2'), {
      cpu: 0,
      dst: BLUE1_CA,
      sport: 42100,
      dport: 9,
      n: 50,
      gapMs: 2,
    });
    await new Promise((r) => setTimeout(r, 200));
    const d = delta(before, counters('blue-vm1'));
    expect(d[1]!.delivered, JSON.stringify(d)).toBeGreaterThanOrEqual(50);
    expect(d[0]!.delivered, JSON.stringify(d)).toBe(0);
    expect(d[0]!.steered, JSON.stringify(d)).toBeGreaterThanOrEqual(50);
  }, 30_000);
});
