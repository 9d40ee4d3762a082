// Port ACLs (bpf/lib/acl.h) through BPF_PROG_TEST_RUN, at all three ACL points: outbound of vm1's
// port (tc ingress, tenet_port_ingress), inbound of vm2's port at host-local delivery, and inbound
// of vm1's port at NVGRE decapsulation (XDP, tenet_xdp_rx). Each case installs ACLs through the
// real compiler and reconciler writer, runs frames in order (state carries over within a case),
// and checks the verdict and drop reason written here, the per-rule counters written here, and
// that the reference model (agent/model/acl.ts, via simulate()) said the same for every frame.

import { expect, it } from 'vitest';
import { simulate, type Hook } from '../../agent/model/index.js';
import { packet } from '../../agent/packet/index.js';
import type { AclRule } from '../../agent/policy/model.js';
import { describePrivileged } from '../helpers/privilege.js';
import { compileAcls } from '../../agent/compiler/acl.js';
import { AclTables } from '../../agent/reconciler/acl.js';
import { useAclDatapath, type AclPortSpec } from './acl-harness.js';
import {
  BLUE2,
  GW1_MAC,
  NIC_IFINDEX,
  PA_A,
  PA_B,
  PORT_IFINDEX,
  VM1,
  VM2,
  VM2_IFINDEX,
  VM3,
  VM4,
  baseTables,
} from './fixture.js';

// ---- frames ------------------------------------------------------------------------------------

type L4 =
  | { udp: [number, number] }
  | { tcp: [number, number] }
  | { icmp: { type: number; code?: number; id?: number; quote?: Buffer } };

interface FrameOpts {
  src?: string;
  dst?: string;
  smac?: string;
  dmac?: string;
  l4?: L4;
  frag?: { id: number; mf?: boolean; offset?: number };
  ext?: Array<'hop-by-hop' | 'dest-opts'>;
  vlan?: number;
  payload?: string;
}

function frame(o: FrameOpts): Buffer {
  const src = o.src ?? VM1.ip4;
  const dst = o.dst ?? VM2.ip4;
  const v6 = src.includes(':');
  let b = packet().eth({ src: o.smac ?? VM1.mac, dst: o.dmac ?? VM2.mac });
  if (o.vlan !== undefined) b = b.vlan({ vid: o.vlan });
  if (v6) {
    const ext: Array<Record<string, unknown>> = (o.ext ?? []).map((type) => ({ type }));
    if (o.frag)
      ext.push({
        type: 'fragment',
        id: o.frag.id,
        mf: o.frag.mf ?? false,
        offset: o.frag.offset ?? 0,
      });
    b = b.ipv6({ src, dst, hopLimit: 64, ext: ext as never });
  } else {
    b = b.ipv4({
      src,
      dst,
      ttl: 64,
      id: o.frag?.id ?? 7,
      df: o.frag === undefined,
      mf: o.frag?.mf ?? false,
      fragOffset: o.frag?.offset ?? 0,
    });
  }
  // A later fragment's bytes after the IP header are opaque payload; they are built as an L4
  // header only so the header's protocol field is right.
  const l4 = o.l4 ?? { udp: [40000, 5000] };
  if ('udp' in l4) b = b.udp({ sport: l4.udp[0], dport: l4.udp[1] });
  else if ('tcp' in l4) b = b.tcp({ sport: l4.tcp[0], dport: l4.tcp[1], flags: 'S' });
  else if (v6)
    b = b.icmpv6({ type: l4.icmp.type, code: l4.icmp.code ?? 0, id: l4.icmp.id, seq: 1 });
  else b = b.icmp({ type: l4.icmp.type, code: l4.icmp.code ?? 0, id: l4.icmp.id, seq: 1 });
  const quote = 'icmp' in l4 ? l4.icmp.quote : undefined;
  return b.payload(quote ?? o.payload ?? 'acl test').build();
}

/** An NVGRE frame from host B carrying inner (vm4 -> vm1 by default). */
function fromWire(inner: Buffer, vsid = 5001): Buffer {
  return packet()
    .eth({ src: '02:00:00:00:10:02', dst: '02:00:00:00:10:01' })
    .ipv4({ src: PA_B, dst: PA_A, df: true, ttl: 63 })
    .nvgre({ vsid, flowId: 0x11 })
    .payload(inner)
    .build();
}

