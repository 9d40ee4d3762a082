// tc ingress on a VM port (tenet_port_ingress) through BPF_PROG_TEST_RUN: every branch of the
// datapath from a VM (ARP/ND answers, spoof guard, switching, distributed routing, ICMP errors,
// MTU, host-local delivery, NVGRE encapsulation) and every drop reason it has, for IPv4 and IPv6
// customer addresses, in both policy generations. Expected frames are built with the packet
// builder from the fixture's policy, never taken from the program.

import { describe, expect, it } from 'vitest';
import { flowId } from '../../agent/model/index.js';
import { ipToBytes, packet, type PacketBuilder } from '../../agent/packet/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { runCase, type Case } from './cases.js';
import {
  BLUE1,
  BLUE2,
  GW1_IP4,
  GW1_IP6,
  GW1_MAC,
  GW2_IP4,
  GW2_MAC,
  NH_B_MAC,
  NH_C_MAC,
  NIC_IFINDEX,
  NIC_MAC,
  PA_A,
  PA_B,
  PA_C,
  PORT_IFINDEX,
  RED1,
  RED2_IFINDEX,
  RED2_VM,
  RED_RD,
  TENANT_MTU,
  VM1,
  VM2,
  VM2_IFINDEX,
  VM3,
  VM3_IFINDEX,
  VM4,
  VM5,
  ZERO_PORT,
  ZERO_RECORD,
  both,
  localRecord,
  mac,
  only,
  remoteRecord,
  routeKey,
  setRecord,
  vm1Port,
} from './fixture.js';
import { useDatapath } from './harness.js';

const HOOK = { kind: 'port-ingress', ifindex: PORT_IFINDEX } as const;
const PAYLOAD = 'tenet nvgre datapath';

// ---- frames -------------------------------------------------------------------------------------

const udp4 = (o: {
  dst: string;
  dmac: string;
  ttl?: number;
  tos?: number;
  df?: boolean;
  src?: string;
  smac?: string;
  sport?: number;
  dport?: number;
  payload?: string | number;
}) =>
  packet()
    .eth({ src: o.smac ?? VM1.mac, dst: o.dmac })
    .ipv4({
      src: o.src ?? VM1.ip4,
      dst: o.dst,
      ttl: o.ttl ?? 64,
      tos: o.tos ?? 0,
      df: o.df ?? true,
      id: 7,
    })
    .udp({ sport: o.sport ?? 40000, dport: o.dport ?? 5000 })
    .payload(o.payload ?? PAYLOAD);

const tcp6 = (o: {
  dst: string;
  dmac: string;
  hop?: number;
  tc?: number;
  src?: string;
  payload?: string | number;
}) =>
  packet()
    .eth({ src: VM1.mac, dst: o.dmac })
    .ipv6({
      src: o.src ?? VM1.ip6,
      dst: o.dst,
      hopLimit: o.hop ?? 64,
      tc: o.tc ?? 0,
      flowLabel: 0x12345,
    })
    .tcp({ sport: 40001, dport: 443, seq: 1000, ack: 2000, flags: 'PA' })
    .payload(o.payload ?? PAYLOAD);

const arp = (o: {
  op?: 'request' | 'reply';
  sha?: string;
  spa?: string;
  tpa: string;
  smac?: string;
}) =>
  packet()
    .eth({ src: o.smac ?? VM1.mac, dst: 'ff:ff:ff:ff:ff:ff' })
    .arp({ op: o.op ?? 'request', sha: o.sha ?? VM1.mac, spa: o.spa ?? VM1.ip4, tpa: o.tpa });

const ns = (o: { target: string; src?: string; sll?: string | null; hop?: number }) =>
  packet()
    .eth({ src: VM1.mac, dst: '33:33:ff:00:00:01' })
    .ipv6({ src: o.src ?? VM1.ip6, dst: 'ff02::1:ff00:1', hopLimit: o.hop ?? 255 })
    .ndSolicit(o.sll === null ? { target: o.target } : { target: o.target, sll: o.sll ?? VM1.mac });

