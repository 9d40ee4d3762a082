// Port ACLs end to end on the demo lab (scripts/lab/demo-lab.yaml + demo-policy.yaml plus the
// port ACLs below), applied by a HostAgent per host, with real traffic between VM namespaces:
// a deny observed across hosts (NVGRE decap, inbound) next to the traffic it does not cover, a
// deny within one host (routed host-local delivery, outbound), and a stateful rule that admits
// the replies of what the VM sent and nothing else. Kept lean: one policy, a few exchanges.

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CounterReader } from '../../agent/datapath/counters.js';
import { HostAgent } from '../../agent/host/index.js';
import { parsePolicy, type Policy } from '../../agent/policy/index.js';
import {
  buildTopology,
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

const PORT_ACLS = [
  {
    // Across hosts: blue-vm1 may not ping blue-vm2 over IPv4; IPv6 is not covered.
    port: 'blue-vm2',
    rules: [
      {
        name: 'no-ping-from-vm1',
        direction: 'inbound',
        action: 'deny',
        protocol: 1,
        remotePrefix: '198.19.1.11/32',
      },
    ],
  },
  {
    // Within hv2: blue-db1 may not ping blue-vm2 (routed, delivered host-locally).
    port: 'blue-db1',
    rules: [
      {
        name: 'no-ping-to-vm2',
        direction: 'outbound',
        action: 'deny',
        protocol: 1,
        remotePrefix: '198.19.1.12/32',
      },
    ],
  },
  {
    // blue-vm1: UDP it sends opens a flow whose replies come back; other inbound UDP is denied.
    port: 'blue-vm1',
    rules: [
      {
        name: 'udp-out',
        direction: 'outbound',
        action: 'allow',
        protocol: 17,
        stateful: true,
        idleTimeoutSeconds: 30,
      },
      { name: 'udp-in', direction: 'inbound', action: 'deny', protocol: 17 },
    ],
  },
];

/** A UDP echo server: answers `count` datagrams on `port`, gives up after `timeoutS`. */
const ECHO = (port: number, count: number, timeoutS: number): string[] => [
  'python3',
  '-c',
  `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',${port}))\ns.settimeout(${timeoutS})\nn=0\ntry:\n  while n<${count}:\n    d,a=s.recvfrom(2048); s.sendto(d,a); n+=1\nexcept socket.timeout:\n  pass\nprint('served',n)`,
];

/** Sends up to `tries` datagrams to addr:port from `sport`, one every 0.5 s; prints replies. */
const ASK = (addr: string, port: number, sport: number, tries: number): string[] => [
  'python3',
  '-c',
  `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',${sport}))\ns.settimeout(0.5)\ngot=0\nfor i in range(${tries}):\n  s.sendto(b'tenet-acl',('${addr}',${port}))\n  try:\n    d,a=s.recvfrom(2048); got+=1; break\n  except socket.timeout:\n    pass\nprint('replies',got)`,
];

describePrivileged('port ACLs end to end (demo lab)', () => {
  const ref = useLab('acl', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const pinRoot = (h: Host): string => join(ref.value.bpffs, h);
  const vm = (name: string): Netns => topo().vm(name).ns;
  const agents = new Map<Host, HostAgent>();
  let policy: Policy;

  beforeAll(async () => {
    const doc = parseYaml(readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8')) as Record<
      string,
      unknown
    >;
    policy = parsePolicy({ ...doc, portAcls: PORT_ACLS });
    for (const h of HOSTS) {
      const agent = await HostAgent.start({
        hostName: h,
        pinRoot: pinRoot(h),
        netns: topo().host(h).ns.path,
      });
      agents.set(h, agent);
      await agent.applyPolicy(policy);
    }
  }, 60_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.stop();
  });

  const aclDenies = (h: Host): bigint => {
    const reader = new CounterReader(pinRoot(h));
    try {
      return reader.dropTotals().find((d) => d.reason === 'acl_deny')?.packets ?? 0n;
    } finally {
      reader.close();
    }
  };

  it('across hosts: the denied ping is dropped on the receiving host, IPv6 still flows', async () => {
    const before = aclDenies('hv2');
    const v4 = await ping(vm('blue-vm1'), '198.19.1.12', {
      count: 3,
      intervalMs: 200,
      timeoutS: 1,
    });
    expect(v4.received).toBe(0);
    expect(aclDenies('hv2') - before).toBeGreaterThanOrEqual(3n);
    const v6 = await ping(vm('blue-vm1'), 'fd00:1:1::12', {
      count: 3,
      intervalMs: 200,
      timeoutS: 2,
    });
    expect(v6.received, v6.error ?? '').toBe(3);
    // The rule is on blue-vm2's inbound side only: blue-vm2's echo requests reach blue-vm1,
    // whose echo replies (ICMP from 198.19.1.11) the same rule then drops at blue-vm2.
    const rx = async (): Promise<number> =>
      Number(
        (await vm('blue-vm1').execOk(['cat', '/sys/class/net/eth0/statistics/rx_packets'])).stdout,
      );
    const rxBefore = await rx();
    const back = await ping(vm('blue-vm2'), '198.19.1.11', {
      count: 2,
      intervalMs: 200,
      timeoutS: 1,
    });
    expect(back.received).toBe(0);
    expect((await rx()) - rxBefore).toBeGreaterThanOrEqual(2);
  });

  it('within a host: the routed ping to a local VM is denied, the one across hosts allowed', async () => {
    const before = aclDenies('hv2');
    const local = await ping(vm('blue-db1'), '198.19.1.12', {
      count: 2,
      intervalMs: 200,
      timeoutS: 1,
    });
    expect(local.received).toBe(0);
    expect(aclDenies('hv2') - before).toBeGreaterThanOrEqual(2n);
    const remote = await ping(vm('blue-db1'), '198.19.1.11', {
      count: 2,
      intervalMs: 200,
      timeoutS: 2,
    });
    expect(remote.received, remote.error ?? '').toBe(2);
  });

  it('stateful: replies to what blue-vm1 sent come back; unsolicited UDP does not', async () => {
    const [served, asked] = await Promise.all([
      vm('blue-vm2').execOk(ECHO(7777, 1, 6)),
      vm('blue-vm1').execOk(ASK('198.19.1.12', 7777, 40001, 8)),
    ]);
    expect(asked.stdout.trim()).toBe('replies 1');
    expect(served.stdout.trim()).toBe('served 1');

    // blue-vm2 starts a UDP exchange with blue-vm1: blue-vm1's server never sees it.
    const before = aclDenies('hv1');
    const [served2, asked2] = await Promise.all([
      vm('blue-vm1').execOk(ECHO(7778, 1, 4)),
      vm('blue-vm2').execOk(ASK('198.19.1.11', 7778, 40002, 4)),
    ]);
    expect(served2.stdout.trim()).toBe('served 0');
    expect(asked2.stdout.trim()).toBe('replies 0');
    expect(aclDenies('hv1') - before).toBeGreaterThanOrEqual(1n);
  });
});
