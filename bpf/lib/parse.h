/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Header parsing and validation for every tenet program: Ethernet, up to two VLAN tags (802.1Q or
 * 802.1ad), IPv4 (version, IHL, total length), the IPv6 fixed header (version, payload length) and
 * the TCP/UDP ports of first fragments. A cursor walks the frame and every read is preceded by a
 * bounds check against data_end (the xdp-tools parsing_helpers.h pattern), so the verifier sees
 * each access proven in range. The cursor also counts the offset as a plain number, so no code
 * needs to subtract packet pointers.
 *
 * Malformed input returns a negated enum tenet_drop_reason; frames that are well formed but that
 * tenet does not look into (ARP, LLDP, IPv6 extension headers, non-first fragments) parse fine and
 * leave the fields they do not reach at zero. Checksums are not verified: the kernel does that
 * where it matters and a bad checksum is not a reason for tenet to drop.
 */
#ifndef TENET_LIB_PARSE_H
#define TENET_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#include "abi/drop_reasons.h"
#include "lib/ctx.h"

#define TENET_VLAN_MAX_DEPTH 2

/* IPv4 frag_off bits (host order). */
#define TENET_IP_MF 0x2000
#define TENET_IP_OFFSET 0x1fff

/* The kernel's struct vlan_hdr is not uapi: the 4 bytes after a VLAN EtherType. */
struct tenet_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct tenet_cursor {
	void *pos;
	void *end;
	__u32 off; /* pos - start of frame */
};

/* Parse result. Offsets are from the start of the frame; fields not reached stay zero. */
struct tenet_pkt {
	__u16 l3_proto; /* EtherType after the VLAN tags, host order (ETH_P_IP, ETH_P_IPV6, ...) */
	__u16 l3_off;	/* L3 header */
	__u16 l4_off;	/* L4 header, when TENET_PKT_F_L4 */
	__u32 l3_len;	/* IP header and payload, as announced (or the rest of a BIG TCP frame) */
	__u16 vlan_tci[TENET_VLAN_MAX_DEPTH]; /* outer first, host order */
	__u8 vlan_depth; /* tags in the frame; tc ingress sees the outer tag in skb->vlan_tci */
	__u8 l4_proto;	 /* IPPROTO_* that follows the IP header (IPv6: the fixed header's next) */
	__u8 flags;	 /* TENET_PKT_F_* */
	__be16 sport;	 /* TCP/UDP ports, network order, when TENET_PKT_F_L4 */
	__be16 dport;
};

/* The packet is a fragment of a larger IPv4 datagram (first or not). */
#define TENET_PKT_F_FRAGMENT 0x01
/* A fragment other than the first: it has no L4 header. */
#define TENET_PKT_F_LATER_FRAGMENT 0x02
/* l4_off, sport and dport are valid: TCP or UDP, first fragment or unfragmented. */
#define TENET_PKT_F_L4 0x04

static __always_inline void tenet_cursor_init(struct tenet_cursor *cur, const struct tenet_ctx *ctx)
{
	cur->pos = ctx->data;
	cur->end = ctx->data_end;
	cur->off = 0;
}

/* Returns a pointer to the next len bytes and steps over them, or NULL if the frame ends first. */
static __always_inline void *tenet_cursor_take(struct tenet_cursor *cur, __u32 len)
{
	void *p = cur->pos;

	if (p + len > cur->end)
		return NULL;
	cur->pos = p + len;
	cur->off += len;
	return p;
}

#define TENET_TAKE(cur, type) ((type *)tenet_cursor_take((cur), sizeof(type)))

static __always_inline int tenet_proto_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

static __always_inline int tenet_parse_eth(struct tenet_cursor *cur, struct tenet_pkt *pkt)
{
	struct ethhdr *eth = TENET_TAKE(cur, struct ethhdr);
	__be16 proto;
	int i;

	if (!eth)
		return -TENET_DROP_ETH_TRUNCATED;
	proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < TENET_VLAN_MAX_DEPTH; i++) {
		struct tenet_vlan_hdr *vh;

		if (!tenet_proto_is_vlan(proto))
			break;
		vh = TENET_TAKE(cur, struct tenet_vlan_hdr);
		if (!vh)
			return -TENET_DROP_VLAN_TRUNCATED;
		pkt->vlan_tci[i] = bpf_ntohs(vh->tci);
		pkt->vlan_depth = i + 1;
		proto = vh->encap_proto;
	}
	if (tenet_proto_is_vlan(proto))
		return -TENET_DROP_VLAN_TOO_DEEP;

	pkt->l3_proto = bpf_ntohs(proto);
	pkt->l3_off = cur->off;
	return 0;
}

/*
 * rest: bytes of the frame from the IP header on. An IPv4 total length of 0 is what the kernel's
 * BIG TCP puts in GSO packets over 64 KiB (tc only); it is accepted when the packet is that big.
 */
