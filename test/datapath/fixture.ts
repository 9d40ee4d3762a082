// The policy the NVGRE datapath tests run against, as datapath tables (agent/model/tables.ts):
// one host ("A", PA 198.18.0.1) with VM ports, a remote host ("B", PA 198.18.0.2), tenant blue
// (routing domain 1: virtual subnets 5001 and 5002, with a distributed router between them) and
// tenant red (routing domain 2: virtual subnet 6001 using the SAME customer addresses as blue's
// 5001). Every entry is live in both generations with the same value unless a test changes it.
//
// The VM port the tc program runs on is the loopback device (ifindex 1: test-runs see it), and so
// is the physical NIC XDP runs on; every other ifindex is a number the programs redirect to.

import type {
  CaKey,
  LocalPa,
  LookupRecord,
  Port,
  Route,
  RouteKey,
  UnderlayNh,
  Vsubnet,
} from '../../agent/abi/generated.js';
import type { DatapathTables } from '../../agent/model/index.js';
import { ipToBytes, ipv4ToBytes, macToBytes, parseCidr } from '../../agent/packet/index.js';

export const PORT_IFINDEX = 1; // vm1's port: the loopback device
export const NIC_IFINDEX = 10; // the physical NIC that owns PA A
export const VM2_IFINDEX = 21;
export const VM3_IFINDEX = 22;
export const RED2_IFINDEX = 31;

export const PA_A = '198.18.0.1';
export const PA_B = '198.18.0.2';
export const PA_C = '198.18.0.3';
export const NIC_MAC = '02:00:00:00:10:01';
export const NH_B_MAC = '02:00:00:00:10:02';
export const NH_C_MAC = '02:00:00:00:10:03';

export const BLUE_RD = 1;
export const RED_RD = 2;
export const BLUE1 = 5001;
export const BLUE2 = 5002;
export const RED1 = 6001;

export const GW1_MAC = '02:00:00:00:00:01';
export const GW2_MAC = '02:00:00:00:00:02';
export const GW_RED_MAC = '02:00:00:00:00:03';
export const GW1_IP4 = '198.18.10.1';
export const GW1_IP6 = 'fd00:10::1';
export const GW2_IP4 = '198.18.20.1';
export const GW2_IP6 = 'fd00:20::1';

/** vm1: the VM on the port under test (blue, 5001). */
export const VM1 = { mac: '02:00:00:00:01:01', ip4: '198.18.10.11', ip6: 'fd00:10::11' };
/** vm2: blue 5001, local (port 21). */
export const VM2 = { mac: '02:00:00:00:01:02', ip4: '198.18.10.12', ip6: 'fd00:10::12' };
/** vm3: blue 5002, local (port 22). */
export const VM3 = { mac: '02:00:00:00:02:03', ip4: '198.18.20.13', ip6: 'fd00:20::13' };
/** vm4: blue 5001, remote on host B. */
export const VM4 = { mac: '02:00:00:00:01:04', ip4: '198.18.10.14', ip6: 'fd00:10::14' };
/** vm5: blue 5002, remote on host B (also the next hop of 198.18.30.0/24). */
export const VM5 = { mac: '02:00:00:00:02:05', ip4: '198.18.20.15', ip6: 'fd00:20::15' };
/** red1: red 6001, remote on host B, with vm1's CAs. */
export const RED1_VM = { mac: '02:00:00:00:06:01', ip4: '198.18.10.11', ip6: 'fd00:10::11' };
/** red2: red 6001, local (port 31), with vm2's CAs. */
export const RED2_VM = { mac: '02:00:00:00:06:02', ip4: '198.18.10.12', ip6: 'fd00:10::12' };

export const TENANT_MTU = 1458;

export const pa = (ip: string): number => ipv4ToBytes(ip).readUInt32BE(0);
export const mac = (m: string): Uint8Array => new Uint8Array(macToBytes(m));
export const addr16 = (ip: string): Uint8Array => {
  const a = new Uint8Array(16);
  a.set(ipToBytes(ip));
  return a;
};
export const caKey = (vsid: number, ip: string): CaKey => ({
  vsid,
  family: ip.includes(':') ? 6 : 4,
  addr: addr16(ip),
});
export const routeKey = (rdid: number, cidr: string): RouteKey => {
  const c = parseCidr(cidr);
  const a = new Uint8Array(16);
  a.set(c.bytes);
  return { prefixlen: 64 + c.prefixLen, rdid, family: c.family, addr: a };
};

/** An entry live in both generations with the same value. */
export const both = <V>(v: V): { live: number; v: V[] } => ({ live: 3, v: [v, v] });
/** An entry live only in generation g (the other slot holds zero). */
export const only = <V>(g: 0 | 1, v: V, zero: V): { live: number; v: V[] } => ({
  live: 1 << g,
  v: g === 0 ? [v, zero] : [zero, v],
});

export const ZERO_RECORD: LookupRecord = { mac: new Uint8Array(6), flags: 0, pa: 0, ifindex: 0 };
export const ZERO_PORT: Port = {
  vsid: 0,
  rdid: 0,
  mac: new Uint8Array(6),
  mtu: 0,
  pa: 0,
  flags: 0,
};
export const ZERO_ROUTE: Route = { vsid: 0, flags: 0, nexthop: new Uint8Array(16) };

