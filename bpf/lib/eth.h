/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Ethernet addresses: comparing and copying the 6-byte MACs of frames and policy values. Byte by
 * byte, because neither side is aligned for wider loads.
 */
#ifndef TENET_LIB_ETH_H
#define TENET_LIB_ETH_H

#include <linux/types.h>

static __always_inline int tenet_mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		(a[5] ^ b[5])) == 0;
}

static __always_inline void tenet_mac_copy(__u8 *to, const __u8 *from)
{
	to[0] = from[0];
	to[1] = from[1];
	to[2] = from[2];
	to[3] = from[3];
	to[4] = from[4];
	to[5] = from[5];
}

#endif /* TENET_LIB_ETH_H */
