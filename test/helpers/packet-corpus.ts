// A corpus of built packets covering every protocol combination the builder supports, with what an
// independent decoder (tshark) must report for each. Shared by the tshark, round-trip and fuzz tests.

import { packet, type PacketBuilder } from '../../agent/packet/builder.js';

export const MAC_A = '02:00:00:00:00:0a';
export const MAC_B = '02:00:00:00:00:0b';
export const MAC_C = '02:00:00:00:0c:01';
export const MAC_D = '02:00:00:00:0d:01';
export const PA_1 = '198.18.0.1';
export const PA_2 = '198.18.0.2';
export const CA_1 = '198.19.1.1';
export const CA_2 = '198.19.1.2';
export const V6_1 = 'fd00::1';
export const V6_2 = 'fd00::2';

export interface CorpusEntry {
  name: string;
  builder: PacketBuilder;
  /** tshark's frame.protocols. */
  protocols: string;
  /** tshark field -> every occurrence in order (string compare, tshark's formatting). */
  fields: Record<string, string[]>;
  /** Expected layer names of our parser (outer packet). */
  layers: string[];
  /** tshark expert messages of severity warn or above that are expected for this packet. */
  allowExpert?: string[];
}

const mss = [0x02, 0x04, 0x05, 0xb4]; // MSS 1460
const routerAlertV4 = [0x94, 0x04, 0x00, 0x00];
const routerAlertV6 = [0x05, 0x02, 0x00, 0x00];

