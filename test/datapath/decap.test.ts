// XDP on the physical NIC (tenet_xdp_rx) through BPF_PROG_TEST_RUN: NVGRE to a local PA is
// validated, decapsulated and redirected to the destination VM's port; every malformed or foreign
// NVGRE frame is dropped with its own reason; everything else passes to the host untouched.
// Expected frames are built with the packet builder from the fixture's policy.

import { describe, it } from 'vitest';
import { packet, type PacketBuilder } from '../../agent/packet/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { runCase, type Case } from './cases.js';
import {
  BLUE1,
  BLUE2,
  GW1_MAC,
  GW2_MAC,
  PA_A,
  PA_B,
  PA_C,
  PORT_IFINDEX,
  RED1,
  RED1_VM,
  RED2_IFINDEX,
  RED2_VM,
  VM2,
  VM2_IFINDEX,
  VM3,
  VM3_IFINDEX,
  VM4,
  ZERO_RECORD,
  only,
  remoteRecord,
  setRecord,
} from './fixture.js';
import { useDatapath } from './harness.js';

const HOOK = { kind: 'phys-xdp', ifindex: PORT_IFINDEX } as const;
const WIRE_B = '02:00:00:00:10:02';
const NIC_A = '02:00:00:00:10:01';

/** Outer Ethernet + IPv4 (B -> A) + GRE; continue with the inner frame. */
const nvgre = (
  o: { vsid?: number; fid?: number; src?: string; dst?: string; tos?: number; mf?: boolean } = {},
): PacketBuilder =>
  packet()
    .eth({ src: WIRE_B, dst: NIC_A })
    .ipv4({
      src: o.src ?? PA_B,
      dst: o.dst ?? PA_A,
      df: true,
      tos: o.tos ?? 0,
      ttl: 63,
      mf: o.mf ?? false,
    })
    .nvgre({ vsid: o.vsid ?? BLUE1, flowId: o.fid ?? 0x5a });

/** The inner frame from vm4 (remote, blue) to vm2 (local, blue). */
const inner4 = (
  o: { tos?: number; dst?: string; src?: string; smac?: string; dmac?: string } = {},
) =>
  packet()
    .eth({ src: o.smac ?? VM4.mac, dst: o.dmac ?? VM2.mac })
    .ipv4({ src: o.src ?? VM4.ip4, dst: o.dst ?? VM2.ip4, tos: o.tos ?? 0, ttl: 64, id: 3 })
    .udp({ sport: 5353, dport: 9999 })
    .payload('from host B');

const inner6 = (o: { tc?: number } = {}) =>
  packet()
    .eth({ src: VM4.mac, dst: VM2.mac })
    .ipv6({ src: VM4.ip6, dst: VM2.ip6, tc: o.tc ?? 0, hopLimit: 64 })
    .tcp({ sport: 443, dport: 40001, seq: 5, ack: 6, flags: 'SA' })
    .payload('from host B');

/** nvgre() carrying the frame of inner (the builder cannot nest builders). */
const wrap = (outer: PacketBuilder, frame: Buffer): Buffer => outer.payload(frame).build();

const decap = (
  inner: () => Buffer,
  over: Partial<Extract<Case['expect'], { verdict: 'redirect' }>> = {},
) => ({
  verdict: 'redirect' as const,
  ifindex: VM2_IFINDEX,
  output: inner,
  vsid: { vsid: BLUE1, kind: 'decap' as const, bytes: inner().length },
  txIfindex: VM2_IFINDEX,
  ...over,
});

