// The NVGRE overlay end to end on the demo lab (scripts/lab/demo-lab.yaml + demo-policy.yaml):
// two hypervisor hosts each run a HostAgent that compiles the demo policy into its pinned maps
// and attaches the datapath; VMs in namespaces send real traffic.
//
// What must hold (issue 3): same-tenant VMs reach each other across hosts over IPv4 and IPv6 (ping
// and TCP); tenants with identical addresses never reach each other; the distributed router
// routes between two virtual subnets of one routing domain; what crosses the underlay is NVGRE
// that tshark decodes as GRE with key VSID<<8|FlowID and protocol 0x6558; crafted bad NVGRE
// frames are dropped and counted by reason; PMTUD works through the overlay; a VM that moves to
// the other host is reachable again after the policy change.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CounterReader } from '../../agent/datapath/counters.js';
import { HostAgent } from '../../agent/host/index.js';
import { flowId } from '../../agent/model/index.js';
import { ipv4ToBytes, packet, writePcap } from '../../agent/packet/index.js';
import { loadPolicyFile, type Policy, type PolicyDocument } from '../../agent/policy/index.js';
import { parsePolicy } from '../../agent/policy/index.js';
import {
  buildTopology,
  iperf3,
  loadLabFile,
  ping,
  useLab,
  type Netns,
  type Topology,
} from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';

const LAB_DIR = resolve(fileURLToPath(new URL('../../scripts/lab/', import.meta.url)));
const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];

async function rxPackets(ns: Netns, ifname: string): Promise<number> {
  const r = await ns.execOk(['cat', `/sys/class/net/${ifname}/statistics/rx_packets`]);
  return Number(r.stdout.trim());
}