/** The NA the datapath answers an NS with. */
const na = (o: { target: string; tmac: string; to: string; router?: boolean }) =>
  packet()
    .eth({ src: o.tmac, dst: VM1.mac })
    .ipv6({ src: o.target, dst: o.to, hopLimit: 255 })
    .ndAdvert({
      target: o.target,
      tll: o.tmac,
      router: o.router ?? false,
      solicited: true,
      override: true,
    })
    .build();

/** Outer headers of an NVGRE frame from host A to `to` (builder: lengths and checksums). */
const outer = (o: {
  to?: string;
  nh?: string;
  tos: number;
  vsid: number;
  fid: number;
}): PacketBuilder =>
  packet()
    .eth({ src: NIC_MAC, dst: o.nh ?? NH_B_MAC })
    .ipv4({ src: PA_A, dst: o.to ?? PA_B, tos: o.tos, id: 0, df: true, ttl: 64 })
    .nvgre({ vsid: o.vsid, flowId: o.fid });

const fid = (src: string, dst: string, sport: number, dport: number, proto: number) =>
  flowId(ipToBytes(src), ipToBytes(dst), sport, dport, proto);

/** The first min(len, 128) & ~3 bytes of the IP packet in frame (after 14 bytes of Ethernet). */
const quote = (frame: Buffer): Buffer =>
  frame.subarray(14, 14 + (Math.min(frame.length - 14, 128) & ~3));

// ---- cases --------------------------------------------------------------------------------------

const deliver: Case[] = [
  {
    name: 'ipv4 same subnet, local VM: host-local delivery, untouched',
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: VM2_IFINDEX,
      output: () => udp4({ dst: VM2.ip4, dmac: VM2.mac }).build(),
    },
  },
  {
    name: 'ipv6 same subnet, local VM: host-local delivery, untouched',
    input: () => tcp6({ dst: VM2.ip6, dmac: VM2.mac }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: VM2_IFINDEX,
      output: () => tcp6({ dst: VM2.ip6, dmac: VM2.mac }).build(),
    },
  },
  {
    name: 'ipv4 same subnet, remote VM: NVGRE to host B',
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0, vsid: BLUE1, fid: fid(VM1.ip4, VM4.ip4, 40000, 5000, 17) })
          .payload(udp4({ dst: VM4.ip4, dmac: VM4.mac }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build().length,
      },
    },
  },
  {
    name: 'ipv4 encap copies DSCP and ECT(1) to the outer header',
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac, tos: 0xb9 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0xb9, vsid: BLUE1, fid: fid(VM1.ip4, VM4.ip4, 40000, 5000, 17) })
          .payload(udp4({ dst: VM4.ip4, dmac: VM4.mac, tos: 0xb9 }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build().length,
      },
    },
  },
  {
    name: 'ipv6 encap: inner CE becomes outer ECT(0) (RFC 6040), DSCP copied',
    input: () => tcp6({ dst: VM4.ip6, dmac: VM4.mac, tc: 0xbb }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0xba, vsid: BLUE1, fid: fid(VM1.ip6, VM4.ip6, 40001, 443, 6) })
          .payload(tcp6({ dst: VM4.ip6, dmac: VM4.mac, tc: 0xbb }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: tcp6({ dst: VM4.ip6, dmac: VM4.mac }).build().length,
      },
    },
  },
  {
    name: 'FlowID differs per flow (another source port)',
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac, sport: 40002 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0, vsid: BLUE1, fid: fid(VM1.ip4, VM4.ip4, 40002, 5000, 17) })
          .payload(udp4({ dst: VM4.ip4, dmac: VM4.mac, sport: 40002 }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build().length,
      },
    },
    check: () =>
      expect(fid(VM1.ip4, VM4.ip4, 40002, 5000, 17)).not.toBe(
        fid(VM1.ip4, VM4.ip4, 40000, 5000, 17),
      ),
  },
  {
    name: 'ipv4 routed to the other subnet, local VM: TTL - 1, MACs rewritten, delivered',
    input: () => udp4({ dst: VM3.ip4, dmac: GW1_MAC }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: VM3_IFINDEX,
      output: () => udp4({ dst: VM3.ip4, dmac: VM3.mac, smac: GW2_MAC, ttl: 63 }).build(),
    },
  },
  {
    name: 'ipv6 routed to the other subnet, remote VM: hop limit - 1, NVGRE with the destination VSID',
    input: () => tcp6({ dst: VM5.ip6, dmac: GW1_MAC }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0, vsid: BLUE2, fid: fid(VM1.ip6, VM5.ip6, 40001, 443, 6) })
          .payload(
            packet()
              .eth({ src: GW2_MAC, dst: VM5.mac })
              .ipv6({ src: VM1.ip6, dst: VM5.ip6, hopLimit: 63, flowLabel: 0x12345 })
              .tcp({ sport: 40001, dport: 443, seq: 1000, ack: 2000, flags: 'PA' })
              .payload(PAYLOAD)
              .build(),
          )
          .build(),
      vsid: {
        vsid: BLUE2,
        kind: 'encap',
        bytes: tcp6({ dst: VM5.ip6, dmac: GW1_MAC }).build().length,
      },
    },
  },
  {
    name: 'ipv4 gateway route: forwarded to the next-hop VM of 198.18.30.0/24',
    input: () => udp4({ dst: '198.18.30.7', dmac: GW1_MAC }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0, vsid: BLUE2, fid: fid(VM1.ip4, '198.18.30.7', 40000, 5000, 17) })
          .payload(udp4({ dst: '198.18.30.7', dmac: VM5.mac, smac: GW2_MAC, ttl: 63 }).build())
          .build(),
      vsid: {
        vsid: BLUE2,
        kind: 'encap',
        bytes: udp4({ dst: '198.18.30.7', dmac: GW1_MAC }).build().length,
      },
    },
  },
  {
    name: 'tenant isolation: a red VM with blue addresses reaches red, not blue',
    tables: (t) => {
      t.ports.set(
        PORT_IFINDEX,
        both(vm1Port({ vsid: RED1, rdid: RED_RD, mac: mac('02:00:00:00:06:09') })),
      );
      setRecord(t, RED1, VM1.ip4, both(localRecord('02:00:00:00:06:09', PORT_IFINDEX)));
    },
    input: () => udp4({ dst: RED2_VM.ip4, dmac: RED2_VM.mac, smac: '02:00:00:00:06:09' }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: RED2_IFINDEX,
      output: () =>
        udp4({ dst: RED2_VM.ip4, dmac: RED2_VM.mac, smac: '02:00:00:00:06:09' }).build(),
    },
  },
];