const delivered: Case[] = [
  {
    name: 'ipv4 NVGRE for a local VM: decapsulated and redirected to its port',
    input: () => wrap(nvgre(), inner4().build()),
    expect: decap(() => inner4().build()),
  },
  {
    name: 'ipv6 NVGRE for a local VM',
    input: () => wrap(nvgre(), inner6().build()),
    expect: decap(() => inner6().build()),
  },
  {
    name: 'Ethernet padding after the outer packet is trimmed',
    input: () => {
      const f = wrap(nvgre(), inner4().build());
      return Buffer.concat([f, Buffer.alloc(16)]);
    },
    expect: decap(() => inner4().build()),
  },
  {
    name: 'outer CE over inner ECT(0): inner marked CE, IPv4 checksum fixed',
    input: () => wrap(nvgre({ tos: 0x03 }), inner4({ tos: 0x02 }).build()),
    expect: decap(() => inner4({ tos: 0x03 }).build()),
  },
  {
    name: 'outer ECT(1) over inner ECT(0): inner ECT(1) (RFC 6040)',
    input: () => wrap(nvgre({ tos: 0x01 }), inner4({ tos: 0xb8 | 0x02 }).build()),
    expect: decap(() => inner4({ tos: 0xb8 | 0x01 }).build()),
  },
  {
    name: 'outer CE over ipv6 ECT(1): traffic class marked CE',
    input: () => wrap(nvgre({ tos: 0x03 }), inner6({ tc: 0x29 }).build()),
    expect: decap(() => inner6({ tc: 0x2b }).build()),
  },
  {
    name: 'outer ECT(0) over inner Not-ECT: inner unchanged',
    input: () => wrap(nvgre({ tos: 0x02 }), inner4().build()),
    expect: decap(() => inner4().build()),
  },
  {
    name: 'tenant isolation: red VSID with blue addresses goes to the red VM',
    input: () =>
      wrap(
        nvgre({ vsid: RED1 }),
        inner4({
          src: RED1_VM.ip4,
          dst: RED2_VM.ip4,
          smac: RED1_VM.mac,
          dmac: RED2_VM.mac,
        }).build(),
      ),
    expect: decap(
      () =>
        inner4({
          src: RED1_VM.ip4,
          dst: RED2_VM.ip4,
          smac: RED1_VM.mac,
          dmac: RED2_VM.mac,
        }).build(),
      {
        ifindex: RED2_IFINDEX,
        txIfindex: RED2_IFINDEX,
        vsid: {
          vsid: RED1,
          kind: 'decap',
          bytes: inner4({ src: RED1_VM.ip4, dst: RED2_VM.ip4 }).build().length,
        },
      },
    ),
  },
  {
    name: 'routed from another subnet of the routing domain (VSID of the destination): accepted',
    input: () =>
      wrap(
        nvgre({ vsid: BLUE2 }),
        inner4({ dst: VM3.ip4, dmac: VM3.mac, smac: GW2_MAC, tos: 0 }).build(),
      ),
    expect: decap(() => inner4({ dst: VM3.ip4, dmac: VM3.mac, smac: GW2_MAC }).build(), {
      ifindex: VM3_IFINDEX,
      txIfindex: VM3_IFINDEX,
      vsid: { vsid: BLUE2, kind: 'decap', bytes: inner4().build().length },
    }),
  },
  {
    name: 'routed ipv6 via a gateway route (source behind the appliance vm5 on host B): accepted',
    input: () =>
      wrap(
        nvgre({ vsid: BLUE1 }),
        packet()
          .eth({ src: GW1_MAC, dst: VM2.mac })
          .ipv6({ src: 'fd00:30::7', dst: VM2.ip6, hopLimit: 63 })
          .udp({ sport: 1, dport: 2 })
          .build(),
      ),
    expect: decap(() =>
      packet()
        .eth({ src: GW1_MAC, dst: VM2.mac })
        .ipv6({ src: 'fd00:30::7', dst: VM2.ip6, hopLimit: 63 })
        .udp({ sport: 1, dport: 2 })
        .build(),
    ),
  },
  {
    name: 'gen 1: a migrated sender (record on host C in generation 1) is accepted from C',
    tables: (t) =>
      setRecord(t, BLUE1, VM4.ip4, {
        live: 3,
        v: [remoteRecord(VM4.mac, PA_B), remoteRecord(VM4.mac, PA_C)],
      }),
    generation: 1,
    input: () => wrap(nvgre({ src: PA_C }), inner4().build()),
    expect: decap(() => inner4().build()),
  },
];

