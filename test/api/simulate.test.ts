// AgentService.Simulate and `tenetctl simulate`.
//
// The answers are held to the real programs: the same compiled policy is installed into the BPF
// maps of a private pin root by the production reconciler (BpfPolicyTables + reconcile), the frame
// Simulate built is run through tenet_port_ingress / tenet_xdp_rx with BPF_PROG_TEST_RUN, and
// verdict, drop reason, redirect target, output bytes (outer PA/VSID/FlowID for encapsulation)
// and counter deltas must be what Simulate said. Test-runs see the loopback device (ifindex 1),
// so the interface the packet enters on is given ifindex 1 in the host facts of each case.
// Then every error status, and tenetctl's output and exit codes.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Maps, type UnderlayNh } from '../../agent/abi/generated.js';
import type { PolicyBackend } from '../../agent/api/backend.js';
import { fieldViolations } from '../../agent/api/client.js';
import { BpfMap, TypedMap } from '../../agent/bpf/index.js';
import { compile, type InterfaceFacts } from '../../agent/compiler/index.js';
import { describePacket, encodePcap, packet, parsePacket } from '../../agent/packet/index.js';
import { memoryBackend } from '../../agent/daemon/backend.js';
import { parseConfig } from '../../agent/daemon/config.js';
import { parsePolicy } from '../../agent/policy/index.js';
import { BpfPolicyTables } from '../../agent/reconciler/bpf-tables.js';
import { reconcile } from '../../agent/reconciler/index.js';
import { useDatapath, type RunResult } from '../datapath/harness.js';
import { describePrivileged } from '../helpers/privilege.js';
import { demoPolicyText, rejection, ROOT, startTestApi, type TestApi } from './helpers.js';

const execFileP = promisify(execFile);
const CLI = join(ROOT, 'agent/cli/main.ts');

type Plain = Record<string, unknown>;

/** The demo policy plus a second blue-web VM on hv1 (blue-vm3), for switching between ports. */
function policyText(): string {
  const doc = parse(demoPolicyText()) as {
    ports: Plain[];
    lookupRecords: Plain[];
  };
  doc.ports.push({
    name: 'blue-vm3',
    host: 'hv1',
    interface: 'vm-blue3',
    mac: '02:00:00:b1:00:13',
    vsid: 5001,
    addresses: ['198.19.1.13', 'fd00:1:1::13'],
  });
  for (const ca of ['198.19.1.13', 'fd00:1:1::13'])
    doc.lookupRecords.push({ vsid: 5001, ca, mac: '02:00:00:b1:00:13', pa: '198.18.0.1' });
  return JSON.stringify(doc);
}

const NIC_MAC = '02:00:00:00:0e:01';
const HV2_MAC = '02:00:00:00:0e:02';
const PA_HV2 = 0xc6120002; // 198.18.0.2

/** hv1's interfaces with `entry` (where the packet comes in) at ifindex 1, the loopback. */
function factsWith(entry: 'vm-blue1' | 'eth0'): Record<string, InterfaceFacts> {
  const f: Record<string, InterfaceFacts> = {
    eth0: { ifindex: 2, mac: NIC_MAC, mtu: 1500 },
    'vm-blue1': { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 },
    'vm-red1': { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 },
    'vm-blue3': { ifindex: 12, mac: 'fe:00:00:00:00:0c', mtu: 1500 },
  };
  f[entry] = { ...(f[entry] as InterfaceFacts), ifindex: 1 };
  return f;
}

const UNDERLAY = new Map<number, UnderlayNh>([
  [PA_HV2, { mac: Uint8Array.from(HV2_MAC.split(':').map((h) => parseInt(h, 16))) }],
]);

