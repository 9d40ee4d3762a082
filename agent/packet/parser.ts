// Packet parser and one-line decoder.
//
// `parsePacket` never throws: on a short or malformed packet it stops at the layer where it could
// not go on and records `truncated` (ran out of bytes) or `error` (a field made no sense) with the
// layer name and byte offset. Checksums are verified where the covered bytes are present
// (`checksumOk` true/false) and left undefined where they cannot be (truncated, fragments,
// absent UDP checksum). GRE payloads (NVGRE: 0x6558) are parsed recursively into `inner`.

import { bytesToIpv4, bytesToIpv6, bytesToMac } from './addr.js';
import { internetChecksum, l4Checksum } from './checksum.js';
import {
  ETH_P,
  GRE_FLAG,
  ICMPV6_TYPE,
  IPPROTO,
  ND_OPT,
  TCP_FLAG,
  nvgreSplitKey,
} from './constants.js';

export interface EthHeader {
  offset: number;
  dst: string;
  src: string;
  type: number;
}

export interface VlanTag {
  offset: number;
  tpid: number;
  pcp: number;
  dei: boolean;
  vid: number;
  /** EtherType following the tag. */
  type: number;
}

export interface ArpPacket {
  offset: number;
  htype: number;
  ptype: number;
  hlen: number;
  plen: number;
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

export interface Ipv4Header {
  offset: number;
  version: number;
  ihl: number;
  headerLength: number;
  tos: number;
  totalLength: number;
  id: number;
  reservedFlag: boolean;
  df: boolean;
  mf: boolean;
  /** In 8-byte units. */
  fragOffset: number;
  ttl: number;
  proto: number;
  checksum: number;
  checksumOk?: boolean;
  src: string;
  dst: string;
  options: Buffer;
}

export interface Ipv6ExtHeader {
  offset: number;
  /** Protocol number of this header (0, 43, 44, 51, 60). */
  code: number;
  name: 'hop-by-hop' | 'routing' | 'fragment' | 'auth' | 'dest-opts';
  nextHeader: number;
  length: number;
  /** fragment only */
  fragOffset?: number;
  mf?: boolean;
  id?: number;
  /** routing only */
  routingType?: number;
  segmentsLeft?: number;
}

export interface Ipv6Header {
  offset: number;
  version: number;
  tc: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  src: string;
  dst: string;
  ext: Ipv6ExtHeader[];
  /** Protocol after the extension headers. */
  upperProto: number;
}

export interface UdpHeader {
  offset: number;
  sport: number;
  dport: number;
  length: number;
  checksum: number;
  checksumOk?: boolean;
}

export interface TcpHeader {
  offset: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  dataOffset: number;
  flags: number;
  /** e.g. "SA" (letters in FSRPAUEC order). */
  flagString: string;
  window: number;
  checksum: number;
  checksumOk?: boolean;
  urgent: number;
  options: Buffer;
}

export interface IcmpHeader {
  offset: number;
  type: number;
  code: number;
  checksum: number;
  checksumOk?: boolean;
  id?: number;
  seq?: number;
  rest: number;
}

export interface NdOptionParsed {
  type: number;
  /** In units of 8 bytes. */
  length: number;
  mac?: string;
  data: Buffer;
}

export interface Icmpv6Header extends IcmpHeader {
  target?: string;
  router?: boolean;
  solicited?: boolean;
  override?: boolean;
  ndOptions?: NdOptionParsed[];
}

export interface GreHeader {
  offset: number;
  flags: number;
  checksumPresent: boolean;
  keyPresent: boolean;
  seqPresent: boolean;
  version: number;
  protocol: number;
  checksum?: number;
  checksumOk?: boolean;
  key?: number;
  /** NVGRE view of the key (when protocol is 0x6558 and a key is present). */
  vsid?: number;
  flowId?: number;
  seq?: number;
  headerLength: number;
}

export type LayerName =
  | 'eth'
  | 'vlan'
  | 'arp'
  | 'ipv4'
  | 'ipv6'
  | 'ipv6-ext'
  | 'udp'
  | 'tcp'
  | 'icmp'
  | 'icmpv6'
  | 'gre'
  | 'inner'
  | 'payload';

export interface ParsedPacket {
  /** Total bytes given. */
  length: number;
  /** Layers in order, e.g. ['eth', 'vlan', 'ipv4', 'gre', 'inner']. */
  layers: LayerName[];
  eth?: EthHeader;
  vlans: VlanTag[];
  arp?: ArpPacket;
  ipv4?: Ipv4Header;
  ipv6?: Ipv6Header;
  udp?: UdpHeader;
  tcp?: TcpHeader;
  icmp?: IcmpHeader;
  icmpv6?: Icmpv6Header;
  gre?: GreHeader;
  /** The frame/packet carried by GRE, parsed recursively (offsets relative to its own start). */
  inner?: ParsedPacket;
  /** Offset of `inner` in this buffer. */
  innerOffset?: number;
  /** Bytes after the last parsed header (L4 payload, or unknown L3 payload). */
  payload?: Buffer;
  payloadOffset?: number;
  /** Set when an IPv4/IPv6 packet is a non-first fragment (L4 not parsed). */
  fragment?: boolean;
  /** Bytes after the IP packet (e.g. Ethernet padding). */
  trailer?: Buffer;
  /** Parsing ran out of bytes in `layer`. */
  truncated?: { layer: LayerName; offset: number; need: number; have: number };
  /** A field made no sense in `layer`; parsing stopped there. */
  error?: { layer: LayerName; offset: number; message: string };
}

export interface ParseOptions {
  /** What the buffer starts with (default 'eth'). */
  start?: 'eth' | 'ipv4' | 'ipv6';
  /** GRE nesting limit (default 4). */
  maxDepth?: number;
}

class Stop extends Error {}

class Ctx {
  constructor(
    readonly buf: Buffer,
    readonly p: ParsedPacket,
    /** Offsets beyond `end` do not belong to this packet (IP total length). */
    public end: number,
  ) {}