const passed: Case[] = [
  {
    name: 'plain UDP to the host passes untouched',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A })
        .udp({ sport: 1, dport: 53 })
        .payload('dns')
        .build(),
    expect: { verdict: 'pass' },
  },
  {
    name: 'NVGRE to a PA that is not ours passes',
    input: () => wrap(nvgre({ dst: '198.18.0.9' }), inner4().build()),
    expect: { verdict: 'pass' },
  },
  {
    name: 'NVGRE to a local PA live only in the other generation passes',
    tables: (t) => {
      const e = [...t.localPas.values()][0];
      if (e) e.live = 2;
    },
    input: () => wrap(nvgre(), inner4().build()),
    expect: { verdict: 'pass' },
  },
  {
    name: 'VLAN-tagged outer frame passes (host traffic on a VLAN)',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .vlan({ vid: 7 })
        .ipv4({ src: PA_B, dst: PA_A })
        .nvgre({ vsid: BLUE1 })
        .payload(inner4().build())
        .build(),
    expect: { verdict: 'pass' },
  },
  {
    name: 'ARP on the underlay passes',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: 'ff:ff:ff:ff:ff:ff' })
        .arp({ op: 'request', sha: WIRE_B, spa: PA_B, tpa: PA_A })
        .build(),
    expect: { verdict: 'pass' },
  },
];

