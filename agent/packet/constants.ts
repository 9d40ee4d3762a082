// Protocol numbers used by the packet builder and parser.

export const ETH_P = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  IPV6: 0x86dd,
  /** Transparent Ethernet Bridging: the GRE protocol of NVGRE (RFC 7637). */
  TEB: 0x6558,
  /** Local experimental ethertype (IEEE 802), used when a raw payload follows Ethernet. */
  LOCAL_EXP: 0x88b5,
} as const;

export const IPPROTO = {
  HOPOPTS: 0,
  ICMP: 1,
  IPIP: 4,
  TCP: 6,
  UDP: 17,
  IPV6: 41,
  ROUTING: 43,
  FRAGMENT: 44,
  GRE: 47,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  /** RFC 3692 experimental, used when a raw payload follows IPv4. */
  EXP: 253,
} as const;

export const ICMP_TYPE = {
  ECHO_REPLY: 0,
  DEST_UNREACH: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
} as const;

export const ICMPV6_TYPE = {
  DEST_UNREACH: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  ROUTER_SOLICIT: 133,
  ROUTER_ADVERT: 134,
  NEIGHBOR_SOLICIT: 135,
  NEIGHBOR_ADVERT: 136,
} as const;

/** ND option types (RFC 4861 §4.6). */
export const ND_OPT = { SOURCE_LL: 1, TARGET_LL: 2, PREFIX_INFO: 3, REDIRECT: 4, MTU: 5 } as const;

export const ARP_OP = { REQUEST: 1, REPLY: 2 } as const;

export const GRE_FLAG = { CHECKSUM: 0x8000, ROUTING: 0x4000, KEY: 0x2000, SEQ: 0x1000 } as const;

export const TCP_FLAG = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** NVGRE key (RFC 7637): 24-bit VSID in the upper bits, 8-bit FlowID in the lowest byte. */
export function nvgreKey(vsid: number, flowId = 0): number {
  if (!Number.isInteger(vsid) || vsid < 0 || vsid > 0xffffff)
    throw new RangeError(`VSID ${vsid} out of 0..0xffffff`);
  if (!Number.isInteger(flowId) || flowId < 0 || flowId > 0xff)
    throw new RangeError(`FlowID ${flowId} out of 0..255`);
  return ((vsid << 8) | flowId) >>> 0;
}

export function nvgreSplitKey(key: number): { vsid: number; flowId: number } {
  return { vsid: (key >>> 8) & 0xffffff, flowId: key & 0xff };
}
