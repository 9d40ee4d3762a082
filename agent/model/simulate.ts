// The reference model of the NVGRE datapath: what bpf/tenet_port.bpf.c (tc ingress on a VM port)
// and bpf/tenet_xdp.bpf.c (XDP on a physical NIC) do to one frame, as a pure function. The tests
// compare it with the real programs (test/datapath/differential.test.ts), and `tenetctl simulate`
// can answer from it. Every step and its order follows the comments of the C headers it names;
// output frames are built with agent/packet's builder, so the model shares no code with the
// datapath but produces the same bytes.

import { DropReason, type DropReasonName } from '../abi/generated.js';
import type { Port, Vsubnet, LookupRecord } from '../abi/generated.js';
import { bytesToIpv4, bytesToIpv6, bytesToMac } from '../packet/addr.js';
import { packet } from '../packet/builder.js';
import { aclStage, type AclSimContext } from './acl.js';
import { csumReplace2 } from './checksum.js';
import { flowId } from './flow-hash.js';
import { DIR_INBOUND, DIR_OUTBOUND, meterDelta, type MeterDelta } from './meter.js';
import { caKeyId, pick, type DatapathTables } from './tables.js';

export type Hook =
  | { kind: 'port-ingress'; ifindex: number }
  | { kind: 'phys-xdp'; ifindex: number };

export type Verdict = 'pass' | 'drop' | 'redirect';

/** Return codes of the hooks (linux/pkt_cls.h, linux/bpf.h). */
export const TC_ACT = { OK: 0, SHOT: 2, REDIRECT: 7 } as const;
export const XDP_ACT = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

export interface PortCounterDelta {
  ifindex: number;
  direction: 'rx' | 'tx';
  packets: number;
  bytes: number;
}

export interface VsidCounterDelta {
  vsid: number;
  kind: 'encap' | 'decap';
  packets: number;
  bytes: number;
}

export interface CounterDeltas {
  ports: PortCounterDelta[];
  vsids: VsidCounterDelta[];
  drops: Array<{ reason: DropReasonName; packets: number; bytes: number }>;
}

export interface SimResult {
  verdict: Verdict;
  /** The program's return value. */
  retval: number;
  /** Target of a redirect (egress of this interface). */
  redirectIfindex?: number;
  /** The frame as the program leaves it, for pass and redirect. */
  output?: Buffer;
  dropReason?: DropReasonName;
  counters: CounterDeltas;
  /** Metering counter deltas (agent/model/meter.ts); only when the tables have meterClasses. */
  meters?: MeterDelta[];
}

// ---- constants of bpf/ ----------------------------------------------------------------------

const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_TEB = 0x6558;
const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_GRE = 47;
const IPPROTO_ICMPV6 = 58;
const AF_IPV4 = 4;
const AF_IPV6 = 6;
const RECORD_LOCAL = 1;
const RECORD_GATEWAY = 2;
const ROUTE_GATEWAY = 2;
const ROUTE_KEY_FIXED_BITS = 64;
const F_FRAGMENT = 0x01;
const F_LATER_FRAGMENT = 0x02;
const F_L4 = 0x04;
const ICMP_QUOTE_MAX = 128;
const NVGRE_FLAGS = 0x2000;

// ---- parse (bpf/lib/parse.h) ----------------------------------------------------------------

interface Pkt {
  l3Proto: number;
  l3Off: number;
  l3Len: number;
  l4Off: number;
  vlanDepth: number;
  l4Proto: number;
  flags: number;
  sport: number;
  dport: number;
}

const isVlan = (p: number): boolean => p === ETH_P_8021Q || p === ETH_P_8021AD;