const drops: Case[] = [
  {
    name: 'outer IPv4 header cut off (33 bytes)',
    input: () => wrap(nvgre(), inner4().build()).subarray(0, 33),
    expect: { verdict: 'drop', reason: 'ipv4_truncated' },
  },
  {
    name: 'outer fragment',
    input: () => wrap(nvgre({ mf: true }), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_outer_fragment' },
  },
  {
    name: 'GRE header cut off by the outer IP length',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A, proto: 47 })
        .payload(Buffer.from([0x20, 0x00]))
        .build(),
    expect: { verdict: 'drop', reason: 'nvgre_truncated' },
  },
  {
    name: 'GRE key cut off',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A, proto: 47 })
        .payload(Buffer.from([0x20, 0x00, 0x65, 0x58, 0x00, 0x13]))
        .build(),
    expect: { verdict: 'drop', reason: 'nvgre_truncated' },
  },
  {
    name: 'GRE with a checksum (flags 0xa000)',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A })
        .gre({ protocol: 0x6558, vsid: BLUE1, checksum: true })
        .payload(inner4().build())
        .build(),
    expect: { verdict: 'drop', reason: 'nvgre_bad_flags' },
  },
  {
    name: 'GRE without a key (flags 0x0000)',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A })
        .gre({ protocol: 0x6558 })
        .payload(inner4().build())
        .build(),
    expect: { verdict: 'drop', reason: 'nvgre_bad_flags' },
  },
  {
    name: 'GRE version 1',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A })
        .gre({ protocol: 0x6558, vsid: BLUE1, version: 1 })
        .payload(inner4().build())
        .build(),
    expect: { verdict: 'drop', reason: 'nvgre_bad_flags' },
  },
  {
    name: 'GRE protocol IPv4 instead of 0x6558',
    input: () =>
      packet()
        .eth({ src: WIRE_B, dst: NIC_A })
        .ipv4({ src: PA_B, dst: PA_A })
        .gre({ protocol: 0x0800, key: BLUE1 << 8 })
        .payload(inner4().build())
        .build(),
    expect: { verdict: 'drop', reason: 'nvgre_bad_protocol' },
  },
  {
    name: 'unknown VSID',
    input: () => wrap(nvgre({ vsid: 7777 }), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_vsid_unknown' },
  },
  {
    name: 'VSID live only in the other generation',
    tables: (t) => {
      const e = t.vsubnets.get(BLUE1);
      if (e) e.live = 2;
    },
    input: () => wrap(nvgre(), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_vsid_unknown' },
  },
  {
    name: 'inner Ethernet header cut off',
    input: () => wrap(nvgre(), inner4().build().subarray(0, 10)),
    expect: { verdict: 'drop', reason: 'nvgre_inner_truncated' },
  },
  {
    name: 'inner IPv4 header cut off',
    input: () =>
      wrap(
        nvgre(),
        inner4()
          .build()
          .subarray(0, 14 + 12),
      ),
    expect: { verdict: 'drop', reason: 'nvgre_inner_truncated' },
  },
  {
    name: 'inner IPv4 total length beyond the outer payload',
    input: () =>
      wrap(
        nvgre(),
        inner4()
          .build()
          .subarray(0, 14 + 24),
      ),
    expect: { verdict: 'drop', reason: 'nvgre_inner_truncated' },
  },
  {
    name: 'inner IPv6 payload length beyond the outer payload',
    input: () =>
      wrap(
        nvgre(),
        inner6()
          .build()
          .subarray(0, 14 + 44),
      ),
    expect: { verdict: 'drop', reason: 'nvgre_inner_truncated' },
  },
  {
    name: 'inner 802.1Q tag',
    input: () =>
      wrap(
        nvgre(),
        packet()
          .eth({ src: VM4.mac, dst: VM2.mac })
          .vlan({ vid: 5 })
          .ipv4({ src: VM4.ip4, dst: VM2.ip4 })
          .udp({ sport: 1, dport: 2 })
          .build(),
      ),
    expect: { verdict: 'drop', reason: 'nvgre_inner_vlan' },
  },
  {
    name: 'inner ARP',
    input: () =>
      wrap(
        nvgre(),
        packet()
          .eth({ src: VM4.mac, dst: 'ff:ff:ff:ff:ff:ff' })
          .arp({ op: 'request', sha: VM4.mac, spa: VM4.ip4, tpa: VM2.ip4 })
          .build(),
      ),
    expect: { verdict: 'drop', reason: 'nvgre_inner_malformed' },
  },
  {
    name: 'inner IPv4 with IHL 3',
    input: () => {
      const i = inner4().build();
      i[14] = 0x43;
      return wrap(nvgre(), i);
    },
    expect: { verdict: 'drop', reason: 'nvgre_inner_malformed' },
  },
  {
    name: "outer source PA is not the PA of the inner source's record",
    input: () => wrap(nvgre({ src: PA_C }), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_foreign_pa' },
  },
  {
    name: 'routed source whose subnet record names another PA',
    input: () =>
      wrap(nvgre({ vsid: BLUE2, src: PA_C }), inner4({ dst: VM3.ip4, dmac: VM3.mac }).build()),
    expect: { verdict: 'drop', reason: 'nvgre_foreign_pa' },
  },
  {
    name: 'routed source without a record in the subnet its route gives',
    tables: (t) => setRecord(t, BLUE1, VM4.ip4, undefined),
    input: () => wrap(nvgre({ vsid: BLUE2 }), inner4({ dst: VM3.ip4, dmac: VM3.mac }).build()),
    expect: { verdict: 'drop', reason: 'nvgre_foreign_pa' },
  },
  {
    name: 'inner source without a record in the VSID',
    input: () => wrap(nvgre(), inner4({ src: '198.18.10.99' }).build()),
    expect: { verdict: 'drop', reason: 'nvgre_foreign_pa' },
  },
  {
    name: 'inner source record live only in the other generation',
    tables: (t) => setRecord(t, BLUE1, VM4.ip4, only(1, remoteRecord(VM4.mac, PA_B), ZERO_RECORD)),
    input: () => wrap(nvgre(), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_foreign_pa' },
  },
  {
    name: 'inner source is a CA that lives on this host (spoofed from the wire)',
    input: () => wrap(nvgre(), inner4({ src: VM2.ip4, dst: VM4.ip4 }).build()),
    expect: { verdict: 'drop', reason: 'nvgre_foreign_pa' },
  },
  {
    name: 'inner destination is a remote VM (a record, but not local)',
    input: () => wrap(nvgre(), inner4({ dst: VM4.ip4 }).build()),
    expect: { verdict: 'drop', reason: 'nvgre_dst_not_local' },
  },
  {
    name: 'inner destination without a record',
    input: () => wrap(nvgre(), inner4({ dst: '198.18.10.15' }).build()),
    expect: { verdict: 'drop', reason: 'nvgre_dst_not_local' },
  },
  {
    name: "inner destination of another tenant's VSID (blue VSID, red-only CA)",
    tables: (t) => setRecord(t, BLUE1, VM2.ip4, undefined),
    input: () => wrap(nvgre(), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_dst_not_local' },
  },
  {
    name: 'outer CE over inner Not-ECT',
    input: () => wrap(nvgre({ tos: 0x03 }), inner4().build()),
    expect: { verdict: 'drop', reason: 'nvgre_ecn_ce_not_ect' },
  },
];

describePrivileged('tenet_xdp_rx NVGRE decapsulation (XDP, BPF_PROG_TEST_RUN)', () => {
  const dp = useDatapath();
  describe('delivers', () => {
    it.each(delivered)('$name', (c) => runCase(dp, HOOK, c));
  });
  describe('passes host traffic', () => {
    it.each(passed)('$name', (c) => runCase(dp, HOOK, c));
  });
  describe('drops', () => {
    it.each(drops)('$name', (c) => runCase(dp, HOOK, c));
  });
});