async function tenetctl(
  socket: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(
      process.execPath,
      ['--import', 'tsx', CLI, '--socket', socket, ...args],
      { cwd: ROOT, timeout: 60_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const b64 = (v: unknown): Buffer => Buffer.from(String(v ?? ''), 'base64');

describePrivileged('Simulate equals the BPF programs on the same compiled policy', () => {
  const dp = useDatapath();
  let api: TestApi;
  let facts = factsWith('vm-blue1');
  let tables: BpfPolicyTables;
  let underlay: TypedMap<number, UnderlayNh>;

  beforeAll(async () => {
    api = await startTestApi({ facts: () => facts, underlay: () => UNDERLAY });
    await api.client.policy('Apply', { text: policyText() });
    tables = BpfPolicyTables.openPinned(dp.pinRoot);
    const u = Maps.tenet_underlay;
    underlay = new TypedMap(BpfMap.openPinned(join(dp.pinRoot, u.name)), u.key, u.value);
    for (const [pa, nh] of UNDERLAY) underlay.set(pa, nh);
  });
  afterAll(async () => {
    tables?.close();
    underlay?.close();
    await api?.close();
  });

  /** The datapath holds the policy compiled with `entry` at ifindex 1 (the production path). */
  async function install(entry: 'vm-blue1' | 'eth0'): Promise<void> {
    facts = factsWith(entry);
    const policy = parsePolicy(policyText());
    await reconcile(tables, compile(policy, 'hv1', facts));
  }

  const nameOf = (ifindex: number): string =>
    Object.entries(facts).find(([, f]) => f.ifindex === ifindex)?.[0] ?? `ifindex ${ifindex}`;
  const portOf: Record<string, string> = {
    'vm-blue1': 'blue-vm1',
    'vm-red1': 'red-vm1',
    'vm-blue3': 'blue-vm3',
  };

  /** Simulate, then the real program on the frame Simulate built; both must agree. */
  async function agree(req: Plain): Promise<{ sim: Plain; bpf: RunResult }> {
    const sim = await api.client.agent('Simulate', req);
    const frame = b64(sim.inputFrame);
    const bpf = req.port !== undefined ? dp.runPort(frame) : dp.runXdp(frame);
    const context = `${describePacket(frame)}\nsimulate: ${JSON.stringify(sim)}\nbpf: ${bpf.verdict} ${describePacket(bpf.data)}`;
    const tx = bpf.verdict === 'redirect' && bpf.redirectIfindex === 1;
    const verdict = `DATAPATH_VERDICT_${(tx ? 'tx' : bpf.verdict).toUpperCase()}`;
    expect(sim.verdict, context).toBe(verdict);
    expect(sim.returnCode ?? 0, context).toBe(bpf.retval);
    expect(sim.dropReason, context).toBe(bpf.counters.drops[0]?.reason);
    if (bpf.verdict === 'redirect') {
      expect(sim.outputInterface, context).toBe(nameOf(bpf.redirectIfindex as number));
      expect(sim.outputPort, context).toBe(portOf[nameOf(bpf.redirectIfindex as number)]);
      expect(sim.outputIfindex, context).toBe(
        facts[nameOf(bpf.redirectIfindex as number)]?.ifindex,
      );
    }
    if (bpf.verdict !== 'drop') {
      expect(b64(sim.outputFrame).toString('hex'), context).toBe(bpf.data.toString('hex'));
      expect(sim.outputDecode).toBe(describePacket(bpf.data));
    }
    const counters = (sim.counters ?? {}) as Record<string, Plain[] | undefined>;
    const ports = (counters.ports ?? []).map((p) => ({
      interface: p.interface,
      direction: p.direction,
      packets: Number(p.packets),
      bytes: Number(p.bytes),
    }));
    expect(ports, context).toEqual(
      bpf.counters.ports.map((p) => ({
        interface: nameOf(p.ifindex),
        direction: p.direction,
        packets: p.packets,
        bytes: p.bytes,
      })),
    );
    expect(
      (counters.vsids ?? []).map((v) => [v.vsid, v.direction, Number(v.packets), Number(v.bytes)]),
      context,
    ).toEqual(bpf.counters.vsids.map((v) => [v.vsid, v.kind, v.packets, v.bytes]));
    expect(
      (counters.drops ?? []).map((d) => [d.reason, Number(d.packets), Number(d.bytes)]),
      context,
    ).toEqual(bpf.counters.drops.map((d) => [d.reason, d.packets, d.bytes]));
    return { sim, bpf };
  }

  describe('from a VM port (tc ingress)', () => {
    beforeAll(() => install('vm-blue1'));

    it('switched to a local VM of the same virtual subnet', async () => {
      const { sim } = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.1.13', protocol: 'PACKET_PROTOCOL_ICMP' },
      });
      expect(sim).toMatchObject({
        hook: 'tc-ingress',
        ingressInterface: 'vm-blue1',
        ingressPort: 'blue-vm1',
        verdict: 'DATAPATH_VERDICT_REDIRECT',
        outputInterface: 'vm-blue3',
        outputPort: 'blue-vm3',
        policyVersion: '1',
      });
      expect(sim.inputDecode).toBe(
        '02:00:00:b1:00:11 > 02:00:00:b1:00:13 IPv4 198.19.1.11 > 198.19.1.13 ttl 64 ICMP echo request id 1 seq 1 len 0',
      );
      expect(sim.encapsulation).toBeUndefined();
    });

    it('encapsulated to a remote VM: outer PAs, VSID and FlowID as the program writes them', async () => {
      const { sim, bpf } = await agree({
        port: 'blue-vm1',
        description: {
          dstIp: '198.19.1.12',
          protocol: 'PACKET_PROTOCOL_TCP',
          srcPort: 40000,
          dstPort: 443,
          dscp: 10,
          ecn: 1,
          df: true,
          length: 600,
        },
      });
      const wire = parsePacket(bpf.data);
      expect(sim.encapsulation).toEqual({
        srcPa: '198.18.0.1',
        dstPa: '198.18.0.2',
        vsid: 5001,
        flowId: wire.gre?.flowId,
        srcMac: NIC_MAC,
        dstMac: HV2_MAC,
      });
      expect(wire.gre?.vsid).toBe(5001);
      expect(wire.ipv4).toMatchObject({ src: '198.18.0.1', dst: '198.18.0.2' });
      expect(b64(sim.inputFrame)).toHaveLength(600);
      expect(sim).toMatchObject({ outputInterface: 'eth0' });
      expect(sim.outputPort).toBeUndefined();
    });

    it('routed through the distributed router (gateway MAC by default), and via a next hop', async () => {
      const { sim } = await agree({ port: 'blue-vm1', description: { dstIp: '198.19.2.21' } });
      expect(b64(sim.inputFrame).subarray(0, 6).toString('hex')).toBe('02746e001389');
      expect(sim.encapsulation).toMatchObject({ vsid: 5002, dstPa: '198.18.0.2' });
      const via = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.100.7', protocol: 'PACKET_PROTOCOL_UDP', dstPort: 53 },
      });
      expect(via.sim.encapsulation).toMatchObject({ vsid: 5002 });
      const v6 = await agree({ port: 'blue-vm1', description: { dstIp: 'fd00:1:2::21' } });
      expect(v6.sim.encapsulation).toMatchObject({ vsid: 5002 });
    });

    it('ARP and neighbour solicitations are answered back to the VM', async () => {
      const { sim } = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.1.12', protocol: 'PACKET_PROTOCOL_ARP' },
      });
      expect(sim).toMatchObject({ verdict: 'DATAPATH_VERDICT_TX', outputInterface: 'vm-blue1' });
      expect(sim.outputDecode).toMatch(/ARP reply 198\.19\.1\.12 is-at 02:00:00:b1:00:12/);
      const nd = await agree({
        port: 'blue-vm1',
        description: { dstIp: 'fd00:1:1::12', protocol: 'PACKET_PROTOCOL_ICMPV6', icmpType: 135 },
      });
      expect(nd.sim.verdict).toBe('DATAPATH_VERDICT_TX');
      expect(nd.sim.outputDecode).toMatch(/neighbor advert|tgt fd00:1:1::12/);
    });

    it('spoofed sources are dropped with their reason', async () => {
      const ip = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.1.12', srcIp: '198.19.1.99' },
      });
      expect(ip.sim).toMatchObject({
        verdict: 'DATAPATH_VERDICT_DROP',
        dropReason: 'ip_src_spoof',
      });
      expect(ip.sim.outputFrame).toBeUndefined();
      const mac = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.1.12', srcMac: '02:00:00:00:99:99' },
      });
      expect(mac.sim.dropReason).toBe('port_src_mac_spoof');
      const arp = await agree({
        port: 'blue-vm1',
        description: {
          dstIp: '198.19.1.12',
          srcIp: '198.19.1.99',
          protocol: 'PACKET_PROTOCOL_ARP',
        },
      });
      expect(arp.sim.dropReason).toBe('arp_spoof');
    });

    it('an unknown destination is dropped', async () => {
      const { sim } = await agree({ port: 'blue-vm1', description: { dstIp: '198.19.1.77' } });
      expect(sim).toMatchObject({ verdict: 'DATAPATH_VERDICT_DROP', dropReason: 'dst_unknown' });
      const outside = await agree({ port: 'blue-vm1', description: { dstIp: '198.19.50.1' } });
      expect(outside.sim.dropReason).toBe('route_unknown');
    });

    it('TTL expiry and a too-big DF packet get ICMP errors from the router', async () => {
      const ttl = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.2.21', ttl: 1 },
      });
      expect(ttl.sim.verdict).toBe('DATAPATH_VERDICT_TX');
      expect(ttl.sim.outputDecode).toMatch(/ICMP time exceeded/);
      const big = await agree({
        port: 'blue-vm1',
        description: { dstIp: '198.19.1.12', df: true, length: 1514 },
      });
      expect(big.sim.verdict).toBe('DATAPATH_VERDICT_TX');
      expect(big.sim.outputDecode).toMatch(/ICMP/);
      const v6 = await agree({
        port: 'blue-vm1',
        description: { dstIp: 'fd00:1:1::12', length: 1514 },
      });
      expect(v6.sim.outputDecode).toMatch(/ICMPv6/);
    });

    it('whole frames: as given, whatever they hold', async () => {
      const frames = [
        packet()
          .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:13' })
          .ipv6({ src: 'fd00:1:1::11', dst: 'fd00:1:1::13' })
          .udp({ sport: 1, dport: 2 })
          .payload(10)
          .build(),
        packet()
          .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:13' })
          .vlan({ vid: 7 })
          .ipv4({ src: '198.19.1.11', dst: '198.19.1.13' })
          .build(),
        packet()
          .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:13' })
          .ipv4({ src: '198.19.1.11', dst: '198.19.1.13' })
          .tcp({ sport: 1, dport: 2 })
          .truncate(40)
          .build(),
      ];
      const reasons = [];
      for (const frame of frames) {
        const { sim } = await agree({ port: 'blue-vm1', frame });
        expect(b64(sim.inputFrame).equals(frame)).toBe(true);
        reasons.push(sim.dropReason ?? sim.verdict);
      }
      expect(reasons).toEqual([
        'DATAPATH_VERDICT_REDIRECT',
        'port_vlan_tagged',
        'ipv4_bad_total_length',
      ]);
    });
  });

  describe('from the physical NIC (XDP)', () => {
    beforeAll(() => install('eth0'));

    it('NVGRE from hv2 is decapsulated to the local VM; other traffic passes', async () => {
      const { sim } = await agree({
        nic: 'eth0',
        description: {
          srcIp: '198.19.1.12',
          dstIp: '198.19.1.11',
          protocol: 'PACKET_PROTOCOL_UDP',
          dstPort: 9,
          nvgre: { vsid: 5001, flowId: 7 },
        },
      });
      expect(sim).toMatchObject({
        hook: 'xdp',
        ingressInterface: 'eth0',
        verdict: 'DATAPATH_VERDICT_REDIRECT',
        outputInterface: 'vm-blue1',
        outputPort: 'blue-vm1',
      });
      expect(sim.inputDecode).toMatch(/198\.18\.0\.2 > 198\.18\.0\.1 .*vsid 5001 flowid 7/);
      const red = await agree({
        nic: 'eth0',
        description: { srcIp: '198.19.1.12', dstIp: '198.19.1.11', nvgre: { vsid: 6001 } },
      });
      expect(red.sim.outputInterface).toBe('vm-red1');
      const foreign = await agree({
        nic: 'eth0',
        description: {
          srcIp: '198.19.1.12',
          dstIp: '198.19.1.11',
          nvgre: { vsid: 5001, srcPa: '198.18.0.9' },
        },
      });
      expect(foreign.sim.dropReason).toBe('nvgre_foreign_pa');
      const plain = await agree({
        nic: 'eth0',
        description: { srcIp: '198.18.0.2', dstIp: '198.18.0.1' },
      });
      expect(plain.sim.verdict).toBe('DATAPATH_VERDICT_PASS');
    });
  });
});