function parse(f: Buffer): Pkt | DropReasonName {
  const len = f.length;
  const pkt: Pkt = {
    l3Proto: 0,
    l3Off: 0,
    l3Len: 0,
    l4Off: 0,
    vlanDepth: 0,
    l4Proto: 0,
    flags: 0,
    sport: 0,
    dport: 0,
  };
  if (len < 14) return 'eth_truncated';
  let proto = f.readUInt16BE(12);
  let off = 14;
  for (let i = 0; i < 2; i++) {
    if (!isVlan(proto)) break;
    if (off + 4 > len) return 'vlan_truncated';
    pkt.vlanDepth = i + 1;
    proto = f.readUInt16BE(off + 2);
    off += 4;
  }
  if (isVlan(proto)) return 'vlan_too_deep';
  pkt.l3Proto = proto;
  pkt.l3Off = off;
  const rest = len - off;
  if (proto === ETH_P_IP) {
    if (off + 20 > len) return 'ipv4_truncated';
    if ((f[off] as number) >> 4 !== 4) return 'ipv4_bad_version';
    const hdr = ((f[off] as number) & 0xf) * 4;
    if (hdr < 20) return 'ipv4_bad_ihl';
    if (off + hdr > len) return 'ipv4_truncated';
    let tot = f.readUInt16BE(off + 2);
    if (tot === 0 && rest > 0xffff) tot = rest;
    if (tot < hdr || tot > rest) return 'ipv4_bad_total_length';
    pkt.l3Len = tot;
    pkt.l4Proto = f[off + 9] as number;
    const frag = f.readUInt16BE(off + 6);
    if (frag & 0x3fff) pkt.flags |= F_FRAGMENT;
    if (frag & 0x1fff) pkt.flags |= F_LATER_FRAGMENT;
    off += hdr;
  } else if (proto === ETH_P_IPV6) {
    if (off + 40 > len) return 'ipv6_truncated';
    if ((f[off] as number) >> 4 !== 6) return 'ipv6_bad_version';
    const avail = rest - 40;
    let plen = f.readUInt16BE(off + 4);
    if (plen === 0 && avail > 0xffff) plen = avail;
    if (plen > avail) return 'ipv6_bad_payload_length';
    pkt.l3Len = plen + 40;
    pkt.l4Proto = f[off + 6] as number;
    off += 40;
  } else {
    return pkt;
  }
  if (pkt.flags & F_LATER_FRAGMENT) return pkt;
  const l3End = pkt.l3Off + pkt.l3Len;
  if (pkt.l4Proto === IPPROTO_TCP || pkt.l4Proto === IPPROTO_UDP) {
    const need = pkt.l4Proto === IPPROTO_TCP ? 20 : 8;
    if (off + need > len || off + need > l3End)
      return pkt.l4Proto === IPPROTO_TCP ? 'tcp_truncated' : 'udp_truncated';
    pkt.sport = f.readUInt16BE(off);
    pkt.dport = f.readUInt16BE(off + 2);
    pkt.l4Off = off;
    pkt.flags |= F_L4;
  }
  return pkt;
}

// ---- the IP view (bpf/lib/l3.h) -------------------------------------------------------------

interface L3 {
  family: 4 | 6;
  src: Buffer;
  dst: Buffer;
  off: number;
  len: number;
  hdrLen: number;
  ttl: number;
  tos: number;
  proto: number;
  df: boolean;
  laterFrag: boolean;
}

function loadL3(f: Buffer, pkt: Pkt): L3 {
  const o = pkt.l3Off;
  const laterFrag = (pkt.flags & F_LATER_FRAGMENT) !== 0;
  if (pkt.l3Proto === ETH_P_IP) {
    return {
      family: AF_IPV4,
      src: Buffer.from(f.subarray(o + 12, o + 16)),
      dst: Buffer.from(f.subarray(o + 16, o + 20)),
      off: o,
      len: pkt.l3Len,
      hdrLen: ((f[o] as number) & 0xf) * 4,
      ttl: f[o + 8] as number,
      tos: f[o + 1] as number,
      proto: f[o + 9] as number,
      df: (f.readUInt16BE(o + 6) & 0x4000) !== 0,
      laterFrag,
    };
  }
  return {
    family: AF_IPV6,
    src: Buffer.from(f.subarray(o + 8, o + 24)),
    dst: Buffer.from(f.subarray(o + 24, o + 40)),
    off: o,
    len: pkt.l3Len,
    hdrLen: 40,
    ttl: f[o + 7] as number,
    tos: (((f[o] as number) & 0x0f) << 4) | ((f[o + 1] as number) >> 4),
    proto: f[o + 6] as number,
    df: true,
    laterFrag,
  };
}

