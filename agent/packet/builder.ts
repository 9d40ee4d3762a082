// Fluent packet builder for tests, `simulate` and the demo.
//
//   packet().eth({ src, dst }).vlan({ vid: 10 }).ipv4({ src, dst }).udp({ sport, dport })
//     .payload('hello').build()
//
// Lengths, next-protocol fields and checksums (IPv4 header; UDP/TCP/ICMPv6 with pseudo-headers;
// ICMP; optional GRE) are filled in automatically when the layers are serialised from the inside
// out. Every computed field can be overridden with a deliberately wrong value for negative tests,
// and the result can be truncated or padded.
//
// NVGRE (RFC 7637): `.nvgre({ vsid, flowId })` (= GRE protocol 0x6558, key VSID<<8|FlowID); then
// continue with the inner frame: `.eth(...).ipv4(...)...`.

import { ipv4ToBytes, ipv6ToBytes, macToBytes } from './addr.js';
import { internetChecksum, l4Checksum } from './checksum.js';
import { ARP_OP, ETH_P, GRE_FLAG, IPPROTO, ND_OPT, TCP_FLAG, nvgreKey } from './constants.js';

export type Bytes = Buffer | Uint8Array | string | readonly number[];

export interface EthOpts {
  src: string;
  dst: string;
  /** EtherType; inferred from the next layer when absent. */
  type?: number;
}

export interface VlanOpts {
  vid: number;
  pcp?: number;
  dei?: boolean;
  /** TPID written by the layer before (default 0x8100; 0x88a8 for an S-tag). */
  tpid?: number;
  /** Inner EtherType; inferred when absent. */
  type?: number;
}

export interface ArpOpts {
  op: 'request' | 'reply' | number;
  sha: string;
  spa: string;
  tha?: string;
  tpa: string;
}

export interface Ipv4Opts {
  src: string;
  dst: string;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** The reserved ("evil") flag bit. */
  reservedFlag?: boolean;
  /** Fragment offset in 8-byte units, as in the header. */
  fragOffset?: number;
  /** Protocol; inferred from the next layer when absent. */
  proto?: number;
  /** Raw options, zero-padded to a multiple of 4 bytes. */
  options?: Bytes;
  // Overrides for negative tests:
  version?: number;
  ihl?: number;
  totalLength?: number;
  checksum?: number;
}

export type Ipv6Ext =
  | {
      type: 'hop-by-hop' | 'dest-opts';
      /** TLV options; padded with Pad1/PadN to 8n-2 bytes. */ options?: Bytes;
    }
  | {
      type: 'routing';
      routingType?: number;
      segmentsLeft?: number;
      /** type-specific data, padded to 8n-4 */ data?: Bytes;
    }
  | { type: 'fragment'; /** in 8-byte units */ offset?: number; mf?: boolean; id?: number }
  | {
      type: 'raw';
      nextHeaderCode: number;
      /** full header incl. next-header byte (overwritten) */ bytes: Bytes;
    };

export interface Ipv6Opts {
  src: string;
  dst: string;
  hopLimit?: number;
  tc?: number;
  flowLabel?: number;
  /** Next header after the fixed header; inferred from ext headers / next layer when absent. */
  nextHeader?: number;
  ext?: Ipv6Ext[];
  // Overrides:
  version?: number;
  payloadLength?: number;
}

export interface UdpOpts {
  sport: number;
  dport: number;
  length?: number;
  /** Override; 0 means "no checksum" over IPv4. */
  checksum?: number;
}

export interface TcpOpts {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** Letters F S R P A U E C (e.g. 'SA', 'PA') or the flags byte. Default: ACK when `ack` is given, else SYN. */
  flags?: string | number;
  window?: number;
  urgent?: number;
  /** Raw TCP options, zero-padded to a multiple of 4. */
  options?: Bytes;
  dataOffset?: number;
  checksum?: number;
}

export interface IcmpOpts {
  type: number;
  code?: number;
  id?: number;
  seq?: number;
  /** The 4 bytes after the checksum, when id/seq do not apply (e.g. next-hop MTU). */
  rest?: number;
  checksum?: number;
}

export interface NdOption {
  /** 1 = source link-layer address, 2 = target link-layer address, ... */
  type: number;
  /** Link-layer address (for types 1 and 2). */
  mac?: string;
  /** Raw option body (after type and length), padded to a multiple of 8 with the 2-byte header. */
  data?: Bytes;
  /** Override of the length field (units of 8 bytes). */
  length?: number;
}

