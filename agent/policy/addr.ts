// Addresses as the policy writes them: IPv4 and IPv6 addresses, CIDR prefixes and MAC addresses.
// Parsing is strict (four-part dotted decimal for IPv4, no IPv6 zone IDs, no host bits in a
// prefix) because an operator's typo must be an error, not a different address. Every parser
// returns the canonical text form too (RFC 5952 for IPv6, lower-case colon-separated MACs), which
// is what a validated policy holds, so equal addresses compare equal as strings.

import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface IpAddress {
  readonly family: Family;
  /** Network order: 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: Uint8Array;
  /** Canonical text: dotted quad, or RFC 5952 for IPv6. */
  readonly text: string;
}

export interface IpPrefix {
  readonly family: Family;
  /** The network address in network order, host bits zero. */
  readonly bytes: Uint8Array;
  readonly length: number;
  /** Canonical text: `198.19.1.0/24`, `fd00:1::/64`. */
  readonly text: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(message: string): Parsed<T> => ({ ok: false, message });

export function familyName(family: Family): string {
  return family === 4 ? 'IPv4' : 'IPv6';
}

function fromIpaddr(addr: ipaddr.IPv4 | ipaddr.IPv6): IpAddress {
  if (addr.kind() === 'ipv4') {
    return { family: 4, bytes: Uint8Array.from(addr.toByteArray()), text: addr.toString() };
  }
  const v6 = addr as ipaddr.IPv6;
  return { family: 6, bytes: Uint8Array.from(v6.toByteArray()), text: v6.toRFC5952String() };
}

/** An IPv4 or IPv6 address; `want` restricts the family. */
export function parseIp(text: string, want?: Family): Parsed<IpAddress> {
  const what = want === undefined ? 'an IP address' : `an ${familyName(want)} address`;
  if (typeof text !== 'string' || text.includes('%') || text.includes('/')) {
    return fail(`${JSON.stringify(text)} is not ${what}`);
  }
  let addr: IpAddress | undefined;
  // A four-part decimal address has no ':'. Asking ipaddr.js about an IPv6 text anyway makes it
  // construct and throw an Error internally (IPv4.isValid), which dominated the cost of validating
  // and compiling large policies.
  if (!text.includes(':') && ipaddr.IPv4.isValidFourPartDecimal(text)) {
    addr = fromIpaddr(ipaddr.IPv4.parse(text));
  } else if (text.includes(':') && ipaddr.IPv6.isValid(text)) {
    addr = fromIpaddr(ipaddr.IPv6.parse(text));
  }
  if (addr === undefined) return fail(`${JSON.stringify(text)} is not ${what}`);
  if (want !== undefined && addr.family !== want) {
    return fail(`${addr.text} is not ${what}`);
  }
  return ok(addr);
}

function maskBytes(bytes: Uint8Array, length: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    out[i] = (out[i] as number) & ((0xff00 >> keep) & 0xff);
  }
  return out;
}

function bytesToText(bytes: Uint8Array): string {
  return fromIpaddr(ipaddr.fromByteArray(Array.from(bytes))).text;
}

/** A CIDR prefix `address/length` whose host bits are zero. */
export function parsePrefix(text: string): Parsed<IpPrefix> {
  const notPrefix = fail<IpPrefix>(`${JSON.stringify(text)} is not a CIDR prefix (address/length)`);
  if (typeof text !== 'string') return notPrefix;
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (m === null) return notPrefix;
  const addr = parseIp(m[1] as string);
  if (!addr.ok) return notPrefix;
  const { family, bytes } = addr.value;
  const length = Number(m[2]);
  const max = family === 4 ? 32 : 128;
  if (length > max) {
    return fail(
      `${text}: prefix length ${length} is longer than ${max}, the ${familyName(family)} maximum`,
    );
  }
  const network = maskBytes(bytes, length);
  const canonical = `${bytesToText(network)}/${length}`;
  if (!network.every((b, i) => b === bytes[i])) {
    return fail(`${text} has host bits set (did you mean ${canonical}?)`);
  }
  return ok({ family, bytes: network, length, text: canonical });
}

/** The prefix of the given length that contains addr. */
export function networkOf(addr: IpAddress, length: number): IpPrefix {
  const bytes = maskBytes(addr.bytes, length);
  return { family: addr.family, bytes, length, text: `${bytesToText(bytes)}/${length}` };
}

/** True when addr lies inside prefix (families must match). */
export function prefixContains(
  prefix: IpPrefix,
  addr: { family: Family; bytes: Uint8Array },
): boolean {
  if (prefix.family !== addr.family) return false;
  const masked = maskBytes(addr.bytes, prefix.length);
  return masked.every((b, i) => b === prefix.bytes[i]);
}

/** True when the two prefixes share any address: one contains the other's network. */
export function prefixesOverlap(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family) return false;
  return a.length <= b.length ? prefixContains(a, b) : prefixContains(b, a);
}

/** A unicast MAC address: six hex octets separated by `:` or `-`, in either case. */
export function parseMac(text: string): Parsed<{ bytes: Uint8Array; text: string }> {
  const m =
    typeof text === 'string'
      ? /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(
          text,
        )
      : null;
  if (m === null) {
    return fail(
      `${JSON.stringify(text)} is not a MAC address (six hex octets like 02:00:5e:10:00:01)`,
    );
  }
  const octets = [m[1], m[3], m[4], m[5], m[6], m[7]].map((h) => parseInt(h as string, 16));
  const bytes = Uint8Array.from(octets);
  const canonical = formatMac(bytes);
  if (((bytes[0] as number) & 1) !== 0) {
    return fail(`${canonical} is a multicast MAC; an adapter needs a unicast MAC`);
  }
  if (bytes.every((b) => b === 0)) return fail(`${canonical} is not a usable MAC`);
  return ok({ bytes, text: canonical });
}

export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Canonical MAC text to bytes; the text must already be valid. */
export function macBytes(text: string): Uint8Array {
  const parsed = parseMac(text);
  if (!parsed.ok) throw new RangeError(parsed.message);
  return parsed.value.bytes;
}

/** Canonical address text to its parsed form; the text must already be valid. */
export function ipOf(text: string): IpAddress {
  const parsed = parseIp(text);
  if (!parsed.ok) throw new RangeError(parsed.message);
  return parsed.value;
}

export function prefixOf(text: string): IpPrefix {
  const parsed = parsePrefix(text);
  if (!parsed.ok) throw new RangeError(parsed.message);
  return parsed.value;
}

/** An IPv4 address as the host-order number of its network-order bytes (198.18.0.1 -> 0xc6120001). */
export function ipv4ToNumber(addr: IpAddress): number {
  if (addr.family !== 4) throw new RangeError(`${addr.text} is not an IPv4 address`);
  const b = addr.bytes;
  return (
    (((b[0] as number) << 24) |
      ((b[1] as number) << 16) |
      ((b[2] as number) << 8) |
      (b[3] as number)) >>>
    0
  );
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** A CA in the datapath's fixed 16 bytes: IPv4 in bytes 0..3, the rest zero; IPv6 as is. */
export function addr16(addr: { bytes: Uint8Array }): Uint8Array {
  const out = new Uint8Array(16);
  out.set(addr.bytes, 0);
  return out;
}