/** vm4 -> vm1 inner frame. */
const in4 = (o: FrameOpts = {}): Buffer =>
  frame({ src: VM4.ip4, dst: VM1.ip4, smac: VM4.mac, dmac: VM1.mac, ...o });
const in6 = (o: FrameOpts = {}): Buffer =>
  frame({ src: VM4.ip6, dst: VM1.ip6, smac: VM4.mac, dmac: VM1.mac, ...o });

/** The IP packet of a frame plus 8 bytes of its L4 header: what an ICMP error quotes. */
const quoteOf = (f: Buffer, l4Off: number): Buffer => f.subarray(14, l4Off + 8);

// ---- rules -------------------------------------------------------------------------------------

const rule = (r: Partial<AclRule> & Pick<AclRule, 'name'>): AclRule => ({
  direction: 'outbound',
  action: 'deny',
  ...r,
});
const vm1 = (...rules: AclRule[]): AclPortSpec => ({ name: 'vm1', ifindex: PORT_IFINDEX, rules });
const vm2 = (...rules: AclRule[]): AclPortSpec => ({ name: 'vm2', ifindex: VM2_IFINDEX, rules });

// ---- cases -------------------------------------------------------------------------------------

type Expect = 'pass' | { to: number } | string;
interface Step {
  what: string;
  hook: 'port' | 'xdp';
  frame: () => Buffer;
  expect: Expect;
  /** Before the step: set every conntrack entry's last-seen time. */
  ageTo?: bigint;
}
interface Case {
  name: string;
  acls: AclPortSpec[];
  steps: Step[];
  /** Per-rule packets after the steps (`port|direction|rule`); unnamed rules must stay at 0. */
  counters?: Record<string, number>;
  stats?: Partial<Record<string, number>>;
}

const toVm2 = { to: VM2_IFINDEX };
const toNic = { to: NIC_IFINDEX };
const toVm1 = { to: PORT_IFINDEX };
const out = (what: string, f: () => Buffer, expect: Expect, extra: Partial<Step> = {}): Step => ({
  what,
  hook: 'port',
  frame: f,
  expect,
  ...extra,
});
const wire = (what: string, f: () => Buffer, expect: Expect, extra: Partial<Step> = {}): Step => ({
  what,
  hook: 'xdp',
  frame: f,
  expect,
  ...extra,
});

const udpOut = frame({ l4: { udp: [40000, 5000] }, dst: VM4.ip4, dmac: VM4.mac });
const udpReply = in4({ l4: { udp: [5000, 40000] } });