export interface Icmpv6Opts {
  type: number;
  code?: number;
  /** Echo request / reply. */
  id?: number;
  seq?: number;
  /** NS/NA/redirect target address. */
  target?: string;
  /** NA flags. */
  router?: boolean;
  solicited?: boolean;
  override?: boolean;
  /** ND options following the target. */
  options?: NdOption[];
  /** The 4 bytes after the checksum when the above do not apply (e.g. MTU of packet-too-big). */
  rest?: number;
  checksum?: number;
}

export interface GreOpts {
  /** Inferred from the next layer (eth -> 0x6558, ipv4 -> 0x0800, ipv6 -> 0x86dd). */
  protocol?: number;
  key?: number;
  /** NVGRE VSID (24 bit); sets key = vsid << 8 | flowId. */
  vsid?: number;
  flowId?: number;
  /** Add the checksum field (computed unless `checksumValue` overrides it). */
  checksum?: boolean;
  checksumValue?: number;
  seq?: number;
  version?: number;
  /** Raw override of the flags+version word. */
  flagsWord?: number;
}

type Layer =
  | { kind: 'eth'; o: EthOpts }
  | { kind: 'vlan'; o: VlanOpts }
  | { kind: 'arp'; o: ArpOpts }
  | { kind: 'ipv4'; o: Ipv4Opts }
  | { kind: 'ipv6'; o: Ipv6Opts }
  | { kind: 'udp'; o: UdpOpts }
  | { kind: 'tcp'; o: TcpOpts }
  | { kind: 'icmp'; o: IcmpOpts }
  | { kind: 'icmpv6'; o: Icmpv6Opts }
  | { kind: 'gre'; o: GreOpts }
  | { kind: 'payload'; data: Buffer };

export type LayerKind = Layer['kind'];

export function toBytes(b: Bytes): Buffer {
  if (typeof b === 'string') return Buffer.from(b, 'utf8');
  if (Buffer.isBuffer(b)) return b;
  return Buffer.from(b as Uint8Array);
}

function u8(name: string, v: number, max = 0xff): number {
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw new RangeError(`${name} ${v} out of 0..${max}`);
  return v;
}

function padTo(b: Buffer, multiple: number): Buffer {
  const rem = b.length % multiple;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(multiple - rem)]);
}

/** Parse TCP flag letters ("SA", "PA", "FA", "R") into the flags byte. */
export function tcpFlags(f: string | number): number {
  if (typeof f === 'number') return u8('TCP flags', f);
  const map: Record<string, number> = {
    F: TCP_FLAG.FIN,
    S: TCP_FLAG.SYN,
    R: TCP_FLAG.RST,
    P: TCP_FLAG.PSH,
    A: TCP_FLAG.ACK,
    U: TCP_FLAG.URG,
    E: TCP_FLAG.ECE,
    C: TCP_FLAG.CWR,
  };
  let v = 0;
  for (const ch of f.toUpperCase()) {
    const bit = map[ch];
    if (bit === undefined)
      throw new TypeError(`unknown TCP flag ${JSON.stringify(ch)} in ${JSON.stringify(f)}`);
    v |= bit;
  }
  return v;
}

function etherTypeOf(next: Layer | undefined): number {
  switch (next?.kind) {
    case 'vlan':
      return next.o.tpid ?? ETH_P.VLAN;
    case 'ipv4':
      return ETH_P.IPV4;
    case 'ipv6':
      return ETH_P.IPV6;
    case 'arp':
      return ETH_P.ARP;
    default:
      return ETH_P.LOCAL_EXP;
  }
}

function ipProtoOf(next: Layer | undefined, v6: boolean): number {
  switch (next?.kind) {
    case 'udp':
      return IPPROTO.UDP;
    case 'tcp':
      return IPPROTO.TCP;
    case 'icmp':
      return IPPROTO.ICMP;
    case 'icmpv6':
      return IPPROTO.ICMPV6;
    case 'gre':
      return IPPROTO.GRE;
    case 'ipv4':
      return IPPROTO.IPIP;
    case 'ipv6':
      return IPPROTO.IPV6;
    case undefined:
      return v6 ? IPPROTO.NONE : IPPROTO.EXP;
    default:
      return v6 ? IPPROTO.NONE : IPPROTO.EXP;
  }
}

