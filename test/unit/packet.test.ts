import { describe, expect, it } from 'vitest';
import {
  bytesToIpv4,
  bytesToIpv6,
  bytesToMac,
  cidrContains,
  ipv4ToBytes,
  ipv6MulticastMac,
  ipv6ToBytes,
  macToBytes,
  parseCidr,
  solicitedNodeMulticast,
} from '../../agent/packet/addr.js';
import { internetChecksum } from '../../agent/packet/checksum.js';
import { nvgreKey, nvgreSplitKey } from '../../agent/packet/constants.js';
import { packet, tcpFlags } from '../../agent/packet/builder.js';
import { describePacket, parsePacket } from '../../agent/packet/parser.js';
import {
  corpus,
  MAC_A,
  MAC_B,
  MAC_C,
  MAC_D,
  PA_1,
  PA_2,
  CA_1,
  CA_2,
  V6_1,
  V6_2,
} from '../helpers/packet-corpus.js';

describe('address helpers', () => {
  it('converts MACs both ways', () => {
    expect(macToBytes('02:00:00:AA:bb:0c')).toEqual(Buffer.from([2, 0, 0, 0xaa, 0xbb, 0x0c]));
    expect(macToBytes('2-0-0-aa-bb-c')).toEqual(Buffer.from([2, 0, 0, 0xaa, 0xbb, 0x0c]));
    expect(bytesToMac(Buffer.from([2, 0, 0, 0xaa, 0xbb, 0x0c]))).toBe('02:00:00:aa:bb:0c');
    for (const bad of [
      '',
      '02:00:00:00:00',
      '02:00:00:00:00:00:00',
      'zz:00:00:00:00:00',
      '02:00-00:00:00:00',
      '002:00:00:00:00:00',
    ]) {
      expect(() => macToBytes(bad), bad).toThrow(/invalid MAC/);
    }
  });

  it('converts IPv4 both ways and rejects malformed text', () => {
    expect(ipv4ToBytes('198.18.0.1')).toEqual(Buffer.from([198, 18, 0, 1]));
    expect(bytesToIpv4(Buffer.from([198, 19, 255, 254]))).toBe('198.19.255.254');
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.-4',
      '1.2.3.4 x',
      'a.b.c.d',
    ]) {
      expect(() => ipv4ToBytes(bad), bad).toThrow(/invalid IPv4/);
    }
  });

  it('converts IPv6 both ways with RFC 5952 canonical output', () => {
    const cases: Array<[string, string]> = [
      ['fd00::1', 'fd00::1'],
      ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fd00:0:0:1:0:0:0:1', 'fd00:0:0:1::1'],
      ['fd00:1:0:0:1:0:0:1', 'fd00:1::1:0:0:1'],
      ['fd00:1:2:3:4:5:6:7', 'fd00:1:2:3:4:5:6:7'],
      ['fd00:1:0:2:3:4:5:6', 'fd00:1:0:2:3:4:5:6'],
      ['::ffff:198.18.0.1', '::ffff:c612:1'],
      ['ff02::1:ff00:2', 'ff02::1:ff00:2'],
    ];
    for (const [input, canon] of cases) expect(bytesToIpv6(ipv6ToBytes(input)), input).toBe(canon);
    for (const bad of [
      '',
      ':::',
      'fd00::1::2',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      'fd00::g',
      'fd00::12345',
      'fe80::1%eth0',
    ]) {
      expect(() => ipv6ToBytes(bad), bad).toThrow(/invalid IPv6/);
    }
  });

  it('parses and matches CIDRs', () => {
    expect(parseCidr('198.18.3.4/15')).toMatchObject({
      family: 4,
      address: '198.18.3.4',
      prefixLen: 15,
    });
    expect(parseCidr('fd00::1')).toMatchObject({ family: 6, prefixLen: 128 });
    expect(cidrContains('198.18.0.0/15', '198.19.255.255')).toBe(true);
    expect(cidrContains('198.18.0.0/15', '198.20.0.0')).toBe(false);
    expect(cidrContains('198.18.0.0/15', '198.18.0.0/14')).toBe(false);
    expect(cidrContains('fd00::/8', 'fdff::1/64')).toBe(true);
    expect(cidrContains('fd00::/8', 'fe80::1')).toBe(false);
    expect(cidrContains('fd00::/8', '198.18.0.1')).toBe(false);
    expect(() => parseCidr('198.18.0.1/33')).toThrow(/prefix length/);
  });

  it('derives ND multicast addresses', () => {
    expect(solicitedNodeMulticast('fd00::12:3456')).toBe('ff02::1:ff12:3456');
    expect(ipv6MulticastMac('ff02::1:ff12:3456')).toBe('33:33:ff:12:34:56');
  });
});