describePrivileged('NVGRE overlay end to end (demo lab)', () => {
  const ref = useLab('overlay', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const pinRoot = (h: Host): string => join(ref.value.bpffs, h);
  const agents = new Map<Host, HostAgent>();
  const vm = (name: string): Netns => topo().vm(name).ns;
  let policy: Policy;
  let tmp = '';

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tenet-overlay-'));
    policy = await loadPolicyFile(join(LAB_DIR, 'demo-policy.yaml'));
    for (const h of HOSTS) {
      const agent = await HostAgent.start({
        hostName: h,
        pinRoot: pinRoot(h),
        netns: topo().host(h).ns.path,
      });
      agents.set(h, agent);
      await agent.applyPolicy(policy);
    }
  });

  // Registered after useLab's hooks, so it runs before the lab is torn down.
  afterAll(async () => {
    for (const a of agents.values()) await a.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function drops(h: Host): Map<string, bigint> {
    const reader = new CounterReader(pinRoot(h));
    try {
      return new Map(reader.dropTotals().map((d) => [d.reason, d.packets]));
    } finally {
      reader.close();
    }
  }

  it('same-tenant VMs reach each other across hosts over IPv4 and IPv6', async () => {
    for (const [from, to] of [
      ['blue-vm1', '198.19.1.12'],
      ['blue-vm1', 'fd00:1:1::12'],
      ['red-vm2', '198.19.1.11'],
      ['red-vm2', 'fd00:1:1::11'],
    ] as const) {
      const r = await ping(vm(from), to, { count: 3, intervalMs: 200, timeoutS: 2 });
      expect(r.received, `${from} -> ${to}: ${r.error ?? ''}`).toBe(3);
    }
  });

  it('tenants with identical addresses never reach each other', async () => {
    // red-vm1 pings 198.19.1.12: red-vm2 must get every echo, blue-vm2 (same CA, VSID 5001)
    // none of them.
    const blueBefore = await rxPackets(vm('blue-vm2'), 'eth0');
    const redBefore = await rxPackets(vm('red-vm2'), 'eth0');
    const r = await ping(vm('red-vm1'), '198.19.1.12', { count: 5, intervalMs: 100, timeoutS: 2 });
    expect(r.received).toBe(5);
    expect((await rxPackets(vm('red-vm2'), 'eth0')) - redBefore).toBeGreaterThanOrEqual(5);
    expect((await rxPackets(vm('blue-vm2'), 'eth0')) - blueBefore).toBe(0);
    // red has no 198.19.2.0/24: blue's database subnet is unreachable from red.
    const toDb = await ping(vm('red-vm1'), '198.19.2.21', {
      count: 2,
      intervalMs: 100,
      timeoutS: 1,
    });
    expect(toDb.received).toBe(0);
  });

  it('routes between two virtual subnets of one routing domain (TTL decremented)', async () => {
    for (const to of ['198.19.2.21', 'fd00:1:2::21']) {
      const r = await vm('blue-vm1').exec(['ping', '-c', '2', '-i', '0.2', '-W', '2', to]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      // Linux VMs send with TTL/hop limit 64; one routing hop by the distributed router.
      expect(r.stdout).toMatch(/(ttl|hlim)=63/);
    }
  });

  it('carries NVGRE on the underlay that tshark decodes with key VSID<<8|FlowID', async () => {
    const file = join(tmp, 'underlay.pcap');
    const sw = topo().switch.ns;
    const cap = sw.spawn(['tcpdump', '-i', 'p-hv1', '-U', '-c', '4', '-w', file, 'ip proto 47'], {
      timeoutMs: 15_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    await ping(vm('blue-vm1'), '198.19.1.12', { count: 2, intervalMs: 200, timeoutS: 2 });
    const done = await cap.exited;
    expect(done.timedOut).toBe(false);
    const out = await sw.execOk([
      'tshark',
      '-r',
      file,
      '-T',
      'fields',
      '-E',
      'separator=;',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'gre.flags_and_version',
      '-e',
      'gre.proto',
      '-e',
      'gre.key',
      '-e',
      'ip.flags.df',
      '-e',
      'icmp.type',
    ]);
    const rows = out.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(';'));
    expect(rows.length).toBe(4);
    for (const [src, dst, flags, proto, key, df, icmpType] of rows) {
      const [outerSrc, innerSrc] = src!.split(',');
      const [outerDst, innerDst] = dst!.split(',');
      expect(Number(flags)).toBe(0x2000);
      expect(Number(proto)).toBe(0x6558);
      expect(df!.split(',')[0]).toMatch(/^(1|True)$/);
      const k = Number(key);
      expect(k >>> 8).toBe(5001);
      // FlowID = the documented hash of the inner flow (ICMP: no ports).
      const expected = flowId(ipv4ToBytes(innerSrc!), ipv4ToBytes(innerDst!), 0, 0, 1);
      expect(k & 0xff).toBe(expected);
      if (icmpType === '8') {
        expect([outerSrc, outerDst, innerSrc, innerDst]).toEqual([
          '198.18.0.1',
          '198.18.0.2',
          '198.19.1.11',
          '198.19.1.12',
        ]);
      } else {
        expect([outerSrc, outerDst, innerSrc, innerDst]).toEqual([
          '198.18.0.2',
          '198.18.0.1',
          '198.19.1.12',
          '198.19.1.11',
        ]);
      }
    }
  });

  it('drops crafted NVGRE frames from the underlay and counts each by reason', async () => {
    const hv1 = topo().host('hv1').phys;
    const hv2 = topo().host('hv2').phys;
    const outer = (src = '198.18.0.2') =>
      packet()
        .eth({ src: hv2.mac, dst: hv1.mac })
        .ipv4({ src, dst: '198.18.0.1', df: true, ttl: 64 });
    const withGre = (gre: Parameters<ReturnType<typeof packet>['nvgre']>[0], src?: string) =>
      outer(src).nvgre(gre);

    const cases: Array<{ reason: string; bytes: Buffer }> = [
      {
        reason: 'nvgre_vsid_unknown',
        bytes: withGre({ vsid: 7777, flowId: 1 })
          .eth({ src: '02:00:00:b1:00:12', dst: '02:00:00:b1:00:11' })
          .ipv4({ src: '198.19.1.12', dst: '198.19.1.11' })
          .icmp({ type: 8, code: 0 })
          .build(),
      },
      {
        reason: 'nvgre_foreign_pa',
        bytes: withGre({ vsid: 5001, flowId: 1 }, '198.18.0.99')
          .eth({ src: '02:00:00:b1:00:12', dst: '02:00:00:b1:00:11' })
          .ipv4({ src: '198.19.1.12', dst: '198.19.1.11' })
          .icmp({ type: 8, code: 0 })
          .build(),
      },
      {
        reason: 'nvgre_bad_flags',
        bytes: withGre({ vsid: 5001, flowId: 1, checksum: true })
          .eth({ src: '02:00:00:b1:00:12', dst: '02:00:00:b1:00:11' })
          .ipv4({ src: '198.19.1.12', dst: '198.19.1.11' })
          .icmp({ type: 8, code: 0 })
          .build(),
      },
      {
        reason: 'nvgre_inner_vlan',
        bytes: withGre({ vsid: 5001, flowId: 1 })
          .eth({ src: '02:00:00:b1:00:12', dst: '02:00:00:b1:00:11' })
          .vlan({ vid: 10 })
          .ipv4({ src: '198.19.1.12', dst: '198.19.1.11' })
          .icmp({ type: 8, code: 0 })
          .build(),
      },
      {
        // The outer IP length covers only the GRE header plus 6 bytes of an inner frame.
        reason: 'nvgre_inner_truncated',
        bytes: withGre({ vsid: 5001, flowId: 1 }).payload(Buffer.alloc(6, 0xab)).build(),
      },
    ];
    // A positive control: the same shape, well formed, is delivered to blue-vm1.
    const good = withGre({ vsid: 5001, flowId: 1 })
      .eth({ src: '02:00:00:b1:00:12', dst: '02:00:00:b1:00:11' })
      .ipv4({ src: '198.19.1.12', dst: '198.19.1.11' })
      .icmp({ type: 8, code: 0, id: 7, seq: 1 })
      .build();

    const file = join(tmp, 'crafted.pcap');
    writePcap(file, [...cases.map((c) => c.bytes), good]);
    const before = drops('hv1');
    const rxBefore = await rxPackets(vm('blue-vm1'), 'eth0');
    await topo().switch.ns.execOk(
      [
        '/usr/bin/python3',
        '-c',
        'import sys; from scapy.all import rdpcap, sendp; ' +
          'sendp(rdpcap(sys.argv[1]), iface="p-hv1", verbose=False)',
        file,
      ],
      { timeoutMs: 30_000 },
    );
    await new Promise((r) => setTimeout(r, 300));
    const after = drops('hv1');
    for (const c of cases) {
      expect((after.get(c.reason) ?? 0n) - (before.get(c.reason) ?? 0n), c.reason).toBe(1n);
    }
    expect((await rxPackets(vm('blue-vm1'), 'eth0')) - rxBefore).toBeGreaterThanOrEqual(1);
  });

  it('path MTU discovery works through the overlay (IPv4 and IPv6)', async () => {
    const blue1 = vm('blue-vm1');
    // The VM believes its link takes 1500 bytes; the overlay carries 1458 (1500 - 42).
    await blue1.execOk(['ip', 'link', 'set', 'eth0', 'mtu', '1500']);
    try {
      const v4 = await blue1.exec([
        'ping',
        '-c',
        '2',
        '-i',
        '0.3',
        '-W',
        '1',
        '-M',
        'do',
        '-s',
        '1472',
        '198.19.1.12',
      ]);
      expect(v4.stdout + v4.stderr).toMatch(/mtu\s*=\s*1458/);
      const fits4 = await blue1.exec([
        'ping',
        '-c',
        '2',
        '-i',
        '0.2',
        '-W',
        '2',
        '-M',
        'do',
        '-s',
        '1430',
        '198.19.1.12',
      ]);
      expect(fits4.code, fits4.stdout).toBe(0);

      const v6 = await blue1.exec([
        'ping',
        '-6',
        '-c',
        '2',
        '-i',
        '0.3',
        '-W',
        '1',
        '-s',
        '1452',
        'fd00:1:1::12',
      ]);
      expect(v6.stdout + v6.stderr).toMatch(/mtu\s*=\s*1458/i);
      const fits6 = await blue1.exec([
        'ping',
        '-6',
        '-c',
        '2',
        '-i',
        '0.2',
        '-W',
        '2',
        '-s',
        '1410',
        'fd00:1:1::12',
      ]);
      expect(fits6.code, fits6.stdout).toBe(0);
    } finally {
      await blue1.execOk(['ip', 'link', 'set', 'eth0', 'mtu', '1458']);
    }
  });

  it('carries TCP across hosts over IPv4 and IPv6 (iperf3)', async () => {
    for (const addr of ['198.19.1.12', 'fd00:1:1::12']) {
      const r = await iperf3(vm('blue-vm2'), vm('blue-vm1'), addr, { seconds: 2 });
      expect(r.receivedBps, addr).toBeGreaterThan(10e6);
    }
  });

  it('keeps blue-vm2 reachable after it live-migrates from hv2 to hv1', async () => {
    // The VM moves: its link is re-plugged into hv1, and the policy says so (port on hv1, every
    // lookup record of its CAs pointing at hv1's PA). Nothing changes inside the tenant.
    const doc = structuredClone(policy) as unknown as PolicyDocument;
    const moved = parsePolicy({
      ...doc,
      ports: doc.ports.map((p) => (p.name === 'blue-vm2' ? { ...p, host: 'hv1' } : p)),
      lookupRecords: doc.lookupRecords.map((r) =>
        r.vsid === 5001 && r.mac === '02:00:00:b1:00:12' ? { ...r, pa: '198.18.0.1' } : r,
      ),
    });
    const lab = ref.lab;
    const blue2 = vm('blue-vm2');
    await topo().host('hv2').ns.execOk(['ip', 'link', 'del', 'vm-blue2']);
    await lab.veth(
      {
        ns: blue2,
        name: 'eth0',
        mac: '02:00:00:b1:00:12',
        addrs: ['198.19.1.12/24', 'fd00:1:1::12/64'],
        mtu: 1458,
      },
      { ns: topo().host('hv1').ns, name: 'vm-blue2' },
    );
    await blue2.execOk(['ethtool', '-K', 'eth0', 'gro', 'on']);
    await blue2.execOk(['ip', 'route', 'add', 'default', 'via', '198.19.1.1']);
    await blue2.execOk(['ip', '-6', 'route', 'add', 'default', 'via', 'fd00:1:1::1']);
    // Destination first, then the source, as an orchestrator would.
    await agents.get('hv1')!.applyPolicy(moved);
    await agents.get('hv2')!.applyPolicy(moved);

    // Now local to blue-vm1 on hv1, and remote (encapsulated to hv1) for blue-db1 on hv2.
    for (const [from, to] of [
      ['blue-vm1', '198.19.1.12'],
      ['blue-vm1', 'fd00:1:1::12'],
      ['blue-db1', '198.19.1.12'],
    ] as const) {
      const r = await ping(vm(from), to, { count: 3, intervalMs: 200, timeoutS: 2 });
      expect(r.received, `${from} -> ${to}`).toBe(3);
    }
    // red-vm1's identical address is still red's own.
    const r = await ping(vm('red-vm1'), '198.19.1.12', { count: 2, intervalMs: 200, timeoutS: 2 });
    expect(r.received).toBe(2);
  });
});