function firstL4Byte(f: Buffer, l3: L3): number {
  if (l3.laterFrag || l3.len <= l3.hdrLen) return -1;
  return f[l3.off + l3.hdrLen] as number;
}

const isLinkLocal = (a: Buffer): boolean => a[0] === 0xfe && ((a[1] as number) & 0xc0) === 0x80;
const isZero = (a: Uint8Array): boolean => a.every((b) => b === 0);
const macEq = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length >= 6 && b.length >= 6 && [0, 1, 2, 3, 4, 5].every((i) => a[i] === b[i]);
const paBytes = (pa: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(pa >>> 0);
  return b;
};

// ---- lookups (bpf/lib/gen.h) ----------------------------------------------------------------

class Lookups {
  private readonly records: RecordIndex;

  /** Port ACL state (agent/model/acl.ts); absent: no port has an ACL. */
  acl?: AclSimContext;
  /** What bpf/lib/meter.h counted for this frame. */
  readonly meters: MeterDelta[] = [];

  constructor(
    readonly t: DatapathTables,
    readonly gen: number,
  ) {
    this.records = recordIndexOf(t.records);
  }

  /** tenet_meter(): remote is 4 or 16 bytes. */
  meter(ifindex: number, dir: number, remote: Uint8Array, len: number): void {
    this.meters.push(meterDelta(this.t.meterClasses ?? [], this.gen, ifindex, dir, remote, len));
  }

  port(ifindex: number): Port | undefined {
    return pick(this.t.ports.get(ifindex), this.gen);
  }

  vsubnet(vsid: number): Vsubnet | undefined {
    return pick(this.t.vsubnets.get(vsid), this.gen);
  }

  record(vsid: number, family: number, addr: Uint8Array): LookupRecord | undefined {
    const a = new Uint8Array(16);
    a.set(addr.subarray(0, family === AF_IPV4 ? 4 : 16));
    return pick(this.records.get(caKeyId({ vsid, family, addr: a })), this.gen);
  }

  /** The LPM trie: the longest matching prefix whatever its generations, then its live bit. */
  route(rdid: number, family: number, addr: Uint8Array) {
    const data = routeKeyData(rdid, family, addr);
    const plen = ROUTE_KEY_FIXED_BITS + (family === AF_IPV4 ? 32 : 128);
    let best: DatapathTables['routes'][number] | undefined;
    for (const r of this.t.routes) {
      if (r.key.prefixlen > plen) continue;
      if (best && best.key.prefixlen >= r.key.prefixlen) continue;
      if (bitsMatch(routeKeyData(r.key.rdid, r.key.family, r.key.addr), data, r.key.prefixlen))
        best = r;
    }
    return pick(best?.entry, this.gen);
  }

  localPa(pa: number) {
    return pick(this.t.localPas.get(pa >>> 0), this.gen);
  }

  underlay(pa: number) {
    return this.t.underlay.get(pa >>> 0);
  }
}

/** The bytes of struct tenet_route_key after prefixlen: rdid (host order), family, pad, addr. */
function routeKeyData(rdid: number, family: number, addr: Uint8Array): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(rdid >>> 0, 0);
  b[4] = family;
  b.set(addr.subarray(0, Math.min(16, addr.length)), 8);
  return b;
}

function bitsMatch(a: Buffer, b: Buffer, bits: number): boolean {
  const full = Math.floor(bits / 8);
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = bits % 8;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return ((a[full] as number) & mask) === ((b[full] as number) & mask);
}

// ---- the simulation -------------------------------------------------------------------------

class Done {
  constructor(readonly r: Omit<SimResult, 'counters' | 'retval'>) {}
}

const drop = (reason: DropReasonName): Done => new Done({ verdict: 'drop', dropReason: reason });
const redirect = (ifindex: number, output: Buffer): Done =>
  new Done({ verdict: 'redirect', redirectIfindex: ifindex, output });

/**
 * What the datapath does to `frame` at `hook` with `tables` in generation `generation` (0 or 1).
 * Never throws for any frame.
 */
type RecordIndex = Map<string, DatapathTables['records'][number]['entry']>;

/**
 * The records by key, built once per records array (tables are not changed after they are made):
 * Simulate asks about the same million records again and again.
 */