const answers: Case[] = [
  {
    name: 'ARP request for a remote VM: answered from its lookup record',
    input: () => arp({ tpa: VM4.ip4 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: VM4.mac, dst: VM1.mac })
          .arp({ op: 'reply', sha: VM4.mac, spa: VM4.ip4, tha: VM1.mac, tpa: VM1.ip4 })
          .build(),
    },
  },
  {
    name: 'ARP request for the gateway (padded to 60 bytes): gateway MAC, padding kept',
    input: () => arp({ tpa: GW1_IP4 }).pad(60).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: GW1_MAC, dst: VM1.mac })
          .arp({ op: 'reply', sha: GW1_MAC, spa: GW1_IP4, tha: VM1.mac, tpa: VM1.ip4 })
          .pad(60)
          .build(),
    },
  },
  {
    name: 'NS for a local VM: neighbour advertisement built in place',
    input: () => ns({ target: VM2.ip6 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () => na({ target: VM2.ip6, tmac: VM2.mac, to: VM1.ip6 }),
    },
  },
  {
    name: 'NS for the gateway from a link-local source without SLLA: NA with the router flag',
    input: () => ns({ target: GW1_IP6, src: 'fe80::1', sll: null }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () => na({ target: GW1_IP6, tmac: GW1_MAC, to: 'fe80::1', router: true }),
    },
  },
  {
    name: 'ipv4 TTL 1 to the router: ICMP time exceeded from the gateway, quote cut to 128 bytes',
    input: () => udp4({ dst: VM3.ip4, dmac: GW1_MAC, ttl: 1, payload: 300 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: GW1_MAC, dst: VM1.mac })
          .ipv4({ src: GW1_IP4, dst: VM1.ip4, tos: 0xc0, ttl: 64, id: 0 })
          .icmp({ type: 11, code: 0, rest: 0 })
          .payload(quote(udp4({ dst: VM3.ip4, dmac: GW1_MAC, ttl: 1, payload: 300 }).build()))
          .build(),
    },
  },
  {
    name: 'ipv6 hop limit 1 to the router: ICMPv6 time exceeded',
    input: () => tcp6({ dst: VM3.ip6, dmac: GW1_MAC, hop: 1, payload: 'x' }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: GW1_MAC, dst: VM1.mac })
          .ipv6({ src: GW1_IP6, dst: VM1.ip6, hopLimit: 64 })
          .icmpv6({ type: 3, code: 0, rest: 0 })
          .payload(quote(tcp6({ dst: VM3.ip6, dmac: GW1_MAC, hop: 1, payload: 'x' }).build()))
          .build(),
    },
  },
  {
    name: 'ipv4 DF longer than the tenant MTU: fragmentation needed advertising it',
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac, payload: 1500 - 28 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: GW1_MAC, dst: VM1.mac })
          .ipv4({ src: GW1_IP4, dst: VM1.ip4, tos: 0xc0, ttl: 64, id: 0 })
          .icmp({ type: 3, code: 4, rest: TENANT_MTU })
          .payload(quote(udp4({ dst: VM4.ip4, dmac: VM4.mac, payload: 1500 - 28 }).build()))
          .build(),
    },
  },
  {
    name: 'ipv6 longer than the tenant MTU: packet too big advertising it',
    input: () => tcp6({ dst: VM2.ip6, dmac: VM2.mac, payload: 1500 - 60 }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: GW1_MAC, dst: VM1.mac })
          .ipv6({ src: GW1_IP6, dst: VM1.ip6, hopLimit: 64 })
          .icmpv6({ type: 2, code: 0, rest: TENANT_MTU })
          .payload(quote(tcp6({ dst: VM2.ip6, dmac: VM2.mac, payload: 1500 - 60 }).build()))
          .build(),
    },
  },
];

