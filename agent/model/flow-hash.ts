// The NVGRE FlowID, exactly as bpf/lib/flow_hash.h computes it (see the definition there): FNV-1a
// over big-endian 32-bit words of the inner addresses, ports and protocol, then murmur3's fmix32,
// low 8 bits.

/** FNV-1a's offset basis and prime (32-bit), shared with the steering hash (steer.ts). */
export const FNV_BASIS = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

/** murmur3's 32-bit finaliser. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * src/dst: 4 (IPv4) or 16 (IPv6) address bytes; sport/dport: 0 unless the ports are used (TCP or
 * UDP with its header in the packet, not an IPv4 fragment); proto: IPv4 protocol / IPv6 next
 * header.
 */
export function flowId(
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  proto: number,
): number {
  const words: number[] = [];
  const push = (b: Uint8Array): void => {
    for (let i = 0; i + 4 <= b.length; i += 4)
      words.push(
        (((b[i] as number) << 24) |
          ((b[i + 1] as number) << 16) |
          ((b[i + 2] as number) << 8) |
          (b[i + 3] as number)) >>>
          0,
      );
  };
  push(src);
  push(dst);
  words.push((((sport & 0xffff) << 16) | (dport & 0xffff)) >>> 0);
  words.push(proto & 0xff);
  let h = FNV_BASIS;
  for (const w of words) h = Math.imul((h ^ w) >>> 0, FNV_PRIME) >>> 0;
  return fmix32(h) & 0xff;
}