const EXT_CODE: Record<Exclude<Ipv6Ext['type'], 'raw'>, number> = {
  'hop-by-hop': IPPROTO.HOPOPTS,
  routing: IPPROTO.ROUTING,
  fragment: IPPROTO.FRAGMENT,
  'dest-opts': IPPROTO.DSTOPTS,
};

function extCode(e: Ipv6Ext): number {
  return e.type === 'raw' ? e.nextHeaderCode : EXT_CODE[e.type];
}

function encodeExt(e: Ipv6Ext, nextHeader: number): Buffer {
  switch (e.type) {
    case 'hop-by-hop':
    case 'dest-opts': {
      const opts = e.options ? toBytes(e.options) : Buffer.alloc(0);
      let total = 2 + opts.length;
      const padLen = (8 - (total % 8)) % 8;
      total += padLen;
      const out = Buffer.alloc(total);
      out[0] = nextHeader;
      out[1] = total / 8 - 1;
      opts.copy(out, 2);
      if (padLen === 1)
        out[2 + opts.length] = 0; // Pad1
      else if (padLen >= 2) {
        out[2 + opts.length] = 1; // PadN
        out[3 + opts.length] = padLen - 2;
      }
      return out;
    }
    case 'routing': {
      // 4 fixed bytes + type-specific data; the whole header is a multiple of 8 bytes.
      const data = e.data ? toBytes(e.data) : Buffer.alloc(4);
      const total = Math.ceil((4 + data.length) / 8) * 8;
      const out = Buffer.alloc(total);
      out[0] = nextHeader;
      out[1] = total / 8 - 1;
      out[2] = e.routingType ?? 0;
      out[3] = e.segmentsLeft ?? 0;
      data.copy(out, 4);
      return out;
    }
    case 'fragment': {
      const out = Buffer.alloc(8);
      out[0] = nextHeader;
      out.writeUInt16BE(
        ((u8('fragment offset', e.offset ?? 0, 0x1fff) << 3) | (e.mf ? 1 : 0)) & 0xffff,
        2,
      );
      out.writeUInt32BE((e.id ?? 0) >>> 0, 4);
      return out;
    }
    case 'raw': {
      const out = Buffer.from(toBytes(e.bytes));
      if (out.length > 0) out[0] = nextHeader;
      return out;
    }
  }
}

export class PacketBuilder {
  private readonly layers: Layer[] = [];
  private truncateTo: number | undefined;
  private padTo: number | undefined;

  eth(o: EthOpts): this {
    this.layers.push({ kind: 'eth', o });
    return this;
  }

  vlan(o: VlanOpts): this {
    this.layers.push({ kind: 'vlan', o });
    return this;
  }

  arp(o: ArpOpts): this {
    this.layers.push({ kind: 'arp', o });
    return this;
  }

  ipv4(o: Ipv4Opts): this {
    this.layers.push({ kind: 'ipv4', o });
    return this;
  }

  ipv6(o: Ipv6Opts): this {
    this.layers.push({ kind: 'ipv6', o });
    return this;
  }

  udp(o: UdpOpts): this {
    this.layers.push({ kind: 'udp', o });
    return this;
  }

  tcp(o: TcpOpts): this {
    this.layers.push({ kind: 'tcp', o });
    return this;
  }

  icmp(o: IcmpOpts): this {
    this.layers.push({ kind: 'icmp', o });
    return this;
  }

  icmpv6(o: Icmpv6Opts): this {
    this.layers.push({ kind: 'icmpv6', o });
    return this;
  }

  /** Neighbour solicitation for `target`, with a source link-layer address option when `sll` is given. */
  ndSolicit(o: { target: string; sll?: string; checksum?: number }): this {
    const opts: Icmpv6Opts = {
      type: 135,
      target: o.target,
      options: o.sll ? [{ type: ND_OPT.SOURCE_LL, mac: o.sll }] : [],
    };
    if (o.checksum !== undefined) opts.checksum = o.checksum;
    return this.icmpv6(opts);
  }

  /** Neighbour advertisement for `target`, with a target link-layer address option when `tll` is given. */
  ndAdvert(o: {
    target: string;
    tll?: string;
    router?: boolean;
    solicited?: boolean;
    override?: boolean;
    checksum?: number;
  }): this {
    const opts: Icmpv6Opts = {
      type: 136,
      target: o.target,
      router: o.router ?? false,
      solicited: o.solicited ?? true,
      override: o.override ?? true,
      options: o.tll ? [{ type: ND_OPT.TARGET_LL, mac: o.tll }] : [],
    };
    if (o.checksum !== undefined) opts.checksum = o.checksum;
    return this.icmpv6(opts);
  }