// A TCP segment as the VM's stack hands it over with TSO: one skb, gso_size bytes per segment.
const tso = () =>
  packet()
    .eth({ src: VM1.mac, dst: VM4.mac })
    .ipv4({ src: VM1.ip4, dst: VM4.ip4, df: true, id: 1 })
    .tcp({ sport: 40003, dport: 80, seq: 1, ack: 1, flags: 'A' })
    .payload(2800);

const gso: Case[] = [
  {
    // The MTU check reads gso_size, not skb->len (2854 bytes here): no ICMP error. A test-run
    // cannot set gso_type, and the kernel refuses to add GRE encapsulation to a GSO skb whose type
    // it does not know, so here encapsulation itself fails; TSO through the overlay is measured
    // on the lab (iperf3), where the skb is SKB_GSO_TCPV4.
    name: 'GSO TCP whose segments fit the MTU: not answered with an ICMP error',
    input: () => tso().build(),
    run: { gsoSize: 1400, gsoSegs: 2 },
    expect: { verdict: 'drop', reason: 'encap_failed' },
    check: (r) => expect(r.gsoSizeOut).toBe(1400),
  },
  {
    name: 'GSO TCP whose segments exceed the MTU (40 + 1440 > 1458): fragmentation needed',
    input: () => tso().build(),
    run: { gsoSize: 1440, gsoSegs: 2 },
    expect: {
      verdict: 'redirect',
      ifindex: PORT_IFINDEX,
      output: () =>
        packet()
          .eth({ src: GW1_MAC, dst: VM1.mac })
          .ipv4({ src: GW1_IP4, dst: VM1.ip4, tos: 0xc0, ttl: 64, id: 0 })
          .icmp({ type: 3, code: 4, rest: TENANT_MTU })
          .payload(quote(tso().build()))
          .build(),
    },
  },
];

const vm4Moved = (g: 0 | 1) => (t: Parameters<NonNullable<Case['tables']>>[0]) =>
  setRecord(t, BLUE1, VM4.ip4, {
    live: 3,
    v:
      g === 0
        ? [remoteRecord(VM4.mac, PA_B), remoteRecord(VM4.mac, PA_C)]
        : [remoteRecord(VM4.mac, PA_B), remoteRecord(VM4.mac, PA_C)],
  });