const recordIndexes = new WeakMap<DatapathTables['records'], RecordIndex>();
let recordIndexBuildCount = 0;

function recordIndexOf(records: DatapathTables['records']): RecordIndex {
  let index = recordIndexes.get(records);
  if (index === undefined) {
    index = new Map();
    for (const r of records) index.set(caKeyId(r.key), r.entry);
    recordIndexes.set(records, index);
    recordIndexBuildCount++;
  }
  return index;
}

/** How many record indexes were built so far (tests: an index is built once per tables). */
export function recordIndexBuilds(): number {
  return recordIndexBuildCount;
}

export function simulate(
  tables: DatapathTables,
  generation: number,
  frame: Uint8Array,
  hook: Hook,
  acl?: AclSimContext,
): SimResult {
  const f = Buffer.from(frame);
  const counters: CounterDeltas = { ports: [], vsids: [], drops: [] };
  const lk = new Lookups(tables, generation & 1);
  lk.acl = acl;
  counters.ports.push({ ifindex: hook.ifindex, direction: 'rx', packets: 1, bytes: f.length });
  let done: Done;
  try {
    done =
      hook.kind === 'port-ingress'
        ? portIngress(f, hook.ifindex, lk, counters)
        : xdp(f, lk, counters);
  } catch (e) {
    if (!(e instanceof Done)) throw e;
    done = e;
  }
  const xdpHook = hook.kind === 'phys-xdp';
  const r = { ...done.r, ...(tables.meterClasses === undefined ? {} : { meters: lk.meters }) };
  if (r.verdict === 'drop') {
    counters.drops.push({ reason: r.dropReason as DropReasonName, packets: 1, bytes: f.length });
    return { ...r, retval: xdpHook ? XDP_ACT.DROP : TC_ACT.SHOT, counters };
  }
  if (r.verdict === 'redirect')
    return { ...r, retval: xdpHook ? XDP_ACT.REDIRECT : TC_ACT.REDIRECT, counters };
  return { ...r, retval: xdpHook ? XDP_ACT.PASS : TC_ACT.OK, counters };
}

/** The drop reason's number in the catalogue. */
export const dropReasonNumber = (name: DropReasonName): number => DropReason[name];

// ---- tc ingress on a VM port (bpf/tenet_port.bpf.c) -----------------------------------------

function portIngress(f: Buffer, ifindex: number, lk: Lookups, counters: CounterDeltas): Done {
  const port = lk.port(ifindex);
  if (!port) return drop('port_unknown');
  const pkt = parse(f);
  if (typeof pkt === 'string') return drop(pkt);
  if (pkt.vlanDepth) return drop('port_vlan_tagged');
  if (!macEq(f.subarray(6, 12), port.mac)) return drop('port_src_mac_spoof');
  const vsub = lk.vsubnet(port.vsid);
  if (!vsub) return drop('port_vsid_unknown');
  if (pkt.l3Proto === ETH_P_ARP) return arp(f, ifindex, lk, port);
  if (pkt.l3Proto !== ETH_P_IP && pkt.l3Proto !== ETH_P_IPV6) return drop('port_ethertype');
  const l3 = loadL3(f, pkt);
  if (l3.family === AF_IPV6 && l3.proto === IPPROTO_ICMPV6) {
    const t = firstL4Byte(f, l3);
    if (t >= 133 && t <= 137) return nd(f, ifindex, lk, port, l3, t);
  }
  return ipFromVm(f, ifindex, lk, port, vsub, pkt, l3, counters);
}

