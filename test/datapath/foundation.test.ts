// The foundation programs (tenet_xdp on physical NICs, tenet_tc on VM ports) through
// BPF_PROG_TEST_RUN: a well-formed frame passes byte for byte and is counted on its port; each
// malformed frame is dropped with its numbered reason and counted under that reason. Expected
// bytes are built independently with the packet builder, never taken from the program.

import { describe, expect, it } from 'vitest';
import { DropReason, Maps, type DropReasonName } from '../../agent/abi/generated.js';
import { BpfMap, PerCpuTypedMap, sumPerCpu } from '../../agent/bpf/index.js';
import { packet } from '../../agent/packet/index.js';
import { expectPacket } from '../helpers/packet-diff.js';
import { useObjects } from '../helpers/datapath.js';
import { describePrivileged } from '../helpers/privilege.js';
import { join } from 'node:path';

const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
// Without a ctx, test runs see the loopback device of the current namespace.
const LOOPBACK_IFINDEX = 1;

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';

function udp4() {
  return packet()
    .eth({ src: MAC_A, dst: MAC_B })
    .ipv4({ src: '198.18.0.1', dst: '198.18.0.2', ttl: 64 })
    .udp({ sport: 40000, dport: 4789 })
    .payload('golden');
}

interface DropCase {
  name: string;
  build: () => Buffer;
  reason: DropReasonName;
}

// Frames the parser must refuse. (Frames under 14 bytes cannot be test-run at all: the kernel
// refuses them before the program sees them.)
const dropCases: DropCase[] = [
  {
    name: 'IPv4 header with IHL 4',
    build: () => udp4().build().fill(0x44, 14, 15),
    reason: 'ipv4_bad_ihl',
  },
  {
    name: 'IPv4 version nibble 6 under EtherType IPv4',
    build: () => udp4().build().fill(0x65, 14, 15),
    reason: 'ipv4_bad_version',
  },
  {
    name: 'IPv4 total length beyond the frame',
    build: () => {
      const f = udp4().build();
      f.writeUInt16BE(f.length, 16); // 14 bytes more than the IP packet has
      return f;
    },
    reason: 'ipv4_bad_total_length',
  },
  {
    name: 'IPv4 header cut off',
    build: () =>
      udp4()
        .build()
        .subarray(0, 14 + 12),
    reason: 'ipv4_truncated',
  },
  {
    name: 'IPv6 payload length beyond the frame',
    build: () => {
      const f = packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv6({ src: 'fd00::1', dst: 'fd00::2' })
        .udp({ sport: 1, dport: 2 })
        .payload('x')
        .build();
      f.writeUInt16BE(200, 14 + 4);
      return f;
    },
    reason: 'ipv6_bad_payload_length',
  },
  {
    name: 'three VLAN tags',
    build: () =>
      packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .vlan({ vid: 1 })
        .vlan({ vid: 2 })
        .vlan({ vid: 3 })
        .ipv4({ src: '198.18.0.1', dst: '198.18.0.2' })
        .udp({ sport: 1, dport: 2 })
        .build(),
    reason: 'vlan_too_deep',
  },
  {
    name: 'UDP header cut off inside the IP length',
    build: () =>
      packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv4({ src: '198.18.0.1', dst: '198.18.0.2' })
        .payload(Buffer.alloc(4))
        .build()
        // claim UDP over a 4-byte payload
        .fill(17, 14 + 9, 14 + 10),
    reason: 'udp_truncated',
  },
];

