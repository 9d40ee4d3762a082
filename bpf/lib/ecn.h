/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ECN across the NVGRE tunnel, RFC 6040 (normal mode). The ECN field is the low two bits of the
 * IPv4 TOS byte and of the IPv6 traffic class.
 *
 * Encapsulation: the outer ECN is a copy of the inner, except that an inner CE becomes ECT(0) on
 * the outside (so congestion marked before the tunnel is not counted again at its exit, and the
 * outer header never claims a mark the tunnel did not see).
 *
 * Decapsulation (RFC 6040 figure 4): an outer CE marks the inner packet CE if the inner is
 * ECN-capable and drops it if it is not (a Not-ECT endpoint cannot be told about congestion, so
 * the packet must be dropped as a congested router would); an outer ECT(1) over an inner ECT(0)
 * becomes ECT(1); every other combination leaves the inner field as it is.
 */
#ifndef TENET_LIB_ECN_H
#define TENET_LIB_ECN_H

#include <linux/types.h>

#define TENET_ECN_MASK 0x03
#define TENET_ECN_NOT_ECT 0x00
#define TENET_ECN_ECT1 0x01
#define TENET_ECN_ECT0 0x02
#define TENET_ECN_CE 0x03

/* The outer TOS for an inner DSCP+ECN byte: DSCP copied, ECN per RFC 6040 normal mode. */
static __always_inline __u8 tenet_ecn_encap_tos(__u8 inner_tos)
{
	__u8 ecn = inner_tos & TENET_ECN_MASK;

	if (ecn == TENET_ECN_CE)
		ecn = TENET_ECN_ECT0;
	return (inner_tos & ~TENET_ECN_MASK) | ecn;
}

/* The inner ECN after decapsulation, or -1: drop (outer CE over an inner Not-ECT). */
static __always_inline int tenet_ecn_decap(__u8 outer_ecn, __u8 inner_ecn)
{
	if (outer_ecn == TENET_ECN_CE)
		return inner_ecn == TENET_ECN_NOT_ECT ? -1 : TENET_ECN_CE;
	if (outer_ecn == TENET_ECN_ECT1 && inner_ecn == TENET_ECN_ECT0)
		return TENET_ECN_ECT1;
	return inner_ecn;
}

#endif /* TENET_LIB_ECN_H */