const cases: Case[] = [
  {
    name: 'a port without rules allows everything (Hyper-V default)',
    acls: [],
    steps: [
      out('udp to vm2', () => frame({}), toVm2),
      wire('udp from vm4', () => fromWire(in4()), toVm1),
    ],
  },
  {
    name: 'basic: remote IPv4 prefix deny outbound; other destinations fall to the default allow',
    acls: [vm1(rule({ name: 'no-vm2', remotePrefix: `${VM2.ip4}/32` }))],
    steps: [
      out('udp to vm2', () => frame({}), 'acl_deny'),
      out('udp to vm4 (remote)', () => frame({ dst: VM4.ip4, dmac: VM4.mac }), toNic),
      wire('inbound is another direction', () => fromWire(in4()), toVm1),
    ],
    counters: { 'vm1|outbound|no-vm2': 1 },
    stats: { no_match: 1 },
  },
  {
    name: 'basic: remote IPv6 prefix; an IPv4 rule never matches IPv6',
    acls: [
      vm1(
        rule({ name: 'v6', remotePrefix: 'fd00:10::/64' }),
        rule({ name: 'v4', remotePrefix: '0.0.0.0/0', action: 'allow', weight: 100 }),
      ),
    ],
    steps: [
      out('v6 udp to vm2', () => frame({ src: VM1.ip6, dst: VM2.ip6 }), 'acl_deny'),
      out('v4 udp to vm2', () => frame({}), toVm2),
    ],
    counters: { 'vm1|outbound|v6': 1, 'vm1|outbound|v4': 1 },
  },
  {
    name: 'basic: local prefix, inbound at host-local delivery (vm1 -> vm2)',
    acls: [vm2(rule({ name: 'in', direction: 'inbound', localPrefix: `${VM2.ip4}/32` }))],
    steps: [
      out('vm1 -> vm2 v4', () => frame({}), 'acl_deny'),
      out('vm1 -> vm2 v6', () => frame({ src: VM1.ip6, dst: VM2.ip6 }), toVm2),
    ],
    counters: { 'vm2|inbound|in': 1 },
  },
  {
    name: 'basic: remote MAC (outbound: the destination MAC; inbound at decap: the source MAC)',
    acls: [
      vm1(
        rule({ name: 'mac-out', remoteMac: VM4.mac }),
        rule({ name: 'mac-in', direction: 'inbound', remoteMac: VM4.mac }),
      ),
    ],
    steps: [
      out('to vm4', () => frame({ dst: VM4.ip4, dmac: VM4.mac }), 'acl_deny'),
      out('to vm2', () => frame({}), toVm2),
      wire('from vm4', () => fromWire(in4()), 'acl_deny'),
    ],
    counters: { 'vm1|outbound|mac-out': 1, 'vm1|inbound|mac-in': 1 },
  },
  {
    name: 'extended: protocol and remote port range',
    acls: [vm1(rule({ name: 'ssh', protocol: 6, remotePorts: { from: 22, to: 23 } }))],
    steps: [
      out('tcp 22', () => frame({ l4: { tcp: [40000, 22] } }), 'acl_deny'),
      out('tcp 23', () => frame({ l4: { tcp: [40000, 23] } }), 'acl_deny'),
      out('tcp 80', () => frame({ l4: { tcp: [40000, 80] } }), toVm2),
      out('udp 22', () => frame({ l4: { udp: [40000, 22] } }), toVm2),
      out('icmp echo', () => frame({ l4: { icmp: { type: 8, id: 22 } } }), toVm2),
    ],
    counters: { 'vm1|outbound|ssh': 2 },
  },
  {
    name: 'extended: local port range inbound at NVGRE decap, local and remote prefixes together',
    acls: [
      vm1(
        rule({
          name: 'udp-mid',
          direction: 'inbound',
          protocol: 17,
          localPorts: { from: 1000, to: 2000 },
          localPrefix: `${VM1.ip4}/32`,
          remotePrefix: '198.18.10.0/24',
        }),
      ),
    ],
    steps: [
      wire('udp 1000', () => fromWire(in4({ l4: { udp: [5, 1000] } })), 'acl_deny'),
      wire('udp 2000', () => fromWire(in4({ l4: { udp: [5, 2000] } })), 'acl_deny'),
      wire('udp 2001', () => fromWire(in4({ l4: { udp: [5, 2001] } })), toVm1),
      wire('udp 999', () => fromWire(in4({ l4: { udp: [5, 999] } })), toVm1),
      wire('tcp 1500', () => fromWire(in4({ l4: { tcp: [5, 1500] } })), toVm1),
    ],
    counters: { 'vm1|inbound|udp-mid': 2 },
  },
  {
    name: 'weight: the higher weight decides whatever the order',
    acls: [
      vm1(
        rule({ name: 'deny-subnet', remotePrefix: '198.18.10.0/24', weight: 5 }),
        rule({ name: 'allow-vm2', remotePrefix: `${VM2.ip4}/32`, action: 'allow', weight: 10 }),
      ),
    ],
    steps: [
      out('to vm2', () => frame({}), toVm2),
      out('to vm4', () => frame({ dst: VM4.ip4, dmac: VM4.mac }), 'acl_deny'),
    ],
    counters: { 'vm1|outbound|allow-vm2': 1, 'vm1|outbound|deny-subnet': 1 },
  },
  {
    name: 'ties: deny wins at equal weight; no weight is weight 0',
    acls: [
      vm1(
        rule({ name: 'allow-5', action: 'allow', weight: 5, protocol: 17 }),
        rule({ name: 'deny-5', weight: 5, protocol: 17, remotePorts: { from: 5000, to: 5000 } }),
        rule({ name: 'deny-noweight', protocol: 6 }),
        rule({ name: 'allow-1', action: 'allow', weight: 1, protocol: 6 }),
      ),
    ],
    steps: [
      out('udp 5000: both weight 5 match', () => frame({}), 'acl_deny'),
      out('udp 5001: only the allow', () => frame({ l4: { udp: [1, 5001] } }), toVm2),
      out('tcp: weight 1 allow beats unweighted deny', () => frame({ l4: { tcp: [1, 2] } }), toVm2),
    ],
    counters: { 'vm1|outbound|deny-5': 1, 'vm1|outbound|allow-5': 1, 'vm1|outbound|allow-1': 1 },
  },
  {
    name: 'stateful: an allowed outbound flow admits its replies; unsolicited inbound is denied',
    acls: [
      vm1(
        rule({
          name: 'udp-out',
          action: 'allow',
          protocol: 17,
          stateful: true,
          idleTimeoutSeconds: 60,
        }),
        rule({ name: 'deny-in', direction: 'inbound' }),
      ),
    ],
    steps: [
      out('udp to vm4', () => udpOut, toNic),
      wire('the reply', () => fromWire(udpReply), toVm1),
      wire('the reply again', () => fromWire(udpReply), toVm1),
      wire(
        'same hosts, other port',
        () => fromWire(in4({ l4: { udp: [5000, 40001] } })),
        'acl_deny',
      ),
      wire('unsolicited tcp', () => fromWire(in4({ l4: { tcp: [5000, 40000] } })), 'acl_deny'),
      out('udp to vm4 again (refresh, no new entry)', () => udpOut, toNic),
    ],
    counters: { 'vm1|outbound|udp-out': 2, 'vm1|inbound|deny-in': 2 },
    stats: { ct_insert: 1, ct_reply: 2 },
  },
  {
    name: 'stateful ping (ICMP echo identifier) over IPv6',
    acls: [
      vm1(
        rule({ name: 'ping-out', action: 'allow', protocol: 58, stateful: true }),
        rule({ name: 'deny-in', direction: 'inbound' }),
      ),
    ],
    steps: [
      out(
        'echo request',
        () =>
          frame({ src: VM1.ip6, dst: VM4.ip6, dmac: VM4.mac, l4: { icmp: { type: 128, id: 77 } } }),
        toNic,
      ),
      wire('echo reply', () => fromWire(in6({ l4: { icmp: { type: 129, id: 77 } } })), toVm1),
      wire(
        'echo reply, other id',
        () => fromWire(in6({ l4: { icmp: { type: 129, id: 78 } } })),
        'acl_deny',
      ),
    ],
    counters: { 'vm1|outbound|ping-out': 1, 'vm1|inbound|deny-in': 1 },
    stats: { ct_insert: 1, ct_reply: 1 },
  },
  {
    name: 'idle expiry: an entry idle past its timeout is absent',
    acls: [
      vm1(
        rule({
          name: 'udp-out',
          action: 'allow',
          protocol: 17,
          stateful: true,
          idleTimeoutSeconds: 5,
        }),
        rule({ name: 'deny-in', direction: 'inbound' }),
      ),
    ],
    steps: [
      out('udp to vm4', () => udpOut, toNic),
      wire('reply while fresh', () => fromWire(udpReply), toVm1),
      wire('reply after 6 s idle', () => fromWire(udpReply), 'acl_deny', { ageTo: 1n }),
    ],
    counters: { 'vm1|outbound|udp-out': 1, 'vm1|inbound|deny-in': 1 },
    stats: { ct_expired: 1, ct_reply: 1 },
  },
  {
    name: 'ICMP errors about a tracked flow are admitted; about other flows, classified',
    acls: [
      vm1(
        rule({ name: 'udp-out', action: 'allow', protocol: 17, stateful: true }),
        rule({ name: 'deny-in', direction: 'inbound' }),
      ),
    ],
    steps: [
      out('udp to vm4', () => udpOut, toNic),
      wire(
        'port unreachable quoting it',
        () => fromWire(in4({ l4: { icmp: { type: 3, code: 3, quote: quoteOf(udpOut, 34) } } })),
        toVm1,
      ),
      wire(
        'port unreachable quoting another flow',
        () => {
          const other = frame({ l4: { udp: [40000, 6000] }, dst: VM4.ip4, dmac: VM4.mac });
          return fromWire(in4({ l4: { icmp: { type: 3, code: 3, quote: quoteOf(other, 34) } } }));
        },
        'acl_deny',
      ),
    ],
    counters: { 'vm1|outbound|udp-out': 1, 'vm1|inbound|deny-in': 1 },
    stats: { ct_related: 1 },
  },
  {
    name: "IPv4 fragments: later fragments take the first one's verdict; unknown ones are dropped",
    acls: [vm1(rule({ name: 'dns', protocol: 17, remotePorts: { from: 53, to: 53 } }))],
    steps: [
      out(
        'first fragment to :53',
        () => frame({ l4: { udp: [1, 53] }, frag: { id: 100, mf: true } }),
        'acl_deny',
      ),
      out('its later fragment', () => frame({ frag: { id: 100, offset: 3 } }), 'acl_deny'),
      out(
        'first fragment to :80',
        () => frame({ l4: { udp: [1, 80] }, frag: { id: 101, mf: true } }),
        toVm2,
      ),
      out('its later fragment', () => frame({ frag: { id: 101, offset: 3 } }), toVm2),
      out(
        'later fragment of an unseen datagram',
        () => frame({ frag: { id: 102, offset: 3 } }),
        'acl_fragment',
      ),
    ],
    counters: { 'vm1|outbound|dns': 2 },
    stats: { frag_stored: 2, frag_hit: 2, frag_miss: 1 },
  },
  {
    name: 'IPv6 fragments (fragment header behind a hop-by-hop header)',
    acls: [vm1(rule({ name: 'dns', protocol: 17, remotePorts: { from: 53, to: 53 } }))],
    steps: [
      out(
        'first fragment to :53',
        () =>
          frame({
            src: VM1.ip6,
            dst: VM2.ip6,
            ext: ['hop-by-hop'],
            l4: { udp: [1, 53] },
            frag: { id: 0x10001, mf: true },
          }),
        'acl_deny',
      ),
      out(
        'its later fragment',
        () => frame({ src: VM1.ip6, dst: VM2.ip6, frag: { id: 0x10001, offset: 2 } }),
        'acl_deny',
      ),
      out(
        'later fragment, unseen id',
        () => frame({ src: VM1.ip6, dst: VM2.ip6, frag: { id: 5, offset: 2 } }),
        'acl_fragment',
      ),
      out(
        'first fragment to :80',
        () =>
          frame({ src: VM1.ip6, dst: VM2.ip6, l4: { udp: [1, 80] }, frag: { id: 6, mf: true } }),
        toVm2,
      ),
      out(
        'its later fragment',
        () => frame({ src: VM1.ip6, dst: VM2.ip6, frag: { id: 6, offset: 2 } }),
        toVm2,
      ),
    ],
    counters: { 'vm1|outbound|dns': 2 },
  },
  {
    name: 'IPv6 extension headers are walked to the TCP header; too many cannot be classified',
    acls: [vm1(rule({ name: 'ssh', protocol: 6, remotePorts: { from: 22, to: 22 } }))],
    steps: [
      out(
        'hop-by-hop + dest-opts + tcp 22',
        () =>
          frame({
            src: VM1.ip6,
            dst: VM2.ip6,
            ext: ['hop-by-hop', 'dest-opts'],
            l4: { tcp: [1, 22] },
          }),
        'acl_deny',
      ),
      out(
        '... tcp 80',
        () =>
          frame({
            src: VM1.ip6,
            dst: VM2.ip6,
            ext: ['hop-by-hop', 'dest-opts'],
            l4: { tcp: [1, 80] },
          }),
        toVm2,
      ),
      out(
        'seven extension headers',
        () =>
          frame({
            src: VM1.ip6,
            dst: VM2.ip6,
            ext: [
              'hop-by-hop',
              'dest-opts',
              'dest-opts',
              'dest-opts',
              'dest-opts',
              'dest-opts',
              'dest-opts',
            ],
            l4: { tcp: [1, 22] },
          }),
        'acl_unclassifiable',
      ),
    ],
    counters: { 'vm1|outbound|ssh': 1 },
  },
  {
    name: 'a VLAN-tagged frame from a VM never reaches (or bypasses) the ACL',
    acls: [vm1(rule({ name: 'allow-vm2', action: 'allow', remotePrefix: `${VM2.ip4}/32` }))],
    steps: [
      out('tagged frame to vm2', () => frame({ vlan: 10 }), 'port_vlan_tagged'),
      out('untagged frame to vm2', () => frame({}), toVm2),
    ],
    counters: { 'vm1|outbound|allow-vm2': 1 },
  },
  {
    name: 'isolation VSID: the rule applies only when the remote end is in that subnet',
    acls: [
      vm1(
        rule({ name: 'not-5002', isolationVsid: BLUE2 }),
        rule({ name: 'in-5001', direction: 'inbound', isolationVsid: 5001, protocol: 6 }),
      ),
    ],
    steps: [
      out('routed to vm3 (5002)', () => frame({ dst: VM3.ip4, dmac: GW1_MAC }), 'acl_deny'),
      out('switched to vm2 (5001)', () => frame({}), toVm2),
      wire('tcp from vm4 (5001)', () => fromWire(in4({ l4: { tcp: [1, 2] } })), 'acl_deny'),
      wire('udp from vm4 (5001)', () => fromWire(in4()), toVm1),
    ],
    counters: { 'vm1|outbound|not-5002': 1, 'vm1|inbound|in-5001': 1 },
  },
];