describe('Simulate errors', () => {
  let api: TestApi;
  let facts = factsWith('vm-blue1');
  beforeAll(async () => {
    api = await startTestApi({ facts: () => facts, underlay: () => UNDERLAY });
  });
  afterAll(async () => {
    await api.close();
  });

  async function fails(req: Plain, code: status, detail: RegExp): Promise<string[]> {
    const err = await rejection(api.client.agent('Simulate', req));
    expect(status[err.code], err.details).toBe(status[code]);
    expect(err.details).toMatch(detail);
    return fieldViolations(err).map((v) => v.field);
  }

  it('FAILED_PRECONDITION before any policy', async () => {
    await fails(
      { port: 'blue-vm1', description: { dstIp: '198.19.1.12' } },
      status.FAILED_PRECONDITION,
      /no policy has been applied/,
    );
  });

  it('INVALID_ARGUMENT names the fields of a malformed request', async () => {
    await api.client.policy('Apply', { text: policyText() });
    expect(
      await fails({ description: { dstIp: '198.19.1.12' } }, status.INVALID_ARGUMENT, /ingress/),
    ).toEqual(['ingress']);
    expect(await fails({ port: 'blue-vm1' }, status.INVALID_ARGUMENT, /^packet:/)).toEqual([
      'packet',
    ]);
    expect(
      await fails({ port: 'blue-vm1', frame: Buffer.alloc(0) }, status.INVALID_ARGUMENT, /frame/),
    ).toEqual(['frame']);
    expect(
      await fails(
        { port: 'blue-vm1', description: { protocol: 'PACKET_PROTOCOL_TCP' } },
        status.INVALID_ARGUMENT,
        /dst_ip: is required/,
      ),
    ).toEqual(['description.dst_ip']);
    expect(
      await fails(
        {
          port: 'blue-vm1',
          description: { dstIp: '198.19.1.500', srcMac: 'zz', ttl: 256, dscp: 64, ecn: 4 },
        },
        status.INVALID_ARGUMENT,
        /5 problems/,
      ),
    ).toEqual([
      'description.dst_ip',
      'description.src_mac',
      'description.ttl',
      'description.dscp',
      'description.ecn',
    ]);
    expect(
      await fails(
        {
          port: 'blue-vm1',
          description: { dstIp: '198.19.1.12', protocol: 'PACKET_PROTOCOL_TCP' },
        },
        status.INVALID_ARGUMENT,
        /dst_port: is required for TCP/,
      ),
    ).toEqual(['description.dst_port']);
    expect(
      await fails(
        {
          port: 'blue-vm1',
          description: { dstIp: 'fd00:1:1::12', protocol: 'PACKET_PROTOCOL_ARP' },
        },
        status.INVALID_ARGUMENT,
        /ARP needs an IPv4 dst_ip/,
      ),
    ).toEqual(['description.protocol']);
    expect(
      await fails(
        { port: 'blue-vm1', description: { dstIp: '198.19.1.12', length: 20 } },
        status.INVALID_ARGUMENT,
        /length: 20 is shorter than the headers \(42 bytes\)/,
      ),
    ).toEqual(['description.length']);
    expect(
      await fails(
        { nic: 'eth0', description: { dstIp: '198.19.1.11', nvgre: { vsid: 5001 } } },
        status.INVALID_ARGUMENT,
        /src_ip: is required on a NIC/,
      ),
    ).toEqual(['description.src_ip']);
    expect(
      await fails(
        {
          port: 'blue-vm1',
          description: { dstIp: '198.19.1.12', nvgre: { vsid: 5001 } },
        },
        status.INVALID_ARGUMENT,
        /nvgre: only with nic/,
      ),
    ).toEqual(['description.nvgre']);
  });

  it('NOT_FOUND for an unknown port or NIC; FAILED_PRECONDITION for a port of another host', async () => {
    await fails(
      { port: 'nope', description: { dstIp: '198.19.1.12' } },
      status.NOT_FOUND,
      /port "nope" does not exist/,
    );
    await fails(
      { nic: 'eth9', description: { srcIp: '198.18.0.2', dstIp: '198.18.0.1' } },
      status.NOT_FOUND,
      /no provider address of host hv1 is on interface "eth9"/,
    );
    await fails(
      { port: 'blue-vm2', description: { dstIp: '198.19.1.11' } },
      status.FAILED_PRECONDITION,
      /port "blue-vm2" is on host hv2/,
    );
  });

  it('FAILED_PRECONDITION when this host cannot compile the policy now', async () => {
    const saved = facts;
    facts = { ...facts };
    delete facts['vm-blue3'];
    try {
      await fails(
        { port: 'blue-vm1', description: { dstIp: '198.19.1.12' } },
        status.FAILED_PRECONDITION,
        /interface "vm-blue3" of port "blue-vm3" does not exist/,
      );
    } finally {
      facts = saved;
    }
  });

  it('UNAVAILABLE before the first reconcile; UNIMPLEMENTED on a backend that cannot simulate', async () => {
    const early = await startTestApi({ deferInit: true });
    try {
      const err = await rejection(
        early.client.agent('Simulate', { port: 'blue-vm1', description: { dstIp: '198.19.1.12' } }),
      );
      expect(status[err.code]).toBe('UNAVAILABLE');
      await early.store.initialize();
      await early.client.policy('Apply', { text: demoPolicyText() });
      (early.store.backend as PolicyBackend).simulationInput = undefined;
      const none = await rejection(
        early.client.agent('Simulate', { port: 'blue-vm1', description: { dstIp: '198.19.1.12' } }),
      );
      expect(status[none.code]).toBe('UNIMPLEMENTED');
    } finally {
      await early.close();
    }
  });

  describe('tenetctl simulate', () => {
    it('prints the decision and the decodes; -o json is the proto3 JSON', async () => {
      const r = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'blue-vm1',
        '--dst',
        '198.19.1.12',
        '--proto',
        'icmp',
      );
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe('input:    vm-blue1 (port blue-vm1), tc ingress, policy version 1');
      expect(lines[1]).toMatch(/IPv4 198\.19\.1\.11 > 198\.19\.1\.12 ttl 64 ICMP echo request/);
      expect(lines[2]).toBe('verdict:  REDIRECT to eth0');
      expect(lines[3]).toMatch(
        /^output: {3}02:00:00:00:0e:01 > 02:00:00:00:0e:02 IPv4 198\.18\.0\.1 > 198\.18\.0\.2 .*NVGRE .*vsid 5001/,
      );
      expect(lines[4]).toMatch(
        /^nvgre: {4}PA 198\.18\.0\.1 > 198\.18\.0\.2, VSID 5001, FlowID \d+ \(02:00:00:00:0e:01 > 02:00:00:00:0e:02\)$/,
      );
      expect(r.stdout).toMatch(/counters: rx vm-blue1 \(port blue-vm1\): 1 packet, 42 bytes/);
      expect(r.stdout).toMatch(/encap VSID 5001 \(blue-web\): 1 packet, 42 bytes/);
      expect(r.stdout).toMatch(/meter blue-vm1 outbound class default: 1 packet, 42 bytes/);

      const json = await tenetctl(
        api.socketPath,
        '-o',
        'json',
        'simulate',
        '--port',
        'blue-vm1',
        '--dst',
        '198.19.1.12',
        '--src',
        '198.19.1.99',
      );
      expect(json.code).toBe(0);
      const res = JSON.parse(json.stdout) as Plain;
      expect(res).toMatchObject({
        verdict: 'DATAPATH_VERDICT_DROP',
        dropReason: 'ip_src_spoof',
        returnCode: 2,
        counters: { drops: [{ reason: 'ip_src_spoof', packets: '1', bytes: '42' }] },
      });
      // proto3 JSON: bytes as base64.
      expect(describePacket(Buffer.from(res.inputFrame as string, 'base64'))).toBe(res.inputDecode);
    });

    it('a drop, an ARP reply, a frame in hex and from a pcap', async () => {
      const drop = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'blue-vm1',
        '--dst',
        '198.19.1.77',
      );
      expect(drop.code).toBe(0);
      expect(drop.stdout).toMatch(/^verdict: {2}DROP \(dst_unknown\)$/m);
      expect(drop.stdout).toMatch(/drop dst_unknown: 1 packet, 42 bytes/);
      const arp = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'blue-vm1',
        '--dst',
        '198.19.1.12',
        '--proto',
        'arp',
        '--hex',
      );
      expect(arp.stdout).toMatch(/^verdict: {2}TX back out of vm-blue1 \(port blue-vm1\)$/m);
      expect(arp.stdout).toMatch(/^bytes: {4}020000b10011020000b10012/m);
      const frame = packet()
        .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:13' })
        .ipv4({ src: '198.19.1.11', dst: '198.19.1.13' })
        .udp({ sport: 5, dport: 6 })
        .build();
      const hex = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'blue-vm1',
        '--frame',
        frame.toString('hex'),
      );
      expect(hex.stdout).toMatch(/^verdict: {2}REDIRECT to vm-blue3 \(port blue-vm3\)$/m);
      const file = join(api.dir, 'one.pcap');
      writeFileSync(file, encodePcap([frame]));
      const pcap = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'blue-vm1',
        '--frame-file',
        file,
      );
      expect(pcap.stdout).toBe(hex.stdout);
    });

    it('exit 1 with the status when tenetd refuses; exit 2 for usage errors', async () => {
      const missing = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'nope',
        '--dst',
        '1.2.3.4',
      );
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^NOT_FOUND: port "nope" does not exist/);
      const bad = await tenetctl(
        api.socketPath,
        'simulate',
        '--port',
        'blue-vm1',
        '--dst',
        '198.19.1.12',
        '--src-mac',
        'zz',
      );
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/^INVALID_ARGUMENT: description\.src_mac: "zz" is not a MAC/);
      const usage = [
        ['simulate', '--dst', '198.19.1.12'],
        ['simulate', '--port', 'blue-vm1', '--nic', 'eth0', '--dst', '198.19.1.12'],
        ['simulate', '--port', 'blue-vm1'],
        ['simulate', '--port', 'blue-vm1', '--dst', '198.19.1.12', '--proto', 'sctp'],
        ['simulate', '--port', 'blue-vm1', '--frame', 'xyz'],
        ['simulate', '--port', 'blue-vm1', '--frame', '00', '--dst', '198.19.1.12'],
        ['simulate', '--port', 'blue-vm1', '--dst', '198.19.1.12', '--ttl', '-1'],
      ];
      const results = await Promise.all(usage.map((args) => tenetctl(api.socketPath, ...args)));
      results.forEach((r, i) => expect(r.code, `${usage[i]?.join(' ')}: ${r.stderr}`).toBe(2));
    });
  });
});

