/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Internet checksums (RFC 1071) the datapath computes itself: the fold of a bpf_csum_diff() sum
 * into the 16-bit field, and the incremental update of one 16-bit word (RFC 1624) where no kernel
 * helper does it for us (XDP has no bpf_l3_csum_replace). The update is the kernel's own
 * csum_replace2(), so a header changed here carries exactly the bytes bpf_l3_csum_replace() would
 * have written, and the reference model (agent/model/) reproduces them with the same arithmetic.
 */
#ifndef TENET_LIB_CSUM_H
#define TENET_LIB_CSUM_H

#include <linux/types.h>

/* Folds a 32-bit one's-complement sum (bpf_csum_diff's result) and complements it. */
static __always_inline __u16 tenet_csum_fold(__u64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* One's-complement 16-bit addition with end-around carry (the kernel's csum16_add). */
static __always_inline __u16 tenet_csum16_add(__u16 a, __u16 b)
{
	__u16 r = a + b;

	return r + (r < b);
}

/*
 * *check is a checksum field covering a 16-bit word that changes from old to new (all three as
 * stored in the packet, network order): the kernel's csum_replace2().
 */
static __always_inline void tenet_csum_replace2(__sum16 *check, __be16 old, __be16 new)
{
	__u16 c = ~(__u16)*check;

	c = tenet_csum16_add(c, (__u16) ~(__u16)old);
	c = tenet_csum16_add(c, (__u16) new);
	*check = (__sum16)(__u16)~c;
}

#endif /* TENET_LIB_CSUM_H */