describePrivileged('port ACLs (lib/acl.h) through BPF_PROG_TEST_RUN', () => {
  const acl = useAclDatapath();

  const hookOf = (s: Step): Hook =>
    s.hook === 'port'
      ? { kind: 'port-ingress', ifindex: PORT_IFINDEX }
      : { kind: 'phys-xdp', ifindex: PORT_IFINDEX };

  const runStep = (s: Step) => {
    if (s.ageTo !== undefined) acl.ageConntrack(s.ageTo);
    const f = s.frame();
    const r = s.hook === 'port' ? acl.dp.runPort(f) : acl.dp.runXdp(f);
    const m = simulate(baseTables(), 0, f, hookOf(s), acl.sim());
    const got =
      r.verdict === 'drop'
        ? (r.counters.drops[0]?.reason ?? 'drop?')
        : r.verdict === 'redirect'
          ? `to ${r.redirectIfindex}`
          : r.verdict;
    const want = typeof s.expect === 'string' ? s.expect : `to ${s.expect.to}`;
    const modelSays =
      m.verdict === 'drop'
        ? m.dropReason
        : m.verdict === 'redirect'
          ? `to ${m.redirectIfindex}`
          : m.verdict;
    expect(got, s.what).toBe(want);
    expect(modelSays, `${s.what}: the model`).toBe(want);
    return f.length;
  };

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    acl.dp.install(baseTables(), 0);
    acl.setAcls(c.acls);
    acl.resetState();
    const before = acl.ruleCounters();
    const statsBefore = acl.stats();
    const bytes = new Map<string, number>();
    for (const s of c.steps) runStep(s);
    const after = acl.ruleCounters();
    const delta: Record<string, number> = {};
    for (const [k, v] of after) {
      const d = v.packets - (before.get(k)?.packets ?? 0);
      if (d) delta[k] = d;
      bytes.set(k, v.bytes - (before.get(k)?.bytes ?? 0));
    }
    expect(delta).toEqual(c.counters ?? {});
    // Model and kernel agree on every counter, packets and bytes.
    expect(Object.fromEntries(acl.model.current.counters)).toEqual(Object.fromEntries(after));
    if (c.stats) {
      const s = acl.stats();
      for (const [k, v] of Object.entries(c.stats)) {
        expect(s[k as keyof typeof s] - statsBefore[k as keyof typeof s], `stat ${k}`).toBe(v);
      }
    }
    expect(acl.model.current.stats).toEqual(acl.stats());
  });

  it('counts bytes per rule: the frame length the hook saw', () => {
    acl.dp.install(baseTables(), 0);
    acl.setAcls([vm1(rule({ name: 'all' }))]);
    acl.resetState();
    const f1 = frame({ payload: 'x'.repeat(100) });
    const f2 = frame({ payload: 'y' });
    acl.dp.runPort(f1);
    acl.dp.runPort(f2);
    expect(acl.ruleCounters().get('vm1|outbound|all')).toEqual({
      packets: 2,
      bytes: f1.length + f2.length,
    });
  });

  it('a rule set change is one flip: old entries go, conntrack survives', () => {
    acl.dp.install(baseTables(), 0);
    const stateful = rule({ name: 'udp-out', action: 'allow', protocol: 17, stateful: true });
    acl.setAcls([
      vm1(stateful, rule({ name: 'no-vm2', remotePrefix: `${VM2.ip4}/32`, protocol: 6 })),
    ]);
    acl.resetState();
    expect(acl.dp.runPort(udpOut).verdict).toBe('redirect');
    expect(acl.dp.runPort(frame({ l4: { tcp: [1, 2] } })).counters.drops[0]?.reason).toBe(
      'acl_deny',
    );
    const [before] = [...acl.tables().installed().values()];
    const ctBefore = acl.conntrackSize();
    expect(ctBefore).toBe(1);

    acl.setAcls([
      vm1(stateful, rule({ name: 'no-vm4', remotePrefix: `${VM4.ip4}/32`, protocol: 6 })),
    ]);
    const [after] = [...acl.tables().installed().values()];
    expect(after?.[1]).not.toBe(before?.[1]);
    expect(acl.dp.runPort(frame({ l4: { tcp: [1, 2] } })).redirectIfindex).toBe(VM2_IFINDEX);
    expect(
      acl.dp.runPort(frame({ l4: { tcp: [1, 2] }, dst: VM4.ip4, dmac: VM4.mac })).counters.drops[0]
        ?.reason,
    ).toBe('acl_deny');
    // The reply of the flow opened under the old rule set is still admitted.
    acl.setAcls([vm1(stateful, rule({ name: 'deny-in', direction: 'inbound' }))]);
    expect(acl.dp.runXdp(fromWire(udpReply)).redirectIfindex).toBe(PORT_IFINDEX);
    expect(acl.conntrackSize()).toBe(ctBefore);
    // Nothing of the old rule sets is left in the field, rule or counter maps.
    const live = new Set([...acl.tables().installed().values()].flat());
    expect(live.has(before?.[1] as number)).toBe(false);
    expect(
      acl
        .tables()
        .ruleNames()
        .has(before?.[1] as number),
    ).toBe(false);
  });

  it('a restarted agent keeps identical rule sets, their ids and their counters', () => {
    acl.dp.install(baseTables(), 0);
    const rules = [rule({ name: 'no-vm2', remotePrefix: `${VM2.ip4}/32` })];
    acl.setAcls([vm1(...rules)]);
    acl.dp.runPort(frame({}));
    const ids = [...acl.tables().installed().entries()];
    const hits =
      acl
        .tables()
        .snapshot()
        .rules.find((r) => r.rule === 'no-vm2')?.packets ?? 0n;
    expect(hits).toBeGreaterThan(0n);
    // A second writer on the same pins, as after a restart: nothing to write for the same rules.
    const restarted = new AclTables(acl.dp.pinRoot);
    try {
      const compiled = compileAcls([{ port: 'vm1', rules }], () => PORT_IFINDEX);
      const r = restarted.apply(compiled);
      expect(r).toEqual({ changed: 0, fieldWrites: 0, ruleWrites: 0, deletes: 0 });
      expect([...restarted.installed().entries()]).toEqual(ids);
      const snap = restarted.snapshot().rules.find((x) => x.rule === 'no-vm2');
      expect(snap?.packets).toBe(hits);
      // A changed rule set is written anew.
      const r2 = restarted.apply(
        compileAcls(
          [{ port: 'vm1', rules: [rule({ name: 'no-vm4', remotePrefix: `${VM4.ip4}/32` })] }],
          () => PORT_IFINDEX,
        ),
      );
      expect(r2.changed).toBe(1);
    } finally {
      restarted.close();
    }
  });

  it("removing a port's ACL allows everything again", () => {
    acl.dp.install(baseTables(), 0);
    acl.setAcls([vm1(rule({ name: 'all' }))]);
    expect(acl.dp.runPort(frame({})).verdict).toBe('drop');
    acl.setAcls([]);
    expect(acl.tables().installed().size).toBe(0);
    expect(acl.dp.runPort(frame({})).redirectIfindex).toBe(VM2_IFINDEX);
  });
});