export function corpus(): CorpusEntry[] {
  const eth = { src: MAC_A, dst: MAC_B };
  const innerEth = { src: MAC_C, dst: MAC_D };
  const v4 = { src: PA_1, dst: PA_2 };
  const v6 = { src: V6_1, dst: V6_2 };
  return [
    {
      name: 'ipv4-udp',
      builder: packet().eth(eth).ipv4(v4).udp({ sport: 1234, dport: 80 }).payload('hello world!'),
      protocols: 'eth:ethertype:ip:udp:data',
      fields: {
        'ip.src': [PA_1],
        'ip.dst': [PA_2],
        'udp.srcport': ['1234'],
        'udp.dstport': ['80'],
        'udp.length': ['20'],
      },
      layers: ['eth', 'ipv4', 'udp', 'payload'],
    },
    {
      name: 'ipv4-udp-empty',
      builder: packet()
        .eth(eth)
        .ipv4({ ...v4, ttl: 1, tos: 0xb8, id: 0xbeef, df: true })
        .udp({ sport: 53, dport: 53 }),
      protocols: 'eth:ethertype:ip:udp',
      fields: {
        'ip.ttl': ['1'],
        'ip.dsfield': ['0xb8'],
        'ip.id': ['0xbeef'],
        'ip.flags.df': ['1'],
        'udp.length': ['8'],
      },
      layers: ['eth', 'ipv4', 'udp'],
    },
    {
      name: 'ipv4-tcp-syn-mss',
      builder: packet()
        .eth(eth)
        .ipv4(v4)
        .tcp({ sport: 40000, dport: 443, seq: 1000, flags: 'S', window: 64240, options: mss }),
      protocols: 'eth:ethertype:ip:tcp',
      fields: {
        'tcp.srcport': ['40000'],
        'tcp.dstport': ['443'],
        'tcp.seq_raw': ['1000'],
        'tcp.flags': ['0x0002'],
        'tcp.options.mss_val': ['1460'],
        'tcp.window_size_value': ['64240'],
      },
      layers: ['eth', 'ipv4', 'tcp'],
    },
    {
      name: 'ipv4-tcp-psh-ack',
      builder: packet()
        .eth(eth)
        .ipv4(v4)
        .tcp({ sport: 33000, dport: 40000, seq: 7, ack: 1001, flags: 'PA' })
        .payload(100),
      protocols: 'eth:ethertype:ip:tcp:data',
      fields: { 'tcp.flags': ['0x0018'], 'tcp.ack_raw': ['1001'], 'tcp.len': ['100'] },
      layers: ['eth', 'ipv4', 'tcp', 'payload'],
    },
    {
      name: 'ipv4-icmp-echo-request',
      builder: packet().eth(eth).ipv4(v4).icmp({ type: 8, id: 0x1234, seq: 1 }).payload(56),
      protocols: 'eth:ethertype:ip:icmp:data',
      fields: { 'icmp.type': ['8'], 'icmp.code': ['0'], 'icmp.ident': ['4660'], 'icmp.seq': ['1'] },
      layers: ['eth', 'ipv4', 'icmp', 'payload'],
    },
    {
      name: 'ipv4-icmp-echo-reply-odd',
      builder: packet()
        .eth(eth)
        .ipv4({ src: PA_2, dst: PA_1 })
        .icmp({ type: 0, id: 7, seq: 9 })
        .payload(13),
      protocols: 'eth:ethertype:ip:icmp:data',
      fields: { 'icmp.type': ['0'], 'icmp.ident': ['7'], 'icmp.seq': ['9'] },
      layers: ['eth', 'ipv4', 'icmp', 'payload'],
    },
    {
      name: 'ipv4-options-udp',
      builder: packet()
        .eth(eth)
        .ipv4({ ...v4, options: routerAlertV4 })
        .udp({ sport: 1, dport: 2 })
        .payload(3),
      protocols: 'eth:ethertype:ip:udp:data',
      fields: { 'ip.hdr_len': ['24'], 'ip.opt.type': ['148'] },
      layers: ['eth', 'ipv4', 'udp', 'payload'],
    },
    {
      name: 'vlan-ipv4-udp',
      builder: packet()
        .eth(eth)
        .vlan({ vid: 100, pcp: 5 })
        .ipv4(v4)
        .udp({ sport: 5000, dport: 5001 })
        .payload(20),
      protocols: 'eth:ethertype:vlan:ethertype:ip:udp:data',
      fields: { 'vlan.id': ['100'], 'vlan.priority': ['5'], 'udp.dstport': ['5001'] },
      layers: ['eth', 'vlan', 'ipv4', 'udp', 'payload'],
    },
    {
      name: 'qinq-ipv4-tcp',
      builder: packet()
        .eth(eth)
        .vlan({ vid: 300, tpid: 0x88a8 })
        .vlan({ vid: 42, dei: true })
        .ipv4(v4)
        .tcp({ sport: 1, dport: 2, flags: 'A', ack: 9 }),
      protocols: 'eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:tcp',
      fields: {
        'ieee8021ad.id': ['300'],
        'vlan.id': ['42'],
        'vlan.dei': ['1'],
        'tcp.flags': ['0x0010'],
      },
      layers: ['eth', 'vlan', 'vlan', 'ipv4', 'tcp'],
    },
    {
      name: 'ipv4-first-fragment',
      builder: packet()
        .eth(eth)
        .ipv4({ ...v4, id: 77, mf: true })
        .udp({ sport: 9, dport: 9, length: 1008 })
        .payload(64),
      protocols: 'eth:ethertype:ip:data',
      fields: { 'ip.flags.mf': ['1'], 'ip.frag_offset': ['0'], 'ip.id': ['0x004d'] },
      layers: ['eth', 'ipv4', 'udp', 'payload'],
    },
    {
      name: 'arp-request',
      builder: packet()
        .eth({ src: MAC_A, dst: 'ff:ff:ff:ff:ff:ff' })
        .arp({ op: 'request', sha: MAC_A, spa: PA_1, tpa: PA_2 }),
      protocols: 'eth:ethertype:arp',
      fields: {
        'arp.opcode': ['1'],
        'arp.src.hw_mac': [MAC_A],
        'arp.src.proto_ipv4': [PA_1],
        'arp.dst.proto_ipv4': [PA_2],
      },
      layers: ['eth', 'arp'],
    },
    {
      name: 'arp-reply-padded',
      builder: packet()
        .eth({ src: MAC_B, dst: MAC_A })
        .arp({ op: 'reply', sha: MAC_B, spa: PA_2, tha: MAC_A, tpa: PA_1 })
        .pad(60),
      protocols: 'eth:ethertype:arp',
      fields: { 'arp.opcode': ['2'], 'arp.src.hw_mac': [MAC_B], 'arp.dst.hw_mac': [MAC_A] },
      layers: ['eth', 'arp'],
    },
    {
      name: 'ipv6-udp',
      builder: packet()
        .eth(eth)
        .ipv6({ ...v6, tc: 0x2e, flowLabel: 0xabcde })
        .udp({ sport: 5470, dport: 5460 })
        .payload('dhcp?'),
      protocols: 'eth:ethertype:ipv6:udp:data',
      fields: {
        'ipv6.src': [V6_1],
        'ipv6.dst': [V6_2],
        'ipv6.flow': ['0x0abcde'],
        'ipv6.tclass': ['0x0000002e'],
        'udp.srcport': ['5470'],
      },
      layers: ['eth', 'ipv6', 'udp', 'payload'],
    },
    {
      name: 'ipv6-tcp',
      builder: packet()
        .eth(eth)
        .ipv6({ ...v6, hopLimit: 7 })
        .tcp({ sport: 22, dport: 50000, seq: 1, ack: 2, flags: 'FA' }),
      protocols: 'eth:ethertype:ipv6:tcp',
      fields: { 'ipv6.hlim': ['7'], 'tcp.flags': ['0x0011'] },
      layers: ['eth', 'ipv6', 'tcp'],
    },
    {
      name: 'ipv6-hbh-udp',
      builder: packet()
        .eth(eth)
        .ipv6({ ...v6, ext: [{ type: 'hop-by-hop' }] })
        .udp({ sport: 1, dport: 2 })
        .payload(7),
      protocols: 'eth:ethertype:ipv6:ipv6.hopopts:udp:data',
      fields: { 'ipv6.nxt': ['0'], 'ipv6.hopopts.nxt': ['17'] },
      layers: ['eth', 'ipv6', 'ipv6-ext', 'udp', 'payload'],
    },
    {
      name: 'ipv6-hbh-ra-dstopts-icmpv6',
      builder: packet()
        .eth(eth)
        .ipv6({
          ...v6,
          ext: [{ type: 'hop-by-hop', options: routerAlertV6 }, { type: 'dest-opts' }],
        })
        .icmpv6({ type: 128, id: 1, seq: 2 })
        .payload(16),
      protocols: 'eth:ethertype:ipv6:ipv6.hopopts:ipv6.dstopts:icmpv6:data',
      fields: {
        'icmpv6.type': ['128'],
        'icmpv6.echo.identifier': ['0x0001'],
        'icmpv6.echo.sequence_number': ['2'],
      },
      layers: ['eth', 'ipv6', 'ipv6-ext', 'ipv6-ext', 'icmpv6', 'payload'],
    },
    {
      name: 'ipv6-atomic-fragment-udp',
      builder: packet()
        .eth(eth)
        .ipv6({ ...v6, ext: [{ type: 'fragment', id: 0x01020304 }] })
        .udp({ sport: 3, dport: 4 })
        .payload(10),
      protocols: 'eth:ethertype:ipv6:ipv6.fraghdr:udp:data',
      fields: {
        'ipv6.fraghdr.ident': ['0x01020304'],
        'ipv6.fraghdr.more': ['0'],
        'ipv6.fraghdr.offset': ['0'],
      },
      layers: ['eth', 'ipv6', 'ipv6-ext', 'udp', 'payload'],
    },
    {
      name: 'ipv6-routing-udp',
      builder: packet()
        .eth(eth)
        .ipv6({ ...v6, ext: [{ type: 'routing', routingType: 253, segmentsLeft: 0 }] })
        .udp({ sport: 5, dport: 6 })
        .payload(4),
      protocols: 'eth:ethertype:ipv6:ipv6.routing:udp:data',
      fields: { 'ipv6.routing.type': ['253'], 'ipv6.routing.segleft': ['0'] },
      layers: ['eth', 'ipv6', 'ipv6-ext', 'udp', 'payload'],
    },
    {
      name: 'nd-neighbor-solicitation',
      builder: packet()
        .eth({ src: MAC_A, dst: '33:33:ff:00:00:02' })
        .ipv6({ src: V6_1, dst: 'ff02::1:ff00:2', hopLimit: 255 })
        .ndSolicit({ target: V6_2, sll: MAC_A }),
      protocols: 'eth:ethertype:ipv6:icmpv6',
      fields: {
        'icmpv6.type': ['135'],
        'icmpv6.nd.ns.target_address': [V6_2],
        'icmpv6.opt.linkaddr': [MAC_A],
      },
      layers: ['eth', 'ipv6', 'icmpv6'],
    },
    {
      name: 'nd-neighbor-advertisement',
      builder: packet()
        .eth({ src: MAC_B, dst: MAC_A })
        .ipv6({ src: V6_2, dst: V6_1, hopLimit: 255 })
        .ndAdvert({ target: V6_2, tll: MAC_B, router: true }),
      protocols: 'eth:ethertype:ipv6:icmpv6',
      fields: {
        'icmpv6.type': ['136'],
        'icmpv6.nd.na.target_address': [V6_2],
        'icmpv6.opt.linkaddr': [MAC_B],
        'icmpv6.nd.na.flag.r': ['1'],
        'icmpv6.nd.na.flag.s': ['1'],
        'icmpv6.nd.na.flag.o': ['1'],
      },
      layers: ['eth', 'ipv6', 'icmpv6'],
    },
    {
      name: 'vlan-ipv6-icmpv6-echo-reply',
      builder: packet()
        .eth(eth)
        .vlan({ vid: 7 })
        .ipv6(v6)
        .icmpv6({ type: 129, id: 3, seq: 4 })
        .payload(1),
      protocols: 'eth:ethertype:vlan:ethertype:ipv6:icmpv6:data',
      fields: { 'vlan.id': ['7'], 'icmpv6.type': ['129'] },
      layers: ['eth', 'vlan', 'ipv6', 'icmpv6', 'payload'],
    },
    {
      name: 'nvgre-ipv4-tcp',
      builder: packet()
        .eth(eth)
        .ipv4(v4)
        .nvgre({ vsid: 0x123456, flowId: 0x78 })
        .eth(innerEth)
        .ipv4({ src: CA_1, dst: CA_2 })
        .tcp({ sport: 1000, dport: 2000, seq: 5, ack: 6, flags: 'PA' })
        .payload('inner data'),
      protocols: 'eth:ethertype:ip:gre:eth:ethertype:ip:tcp:data',
      fields: {
        'gre.proto': ['0x6558'],
        'gre.key': ['0x12345678'],
        'ip.src': [PA_1, CA_1],
        'ip.dst': [PA_2, CA_2],
        'ip.proto': ['47', '6'],
        'eth.src': [MAC_A, MAC_C],
        'tcp.srcport': ['1000'],
      },
      layers: ['eth', 'ipv4', 'gre', 'inner'],
    },
    {
      name: 'nvgre-ipv6-udp',
      builder: packet()
        .eth(eth)
        .ipv4({ ...v4, df: true, tos: 0x10 })
        .nvgre({ vsid: 5001 })
        .eth(innerEth)
        .ipv6(v6)
        .udp({ sport: 4000, dport: 4001 })
        .payload(33),
      protocols: 'eth:ethertype:ip:gre:eth:ethertype:ipv6:udp:data',
      fields: { 'gre.key': ['0x00138900'], 'ipv6.src': [V6_1], 'udp.dstport': ['4001'] },
      layers: ['eth', 'ipv4', 'gre', 'inner'],
    },
    {
      name: 'nvgre-vlan-arp',
      builder: packet()
        .eth(eth)
        .vlan({ vid: 20 })
        .ipv4(v4)
        .nvgre({ vsid: 1, flowId: 255 })
        .eth({ src: MAC_C, dst: 'ff:ff:ff:ff:ff:ff' })
        .arp({ op: 'request', sha: MAC_C, spa: CA_1, tpa: CA_2 }),
      protocols: 'eth:ethertype:vlan:ethertype:ip:gre:eth:ethertype:arp',
      fields: { 'gre.key': ['0x000001ff'], 'arp.src.proto_ipv4': [CA_1], 'vlan.id': ['20'] },
      layers: ['eth', 'vlan', 'ipv4', 'gre', 'inner'],
    },
    {
      name: 'nvgre-inner-nd',
      builder: packet()
        .eth(eth)
        .ipv4(v4)
        .nvgre({ vsid: 77 })
        .eth({ src: MAC_C, dst: '33:33:ff:00:00:02' })
        .ipv6({ src: V6_1, dst: 'ff02::1:ff00:2', hopLimit: 255 })
        .ndSolicit({ target: V6_2, sll: MAC_C }),
      protocols: 'eth:ethertype:ip:gre:eth:ethertype:ipv6:icmpv6',
      fields: { 'icmpv6.nd.ns.target_address': [V6_2], 'icmpv6.opt.linkaddr': [MAC_C] },
      layers: ['eth', 'ipv4', 'gre', 'inner'],
    },
    {
      name: 'nvgre-over-ipv6-icmp',
      builder: packet()
        .eth(eth)
        .ipv6({ src: 'fd00::a', dst: 'fd00::b' })
        .nvgre({ vsid: 0xffffff, flowId: 1 })
        .eth(innerEth)
        .ipv4({ src: CA_1, dst: CA_2 })
        .icmp({ type: 8, id: 1, seq: 1 })
        .payload(8),
      protocols: 'eth:ethertype:ipv6:gre:eth:ethertype:ip:icmp:data',
      fields: { 'gre.key': ['0xffffff01'], 'ipv6.nxt': ['47'], 'icmp.type': ['8'] },
      layers: ['eth', 'ipv6', 'gre', 'inner'],
    },
    {
      name: 'gre-csum-key-seq-ipv4-udp',
      builder: packet()
        .eth(eth)
        .ipv4(v4)
        .gre({ checksum: true, key: 0xdeadbeef, seq: 42 })
        .ipv4({ src: CA_1, dst: CA_2 })
        .udp({ sport: 7000, dport: 7001 })
        .payload(5),
      protocols: 'eth:ethertype:ip:gre:ip:udp:data',
      fields: { 'gre.proto': ['0x0800'], 'gre.key': ['0xdeadbeef'], 'gre.sequence_number': ['42'] },
      layers: ['eth', 'ipv4', 'gre', 'inner'],
    },
    {
      name: 'gre-plain-ipv6-tcp',
      builder: packet()
        .eth(eth)
        .ipv4(v4)
        .gre()
        .ipv6(v6)
        .tcp({ sport: 80, dport: 81, seq: 3, flags: 'SA', ack: 1 }),
      protocols: 'eth:ethertype:ip:gre:ipv6:tcp',
      fields: { 'gre.proto': ['0x86dd'], 'tcp.flags': ['0x0012'] },
      layers: ['eth', 'ipv4', 'gre', 'inner'],
    },
    {
      name: 'raw-ethertype',
      builder: packet().eth(eth).payload(46),
      protocols: 'eth:ethertype:data',
      fields: { 'eth.type': ['0x88b5'] },
      layers: ['eth', 'payload'],
    },
  ];
}