describe('checksums and constants', () => {
  it('computes the RFC 1071 checksum (classic IPv4 header vector)', () => {
    const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(internetChecksum(hdr)).toBe(0xb861);
    // Odd length: trailing byte padded with zero.
    expect(internetChecksum(Buffer.from([0x01]))).toBe(0xfeff);
  });

  it('packs NVGRE keys', () => {
    expect(nvgreKey(0x123456, 0x78)).toBe(0x12345678);
    expect(nvgreKey(0xffffff, 0xff)).toBe(0xffffffff);
    expect(nvgreSplitKey(0xffffff01)).toEqual({ vsid: 0xffffff, flowId: 1 });
    expect(() => nvgreKey(0x1000000)).toThrow(RangeError);
    expect(() => nvgreKey(1, 256)).toThrow(RangeError);
  });

  it('parses TCP flag letters', () => {
    expect(tcpFlags('SA')).toBe(0x12);
    expect(tcpFlags('fpa')).toBe(0x19);
    expect(tcpFlags(0x80)).toBe(0x80);
    expect(() => tcpFlags('SX')).toThrow(/unknown TCP flag/);
  });
});

describe('builder', () => {
  const eth = { src: MAC_A, dst: MAC_B };

  it('builds the classic IPv4 header vector exactly', () => {
    const b = packet()
      .ipv4({ src: '192.168.0.1', dst: '192.168.0.199', df: true, proto: 17 })
      .payload(0x73 - 20)
      .build();
    expect(b.subarray(0, 20).toString('hex')).toBe('45000073000040004011b861c0a80001c0a800c7');
  });

  it('fills lengths, types and checksums', () => {
    const b = packet()
      .eth(eth)
      .ipv4({ src: PA_1, dst: PA_2 })
      .udp({ sport: 1234, dport: 80 })
      .payload('hello world!')
      .build();
    expect(b.length).toBe(14 + 20 + 8 + 12);
    expect(b.readUInt16BE(12)).toBe(0x0800);
    expect(b.readUInt16BE(14 + 2)).toBe(40);
    expect(b[14 + 9]).toBe(17);
    expect(b.readUInt16BE(34 + 4)).toBe(20);
    const p = parsePacket(b);
    expect(p.ipv4?.checksumOk).toBe(true);
    expect(p.udp?.checksumOk).toBe(true);
  });

  it('infers next-protocol fields through VLAN, GRE and IPv6 extension headers', () => {
    const b = packet()
      .eth(eth)
      .vlan({ vid: 5 })
      .ipv6({
        src: V6_1,
        dst: V6_2,
        ext: [
          { type: 'hop-by-hop' },
          { type: 'routing' },
          { type: 'fragment' },
          { type: 'dest-opts' },
        ],
      })
      .gre()
      .eth({ src: MAC_C, dst: MAC_D })
      .arp({ op: 'reply', sha: MAC_C, spa: CA_1, tha: MAC_D, tpa: CA_2 })
      .build();
    const p = parsePacket(b);
    expect(p.eth?.type).toBe(0x8100);
    expect(p.vlans[0]?.type).toBe(0x86dd);
    expect(p.ipv6?.nextHeader).toBe(0);
    expect(p.ipv6?.ext.map((e) => [e.name, e.nextHeader])).toEqual([
      ['hop-by-hop', 43],
      ['routing', 44],
      ['fragment', 60],
      ['dest-opts', 47],
    ]);
    expect(p.gre?.protocol).toBe(0x6558);
    expect(p.inner?.arp).toMatchObject({ op: 2, sha: MAC_C, spa: CA_1, tha: MAC_D, tpa: CA_2 });
  });

  it('writes an NVGRE key from VSID and FlowID', () => {
    const b = packet()
      .eth(eth)
      .ipv4({ src: PA_1, dst: PA_2 })
      .nvgre({ vsid: 0xabcdef, flowId: 0x12 })
      .eth({ src: MAC_C, dst: MAC_D })
      .ipv4({ src: CA_1, dst: CA_2 })
      .udp({ sport: 1, dport: 2 })
      .build();
    // GRE header right after the outer IPv4 header: flags K, protocol 0x6558, key.
    expect(b.subarray(34, 42).toString('hex')).toBe('20006558abcdef12');
    const p = parsePacket(b);
    expect(p.gre).toMatchObject({
      keyPresent: true,
      key: 0xabcdef12,
      vsid: 0xabcdef,
      flowId: 0x12,
    });
    expect(p.inner?.udp?.checksumOk).toBe(true);
  });

  it('builds neighbour discovery with link-layer options', () => {
    const ns = parsePacket(
      packet()
        .eth(eth)
        .ipv6({ src: V6_1, dst: solicitedNodeMulticast(V6_2), hopLimit: 255 })
        .ndSolicit({ target: V6_2, sll: MAC_A })
        .build(),
    );
    expect(ns.icmpv6).toMatchObject({ type: 135, target: V6_2, checksumOk: true });
    expect(ns.icmpv6?.ndOptions).toEqual([
      expect.objectContaining({ type: 1, length: 1, mac: MAC_A }),
    ]);
    const na = parsePacket(
      packet()
        .eth(eth)
        .ipv6({ src: V6_2, dst: V6_1 })
        .ndAdvert({ target: V6_2, tll: MAC_B, solicited: false })
        .build(),
    );
    expect(na.icmpv6).toMatchObject({
      type: 136,
      target: V6_2,
      router: false,
      solicited: false,
      override: true,
      checksumOk: true,
    });
    expect(na.icmpv6?.ndOptions?.[0]).toMatchObject({ type: 2, mac: MAC_B });
  });

  it('accepts deliberately wrong values for negative tests', () => {
    const b = packet()
      .eth(eth)
      .ipv4({ src: PA_1, dst: PA_2, checksum: 0xdead, totalLength: 999, ttl: 0 })
      .udp({ sport: 1, dport: 2, length: 3, checksum: 0xbeef })
      .payload(4)
      .build();
    expect(b.readUInt16BE(14 + 10)).toBe(0xdead);
    expect(b.readUInt16BE(14 + 2)).toBe(999);
    expect(b.readUInt16BE(34 + 4)).toBe(3);
    expect(b.readUInt16BE(34 + 6)).toBe(0xbeef);
    const p = parsePacket(b);
    expect(p.ipv4?.checksumOk).toBe(false);
    expect(p.truncated?.layer).toBe('ipv4');
    expect(p.error).toMatchObject({ layer: 'udp', message: 'length 3 < 8' });

    const v = packet().eth(eth).ipv4({ src: PA_1, dst: PA_2, version: 6, ihl: 4 }).build();
    expect(v[14]).toBe(0x64);
    expect(parsePacket(v).error).toMatchObject({ layer: 'ipv4', offset: 14 });

    const t = packet()
      .eth(eth)
      .ipv4({ src: PA_1, dst: PA_2 })
      .tcp({ sport: 1, dport: 2, dataOffset: 15 })
      .build();
    expect(parsePacket(t).truncated).toMatchObject({ layer: 'tcp', need: 60, have: 20 });

    const cut = packet()
      .eth(eth)
      .ipv4({ src: PA_1, dst: PA_2 })
      .udp({ sport: 1, dport: 2 })
      .payload(100)
      .truncate(40)
      .build();
    expect(cut.length).toBe(40);
    const padded = packet().eth(eth).arp({ op: 1, sha: MAC_A, spa: PA_1, tpa: PA_2 }).pad().build();
    expect(padded.length).toBe(60);
    expect(parsePacket(padded).trailer?.length).toBe(18);

    const bad6 = parsePacket(
      packet()
        .eth(eth)
        .ipv6({ src: V6_1, dst: V6_2 })
        .icmpv6({ type: 128, id: 1, seq: 1, checksum: 1 })
        .build(),
    );
    expect(bad6.icmpv6?.checksumOk).toBe(false);
    const noUdpCsum = parsePacket(
      packet()
        .eth(eth)
        .ipv4({ src: PA_1, dst: PA_2 })
        .udp({ sport: 1, dport: 2, checksum: 0 })
        .build(),
    );
    expect(noUdpCsum.udp?.checksum).toBe(0);
    expect(noUdpCsum.udp?.checksumOk).toBeUndefined();
    const badGre = parsePacket(
      packet()
        .eth(eth)
        .ipv4({ src: PA_1, dst: PA_2 })
        .gre({ checksumValue: 5, protocol: 0x0800 })
        .payload(4)
        .build(),
    );
    expect(badGre.gre?.checksumOk).toBe(false);
  });

  it('rejects out-of-range fields with RangeError', () => {
    expect(() => packet().eth(eth).vlan({ vid: 4096 }).build()).toThrow(RangeError);
    expect(() => packet().ipv4({ src: PA_1, dst: PA_2, ttl: 256 }).build()).toThrow(RangeError);
    expect(() => packet().udp({ sport: 70000, dport: 1 }).build()).toThrow(RangeError);
    expect(() =>
      packet()
        .nvgre({ vsid: 1 << 24 })
        .build(),
    ).toThrow(RangeError);
    expect(() => packet().eth({ src: 'nope', dst: MAC_B }).build()).toThrow(TypeError);
  });
});

