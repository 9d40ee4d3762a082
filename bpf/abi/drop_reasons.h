/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The catalogue of reasons a tenet program drops a packet. Every drop carries exactly one of these
 * numbers: it indexes the per-reason drop counters (abi/counters.h), travels in drop events
 * (abi/events.h) and becomes the "reason" label of tenet_drops_total in the agent's metrics, where
 * the label is the name without the TENET_DROP_ prefix, in lower case (TENET_DROP_ETH_TRUNCATED is
 * "eth_truncated").
 *
 * The catalogue is append-only: a number, once released, keeps its meaning forever, even when the
 * check that produced it is removed (then the name stays, unused). New reasons take the next
 * number. test/unit/drop-reasons.snapshot.json holds the released numbers and the unit tests fail
 * if one changes. The numbers must stay below TENET_DROP_REASON_SLOTS (abi/maps.h), the size of the
 * counter array.
 *
 * Functions return a reason negated (-TENET_DROP_...) to signal "drop", and 0 or a positive value
 * to signal "go on"; lib/drop.h turns the negative number into the verdict.
 */
#ifndef TENET_ABI_DROP_REASONS_H
#define TENET_ABI_DROP_REASONS_H

enum tenet_drop_reason {
	/* Not a drop. Slot 0 of the drop counters stays zero. */
	TENET_DROP_NONE = 0,
	/* Fewer bytes than an Ethernet header (14). */
	TENET_DROP_ETH_TRUNCATED = 1,
	/* An 802.1Q/802.1ad tag is cut off by the end of the frame. */
	TENET_DROP_VLAN_TRUNCATED = 2,
	/* More than two VLAN tags: the frame cannot be classified, so it must not bypass policy. */
	TENET_DROP_VLAN_TOO_DEEP = 3,
	/* The IPv4 header (20 bytes, or as long as its IHL says) is cut off by the frame's end. */
	TENET_DROP_IPV4_TRUNCATED = 4,
	/* EtherType says IPv4 but the version nibble is not 4. */
	TENET_DROP_IPV4_BAD_VERSION = 5,
	/* IHL below 5 (a header shorter than 20 bytes). */
	TENET_DROP_IPV4_BAD_IHL = 6,
	/* Total length shorter than the header, or longer than the bytes in the frame. */
	TENET_DROP_IPV4_BAD_TOTAL_LENGTH = 7,
	/* The 40-byte IPv6 fixed header is cut off by the end of the frame. */
	TENET_DROP_IPV6_TRUNCATED = 8,
	/* EtherType says IPv6 but the version nibble is not 6. */
	TENET_DROP_IPV6_BAD_VERSION = 9,
	/* Payload length longer than the bytes that follow the fixed header in the frame. */
	TENET_DROP_IPV6_BAD_PAYLOAD_LENGTH = 10,
	/* An unfragmented or first-fragment packet whose 20-byte TCP header is cut off. */
	TENET_DROP_TCP_TRUNCATED = 11,
	/* An unfragmented or first-fragment packet whose 8-byte UDP header is cut off. */
	TENET_DROP_UDP_TRUNCATED = 12,
	/* Append new reasons here, with the next number. Never renumber or reuse. */
};

#endif /* TENET_ABI_DROP_REASONS_H */
