// Text <-> bytes helpers for MAC, IPv4 and IPv6 addresses, plus CIDR parsing and matching.
//
// Small on purpose: the packet builder, the parser and the lab need exactly these conversions and
// nothing else. Every parse function throws a TypeError naming the bad input; the formatters
// never throw for correctly sized input.

export type IpFamily = 4 | 6;

const MAC_RE =
  /^([0-9a-fA-F]{1,2})([:-])([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})$/;

/** "02:00:00:aa:bb:cc" (or with '-') -> 6 bytes. */
export function macToBytes(mac: string): Buffer {
  const m = MAC_RE.exec(mac.trim());
  if (!m) throw new TypeError(`invalid MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from([m[1], m[3], m[4], m[5], m[6], m[7]].map((h) => parseInt(h as string, 16)));
}

/** 6 bytes -> "02:00:00:aa:bb:cc" (lower case). */
export function bytesToMac(b: Uint8Array, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push((b[offset + i] ?? 0).toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function isMac(s: string): boolean {
  return MAC_RE.test(s.trim());
}

/** Dotted quad -> 4 bytes. Strict: four decimal parts 0..255, no leading zeros beyond "0". */
export function ipv4ToBytes(ip: string): Buffer {
  const parts = ip.trim().split('.');
  if (parts.length !== 4) throw new TypeError(`invalid IPv4 address: ${JSON.stringify(ip)}`);
  const out = Buffer.alloc(4);
  parts.forEach((p, i) => {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) {
      throw new TypeError(`invalid IPv4 address: ${JSON.stringify(ip)}`);
    }
    out[i] = Number(p);
  });
  return out;
}

export function bytesToIpv4(b: Uint8Array, offset = 0): string {
  return `${b[offset] ?? 0}.${b[offset + 1] ?? 0}.${b[offset + 2] ?? 0}.${b[offset + 3] ?? 0}`;
}

export function isIpv4(s: string): boolean {
  try {
    ipv4ToBytes(s);
    return true;
  } catch {
    return false;
  }
}

/** IPv6 text (with "::" compression and an optional embedded dotted quad, no zone) -> 16 bytes. */
export function ipv6ToBytes(ip: string): Buffer {
  const s = ip.trim();
  const bad = (): never => {
    throw new TypeError(`invalid IPv6 address: ${JSON.stringify(ip)}`);
  };
  if (s.length === 0 || s.includes('%')) bad();
  const dbl = s.split('::');
  if (dbl.length > 2) bad();
  const parseGroups = (part: string): number[] => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    groups.forEach((g, i) => {
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = ipv4ToBytes(g);
        words.push(
          ((v4[0] as number) << 8) | (v4[1] as number),
          ((v4[2] as number) << 8) | (v4[3] as number),
        );
        return;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) bad();
      words.push(parseInt(g, 16));
    });
    return words;
  };
  let words: number[];
  try {
    if (dbl.length === 2) {
      const head = parseGroups(dbl[0] as string);
      const tail = parseGroups(dbl[1] as string);
      if (head.length + tail.length > 7) bad();
      words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
    } else {
      words = parseGroups(s);
      if (words.length !== 8) bad();
    }
  } catch {
    return bad();
  }
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** 16 bytes -> RFC 5952 canonical text (lower case, longest zero run of >= 2 words compressed). */
export function bytesToIpv6(b: Uint8Array, offset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++)
    words.push((((b[offset + 2 * i] ?? 0) << 8) | (b[offset + 2 * i + 1] ?? 0)) >>> 0);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function isIpv6(s: string): boolean {
  try {
    ipv6ToBytes(s);
    return true;
  } catch {
    return false;
  }
}

export function ipFamily(s: string): IpFamily {
  if (isIpv4(s)) return 4;
  if (isIpv6(s)) return 6;
  throw new TypeError(`not an IP address: ${JSON.stringify(s)}`);
}

/** Either family -> bytes (4 or 16). */
export function ipToBytes(s: string): Buffer {
  return ipFamily(s) === 4 ? ipv4ToBytes(s) : ipv6ToBytes(s);
}

export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return bytesToIpv4(b);
  if (b.length === 16) return bytesToIpv6(b);
  throw new TypeError(`IP address must be 4 or 16 bytes, got ${b.length}`);
}

export interface Cidr {
  family: IpFamily;
  /** The address as written (host bits kept). */
  address: string;
  bytes: Buffer;
  prefixLen: number;
}

/** "198.18.0.1/24", "fd00::1/64"; a bare address means a host prefix (/32 or /128). */
export function parseCidr(s: string): Cidr {
  const [addr, plen, ...rest] = s.trim().split('/');
  if (addr === undefined || rest.length > 0)
    throw new TypeError(`invalid CIDR: ${JSON.stringify(s)}`);
  const family = ipFamily(addr);
  const bytes = ipToBytes(addr);
  const max = family === 4 ? 32 : 128;
  let prefixLen = max;
  if (plen !== undefined) {
    if (!/^[0-9]{1,3}$/.test(plen) || Number(plen) > max) {
      throw new TypeError(`invalid prefix length in ${JSON.stringify(s)} (0..${max})`);
    }
    prefixLen = Number(plen);
  }
  return {
    family,
    address: family === 4 ? bytesToIpv4(bytes) : bytesToIpv6(bytes),
    bytes,
    prefixLen,
  };
}

/** True when the address (or every address of the given prefix) lies inside `net`. */
export function cidrContains(net: string | Cidr, addrOrCidr: string | Cidr): boolean {
  const n = typeof net === 'string' ? parseCidr(net) : net;
  const a = typeof addrOrCidr === 'string' ? parseCidr(addrOrCidr) : addrOrCidr;
  if (n.family !== a.family) return false;
  if (a.prefixLen < n.prefixLen) return false;
  let bits = n.prefixLen;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((n.bytes[i] as number) & mask) !== ((a.bytes[i] as number) & mask)) return false;
  }
  return true;
}

/** Solicited-node multicast address (ff02::1:ffXX:XXXX) for an IPv6 address. */
export function solicitedNodeMulticast(ip: string): string {
  const b = ipv6ToBytes(ip);
  const out = ipv6ToBytes('ff02::1:ff00:0');
  out[13] = b[13] as number;
  out[14] = b[14] as number;
  out[15] = b[15] as number;
  return bytesToIpv6(out);
}

/** Ethernet multicast MAC for an IPv6 multicast address (33:33:xx:xx:xx:xx). */
export function ipv6MulticastMac(ip: string): string {
  const b = ipv6ToBytes(ip);
  return bytesToMac(
    Buffer.from([0x33, 0x33, b[12] as number, b[13] as number, b[14] as number, b[15] as number]),
  );
}
