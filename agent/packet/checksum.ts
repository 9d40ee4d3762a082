// RFC 1071 internet checksum and the IPv4/IPv6 pseudo-headers used by UDP, TCP and ICMPv6.

/** One's-complement sum of 16-bit big-endian words (odd trailing byte padded with zero), unfolded. */
export function onesSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  const n = data.length - (data.length % 2);
  for (let i = 0; i < n; i += 2) sum += ((data[i] as number) << 8) | (data[i + 1] as number);
  if (data.length % 2) sum += (data[data.length - 1] as number) << 8;
  // Fold periodically is unnecessary for packet-sized input: 64 KiB of 0xffff words stays < 2^53.
  return sum;
}

/** Fold a running sum to 16 bits and complement it. */
export function foldChecksum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** Internet checksum over the concatenation of `parts`. */
export function internetChecksum(...parts: Uint8Array[]): number {
  const buf = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
  return foldChecksum(onesSum(buf));
}

/**
 * Pseudo-header for UDP/TCP/ICMPv6 checksums: IPv4 (src, dst, 0, proto, len16) or
 * IPv6 (src, dst, len32, 0,0,0, next header), chosen by address length.
 */
export function pseudoHeader(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  length: number,
): Buffer {
  if (src.length === 4) {
    const b = Buffer.alloc(12);
    b.set(src, 0);
    b.set(dst, 4);
    b[9] = proto;
    b.writeUInt16BE(length & 0xffff, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  b.set(src, 0);
  b.set(dst, 16);
  b.writeUInt32BE(length >>> 0, 32);
  b[39] = proto;
  return b;
}

/** Checksum of an L4 segment (with its checksum field zeroed or not) under a pseudo-header. */
export function l4Checksum(
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  segment: Uint8Array,
): number {
  return internetChecksum(pseudoHeader(src, dst, proto, segment.length), segment);
}