static __always_inline int tenet_parse_ipv4(struct tenet_cursor *cur, struct tenet_pkt *pkt,
					    __u32 rest)
{
	struct iphdr *iph = TENET_TAKE(cur, struct iphdr);
	__u32 hdr_len, tot_len;
	__u16 frag;

	if (!iph)
		return -TENET_DROP_IPV4_TRUNCATED;
	if (iph->version != 4)
		return -TENET_DROP_IPV4_BAD_VERSION;
	hdr_len = iph->ihl * 4;
	if (hdr_len < sizeof(*iph))
		return -TENET_DROP_IPV4_BAD_IHL;
	/* Options: the bytes after the fixed header, 0 to 40. */
	if (hdr_len > sizeof(*iph) && !tenet_cursor_take(cur, hdr_len - sizeof(*iph)))
		return -TENET_DROP_IPV4_TRUNCATED;

	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len == 0 && rest > 0xffff)
		tot_len = rest;
	if (tot_len < hdr_len || tot_len > rest)
		return -TENET_DROP_IPV4_BAD_TOTAL_LENGTH;
	pkt->l3_len = tot_len;
	pkt->l4_proto = iph->protocol;

	frag = bpf_ntohs(iph->frag_off);
	if (frag & (TENET_IP_MF | TENET_IP_OFFSET))
		pkt->flags |= TENET_PKT_F_FRAGMENT;
	/* Only the first fragment carries the L4 header. */
	if (frag & TENET_IP_OFFSET)
		pkt->flags |= TENET_PKT_F_LATER_FRAGMENT;
	return 0;
}

/*
 * As for IPv4, a payload length of 0 with more than 64 KiB behind it is a jumbogram or BIG TCP.
 * Extension headers are not walked: l4_proto is the fixed header's next header, and only when that
 * is TCP or UDP are ports read.
 */
static __always_inline int tenet_parse_ipv6(struct tenet_cursor *cur, struct tenet_pkt *pkt,
					    __u32 rest)
{
	struct ipv6hdr *ip6h = TENET_TAKE(cur, struct ipv6hdr);
	__u32 payload_len, avail;

	if (!ip6h)
		return -TENET_DROP_IPV6_TRUNCATED;
	if (ip6h->version != 6)
		return -TENET_DROP_IPV6_BAD_VERSION;
	/* The take above proves rest >= 40. */
	avail = rest - sizeof(*ip6h);
	payload_len = bpf_ntohs(ip6h->payload_len);
	if (payload_len == 0 && avail > 0xffff)
		payload_len = avail;
	if (payload_len > avail)
		return -TENET_DROP_IPV6_BAD_PAYLOAD_LENGTH;
	pkt->l3_len = payload_len + sizeof(*ip6h);
	pkt->l4_proto = ip6h->nexthdr;
	return 0;
}

/*
 * The L4 header must fit in the IP packet as its header announces it, not merely in the frame
 * (Ethernet padding after a short IP packet is not a TCP header).
 */
static __always_inline int tenet_parse_l4(struct tenet_cursor *cur, struct tenet_pkt *pkt)
{
	__u32 l4_off = cur->off;
	__u32 l3_end = pkt->l3_off + pkt->l3_len;

	if (pkt->l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = TENET_TAKE(cur, struct tcphdr);

		if (!th || cur->off > l3_end)
			return -TENET_DROP_TCP_TRUNCATED;
		pkt->sport = th->source;
		pkt->dport = th->dest;
	} else if (pkt->l4_proto == IPPROTO_UDP) {
		struct udphdr *uh = TENET_TAKE(cur, struct udphdr);

		if (!uh || cur->off > l3_end)
			return -TENET_DROP_UDP_TRUNCATED;
		pkt->sport = uh->source;
		pkt->dport = uh->dest;
	} else {
		return 0;
	}
	pkt->l4_off = l4_off;
	pkt->flags |= TENET_PKT_F_L4;
	return 0;
}

/*
 * Parses and validates the frame in ctx into pkt (zeroed here). Returns 0, or a negated
 * enum tenet_drop_reason for a malformed frame.
 */
static __always_inline int tenet_parse(const struct tenet_ctx *ctx, struct tenet_pkt *pkt)
{
	struct tenet_cursor cur;
	int ret;

	__builtin_memset(pkt, 0, sizeof(*pkt));
	tenet_cursor_init(&cur, ctx);

	ret = tenet_parse_eth(&cur, pkt);
	if (ret < 0)
		return ret;

	if (pkt->l3_proto == ETH_P_IP)
		ret = tenet_parse_ipv4(&cur, pkt, ctx->len - cur.off);
	else if (pkt->l3_proto == ETH_P_IPV6)
		ret = tenet_parse_ipv6(&cur, pkt, ctx->len - cur.off);
	else
		return 0;
	if (ret < 0 || (pkt->flags & TENET_PKT_F_LATER_FRAGMENT))
		return ret;

	return tenet_parse_l4(&cur, pkt);
}

#endif /* TENET_LIB_PARSE_H */