describe('the memory backend from a config', () => {
  it('takes underlay next hops for Simulate; refuses bad ones', async () => {
    const text = (underlay: string) =>
      [
        'hostName: hv1',
        'datapath:',
        '  backend: memory',
        '  interfaces:',
        "    eth0: { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 }",
        "    vm-blue1: { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 }",
        "    vm-red1: { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 }",
        underlay,
      ].join('\n');
    const config = parseConfig(text(`  underlay: { 198.18.0.2: '${HV2_MAC}' }`));
    expect(config.datapath.dropEvents).toBe(false);
    const backend = memoryBackend(config);
    const input = await backend.simulationInput?.(parsePolicy(demoPolicyText()));
    expect([...(input?.underlay ?? [])]).toEqual([
      [PA_HV2, { mac: Uint8Array.from([2, 0, 0, 0, 0x0e, 2]) }],
    ]);
    expect(() => parseConfig(text("  underlay: { hv2: '02:00:00:00:0e:02' }"))).toThrow(
      /datapath\.underlay\.hv2: is not an IPv4 address/,
    );
    expect(() => parseConfig(text("  underlay: { 198.18.0.2: 'zz' }"))).toThrow(
      /not a MAC address/,
    );
    expect(() => parseConfig(text('  dropEvents: maybe'))).toThrow(/datapath\.dropEvents/);
  });
});
