// Checksum arithmetic the datapath does incrementally, reproduced bit for bit: the kernel's
// csum_replace2() (what bpf_l3_csum_replace(..., 2) and bpf/lib/csum.h's tenet_csum_replace2 do to
// a checksum field when one 16-bit word under it changes). One's-complement sums do not depend on
// byte order, so working on the big-endian values gives the bytes the kernel writes.

function add16(a: number, b: number): number {
  const r = (a + b) & 0xffff;
  return (r + (r < b ? 1 : 0)) & 0xffff;
}

/** New checksum field value when a covered 16-bit word changes from `from` to `to`. */
export function csumReplace2(check: number, from: number, to: number): number {
  let c = ~check & 0xffff;
  c = add16(c, ~from & 0xffff);
  c = add16(c, to & 0xffff);
  return ~c & 0xffff;
}