  need(layer: LayerName, off: number, n: number): void {
    if (off + n > this.end) {
      this.p.truncated = { layer, offset: off, need: n, have: Math.max(0, this.end - off) };
      throw new Stop();
    }
  }

  fail(layer: LayerName, off: number, message: string): never {
    this.p.error = { layer, offset: off, message };
    throw new Stop();
  }

  u8(o: number): number {
    return this.buf[o] as number;
  }

  u16(o: number): number {
    return this.buf.readUInt16BE(o);
  }

  u32(o: number): number {
    return this.buf.readUInt32BE(o);
  }
}

function flagString(f: number): string {
  let s = '';
  const order: Array<[number, string]> = [
    [TCP_FLAG.FIN, 'F'],
    [TCP_FLAG.SYN, 'S'],
    [TCP_FLAG.RST, 'R'],
    [TCP_FLAG.PSH, 'P'],
    [TCP_FLAG.ACK, 'A'],
    [TCP_FLAG.URG, 'U'],
    [TCP_FLAG.ECE, 'E'],
    [TCP_FLAG.CWR, 'C'],
  ];
  for (const [bit, ch] of order) if (f & bit) s += ch;
  return s;
}

/** Parse a packet. Never throws. */
export function parsePacket(buf: Uint8Array, opts: ParseOptions = {}): ParsedPacket {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return parseAt(b, opts.start ?? 'eth', opts.maxDepth ?? 4);
}

function parseAt(buf: Buffer, start: 'eth' | 'ipv4' | 'ipv6', depth: number): ParsedPacket {
  const p: ParsedPacket = { length: buf.length, layers: [], vlans: [] };
  const c = new Ctx(buf, p, buf.length);
  try {
    if (start === 'eth') parseEth(c, 0, depth);
    else if (start === 'ipv4') parseIpv4(c, 0, depth);
    else parseIpv6(c, 0, depth);
  } catch (e) {
    if (!(e instanceof Stop)) {
      p.error = {
        layer: p.layers[p.layers.length - 1] ?? 'eth',
        offset: 0,
        message: `internal: ${String(e)}`,
      };
    }
  }
  return p;
}

function setPayload(c: Ctx, off: number): void {
  if (off < c.end) {
    c.p.payload = c.buf.subarray(off, c.end);
    c.p.payloadOffset = off;
    c.p.layers.push('payload');
  } else {
    c.p.payload = Buffer.alloc(0);
    c.p.payloadOffset = off;
  }
}

function parseEth(c: Ctx, off: number, depth: number): void {
  c.p.layers.push('eth');
  c.need('eth', off, 14);
  let type = c.u16(off + 12);
  c.p.eth = { offset: off, dst: bytesToMac(c.buf, off), src: bytesToMac(c.buf, off + 6), type };
  let o = off + 14;
  while (type === ETH_P.VLAN || type === ETH_P.QINQ) {
    c.p.layers.push('vlan');
    c.need('vlan', o, 4);
    if (c.p.vlans.length >= 8) c.fail('vlan', o, 'more than 8 VLAN tags');
    const tci = c.u16(o);
    const inner = c.u16(o + 2);
    c.p.vlans.push({
      offset: o - 2,
      tpid: type,
      pcp: tci >> 13,
      dei: (tci & 0x1000) !== 0,
      vid: tci & 0xfff,
      type: inner,
    });
    type = inner;
    o += 4;
  }
  parseL3(c, type, o, depth);
}

function parseL3(c: Ctx, type: number, o: number, depth: number): void {
  switch (type) {
    case ETH_P.IPV4:
      return parseIpv4(c, o, depth);
    case ETH_P.IPV6:
      return parseIpv6(c, o, depth);
    case ETH_P.ARP:
      return parseArp(c, o);
    default:
      return setPayload(c, o);
  }
}

function parseArp(c: Ctx, o: number): void {
  c.p.layers.push('arp');
  c.need('arp', o, 8);
  const htype = c.u16(o);
  const ptype = c.u16(o + 2);
  const hlen = c.u8(o + 4);
  const plen = c.u8(o + 5);
  if (htype !== 1 || ptype !== ETH_P.IPV4 || hlen !== 6 || plen !== 4) {
    c.fail('arp', o, `unsupported ARP hw ${htype}/${hlen} proto 0x${ptype.toString(16)}/${plen}`);
  }
  c.need('arp', o, 28);
  c.p.arp = {
    offset: o,
    htype,
    ptype,
    hlen,
    plen,
    op: c.u16(o + 6),
    sha: bytesToMac(c.buf, o + 8),
    spa: bytesToIpv4(c.buf, o + 14),
    tha: bytesToMac(c.buf, o + 18),
    tpa: bytesToIpv4(c.buf, o + 24),
  };
  if (o + 28 < c.end) c.p.trailer = c.buf.subarray(o + 28, c.end);
}

function parseIpv4(c: Ctx, o: number, depth: number): void {
  c.p.layers.push('ipv4');
  c.need('ipv4', o, 20);
  const version = c.u8(o) >> 4;
  const ihl = c.u8(o) & 0xf;
  if (version !== 4) c.fail('ipv4', o, `version ${version} in IPv4 header`);
  if (ihl < 5) c.fail('ipv4', o, `IHL ${ihl} < 5`);
  const hl = ihl * 4;
  c.need('ipv4', o, hl);
  const totalLength = c.u16(o + 2);
  const ff = c.u16(o + 6);
  const h: Ipv4Header = {
    offset: o,
    version,
    ihl,
    headerLength: hl,
    tos: c.u8(o + 1),
    totalLength,
    id: c.u16(o + 4),
    reservedFlag: (ff & 0x8000) !== 0,
    df: (ff & 0x4000) !== 0,
    mf: (ff & 0x2000) !== 0,
    fragOffset: ff & 0x1fff,
    ttl: c.u8(o + 8),
    proto: c.u8(o + 9),
    checksum: c.u16(o + 10),
    src: bytesToIpv4(c.buf, o + 12),
    dst: bytesToIpv4(c.buf, o + 16),
    options: c.buf.subarray(o + 20, o + hl),
  };
  h.checksumOk = internetChecksum(c.buf.subarray(o, o + hl)) === 0;
  c.p.ipv4 = h;
  if (totalLength < hl) c.fail('ipv4', o, `total length ${totalLength} < header length ${hl}`);
  const end = o + totalLength;
  if (end < c.end) {
    c.p.trailer = c.buf.subarray(end, c.end);
    c.end = end;
  } else if (end > c.end) {
    // Packet shorter than its total length: parse what is there, report the truncation.
    c.p.truncated = { layer: 'ipv4', offset: o, need: totalLength, have: c.end - o };
  }
  if (h.fragOffset > 0) {
    c.p.fragment = true;
    return setPayload(c, o + hl);
  }
  const partial = h.mf || c.p.truncated !== undefined;
  const src = c.buf.subarray(o + 12, o + 16);
  const dst = c.buf.subarray(o + 16, o + 20);
  parseL4(c, h.proto, o + hl, src, dst, partial, depth);
}

const EXT_NAMES: Record<number, Ipv6ExtHeader['name']> = {
  [IPPROTO.HOPOPTS]: 'hop-by-hop',
  [IPPROTO.ROUTING]: 'routing',
  [IPPROTO.FRAGMENT]: 'fragment',
  [IPPROTO.AH]: 'auth',
  [IPPROTO.DSTOPTS]: 'dest-opts',
};

function parseIpv6(c: Ctx, o: number, depth: number): void {
  c.p.layers.push('ipv6');
  c.need('ipv6', o, 40);
  const w = c.u32(o);
  const version = w >>> 28;
  if (version !== 6) c.fail('ipv6', o, `version ${version} in IPv6 header`);
  const payloadLength = c.u16(o + 4);
  const h: Ipv6Header = {
    offset: o,
    version,
    tc: (w >>> 20) & 0xff,
    flowLabel: w & 0xfffff,
    payloadLength,
    nextHeader: c.u8(o + 6),
    hopLimit: c.u8(o + 7),
    src: bytesToIpv6(c.buf, o + 8),
    dst: bytesToIpv6(c.buf, o + 24),
    ext: [],
    upperProto: c.u8(o + 6),
  };
  c.p.ipv6 = h;
  const end = o + 40 + payloadLength;
  if (end < c.end) {
    c.p.trailer = c.buf.subarray(end, c.end);
    c.end = end;
  } else if (end > c.end) {
    c.p.truncated = { layer: 'ipv6', offset: o, need: 40 + payloadLength, have: c.end - o };
  }
  let nh = h.nextHeader;
  let off = o + 40;
  let partial = c.p.truncated !== undefined;
  while (EXT_NAMES[nh] !== undefined) {
    c.p.layers.push('ipv6-ext');
    if (h.ext.length >= 16) c.fail('ipv6-ext', off, 'more than 16 extension headers');
    c.need('ipv6-ext', off, 8);
    const name = EXT_NAMES[nh] as Ipv6ExtHeader['name'];
    const next = c.u8(off);
    let len: number;
    if (nh === IPPROTO.FRAGMENT) len = 8;
    else if (nh === IPPROTO.AH) len = (c.u8(off + 1) + 2) * 4;
    else len = (c.u8(off + 1) + 1) * 8;
    c.need('ipv6-ext', off, len);
    const e: Ipv6ExtHeader = { offset: off, code: nh, name, nextHeader: next, length: len };
    if (nh === IPPROTO.FRAGMENT) {
      const fo = c.u16(off + 2);
      e.fragOffset = fo >> 3;
      e.mf = (fo & 1) !== 0;
      e.id = c.u32(off + 4);
      if (e.mf) partial = true;
    }
    if (nh === IPPROTO.ROUTING) {
      e.routingType = c.u8(off + 2);
      e.segmentsLeft = c.u8(off + 3);
    }
    h.ext.push(e);
    nh = next;
    off += len;
    if (e.fragOffset !== undefined && e.fragOffset > 0) {
      h.upperProto = nh;
      c.p.fragment = true;
      return setPayload(c, off);
    }
  }
  h.upperProto = nh;
  parseL4(
    c,
    nh,
    off,
    c.buf.subarray(o + 8, o + 24),
    c.buf.subarray(o + 24, o + 40),
    partial,
    depth,
  );
}

function parseL4(
  c: Ctx,
  proto: number,
  o: number,
  src: Buffer,
  dst: Buffer,
  partial: boolean,
  depth: number,
): void {
  switch (proto) {
    case IPPROTO.UDP:
      return parseUdp(c, o, src, dst, partial);
    case IPPROTO.TCP:
      return parseTcp(c, o, src, dst, partial);
    case IPPROTO.ICMP:
      return parseIcmp(c, o, partial);
    case IPPROTO.ICMPV6:
      return parseIcmpv6(c, o, src, dst, partial);
    case IPPROTO.GRE:
      return parseGre(c, o, partial, depth);
    default:
      return setPayload(c, o);
  }
}

function parseUdp(c: Ctx, o: number, src: Buffer, dst: Buffer, partial: boolean): void {
  c.p.layers.push('udp');
  c.need('udp', o, 8);
  const h: UdpHeader = {
    offset: o,
    sport: c.u16(o),
    dport: c.u16(o + 2),
    length: c.u16(o + 4),
    checksum: c.u16(o + 6),
  };
  c.p.udp = h;
  if (h.length < 8) c.fail('udp', o, `length ${h.length} < 8`);
  const avail = c.end - o;
  if (h.length > avail && !partial) {
    c.p.truncated = { layer: 'udp', offset: o, need: h.length, have: avail };
    partial = true;
  }
  const segEnd = o + Math.min(h.length, avail);
  if (!partial && !(h.checksum === 0 && src.length === 4)) {
    h.checksumOk = l4Checksum(src, dst, IPPROTO.UDP, c.buf.subarray(o, o + h.length)) === 0;
  }
  c.p.payload = c.buf.subarray(o + 8, segEnd);
  c.p.payloadOffset = o + 8;
  if (segEnd > o + 8) c.p.layers.push('payload');
}

function parseTcp(c: Ctx, o: number, src: Buffer, dst: Buffer, partial: boolean): void {
  c.p.layers.push('tcp');
  c.need('tcp', o, 20);
  const dataOffset = c.u8(o + 12) >> 4;
  const flags = c.u8(o + 13);
  const h: TcpHeader = {
    offset: o,
    sport: c.u16(o),
    dport: c.u16(o + 2),
    seq: c.u32(o + 4),
    ack: c.u32(o + 8),
    dataOffset,
    flags,
    flagString: flagString(flags),
    window: c.u16(o + 14),
    checksum: c.u16(o + 16),
    urgent: c.u16(o + 18),
    options: Buffer.alloc(0),
  };
  c.p.tcp = h;
  if (dataOffset < 5) c.fail('tcp', o, `data offset ${dataOffset} < 5`);
  c.need('tcp', o, dataOffset * 4);
  h.options = c.buf.subarray(o + 20, o + dataOffset * 4);
  if (!partial) h.checksumOk = l4Checksum(src, dst, IPPROTO.TCP, c.buf.subarray(o, c.end)) === 0;
  setPayload(c, o + dataOffset * 4);
}

function parseIcmp(c: Ctx, o: number, partial: boolean): void {
  c.p.layers.push('icmp');
  c.need('icmp', o, 8);
  const type = c.u8(o);
  const h: IcmpHeader = {
    offset: o,
    type,
    code: c.u8(o + 1),
    checksum: c.u16(o + 2),
    rest: c.u32(o + 4),
  };
  if (type === 0 || type === 8 || type === 13 || type === 14) {
    h.id = c.u16(o + 4);
    h.seq = c.u16(o + 6);
  }
  if (!partial) h.checksumOk = internetChecksum(c.buf.subarray(o, c.end)) === 0;
  c.p.icmp = h;
  setPayload(c, o + 8);
}

function parseIcmpv6(c: Ctx, o: number, src: Buffer, dst: Buffer, partial: boolean): void {
  c.p.layers.push('icmpv6');
  c.need('icmpv6', o, 8);
  const type = c.u8(o);
  const h: Icmpv6Header = {
    offset: o,
    type,
    code: c.u8(o + 1),
    checksum: c.u16(o + 2),
    rest: c.u32(o + 4),
  };
  c.p.icmpv6 = h;
  if (!partial) h.checksumOk = l4Checksum(src, dst, IPPROTO.ICMPV6, c.buf.subarray(o, c.end)) === 0;
  if (type === ICMPV6_TYPE.ECHO_REQUEST || type === ICMPV6_TYPE.ECHO_REPLY) {
    h.id = c.u16(o + 4);
    h.seq = c.u16(o + 6);
    return setPayload(c, o + 8);
  }
  if (type === ICMPV6_TYPE.NEIGHBOR_SOLICIT || type === ICMPV6_TYPE.NEIGHBOR_ADVERT) {
    c.need('icmpv6', o, 24);
    h.target = bytesToIpv6(c.buf, o + 8);
    if (type === ICMPV6_TYPE.NEIGHBOR_ADVERT) {
      const f = c.u8(o + 4);
      h.router = (f & 0x80) !== 0;
      h.solicited = (f & 0x40) !== 0;
      h.override = (f & 0x20) !== 0;
    }
    h.ndOptions = [];
    let off = o + 24;
    while (off < c.end) {
      c.need('icmpv6', off, 2);
      const t = c.u8(off);
      const len = c.u8(off + 1);
      if (len === 0) c.fail('icmpv6', off, `ND option type ${t} with length 0`);
      c.need('icmpv6', off, len * 8);
      const data = c.buf.subarray(off + 2, off + len * 8);
      const opt: NdOptionParsed = { type: t, length: len, data };
      if ((t === ND_OPT.SOURCE_LL || t === ND_OPT.TARGET_LL) && len === 1)
        opt.mac = bytesToMac(data);
      h.ndOptions.push(opt);
      off += len * 8;
    }
    c.p.payload = Buffer.alloc(0);
    c.p.payloadOffset = c.end;
    return;
  }
  setPayload(c, o + 8);
}

function parseGre(c: Ctx, o: number, partial: boolean, depth: number): void {
  c.p.layers.push('gre');
  c.need('gre', o, 4);
  const flags = c.u16(o);
  const h: GreHeader = {
    offset: o,
    flags,
    checksumPresent: (flags & GRE_FLAG.CHECKSUM) !== 0,
    keyPresent: (flags & GRE_FLAG.KEY) !== 0,
    seqPresent: (flags & GRE_FLAG.SEQ) !== 0,
    version: flags & 7,
    protocol: c.u16(o + 2),
    headerLength: 4,
  };
  c.p.gre = h;
  if (flags & GRE_FLAG.ROUTING)
    c.fail('gre', o, 'GRE routing present (RFC 1701 source routing unsupported)');
  if (h.version !== 0) c.fail('gre', o, `GRE version ${h.version}`);
  let off = o + 4;
  if (h.checksumPresent) {
    c.need('gre', off, 4);
    h.checksum = c.u16(off);
    off += 4;
  }
  if (h.keyPresent) {
    c.need('gre', off, 4);
    h.key = c.u32(off);
    if (h.protocol === ETH_P.TEB) Object.assign(h, nvgreSplitKey(h.key));
    off += 4;
  }
  if (h.seqPresent) {
    c.need('gre', off, 4);
    h.seq = c.u32(off);
    off += 4;
  }
  h.headerLength = off - o;
  if (h.checksumPresent && !partial)
    h.checksumOk = internetChecksum(c.buf.subarray(o, c.end)) === 0;
  const start =
    h.protocol === ETH_P.TEB
      ? 'eth'
      : h.protocol === ETH_P.IPV4
        ? 'ipv4'
        : h.protocol === ETH_P.IPV6
          ? 'ipv6'
          : undefined;
  if (!start || depth <= 0) return setPayload(c, off);
  c.p.layers.push('inner');
  c.p.inner = parseAt(c.buf.subarray(off, c.end), start, depth - 1);
  c.p.innerOffset = off;
}

// ---------------------------------------------------------------------------------------------
// One-line decode

function hex(n: number, width = 4): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

const ICMP_NAMES: Record<number, string> = {
  0: 'echo reply',
  3: 'unreachable',
  8: 'echo request',
  11: 'time exceeded',
};
const ICMPV6_NAMES: Record<number, string> = {
  1: 'unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  128: 'echo request',
  129: 'echo reply',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
};

function describeParsed(p: ParsedPacket): string {
  const out: string[] = [];
  if (p.eth) {
    out.push(`${p.eth.src} > ${p.eth.dst}`);
    for (const v of p.vlans)
      out.push(
        `vlan ${v.vid}${v.pcp ? ` p${v.pcp}` : ''}${v.tpid === ETH_P.QINQ ? ' (s-tag)' : ''}`,
      );
  }
  if (p.arp) {
    const a = p.arp;
    if (a.op === 1) out.push(`ARP who-has ${a.tpa} tell ${a.spa} (${a.sha})`);
    else if (a.op === 2) out.push(`ARP reply ${a.spa} is-at ${a.sha} to ${a.tpa} (${a.tha})`);
    else out.push(`ARP op ${a.op} ${a.spa} (${a.sha}) > ${a.tpa} (${a.tha})`);
  }
  if (p.ipv4) {
    const h = p.ipv4;
    let s = `IPv4 ${h.src} > ${h.dst} ttl ${h.ttl}`;
    if (h.tos) s += ` tos ${hex(h.tos, 2)}`;
    if (h.df) s += ' DF';
    if (h.mf || h.fragOffset) s += ` frag id ${h.id} off ${h.fragOffset * 8}${h.mf ? '+' : ''}`;
    if (h.checksumOk === false) s += ` [bad ip cksum ${hex(h.checksum)}]`;
    if (
      ![IPPROTO.UDP, IPPROTO.TCP, IPPROTO.ICMP, IPPROTO.GRE].includes(h.proto as 17) ||
      p.fragment
    )
      s += ` proto ${h.proto}`;
    out.push(s);
  }
  if (p.ipv6) {
    const h = p.ipv6;
    let s = `IPv6 ${h.src} > ${h.dst} hlim ${h.hopLimit}`;
    if (h.tc) s += ` tc ${hex(h.tc, 2)}`;
    if (h.flowLabel) s += ` flow ${hex(h.flowLabel, 5)}`;
    if (h.ext.length) {
      s += ` ext ${h.ext
        .map((e) =>
          e.name === 'fragment'
            ? `fragment(off ${(e.fragOffset ?? 0) * 8}${e.mf ? '+' : ''} id ${e.id})`
            : e.name,
        )
        .join(',')}`;
    }
    if (
      ![IPPROTO.UDP, IPPROTO.TCP, IPPROTO.ICMPV6, IPPROTO.GRE].includes(h.upperProto as 17) ||
      p.fragment
    ) {
      s += ` next ${h.upperProto}`;
    }
    out.push(s);
  }
  if (p.udp) {
    const h = p.udp;
    out.push(
      `UDP ${h.sport} > ${h.dport} len ${Math.max(0, h.length - 8)}${h.checksumOk === false ? ` [bad udp cksum ${hex(h.checksum)}]` : ''}`,
    );
  }
  if (p.tcp) {
    const h = p.tcp;
    const len = p.payload?.length ?? 0;
    out.push(
      `TCP ${h.sport} > ${h.dport} [${h.flagString || '.'}] seq ${h.seq}${h.flags & TCP_FLAG.ACK ? ` ack ${h.ack}` : ''} win ${h.window} len ${len}` +
        (h.checksumOk === false ? ` [bad tcp cksum ${hex(h.checksum)}]` : ''),
    );
  }
  if (p.icmp) {
    const h = p.icmp;
    let s = `ICMP ${ICMP_NAMES[h.type] ?? `type ${h.type}`}${h.code ? ` code ${h.code}` : ''}`;
    if (h.id !== undefined) s += ` id ${h.id} seq ${h.seq}`;
    s += ` len ${p.payload?.length ?? 0}`;
    if (h.checksumOk === false) s += ` [bad icmp cksum ${hex(h.checksum)}]`;
    out.push(s);
  }
  if (p.icmpv6) {
    const h = p.icmpv6;
    let s = `ICMPv6 ${ICMPV6_NAMES[h.type] ?? `type ${h.type}`}${h.code ? ` code ${h.code}` : ''}`;
    if (h.id !== undefined) s += ` id ${h.id} seq ${h.seq} len ${p.payload?.length ?? 0}`;
    if (h.target !== undefined) {
      s += h.type === ICMPV6_TYPE.NEIGHBOR_SOLICIT ? ` who-has ${h.target}` : ` tgt ${h.target}`;
      for (const o of h.ndOptions ?? []) {
        if (o.mac) s += o.type === ND_OPT.SOURCE_LL ? ` sll ${o.mac}` : ` tll ${o.mac}`;
        else s += ` opt ${o.type}/${o.length}`;
      }
      if (h.type === ICMPV6_TYPE.NEIGHBOR_ADVERT) {
        s += ` [${h.router ? 'R' : ''}${h.solicited ? 'S' : ''}${h.override ? 'O' : ''}]`;
      }
    }
    if (h.checksumOk === false) s += ` [bad icmp6 cksum ${hex(h.checksum)}]`;
    out.push(s);
  }
  if (p.gre) {
    const h = p.gre;
    let s = h.protocol === ETH_P.TEB && h.keyPresent ? 'NVGRE' : 'GRE';
    if (h.key !== undefined) {
      s += ` key ${hex(h.key, 8)}`;
      if (h.vsid !== undefined) s += ` vsid ${h.vsid} flowid ${h.flowId}`;
    }
    s += ` proto ${hex(h.protocol)}`;
    if (h.seq !== undefined) s += ` seq ${h.seq}`;
    if (h.checksumOk === false) s += ` [bad gre cksum ${hex(h.checksum ?? 0)}]`;
    if (p.inner) s += `: ${describeParsed(p.inner)}`;
    out.push(s);
  }
  const l3 = p.layers.some((l) => l === 'ipv4' || l === 'ipv6' || l === 'arp');
  if (!l3 && p.eth && !p.truncated && !p.error) {
    const t = p.vlans.length ? (p.vlans[p.vlans.length - 1] as VlanTag).type : p.eth.type;
    out.push(`ethertype ${hex(t)} len ${p.payload?.length ?? 0}`);
  } else if (
    p.payload &&
    p.payload.length &&
    !p.udp &&
    !p.tcp &&
    !p.icmp &&
    !p.icmpv6 &&
    !p.gre &&
    !p.arp
  ) {
    out.push(`data len ${p.payload.length}`);
  }
  if (p.truncated)
    out.push(
      `[truncated in ${p.truncated.layer} at ${p.truncated.offset}: need ${p.truncated.need}, have ${p.truncated.have}]`,
    );
  if (p.error) out.push(`[error in ${p.error.layer} at ${p.error.offset}: ${p.error.message}]`);
  if (out.length === 0) out.push(`empty packet`);
  return out.join(' ');
}

/** One-line, tcpdump-like decode of a frame (or of a parse result). Never throws. */
export function describePacket(buf: Uint8Array | ParsedPacket, opts: ParseOptions = {}): string {
  const p = buf instanceof Uint8Array ? parsePacket(buf, opts) : buf;
  try {
    return describeParsed(p);
  } catch (e) {
    return `[undecodable: ${String(e)}]`;
  }
}