  gre(o: GreOpts = {}): this {
    this.layers.push({ kind: 'gre', o });
    return this;
  }

  /** GRE with protocol 0x6558 and key VSID<<8|FlowID (RFC 7637). Continue with `.eth(...)`. */
  nvgre(o: { vsid: number; flowId?: number; checksum?: boolean; seq?: number }): this {
    const g: GreOpts = { protocol: ETH_P.TEB, vsid: o.vsid, flowId: o.flowId ?? 0 };
    if (o.checksum) g.checksum = true;
    if (o.seq !== undefined) g.seq = o.seq;
    return this.gre(g);
  }

  /** Append raw bytes (string = UTF-8; number = that many bytes of a 0x00.. counting pattern). */
  payload(data: Bytes | number): this {
    const buf =
      typeof data === 'number'
        ? Buffer.from(Array.from({ length: data }, (_, i) => i & 0xff))
        : Buffer.from(toBytes(data));
    this.layers.push({ kind: 'payload', data: buf });
    return this;
  }

  /** Alias of payload, for raw header bytes in negative tests. */
  raw(data: Bytes): this {
    return this.payload(data);
  }

  /** Cut the built packet to its first n bytes (negative tests). */
  truncate(n: number): this {
    this.truncateTo = n;
    return this;
  }

  /** Zero-pad the frame to at least n bytes (60 = Ethernet minimum without FCS). */
  pad(n = 60): this {
    this.padTo = n;
    return this;
  }

  /** The layer kinds added so far. */
  kinds(): LayerKind[] {
    return this.layers.map((l) => l.kind);
  }

  build(): Buffer {
    let inner: Buffer = Buffer.alloc(0);
    for (let i = this.layers.length - 1; i >= 0; i--) {
      inner = this.encode(i, inner);
    }
    if (this.padTo !== undefined && inner.length < this.padTo) {
      inner = Buffer.concat([inner, Buffer.alloc(this.padTo - inner.length)]);
    }
    if (this.truncateTo !== undefined) inner = inner.subarray(0, this.truncateTo);
    return Buffer.from(inner);
  }

  /** The nearest IP layer before index i (for pseudo-headers). */
  private enclosingIp(i: number): { src: Buffer; dst: Buffer; v6: boolean } | undefined {
    for (let j = i - 1; j >= 0; j--) {
      const l = this.layers[j] as Layer;
      if (l.kind === 'ipv4')
        return { src: ipv4ToBytes(l.o.src), dst: ipv4ToBytes(l.o.dst), v6: false };
      if (l.kind === 'ipv6')
        return { src: ipv6ToBytes(l.o.src), dst: ipv6ToBytes(l.o.dst), v6: true };
    }
    return undefined;
  }