// bpf/lib/arp.h
function arp(f: Buffer, ifindex: number, lk: Lookups, port: Port): Done {
  const a = 14;
  if (a + 28 > f.length) return drop('arp_malformed');
  const op = f.readUInt16BE(a + 6);
  if (
    f.readUInt16BE(a) !== 1 ||
    f.readUInt16BE(a + 2) !== ETH_P_IP ||
    f[a + 4] !== 6 ||
    f[a + 5] !== 4 ||
    (op !== 1 && op !== 2)
  )
    return drop('arp_malformed');
  if (!macEq(f.subarray(a + 8, a + 14), port.mac)) return drop('arp_spoof');
  const spa = Buffer.from(f.subarray(a + 14, a + 18));
  const tpa = Buffer.from(f.subarray(a + 24, a + 28));
  if (isZero(spa)) return drop('arp_probe');
  const src = lk.record(port.vsid, AF_IPV4, spa);
  if (!src || !(src.flags & RECORD_LOCAL) || src.ifindex !== ifindex) return drop('arp_spoof');
  if (spa.equals(tpa)) return drop('arp_gratuitous');
  if (op === 2) return drop('arp_reply');
  const rec = lk.record(port.vsid, AF_IPV4, tpa);
  if (!rec) return drop('arp_unknown_target');
  const out = Buffer.from(f);
  out.set(port.mac.subarray(0, 6), 0);
  out.set(rec.mac.subarray(0, 6), 6);
  out.writeUInt16BE(2, a + 6);
  out.set(port.mac.subarray(0, 6), a + 18);
  out.set(rec.mac.subarray(0, 6), a + 8);
  out.set(spa, a + 24);
  out.set(tpa, a + 14);
  return redirect(ifindex, out);
}

// bpf/lib/nd.h
function nd(f: Buffer, ifindex: number, lk: Lookups, port: Port, l3: L3, type: number): Done {
  if (type !== 135 && type !== 136) return drop('nd_unsupported');
  const icmpOff = l3.off + l3.hdrLen;
  const icmpLen = l3.len - l3.hdrLen;
  if (l3.ttl !== 255 || icmpLen < 24 || f[icmpOff + 1] !== 0 || f[icmpOff + 8] === 0xff)
    return drop('nd_malformed');
  const target = Buffer.from(f.subarray(icmpOff + 8, icmpOff + 24));
  let off = 24;
  for (let i = 0; i < 4; i++) {
    if (off >= icmpLen) break;
    if (off + 2 > icmpLen) return drop('nd_malformed');
    const ot = f[icmpOff + off] as number;
    const ol = f[icmpOff + off + 1] as number;
    if (ol === 0 || off + ol * 8 > icmpLen) return drop('nd_malformed');
    if (ot === (type === 135 ? 1 : 2)) {
      if (!macEq(f.subarray(icmpOff + off + 2, icmpOff + off + 8), port.mac))
        return drop('nd_spoof');
    }
    off += ol * 8;
  }
  if (type === 135 && isZero(l3.src)) return drop('nd_dad');
  if (!isLinkLocal(l3.src)) {
    const src = lk.record(port.vsid, AF_IPV6, l3.src);
    if (!src || !(src.flags & RECORD_LOCAL) || src.ifindex !== ifindex) return drop('ip_src_spoof');
  }
  const rec = lk.record(port.vsid, AF_IPV6, target);
  if (type === 136) {
    if (!rec || !(rec.flags & RECORD_LOCAL) || rec.ifindex !== ifindex) return drop('nd_spoof');
    return drop('nd_advert');
  }
  if (!rec) return drop('nd_unknown_target');
  const out = packet()
    .eth({ dst: bytesToMac(port.mac), src: bytesToMac(rec.mac) })
    .ipv6({ src: bytesToIpv6(target), dst: bytesToIpv6(l3.src), hopLimit: 255 })
    .ndAdvert({
      target: bytesToIpv6(target),
      tll: bytesToMac(rec.mac),
      router: (rec.flags & RECORD_GATEWAY) !== 0,
      solicited: true,
      override: true,
    })
    .build();
  return redirect(ifindex, out);
}