export const localRecord = (m: string, ifindex: number): LookupRecord => ({
  mac: mac(m),
  flags: 1,
  pa: pa(PA_A),
  ifindex,
});
export const remoteRecord = (m: string, where: string): LookupRecord => ({
  mac: mac(m),
  flags: 0,
  pa: pa(where),
  ifindex: 0,
});
export const gatewayRecord = (m: string): LookupRecord => ({
  mac: mac(m),
  flags: 2,
  pa: 0,
  ifindex: 0,
});

export const vm1Port = (over: Partial<Port> = {}): Port => ({
  vsid: BLUE1,
  rdid: BLUE_RD,
  mac: mac(VM1.mac),
  mtu: TENANT_MTU,
  pa: pa(PA_A),
  flags: 0,
  ...over,
});

const vsubnet = (rdid: number, gw: string, ip4: string, ip6: string): Vsubnet => ({
  rdid,
  gw_mac: mac(gw),
  flags: 0,
  gw_ip4: ip4 ? pa(ip4) : 0,
  gw_ip6: ip6 ? addr16(ip6) : new Uint8Array(16),
});

/** Mutable tables: tests change them before installing. */
export interface Tables extends DatapathTables {
  ports: Map<number, { live: number; v: Port[] }>;
  vsubnets: Map<number, { live: number; v: Vsubnet[] }>;
  records: Array<{ key: CaKey; entry: { live: number; v: LookupRecord[] } }>;
  routes: Array<{ key: RouteKey; entry: { live: number; v: Route[] } }>;
  localPas: Map<number, { live: number; v: LocalPa[] }>;
  underlay: Map<number, UnderlayNh>;
}

/** Replaces (or adds) the record for (vsid, ip). */
export function setRecord(
  t: Tables,
  vsid: number,
  ip: string,
  entry: { live: number; v: LookupRecord[] } | undefined,
): void {
  const key = caKey(vsid, ip);
  const i = t.records.findIndex(
    (r) => r.key.vsid === vsid && Buffer.from(r.key.addr).equals(Buffer.from(key.addr)),
  );
  if (i >= 0) t.records.splice(i, 1);
  if (entry) t.records.push({ key, entry });
}

export function baseTables(): Tables {
  const t: Tables = {
    ports: new Map([[PORT_IFINDEX, both(vm1Port())]]),
    vsubnets: new Map([
      [BLUE1, both(vsubnet(BLUE_RD, GW1_MAC, GW1_IP4, GW1_IP6))],
      [BLUE2, both(vsubnet(BLUE_RD, GW2_MAC, GW2_IP4, GW2_IP6))],
      [RED1, both(vsubnet(RED_RD, GW_RED_MAC, GW1_IP4, GW1_IP6))],
    ]),
    records: [],
    routes: [],
    localPas: new Map([[pa(PA_A), both({ ifindex: NIC_IFINDEX, mac: mac(NIC_MAC), mtu: 1500 })]]),
    underlay: new Map([
      [pa(PA_B), { mac: mac(NH_B_MAC) }],
      [pa(PA_C), { mac: mac(NH_C_MAC) }],
    ]),
  };
  const rec = (vsid: number, ip: string, r: LookupRecord) => setRecord(t, vsid, ip, both(r));
  for (const ip of [VM1.ip4, VM1.ip6]) rec(BLUE1, ip, localRecord(VM1.mac, PORT_IFINDEX));
  for (const ip of [VM2.ip4, VM2.ip6]) rec(BLUE1, ip, localRecord(VM2.mac, VM2_IFINDEX));
  for (const ip of [VM3.ip4, VM3.ip6]) rec(BLUE2, ip, localRecord(VM3.mac, VM3_IFINDEX));
  for (const ip of [VM4.ip4, VM4.ip6]) rec(BLUE1, ip, remoteRecord(VM4.mac, PA_B));
  for (const ip of [VM5.ip4, VM5.ip6]) rec(BLUE2, ip, remoteRecord(VM5.mac, PA_B));
  for (const ip of [RED1_VM.ip4, RED1_VM.ip6]) rec(RED1, ip, remoteRecord(RED1_VM.mac, PA_B));
  for (const ip of [RED2_VM.ip4, RED2_VM.ip6])
    rec(RED1, ip, localRecord(RED2_VM.mac, RED2_IFINDEX));
  rec(BLUE1, GW1_IP4, gatewayRecord(GW1_MAC));
  rec(BLUE1, GW1_IP6, gatewayRecord(GW1_MAC));
  rec(BLUE2, GW2_IP4, gatewayRecord(GW2_MAC));
  rec(BLUE2, GW2_IP6, gatewayRecord(GW2_MAC));
  rec(RED1, GW1_IP4, gatewayRecord(GW_RED_MAC));

  const route = (rdid: number, cidr: string, r: Route) =>
    t.routes.push({ key: routeKey(rdid, cidr), entry: both(r) });
  const onlink = (vsid: number): Route => ({ vsid, flags: 1, nexthop: new Uint8Array(16) });
  route(BLUE_RD, '198.18.10.0/24', onlink(BLUE1));
  route(BLUE_RD, '198.18.20.0/24', onlink(BLUE2));
  route(BLUE_RD, 'fd00:10::/64', onlink(BLUE1));
  route(BLUE_RD, 'fd00:20::/64', onlink(BLUE2));
  route(BLUE_RD, '198.18.30.0/24', { vsid: BLUE2, flags: 2, nexthop: addr16(VM5.ip4) });
  route(BLUE_RD, 'fd00:30::/48', { vsid: BLUE2, flags: 2, nexthop: addr16(VM5.ip6) });
  route(RED_RD, '198.18.10.0/24', onlink(RED1));
  return t;
}
