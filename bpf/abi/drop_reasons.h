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

	/* From a VM (tc ingress on its port) */

	/* The interface has no port live in the active generation: fail closed. */
	TENET_DROP_PORT_UNKNOWN = 13,
	/* A VM sent an 802.1Q/802.1ad tagged frame; VMs get untagged access ports. */
	TENET_DROP_PORT_VLAN_TAGGED = 14,
	/* Source MAC is not the port's. */
	TENET_DROP_PORT_SRC_MAC_SPOOF = 15,
	/* EtherType other than ARP, IPv4 and IPv6. */
	TENET_DROP_PORT_ETHERTYPE = 16,
	/* The port's virtual subnet is not live. */
	TENET_DROP_PORT_VSID_UNKNOWN = 17,
	/* ARP cut off, not Ethernet/IPv4, or an operation other than request and reply. */
	TENET_DROP_ARP_MALFORMED = 18,
	/* ARP sender MAC or sender IP is not the port's. */
	TENET_DROP_ARP_SPOOF = 19,
	/* Gratuitous ARP (sender IP = target IP): consumed, nobody needs it. */
	TENET_DROP_ARP_GRATUITOUS = 20,
	/* ARP probe (sender IP 0.0.0.0, RFC 5227): consumed. */
	TENET_DROP_ARP_PROBE = 21,
	/* ARP reply from a VM: consumed, the datapath never asks. */
	TENET_DROP_ARP_REPLY = 22,
	/* ARP request for an address without a lookup record in the port's virtual subnet. */
	TENET_DROP_ARP_UNKNOWN_TARGET = 23,
	/*
	 * ND message with hop limit not 255, code not 0, cut off, a zero-length option or a
	 * multicast target (RFC 4861 7.1).
	 */
	TENET_DROP_ND_MALFORMED = 24,
	/*
	 * ND link-layer address option not the port's MAC, or an advertisement for a target that is
	 * not the port's.
	 */
	TENET_DROP_ND_SPOOF = 25,
	/* Duplicate address detection (solicitation from ::): consumed. */
	TENET_DROP_ND_DAD = 26,
	/* Neighbour solicitation for an address without a lookup record in the virtual subnet. */
	TENET_DROP_ND_UNKNOWN_TARGET = 27,
	/* Neighbour advertisement from a VM: consumed, the datapath never asks. */
	TENET_DROP_ND_ADVERT = 28,
	/* Router solicitation, router advertisement or redirect from a VM: consumed. */
	TENET_DROP_ND_UNSUPPORTED = 29,
	/* IPv6 link-local source on anything but ND. */
	TENET_DROP_IPV6_LINK_LOCAL_SRC = 30,
	/* Source CA is not a local lookup record of this port. */
	TENET_DROP_IP_SRC_SPOOF = 31,
	/* No lookup record for the destination CA in the destination virtual subnet. */
	TENET_DROP_DST_UNKNOWN = 32,
	/* Switched frame whose destination MAC is not the destination record's. */
	TENET_DROP_DST_MAC_MISMATCH = 33,
	/* Destination is a gateway address: the distributed router answers only ARP and ND. */
	TENET_DROP_DST_IS_GATEWAY = 34,
	/*
	 * Sent to the gateway MAC, but no customer route of the routing domain covers the
	 * destination.
	 */
	TENET_DROP_ROUTE_UNKNOWN = 35,
	/* The route names a virtual subnet that is not live or is in another routing domain. */
	TENET_DROP_ROUTE_VSID_UNKNOWN = 36,
	/* IPv4 packet without DF longer than the port's tenant MTU: it cannot be fragmented. */
	TENET_DROP_MTU_EXCEEDED = 37,
	/*
	 * An ICMP error was due (time exceeded, too big) but RFC 1812/4443 forbid it: the packet is
	 * itself an ICMP error, a non-first IPv4 fragment, or sent to a multicast or broadcast
	 * address.
	 */
	TENET_DROP_ICMP_ERR_SUPPRESSED = 38,
	/*
	 * An ICMP error was due but the subnet has no gateway address of that family to send it
	 * from.
	 */
	TENET_DROP_ICMP_ERR_NO_SOURCE = 39,
	/* Building an ARP/ND/ICMP answer failed (a helper returned an error). */
	TENET_DROP_REPLY_FAILED = 40,
	/* The port's provider address is not a live local PA. */
	TENET_DROP_ENCAP_NO_LOCAL_PA = 41,
	/* No underlay next hop (neighbour) for the remote PA. */
	TENET_DROP_ENCAP_NO_UNDERLAY_NH = 42,
	/* A helper failed while encapsulating or rewriting a routed packet. */
	TENET_DROP_ENCAP_FAILED = 43,

	/* From the physical NIC (XDP), NVGRE addressed to a local PA */

	/* Outer IPv4 packet is a fragment. */
	TENET_DROP_NVGRE_OUTER_FRAGMENT = 44,
	/* GRE header cut off by the end of the outer IP packet. */
	TENET_DROP_NVGRE_TRUNCATED = 45,
	/* GRE flags and version not exactly 0x2000 (key present, no checksum, no sequence). */
	TENET_DROP_NVGRE_BAD_FLAGS = 46,
	/* GRE protocol not 0x6558 (transparent Ethernet bridging). */
	TENET_DROP_NVGRE_BAD_PROTOCOL = 47,
	/* VSID (key >> 8) is not a live virtual subnet. */
	TENET_DROP_NVGRE_VSID_UNKNOWN = 48,
	/* Inner Ethernet or IP header cut off, or inner IP length beyond the outer payload. */
	TENET_DROP_NVGRE_INNER_TRUNCATED = 49,
	/* Inner frame carries an 802.1Q/802.1ad tag (RFC 7637 forbids it). */
	TENET_DROP_NVGRE_INNER_VLAN = 50,
	/* Inner frame is neither IPv4 nor IPv6, or its IP version or IHL is wrong. */
	TENET_DROP_NVGRE_INNER_MALFORMED = 51,
	/*
	 * No lookup record names the outer source PA for the inner source CA: the source's record
	 * in the VSID, or for a routed packet its record in the subnet the routing domain's routes
	 * give for it.
	 */
	TENET_DROP_NVGRE_FOREIGN_PA = 52,
	/* Inner destination is not a local lookup record of the VSID. */
	TENET_DROP_NVGRE_DST_NOT_LOCAL = 53,
	/* Outer CE over an inner Not-ECT packet (RFC 6040 decapsulation). */
	TENET_DROP_NVGRE_ECN_CE_NOT_ECT = 54,
	/* bpf_xdp_adjust_head() or adjust_tail() failed while decapsulating. */
	TENET_DROP_DECAP_FAILED = 55,

	/* Port ACLs (lib/acl.h), at either direction of a VM port */

	/* The deciding ACL rule (or the stored verdict of the first fragment) denies the packet. */
	TENET_DROP_ACL_DENY = 56,
	/* A non-first fragment on a port with ACL rules and no stored verdict of its first. */
	TENET_DROP_ACL_FRAGMENT = 57,
	/*
	 * The ACL cannot classify the packet: IPv6 extension headers beyond the walked number, an
	 * L4 header cut off, or a rule set missing an entry (fail closed).
	 */
	TENET_DROP_ACL_UNCLASSIFIABLE = 58,

	/* QoS (lib/qos.h) */

	/* Over the inbound cap of the destination port (its token bucket is empty). */
	TENET_DROP_QOS_POLICED = 59,
	/*
	 * Over an outbound cap that is policed: the source port's on host-local VM-to-VM traffic,
	 * or its tenant's cap on the destination's class.
	 */
	TENET_DROP_QOS_POLICED_LOCAL = 60,
	/* Append new reasons here, with the next number. Never renumber or reuse. */
};

#endif /* TENET_ABI_DROP_REASONS_H */