describe('parser round-trips builder output', () => {
  it.each(corpus().map((e) => [e.name, e] as const))('%s', (_n, e) => {
    const bytes = e.builder.build();
    const p = parsePacket(bytes);
    expect(p.layers).toEqual(e.layers);
    expect(p.truncated).toBeUndefined();
    expect(p.error).toBeUndefined();
    // No checksum we could verify is wrong, at any nesting level.
    for (let q: typeof p | undefined = p; q; q = q.inner) {
      for (const h of [q.ipv4, q.udp, q.tcp, q.icmp, q.icmpv6, q.gre])
        expect(h?.checksumOk).not.toBe(false);
    }
    expect(describePacket(bytes)).not.toMatch(/bad|truncated|error/);
  });

  it('recovers every field given to the builder', () => {
    const b = packet()
      .eth({ src: MAC_A, dst: MAC_B })
      .vlan({ vid: 123, pcp: 6, dei: true })
      .ipv4({ src: PA_1, dst: PA_2, ttl: 17, tos: 0x28, id: 4242, df: true, options: [1, 1, 1, 0] })
      .tcp({
        sport: 1111,
        dport: 2222,
        seq: 0xfffffff0,
        ack: 77,
        flags: 'PAU',
        window: 1000,
        urgent: 5,
        options: [1, 1, 1, 1],
      })
      .payload('xyz')
      .build();
    const p = parsePacket(b);
    expect(p.eth).toMatchObject({ src: MAC_A, dst: MAC_B, type: 0x8100 });
    expect(p.vlans).toEqual([
      { offset: 12, tpid: 0x8100, pcp: 6, dei: true, vid: 123, type: 0x0800 },
    ]);
    expect(p.ipv4).toMatchObject({
      src: PA_1,
      dst: PA_2,
      ttl: 17,
      tos: 0x28,
      id: 4242,
      df: true,
      mf: false,
      fragOffset: 0,
      ihl: 6,
      checksumOk: true,
    });
    expect(p.ipv4?.options).toEqual(Buffer.from([1, 1, 1, 0]));
    expect(p.tcp).toMatchObject({
      sport: 1111,
      dport: 2222,
      seq: 0xfffffff0,
      ack: 77,
      flagString: 'PAU',
      window: 1000,
      urgent: 5,
      dataOffset: 6,
      checksumOk: true,
    });
    expect(p.payload?.toString()).toBe('xyz');

    const v6 = parsePacket(
      packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv6({
          src: V6_1,
          dst: V6_2,
          tc: 0xb8,
          flowLabel: 0x12345,
          hopLimit: 3,
          ext: [{ type: 'fragment', offset: 0, mf: true, id: 99 }],
        })
        .udp({ sport: 1, dport: 2 })
        .payload(20)
        .build(),
    );
    expect(v6.ipv6).toMatchObject({ tc: 0xb8, flowLabel: 0x12345, hopLimit: 3, upperProto: 17 });
    expect(v6.ipv6?.ext[0]).toMatchObject({ name: 'fragment', fragOffset: 0, mf: true, id: 99 });
    // First fragment: UDP header parsed, checksum not verifiable.
    expect(v6.udp?.checksumOk).toBeUndefined();
  });

  it('does not parse L4 in non-first fragments', () => {
    const p4 = parsePacket(
      packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv4({ src: PA_1, dst: PA_2, fragOffset: 185, proto: 17 })
        .payload(16)
        .build(),
    );
    expect(p4.fragment).toBe(true);
    expect(p4.udp).toBeUndefined();
    expect(p4.payload?.length).toBe(16);
    const p6 = parsePacket(
      packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv6({ src: V6_1, dst: V6_2, ext: [{ type: 'fragment', offset: 3 }] })
        .payload(16)
        .build(),
    );
    expect(p6.fragment).toBe(true);
    expect(describePacket(p6)).toContain('fragment(off 24');
  });

  it('parses from L3 when asked', () => {
    const ip = packet().ipv4({ src: PA_1, dst: PA_2 }).icmp({ type: 8, id: 1, seq: 1 }).build();
    expect(parsePacket(ip, { start: 'ipv4' }).icmp).toMatchObject({ type: 8, checksumOk: true });
    const ip6 = packet()
      .ipv6({ src: V6_1, dst: V6_2 })
      .icmpv6({ type: 128, id: 1, seq: 1 })
      .build();
    expect(parsePacket(ip6, { start: 'ipv6' }).icmpv6).toMatchObject({
      type: 128,
      checksumOk: true,
    });
  });
});