// bpf/lib/icmp_err.h
function icmpError(
  f: Buffer,
  ifindex: number,
  port: Port,
  vsub: Vsubnet,
  l3: L3,
  type: number,
  code: number,
  rest: number,
): Done {
  const tooBig = type === 2 && l3.family === AF_IPV6;
  if (l3.family === AF_IPV4) {
    const d = l3.dst.readUInt32BE(0);
    if (l3.laterFrag || d >>> 28 === 0xe || d === 0xffffffff) return drop('icmp_err_suppressed');
    if (l3.proto === IPPROTO_ICMP && [3, 4, 5, 11, 12].includes(firstL4Byte(f, l3)))
      return drop('icmp_err_suppressed');
  } else {
    if (!tooBig && l3.dst[0] === 0xff) return drop('icmp_err_suppressed');
    if (l3.proto === IPPROTO_ICMPV6) {
      const t = firstL4Byte(f, l3);
      if (t >= 0 && t < 128) return drop('icmp_err_suppressed');
    }
  }
  if (l3.family === AF_IPV4 ? vsub.gw_ip4 === 0 : isZero(vsub.gw_ip6))
    return drop('icmp_err_no_source');
  const q = Math.min(l3.len, ICMP_QUOTE_MAX) & ~3;
  if (q < 20) return drop('reply_failed');
  const quote = f.subarray(l3.off, l3.off + q);
  const eth = { dst: bytesToMac(port.mac), src: bytesToMac(vsub.gw_mac) };
  const out =
    l3.family === AF_IPV4
      ? packet()
          .eth(eth)
          .ipv4({
            src: bytesToIpv4(paBytes(vsub.gw_ip4)),
            dst: bytesToIpv4(l3.src),
            tos: 0xc0,
            ttl: 64,
            id: 0,
          })
          .icmp({ type, code, rest })
          .payload(quote)
          .build()
      : packet()
          .eth(eth)
          .ipv6({ src: bytesToIpv6(vsub.gw_ip6), dst: bytesToIpv6(l3.src), hopLimit: 64 })
          .icmpv6({ type, code, rest })
          .payload(quote)
          .build();
  return redirect(ifindex, out);
}

// bpf/lib/forward.h, bpf/lib/route.h, bpf/lib/nvgre.h (encapsulation)
function ipFromVm(
  f: Buffer,
  ifindex: number,
  lk: Lookups,
  port: Port,
  vsub: Vsubnet,
  pkt: Pkt,
  l3: L3,
  counters: CounterDeltas,
): Done {
  if (l3.family === AF_IPV6 && isLinkLocal(l3.src)) return drop('ipv6_link_local_src');
  const src = lk.record(port.vsid, l3.family, l3.src);
  if (!src || !(src.flags & RECORD_LOCAL) || src.ifindex !== ifindex) return drop('ip_src_spoof');

  const routed = macEq(f.subarray(0, 6), vsub.gw_mac);
  let vsid = port.vsid;
  let rec: LookupRecord | undefined;
  let newSrcMac: Uint8Array | undefined;
  if (routed) {
    const rt = lk.route(port.rdid, l3.family, l3.dst);
    if (!rt) return drop('route_unknown');
    const dvsub = lk.vsubnet(rt.vsid);
    if (!dvsub || dvsub.rdid !== port.rdid) return drop('route_vsid_unknown');
    if (l3.ttl <= 1)
      return icmpError(f, ifindex, port, vsub, l3, l3.family === AF_IPV4 ? 11 : 3, 0, 0);
    vsid = rt.vsid;
    newSrcMac = dvsub.gw_mac;
    const target = rt.flags & ROUTE_GATEWAY ? Buffer.from(rt.nexthop) : l3.dst;
    rec = lk.record(vsid, l3.family, target);
    if (!rec) return drop('dst_unknown');
  } else {
    rec = lk.record(vsid, l3.family, l3.dst);
    if (!rec) return drop('dst_unknown');
    if (!macEq(f.subarray(0, 6), rec.mac)) return drop('dst_mac_mismatch');
  }
  if (rec.flags & RECORD_GATEWAY) return drop('dst_is_gateway');
  const aclOut = aclStage(lk.acl, 'outbound', f, l3.off, l3.family, ifindex, vsid);
  if (aclOut) return drop(aclOut);

  if (port.mtu && l3.len > port.mtu) {
    if (l3.family === AF_IPV4) {
      if (!l3.df) return drop('mtu_exceeded');
      return icmpError(f, ifindex, port, vsub, l3, 3, 4, port.mtu);
    }
    return icmpError(f, ifindex, port, vsub, l3, 2, 0, port.mtu);
  }

  const out = Buffer.from(f);
  if (routed && newSrcMac) {
    out.set(rec.mac.subarray(0, 6), 0);
    out.set(newSrcMac.subarray(0, 6), 6);
    if (l3.family === AF_IPV4) {
      const o = l3.off;
      const oldWord = out.readUInt16BE(o + 8);
      out[o + 8] = l3.ttl - 1;
      const newWord = out.readUInt16BE(o + 8);
      out.writeUInt16BE(csumReplace2(out.readUInt16BE(o + 10), oldWord, newWord), o + 10);
    } else {
      out[l3.off + 7] = l3.ttl - 1;
    }
  }
  if (rec.flags & RECORD_LOCAL) {
    const aclIn = aclStage(lk.acl, 'inbound', out, l3.off, l3.family, rec.ifindex, port.vsid);
    if (aclIn) return drop(aclIn);
    lk.meter(ifindex, DIR_OUTBOUND, l3.dst, f.length);
    lk.meter(rec.ifindex, DIR_INBOUND, l3.src, out.length);
    return redirect(rec.ifindex, out);
  }
  lk.meter(ifindex, DIR_OUTBOUND, l3.dst, f.length);

  const lpa = lk.localPa(port.pa);
  if (!lpa) return drop('encap_no_local_pa');
  const nh = lk.underlay(rec.pa);
  if (!nh) return drop('encap_no_underlay_nh');
  const ports = (pkt.flags & F_L4) !== 0 && (pkt.flags & F_FRAGMENT) === 0;
  const fid = flowId(l3.src, l3.dst, ports ? pkt.sport : 0, ports ? pkt.dport : 0, l3.proto);
  const ecn = l3.tos & 3;
  const encapped = packet()
    .eth({ dst: bytesToMac(nh.mac), src: bytesToMac(lpa.mac) })
    .ipv4({
      src: bytesToIpv4(paBytes(port.pa)),
      dst: bytesToIpv4(paBytes(rec.pa)),
      tos: (l3.tos & 0xfc) | (ecn === 3 ? 2 : ecn),
      id: 0,
      df: true,
      ttl: 64,
    })
    .gre({ protocol: ETH_P_TEB, key: (((vsid << 8) >>> 0) | fid) >>> 0 })
    .payload(out)
    .build();
  counters.vsids.push({ vsid, kind: 'encap', packets: 1, bytes: out.length });
  return redirect(lpa.ifindex, encapped);
}