describePrivileged('foundation datapath (BPF_PROG_TEST_RUN)', () => {
  const loaded = useObjects('tenet_xdp', 'tenet_tc');

  function counters() {
    const ports = new PerCpuTypedMap(
      BpfMap.openPinned(join(loaded.pinRoot, Maps.tenet_port_ctrs.name)),
      Maps.tenet_port_ctrs.key,
      Maps.tenet_port_ctrs.value,
    );
    const drops = new PerCpuTypedMap(
      BpfMap.openPinned(join(loaded.pinRoot, Maps.tenet_drop_ctrs.name)),
      Maps.tenet_drop_ctrs.key,
      Maps.tenet_drop_ctrs.value,
    );
    const read = () => {
      const port = (direction: number) => {
        const v = ports.get({ ifindex: LOOPBACK_IFINDEX, direction });
        return v ? sumPerCpu(v, ['packets', 'bytes']) : { packets: 0n, bytes: 0n };
      };
      const drop = (reason: DropReasonName) =>
        sumPerCpu(drops.get(DropReason[reason]) ?? [], ['packets', 'bytes']);
      return { port, drop };
    };
    return {
      read,
      close() {
        ports.close();
        drops.close();
      },
    };
  }

  describe('tenet_xdp_rx', () => {
    it('passes a well-formed IPv4/UDP frame unchanged and counts it on the port', () => {
      const prog = loaded.get('tenet_xdp').program('tenet_xdp_rx');
      const c = counters();
      try {
        const input = udp4().build();
        const before = c.read().port(0);
        const r = prog.testRun({ data: input, repeat: 3 });
        expect(r.retval).toBe(XDP_PASS);
        expectPacket(r.data, udp4().build(), { name: 'foundation-xdp-golden' });
        const after = c.read().port(0);
        expect(after.packets - before.packets).toBe(3n);
        expect(after.bytes - before.bytes).toBe(3n * BigInt(input.length));
        expect(r.durationNs).toBeGreaterThan(0);
      } finally {
        c.close();
        prog.close();
      }
    });

    it('passes ARP and IPv6 ND untouched (not its business to judge)', () => {
      const prog = loaded.get('tenet_xdp').program('tenet_xdp_rx');
      try {
        const arp = packet()
          .eth({ src: MAC_A, dst: 'ff:ff:ff:ff:ff:ff' })
          .arp({
            op: 1,
            sha: MAC_A,
            spa: '198.18.0.1',
            tha: '00:00:00:00:00:00',
            tpa: '198.18.0.2',
          })
          .build();
        const r = prog.testRun({ data: arp });
        expect(r.retval).toBe(XDP_PASS);
        expectPacket(r.data, arp, { name: 'foundation-xdp-arp' });
      } finally {
        prog.close();
      }
    });

    it.each(dropCases)('drops $name with reason $reason', ({ build, reason }) => {
      const prog = loaded.get('tenet_xdp').program('tenet_xdp_rx');
      const c = counters();
      try {
        const before = c.read().drop(reason);
        const r = prog.testRun({ data: build() });
        expect(r.retval).toBe(XDP_DROP);
        const after = c.read().drop(reason);
        expect(after.packets - before.packets).toBe(1n);
      } finally {
        c.close();
        prog.close();
      }
    });
  });

  describe('tenet_tc', () => {
    it('ingress passes a well-formed frame and counts it as rx; egress counts tx', () => {
      const rx = loaded.get('tenet_tc').program('tenet_tc_rx');
      const tx = loaded.get('tenet_tc').program('tenet_tc_tx');
      const c = counters();
      try {
        const input = udp4().build();
        const rx0 = c.read().port(0);
        const tx0 = c.read().port(1);
        const r1 = rx.testRun({ data: input });
        expect(r1.retval).toBe(TC_ACT_OK);
        expectPacket(r1.data, udp4().build(), { name: 'foundation-tc-golden' });
        expect(tx.testRun({ data: input }).retval).toBe(TC_ACT_OK);
        expect(c.read().port(0).packets - rx0.packets).toBe(1n);
        expect(c.read().port(1).packets - tx0.packets).toBe(1n);
      } finally {
        c.close();
        rx.close();
        tx.close();
      }
    });

    it('drops an IPv4 header with IHL 4 with its reason', () => {
      const rx = loaded.get('tenet_tc').program('tenet_tc_rx');
      const c = counters();
      try {
        const before = c.read().drop('ipv4_bad_ihl');
        expect(rx.testRun({ data: dropCases[0]!.build() }).retval).toBe(TC_ACT_SHOT);
        expect(c.read().drop('ipv4_bad_ihl').packets - before.packets).toBe(1n);
      } finally {
        c.close();
        rx.close();
      }
    });
  });
});