const generations: Case[] = [
  {
    name: 'gen 0 active: a record live only in generation 1 is invisible',
    tables: (t) => setRecord(t, BLUE1, VM4.ip4, only(1, remoteRecord(VM4.mac, PA_B), ZERO_RECORD)),
    generation: 0,
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: { verdict: 'drop', reason: 'dst_unknown' },
  },
  {
    name: 'gen 1 active: the same record is used',
    tables: (t) => setRecord(t, BLUE1, VM4.ip4, only(1, remoteRecord(VM4.mac, PA_B), ZERO_RECORD)),
    generation: 1,
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0, vsid: BLUE1, fid: fid(VM1.ip4, VM4.ip4, 40000, 5000, 17) })
          .payload(udp4({ dst: VM4.ip4, dmac: VM4.mac }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build().length,
      },
    },
  },
  {
    name: 'live migration staged: gen 0 still sends to host B',
    tables: vm4Moved(0),
    generation: 0,
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({ tos: 0, vsid: BLUE1, fid: fid(VM1.ip4, VM4.ip4, 40000, 5000, 17) })
          .payload(udp4({ dst: VM4.ip4, dmac: VM4.mac }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build().length,
      },
    },
  },
  {
    name: 'live migration flipped: gen 1 sends to host C',
    tables: vm4Moved(1),
    generation: 1,
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: {
      verdict: 'redirect',
      ifindex: NIC_IFINDEX,
      output: () =>
        outer({
          to: PA_C,
          nh: NH_C_MAC,
          tos: 0,
          vsid: BLUE1,
          fid: fid(VM1.ip4, VM4.ip4, 40000, 5000, 17),
        })
          .payload(udp4({ dst: VM4.ip4, dmac: VM4.mac }).build())
          .build(),
      vsid: {
        vsid: BLUE1,
        kind: 'encap',
        bytes: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build().length,
      },
    },
  },
  {
    name: 'gen 0 active: a port live only in generation 1 is unknown',
    tables: (t) => t.ports.set(PORT_IFINDEX, only(1, vm1Port(), ZERO_PORT)),
    generation: 0,
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac }).build(),
    expect: { verdict: 'drop', reason: 'port_unknown' },
  },
  {
    name: 'gen 1 active: a route live only in generation 0 is gone',
    tables: (t) => {
      const r = t.routes.find((x) => x.key.prefixlen === 64 + 24 && x.key.addr[2] === 20);
      if (r) r.entry.live = 1;
    },
    generation: 1,
    input: () => udp4({ dst: VM3.ip4, dmac: GW1_MAC }).build(),
    expect: { verdict: 'drop', reason: 'route_unknown' },
  },
];