describe('describePacket', () => {
  it('prints a tcpdump-like line', () => {
    expect(
      describePacket(
        packet()
          .eth({ src: MAC_A, dst: MAC_B })
          .ipv4({ src: PA_1, dst: PA_2 })
          .udp({ sport: 1234, dport: 80 })
          .payload(12)
          .build(),
      ),
    ).toBe(`${MAC_A} > ${MAC_B} IPv4 ${PA_1} > ${PA_2} ttl 64 UDP 1234 > 80 len 12`);
  });

  it('shows NVGRE key, VSID, FlowID and the inner frame', () => {
    const line = describePacket(
      packet()
        .eth({ src: MAC_A, dst: MAC_B })
        .ipv4({ src: PA_1, dst: PA_2 })
        .nvgre({ vsid: 5001, flowId: 7 })
        .eth({ src: MAC_C, dst: MAC_D })
        .ipv4({ src: CA_1, dst: CA_2 })
        .tcp({ sport: 1, dport: 2, flags: 'S' })
        .build(),
    );
    expect(line).toBe(
      `${MAC_A} > ${MAC_B} IPv4 ${PA_1} > ${PA_2} ttl 64 NVGRE key 0x00138907 vsid 5001 flowid 7 proto 0x6558: ` +
        `${MAC_C} > ${MAC_D} IPv4 ${CA_1} > ${CA_2} ttl 64 TCP 1 > 2 [S] seq 0 win 65535 len 0`,
    );
  });

  it('describes ARP, ND, VLAN, bad checksums and truncation', () => {
    expect(
      describePacket(
        packet()
          .eth({ src: MAC_A, dst: 'ff:ff:ff:ff:ff:ff' })
          .arp({ op: 'request', sha: MAC_A, spa: PA_1, tpa: PA_2 })
          .build(),
      ),
    ).toContain(`ARP who-has ${PA_2} tell ${PA_1}`);
    expect(
      describePacket(
        packet()
          .eth({ src: MAC_A, dst: MAC_B })
          .vlan({ vid: 9, pcp: 1 })
          .ipv6({ src: V6_2, dst: V6_1 })
          .ndAdvert({ target: V6_2, tll: MAC_B })
          .build(),
      ),
    ).toBe(
      `${MAC_A} > ${MAC_B} vlan 9 p1 IPv6 ${V6_2} > ${V6_1} hlim 64 ICMPv6 neighbor advertisement tgt ${V6_2} tll ${MAC_B} [SO]`,
    );
    expect(
      describePacket(
        packet()
          .eth({ src: MAC_A, dst: MAC_B })
          .ipv4({ src: PA_1, dst: PA_2, checksum: 0x1111 })
          .build(),
      ),
    ).toContain('[bad ip cksum 0x1111]');
    expect(
      describePacket(
        packet()
          .eth({ src: MAC_A, dst: MAC_B })
          .ipv4({ src: PA_1, dst: PA_2 })
          .truncate(20)
          .build(),
      ),
    ).toBe(`${MAC_A} > ${MAC_B} [truncated in ipv4 at 14: need 20, have 6]`);
    expect(describePacket(Buffer.alloc(0))).toBe('[truncated in eth at 0: need 14, have 0]');
  });
});