  private encode(i: number, inner: Buffer): Buffer {
    const layer = this.layers[i] as Layer;
    const next = this.layers[i + 1];
    switch (layer.kind) {
      case 'payload':
        return Buffer.concat([layer.data, inner]);
      case 'eth': {
        const h = Buffer.alloc(14);
        macToBytes(layer.o.dst).copy(h, 0);
        macToBytes(layer.o.src).copy(h, 6);
        h.writeUInt16BE(layer.o.type ?? etherTypeOf(next), 12);
        return Buffer.concat([h, inner]);
      }
      case 'vlan': {
        const o = layer.o;
        const h = Buffer.alloc(4);
        const tci =
          (u8('PCP', o.pcp ?? 0, 7) << 13) | ((o.dei ? 1 : 0) << 12) | u8('VID', o.vid, 0xfff);
        h.writeUInt16BE(tci, 0);
        h.writeUInt16BE(o.type ?? etherTypeOf(next), 2);
        return Buffer.concat([h, inner]);
      }
      case 'arp': {
        const o = layer.o;
        const h = Buffer.alloc(28);
        h.writeUInt16BE(1, 0);
        h.writeUInt16BE(ETH_P.IPV4, 2);
        h[4] = 6;
        h[5] = 4;
        h.writeUInt16BE(
          o.op === 'request' ? ARP_OP.REQUEST : o.op === 'reply' ? ARP_OP.REPLY : o.op,
          6,
        );
        macToBytes(o.sha).copy(h, 8);
        ipv4ToBytes(o.spa).copy(h, 14);
        macToBytes(o.tha ?? '00:00:00:00:00:00').copy(h, 18);
        ipv4ToBytes(o.tpa).copy(h, 24);
        return Buffer.concat([h, inner]);
      }
      case 'ipv4': {
        const o = layer.o;
        const opts = o.options ? padTo(toBytes(o.options), 4) : Buffer.alloc(0);
        const hlen = 20 + opts.length;
        const h = Buffer.alloc(hlen);
        h[0] = ((o.version ?? 4) << 4) | ((o.ihl ?? hlen / 4) & 0xf);
        h[1] = u8('TOS', o.tos ?? 0);
        h.writeUInt16BE((o.totalLength ?? hlen + inner.length) & 0xffff, 2);
        h.writeUInt16BE(u8('IP id', o.id ?? 0, 0xffff), 4);
        const flags = (o.reservedFlag ? 0x8000 : 0) | (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0);
        h.writeUInt16BE(flags | u8('fragment offset', o.fragOffset ?? 0, 0x1fff), 6);
        h[8] = u8('TTL', o.ttl ?? 64);
        h[9] = u8('protocol', o.proto ?? ipProtoOf(next, false));
        ipv4ToBytes(o.src).copy(h, 12);
        ipv4ToBytes(o.dst).copy(h, 16);
        opts.copy(h, 20);
        h.writeUInt16BE(o.checksum ?? internetChecksum(h), 10);
        return Buffer.concat([h, inner]);
      }
      case 'ipv6': {
        const o = layer.o;
        const ext = o.ext ?? [];
        const upper = ipProtoOf(next, true);
        const exts: Buffer[] = [];
        for (let k = ext.length - 1; k >= 0; k--) {
          const nh = k === ext.length - 1 ? upper : extCode(ext[k + 1] as Ipv6Ext);
          exts.unshift(encodeExt(ext[k] as Ipv6Ext, nh));
        }
        const extBuf = Buffer.concat(exts);
        const h = Buffer.alloc(40);
        const tc = u8('traffic class', o.tc ?? 0);
        const fl = u8('flow label', o.flowLabel ?? 0, 0xfffff);
        h.writeUInt32BE((((o.version ?? 6) & 0xf) * 0x10000000 + tc * 0x100000 + fl) >>> 0, 0);
        h.writeUInt16BE((o.payloadLength ?? extBuf.length + inner.length) & 0xffff, 4);
        h[6] = o.nextHeader ?? (ext.length ? extCode(ext[0] as Ipv6Ext) : upper);
        h[7] = u8('hop limit', o.hopLimit ?? 64);
        ipv6ToBytes(o.src).copy(h, 8);
        ipv6ToBytes(o.dst).copy(h, 24);
        return Buffer.concat([h, extBuf, inner]);
      }
      case 'udp': {
        const o = layer.o;
        const h = Buffer.alloc(8);
        h.writeUInt16BE(u8('UDP sport', o.sport, 0xffff), 0);
        h.writeUInt16BE(u8('UDP dport', o.dport, 0xffff), 2);
        h.writeUInt16BE((o.length ?? 8 + inner.length) & 0xffff, 4);
        const seg = Buffer.concat([h, inner]);
        let ck = o.checksum;
        if (ck === undefined) {
          const ip = this.enclosingIp(i);
          if (ip) {
            ck = l4Checksum(ip.src, ip.dst, IPPROTO.UDP, seg);
            if (ck === 0) ck = 0xffff;
          } else ck = 0;
        }
        seg.writeUInt16BE(ck, 6);
        return seg;
      }
      case 'tcp': {
        const o = layer.o;
        const opts = o.options ? padTo(toBytes(o.options), 4) : Buffer.alloc(0);
        const h = Buffer.alloc(20 + opts.length);
        h.writeUInt16BE(u8('TCP sport', o.sport, 0xffff), 0);
        h.writeUInt16BE(u8('TCP dport', o.dport, 0xffff), 2);
        h.writeUInt32BE((o.seq ?? 0) >>> 0, 4);
        h.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
        const flags =
          o.flags !== undefined
            ? tcpFlags(o.flags)
            : o.ack !== undefined
              ? TCP_FLAG.ACK
              : TCP_FLAG.SYN;
        h[12] = ((o.dataOffset ?? h.length / 4) & 0xf) << 4;
        h[13] = flags;
        h.writeUInt16BE(u8('TCP window', o.window ?? 65535, 0xffff), 14);
        h.writeUInt16BE(u8('TCP urgent', o.urgent ?? 0, 0xffff), 18);
        opts.copy(h, 20);
        const seg = Buffer.concat([h, inner]);
        let ck = o.checksum;
        if (ck === undefined) {
          const ip = this.enclosingIp(i);
          ck = ip ? l4Checksum(ip.src, ip.dst, IPPROTO.TCP, seg) : 0;
        }
        seg.writeUInt16BE(ck, 16);
        return seg;
      }
      case 'icmp': {
        const o = layer.o;
        const h = Buffer.alloc(8);
        h[0] = u8('ICMP type', o.type);
        h[1] = u8('ICMP code', o.code ?? 0);
        if (o.id !== undefined || o.seq !== undefined) {
          h.writeUInt16BE(u8('ICMP id', o.id ?? 0, 0xffff), 4);
          h.writeUInt16BE(u8('ICMP seq', o.seq ?? 0, 0xffff), 6);
        } else h.writeUInt32BE((o.rest ?? 0) >>> 0, 4);
        const seg = Buffer.concat([h, inner]);
        seg.writeUInt16BE(o.checksum ?? internetChecksum(seg), 2);
        return seg;
      }
      case 'icmpv6': {
        const o = layer.o;
        const parts: Buffer[] = [];
        const h = Buffer.alloc(8);
        h[0] = u8('ICMPv6 type', o.type);
        h[1] = u8('ICMPv6 code', o.code ?? 0);
        if (o.id !== undefined || o.seq !== undefined) {
          h.writeUInt16BE(u8('ICMPv6 id', o.id ?? 0, 0xffff), 4);
          h.writeUInt16BE(u8('ICMPv6 seq', o.seq ?? 0, 0xffff), 6);
        } else if (o.router || o.solicited || o.override) {
          h[4] = (o.router ? 0x80 : 0) | (o.solicited ? 0x40 : 0) | (o.override ? 0x20 : 0);
        } else h.writeUInt32BE((o.rest ?? 0) >>> 0, 4);
        parts.push(h);
        if (o.target !== undefined) parts.push(ipv6ToBytes(o.target));
        for (const opt of o.options ?? []) {
          const body =
            opt.mac !== undefined
              ? macToBytes(opt.mac)
              : opt.data !== undefined
                ? toBytes(opt.data)
                : Buffer.alloc(0);
          const full = padTo(Buffer.concat([Buffer.from([opt.type, 0]), body]), 8);
          full[1] = opt.length ?? full.length / 8;
          parts.push(full);
        }
        parts.push(inner);
        const seg = Buffer.concat(parts);
        let ck = o.checksum;
        if (ck === undefined) {
          const ip = this.enclosingIp(i);
          ck = ip ? l4Checksum(ip.src, ip.dst, IPPROTO.ICMPV6, seg) : 0;
        }
        seg.writeUInt16BE(ck, 2);
        return seg;
      }
      case 'gre': {
        const o = layer.o;
        let key = o.key;
        if (o.vsid !== undefined) key = nvgreKey(o.vsid, o.flowId ?? 0);
        const c = o.checksum === true || o.checksumValue !== undefined;
        const word =
          o.flagsWord ??
          (c ? GRE_FLAG.CHECKSUM : 0) |
            (key !== undefined ? GRE_FLAG.KEY : 0) |
            (o.seq !== undefined ? GRE_FLAG.SEQ : 0) |
            ((o.version ?? 0) & 7);
        let proto = o.protocol;
        if (proto === undefined) {
          proto =
            next?.kind === 'eth'
              ? ETH_P.TEB
              : next?.kind === 'ipv4'
                ? ETH_P.IPV4
                : next?.kind === 'ipv6'
                  ? ETH_P.IPV6
                  : ETH_P.TEB;
        }
        const h = Buffer.alloc(
          4 + (c ? 4 : 0) + (key !== undefined ? 4 : 0) + (o.seq !== undefined ? 4 : 0),
        );
        h.writeUInt16BE(word & 0xffff, 0);
        h.writeUInt16BE(proto & 0xffff, 2);
        let off = 4;
        if (c) off += 4;
        if (key !== undefined) {
          h.writeUInt32BE(key >>> 0, off);
          off += 4;
        }
        if (o.seq !== undefined) h.writeUInt32BE(o.seq >>> 0, off);
        const seg = Buffer.concat([h, inner]);
        if (c) seg.writeUInt16BE(o.checksumValue ?? internetChecksum(seg), 4);
        return seg;
      }
    }
  }
}

/** Start building a packet. */
export function packet(): PacketBuilder {
  return new PacketBuilder();
}