// ---- XDP on a physical NIC (bpf/tenet_xdp.bpf.c, bpf/lib/nvgre.h decapsulation) ---------------

function xdp(f: Buffer, lk: Lookups, counters: CounterDeltas): Done {
  const pkt = parse(f);
  if (typeof pkt === 'string') return drop(pkt);
  const pass = new Done({ verdict: 'pass', output: Buffer.from(f) });
  if (pkt.l3Proto !== ETH_P_IP || pkt.vlanDepth || pkt.l4Proto !== IPPROTO_GRE) return pass;
  const o = pkt.l3Off;
  const saddr = f.readUInt32BE(o + 12);
  const daddr = f.readUInt32BE(o + 16);
  if (!lk.localPa(daddr)) return pass;
  if (pkt.flags & F_FRAGMENT) return drop('nvgre_outer_fragment');
  const greOff = o + ((f[o] as number) & 0xf) * 4;
  const ipEnd = o + pkt.l3Len;
  if (greOff + 4 > ipEnd) return drop('nvgre_truncated');
  if (f.readUInt16BE(greOff) !== NVGRE_FLAGS) return drop('nvgre_bad_flags');
  if (f.readUInt16BE(greOff + 2) !== ETH_P_TEB) return drop('nvgre_bad_protocol');
  if (greOff + 8 > ipEnd) return drop('nvgre_truncated');
  const vsid = f.readUInt32BE(greOff + 4) >>> 8;
  const vsub = lk.vsubnet(vsid);
  if (!vsub) return drop('nvgre_vsid_unknown');

  const innerOff = greOff + 8;
  let avail = ipEnd - innerOff;
  if (avail < 14) return drop('nvgre_inner_truncated');
  avail -= 14;
  const itype = f.readUInt16BE(innerOff + 12);
  if (isVlan(itype)) return drop('nvgre_inner_vlan');
  const io = innerOff + 14;
  let family: 4 | 6;
  let src: Buffer;
  let dst: Buffer;
  let tos: number;
  if (itype === ETH_P_IP) {
    if (avail < 20) return drop('nvgre_inner_truncated');
    const ihl = ((f[io] as number) & 0xf) * 4;
    if ((f[io] as number) >> 4 !== 4 || ihl < 20) return drop('nvgre_inner_malformed');
    const tot = f.readUInt16BE(io + 2);
    if (ihl > avail || tot > avail) return drop('nvgre_inner_truncated');
    if (tot < ihl) return drop('nvgre_inner_malformed');
    family = AF_IPV4;
    src = f.subarray(io + 12, io + 16);
    dst = f.subarray(io + 16, io + 20);
    tos = f[io + 1] as number;
  } else if (itype === ETH_P_IPV6) {
    if (avail < 40) return drop('nvgre_inner_truncated');
    if ((f[io] as number) >> 4 !== 6) return drop('nvgre_inner_malformed');
    if (40 + f.readUInt16BE(io + 4) > avail) return drop('nvgre_inner_truncated');
    family = AF_IPV6;
    src = f.subarray(io + 8, io + 24);
    dst = f.subarray(io + 24, io + 40);
    tos = (((f[io] as number) & 0x0f) << 4) | ((f[io + 1] as number) >> 4);
  } else {
    return drop('nvgre_inner_malformed');
  }

  const srec = lk.record(vsid, family, src) ?? routedSource(lk, vsub, family, src);
  if (!srec || srec.pa >>> 0 !== saddr) return drop('nvgre_foreign_pa');
  const drec = lk.record(vsid, family, dst);
  if (!drec || !(drec.flags & RECORD_LOCAL)) return drop('nvgre_dst_not_local');
  const srcVsid = lk.record(vsid, family, src)
    ? vsid
    : (lk.route(vsub.rdid, family, src)?.vsid ?? 0);
  const aclIn = aclStage(lk.acl, 'inbound', f, innerOff + 14, family, drec.ifindex, srcVsid);
  if (aclIn) return drop(aclIn);

  const outerEcn = (f[o + 1] as number) & 3;
  const innerEcn = tos & 3;
  let ecn = innerEcn;
  if (outerEcn === 3) {
    if (innerEcn === 0) return drop('nvgre_ecn_ce_not_ect');
    ecn = 3;
  } else if (outerEcn === 1 && innerEcn === 2) {
    ecn = 1;
  }
  const out = Buffer.from(f.subarray(innerOff, ipEnd));
  if (ecn !== innerEcn) {
    const i = 14;
    if (family === AF_IPV4) {
      const oldWord = out.readUInt16BE(i);
      out[i + 1] = ((out[i + 1] as number) & 0xfc) | ecn;
      const newWord = out.readUInt16BE(i);
      out.writeUInt16BE(csumReplace2(out.readUInt16BE(i + 10), oldWord, newWord), i + 10);
    } else {
      out[i + 1] = ((out[i + 1] as number) & 0xcf) | (ecn << 4);
    }
  }
  counters.vsids.push({ vsid, kind: 'decap', packets: 1, bytes: out.length });
  counters.ports.push({ ifindex: drec.ifindex, direction: 'tx', packets: 1, bytes: out.length });
  lk.meter(drec.ifindex, DIR_INBOUND, src, out.length);
  return redirect(drec.ifindex, out);
}

/**
 * The record that vouches for the inner source of a routed packet (bpf/lib/nvgre.h
 * tenet_nvgre_routed_src): found through the routing domain's routes, as the sender's router did.
 */
function routedSource(
  lk: Lookups,
  vsub: Vsubnet,
  family: number,
  src: Uint8Array,
): LookupRecord | undefined {
  const rt = lk.route(vsub.rdid, family, src);
  if (!rt) return undefined;
  const svsub = lk.vsubnet(rt.vsid);
  if (!svsub || svsub.rdid !== vsub.rdid) return undefined;
  return lk.record(rt.vsid, family, rt.flags & ROUTE_GATEWAY ? rt.nexthop : src);
}

/** One line for test failures: what the model decided. */
export function describeResult(r: SimResult): string {
  const where = r.redirectIfindex !== undefined ? ` -> ifindex ${r.redirectIfindex}` : '';
  const why = r.dropReason ? ` (${r.dropReason})` : '';
  return `${r.verdict}${where}${why}`;
}