const drops: Case[] = [
  {
    name: 'no port entry for the interface',
    tables: (t) => t.ports.clear(),
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac }).build(),
    expect: { verdict: 'drop', reason: 'port_unknown' },
  },
  {
    name: 'malformed IPv4 (IHL 4)',
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac }).build().fill(0x44, 14, 15),
    expect: { verdict: 'drop', reason: 'ipv4_bad_ihl' },
  },
  {
    name: 'VLAN-tagged frame from a VM',
    input: () =>
      packet()
        .eth({ src: VM1.mac, dst: VM2.mac })
        .vlan({ vid: 10 })
        .ipv4({ src: VM1.ip4, dst: VM2.ip4 })
        .udp({ sport: 1, dport: 2 })
        .build(),
    expect: { verdict: 'drop', reason: 'port_vlan_tagged' },
  },
  {
    name: "source MAC not the port's",
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac, smac: '02:00:00:00:0b:ad' }).build(),
    expect: { verdict: 'drop', reason: 'port_src_mac_spoof' },
  },
  {
    name: 'EtherType neither ARP nor IP (LLDP)',
    input: () =>
      packet()
        .eth({ src: VM1.mac, dst: '01:80:c2:00:00:0e', type: 0x88cc })
        .payload(Buffer.alloc(46))
        .build(),
    expect: { verdict: 'drop', reason: 'port_ethertype' },
  },
  {
    name: "port's virtual subnet not live",
    tables: (t) => t.vsubnets.delete(BLUE1),
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac }).build(),
    expect: { verdict: 'drop', reason: 'port_vsid_unknown' },
  },
  {
    name: 'ARP for IPv6 protocol type',
    input: () => {
      const f = arp({ tpa: VM4.ip4 }).build();
      f.writeUInt16BE(0x86dd, 14 + 2);
      return f;
    },
    expect: { verdict: 'drop', reason: 'arp_malformed' },
  },
  {
    name: "ARP sender MAC not the port's",
    input: () => arp({ tpa: VM4.ip4, sha: '02:00:00:00:0b:ad' }).build(),
    expect: { verdict: 'drop', reason: 'arp_spoof' },
  },
  {
    name: "ARP sender IP not the port's",
    input: () => arp({ tpa: VM4.ip4, spa: VM2.ip4 }).build(),
    expect: { verdict: 'drop', reason: 'arp_spoof' },
  },
  {
    name: 'gratuitous ARP',
    input: () => arp({ tpa: VM1.ip4 }).build(),
    expect: { verdict: 'drop', reason: 'arp_gratuitous' },
  },
  {
    name: 'ARP probe (sender 0.0.0.0)',
    input: () => arp({ tpa: VM4.ip4, spa: '0.0.0.0' }).build(),
    expect: { verdict: 'drop', reason: 'arp_probe' },
  },
  {
    name: 'ARP reply from a VM',
    input: () => arp({ tpa: VM4.ip4, op: 'reply' }).build(),
    expect: { verdict: 'drop', reason: 'arp_reply' },
  },
  {
    name: 'ARP for an unknown address',
    input: () => arp({ tpa: '198.18.10.99' }).build(),
    expect: { verdict: 'drop', reason: 'arp_unknown_target' },
  },
  {
    name: 'ARP for a red address from blue (isolation)',
    tables: (t) => setRecord(t, BLUE1, VM2.ip4, undefined),
    input: () => arp({ tpa: RED2_VM.ip4 }).build(),
    expect: { verdict: 'drop', reason: 'arp_unknown_target' },
  },
  {
    name: 'NS with hop limit 64',
    input: () => ns({ target: VM2.ip6, hop: 64 }).build(),
    expect: { verdict: 'drop', reason: 'nd_malformed' },
  },
  {
    name: "NS whose source link-layer option is not the port's MAC",
    input: () => ns({ target: VM2.ip6, sll: '02:00:00:00:0b:ad' }).build(),
    expect: { verdict: 'drop', reason: 'nd_spoof' },
  },
  {
    name: 'NS for DAD (source ::)',
    input: () => ns({ target: VM1.ip6, src: '::', sll: null }).build(),
    expect: { verdict: 'drop', reason: 'nd_dad' },
  },
  {
    name: "NS from a global address not the port's",
    input: () => ns({ target: VM2.ip6, src: VM4.ip6 }).build(),
    expect: { verdict: 'drop', reason: 'ip_src_spoof' },
  },
  {
    name: 'NS for an unknown address',
    input: () => ns({ target: 'fd00:10::99' }).build(),
    expect: { verdict: 'drop', reason: 'nd_unknown_target' },
  },
  {
    name: "unsolicited NA for the VM's own address",
    input: () =>
      packet()
        .eth({ src: VM1.mac, dst: '33:33:00:00:00:01' })
        .ipv6({ src: VM1.ip6, dst: 'ff02::1', hopLimit: 255 })
        .ndAdvert({ target: VM1.ip6, tll: VM1.mac, solicited: false })
        .build(),
    expect: { verdict: 'drop', reason: 'nd_advert' },
  },
  {
    name: "NA for another VM's address",
    input: () =>
      packet()
        .eth({ src: VM1.mac, dst: '33:33:00:00:00:01' })
        .ipv6({ src: VM1.ip6, dst: 'ff02::1', hopLimit: 255 })
        .ndAdvert({ target: VM2.ip6, tll: VM1.mac })
        .build(),
    expect: { verdict: 'drop', reason: 'nd_spoof' },
  },
  {
    name: 'router solicitation',
    input: () =>
      packet()
        .eth({ src: VM1.mac, dst: '33:33:00:00:00:02' })
        .ipv6({ src: 'fe80::11', dst: 'ff02::2', hopLimit: 255 })
        .icmpv6({ type: 133, rest: 0 })
        .build(),
    expect: { verdict: 'drop', reason: 'nd_unsupported' },
  },
  {
    name: 'ipv6 link-local source outside ND',
    input: () => tcp6({ dst: VM2.ip6, dmac: VM2.mac, src: 'fe80::11' }).build(),
    expect: { verdict: 'drop', reason: 'ipv6_link_local_src' },
  },
  {
    name: "ipv4 source not the port's CA",
    input: () => udp4({ dst: VM2.ip4, dmac: VM2.mac, src: VM2.ip4 }).build(),
    expect: { verdict: 'drop', reason: 'ip_src_spoof' },
  },
  {
    name: "ipv6 source not the port's CA",
    input: () => tcp6({ dst: VM2.ip6, dmac: VM2.mac, src: 'fd00:10::99' }).build(),
    expect: { verdict: 'drop', reason: 'ip_src_spoof' },
  },
  {
    name: 'unknown destination in the subnet',
    input: () => udp4({ dst: '198.18.10.99', dmac: '02:00:00:00:01:99' }).build(),
    expect: { verdict: 'drop', reason: 'dst_unknown' },
  },
  {
    name: "destination MAC not the record's",
    input: () => udp4({ dst: VM2.ip4, dmac: VM4.mac }).build(),
    expect: { verdict: 'drop', reason: 'dst_mac_mismatch' },
  },
  {
    name: 'routed to a gateway address',
    input: () => udp4({ dst: GW2_IP4, dmac: GW1_MAC }).build(),
    expect: { verdict: 'drop', reason: 'dst_is_gateway' },
  },
  {
    name: 'no route for the destination',
    input: () => udp4({ dst: '198.19.0.1', dmac: GW1_MAC }).build(),
    expect: { verdict: 'drop', reason: 'route_unknown' },
  },
  {
    name: 'route to a subnet of another routing domain',
    tables: (t) =>
      t.routes.push({
        key: routeKey(1, '198.18.40.0/24'),
        entry: both({ vsid: RED1, flags: 1, nexthop: new Uint8Array(16) }),
      }),
    input: () => udp4({ dst: '198.18.40.1', dmac: GW1_MAC }).build(),
    expect: { verdict: 'drop', reason: 'route_vsid_unknown' },
  },
  {
    name: 'ipv4 without DF longer than the MTU',
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac, df: false, payload: 1500 - 28 }).build(),
    expect: { verdict: 'drop', reason: 'mtu_exceeded' },
  },
  {
    name: 'TTL 1 on an ICMP error: no error about an error',
    input: () =>
      packet()
        .eth({ src: VM1.mac, dst: GW1_MAC })
        .ipv4({ src: VM1.ip4, dst: VM3.ip4, ttl: 1 })
        .icmp({ type: 3, code: 1, rest: 0 })
        .payload(Buffer.alloc(28))
        .build(),
    expect: { verdict: 'drop', reason: 'icmp_err_suppressed' },
  },
  {
    name: 'TTL 1 in a subnet without an IPv4 gateway address',
    tables: (t) => {
      const e = t.vsubnets.get(BLUE1);
      if (e) for (const v of e.v) v.gw_ip4 = 0;
    },
    input: () => udp4({ dst: VM3.ip4, dmac: GW1_MAC, ttl: 1 }).build(),
    expect: { verdict: 'drop', reason: 'icmp_err_no_source' },
  },
  {
    name: 'port PA not a local PA',
    tables: (t) => t.localPas.clear(),
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: { verdict: 'drop', reason: 'encap_no_local_pa' },
  },
  {
    name: 'no underlay neighbour for the remote PA',
    tables: (t) => t.underlay.clear(),
    input: () => udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
    expect: { verdict: 'drop', reason: 'encap_no_underlay_nh' },
  },
];

describePrivileged('tenet_port_ingress (tc on a VM port, BPF_PROG_TEST_RUN)', () => {
  const dp = useDatapath();
  describe('delivers', () => {
    it.each(deliver)('$name', (c) => runCase(dp, HOOK, c));
  });
  describe('answers', () => {
    it.each(answers)('$name', (c) => runCase(dp, HOOK, c));
  });
  describe('GSO', () => {
    it.each(gso)('$name', (c) => runCase(dp, HOOK, c));
  });
  describe('generations', () => {
    it.each(generations)('$name', (c) => runCase(dp, HOOK, c));
  });
  describe('drops', () => {
    it.each(drops)('$name', (c) => runCase(dp, HOOK, c));
  });
});
