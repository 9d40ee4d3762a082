/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * A family-neutral view of a validated IPv4 or IPv6 header (lib/parse.h checked it): addresses
 * copied to the stack (they outlive helpers that move the packet), offsets, TTL / hop limit,
 * DSCP+ECN, DF. The forwarding code (lib/forward.h), ND, ICMP errors and NVGRE work on this view
 * so most of them are written once for both families.
 */
#ifndef TENET_LIB_L3_H
#define TENET_LIB_L3_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>

#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/ctx.h"
#include "lib/parse.h"

#define TENET_IP_DF 0x4000

struct tenet_l3 {
	__be32 saddr[4]; /* IPv4: saddr[0] only, the rest zero */
	__be32 daddr[4];
	__u32 off;	 /* of the IP header in the frame */
	__u32 len;	 /* IP header and payload, as the header announces */
	__u32 hdr_len;	 /* IPv4: IHL * 4; IPv6: 40 (extension headers not walked) */
	__u8 family;	 /* enum tenet_family */
	__u8 ttl;	 /* TTL / hop limit */
	__u8 tos;	 /* IPv4 TOS / IPv6 traffic class: DSCP << 2 | ECN */
	__u8 proto;	 /* IPv4 protocol / IPv6 fixed header's next header */
	__u8 df;	 /* IPv4 DF set (IPv6: 1, routers never fragment it) */
	__u8 later_frag; /* IPv4 fragment other than the first */
	__u8 pad[2];
};

/* Fills l3 from the frame parsed into pkt (l3_proto IPv4 or IPv6, headers linear). */
static __always_inline int tenet_l3_load(const struct tenet_ctx *ctx, const struct tenet_pkt *pkt,
					 struct tenet_l3 *l3)
{
	void *p = ctx->data + pkt->l3_off;

	__builtin_memset(l3, 0, sizeof(*l3));
	l3->off = pkt->l3_off;
	l3->len = pkt->l3_len;
	l3->later_frag = !!(pkt->flags & TENET_PKT_F_LATER_FRAGMENT);
	if (pkt->l3_proto == ETH_P_IP) {
		struct iphdr *iph = p;

		if (p + sizeof(*iph) > ctx->data_end)
			return -TENET_DROP_IPV4_TRUNCATED;
		l3->family = TENET_AF_IPV4;
		l3->saddr[0] = iph->saddr;
		l3->daddr[0] = iph->daddr;
		l3->hdr_len = iph->ihl * 4;
		l3->ttl = iph->ttl;
		l3->tos = iph->tos;
		l3->proto = iph->protocol;
		l3->df = !!(iph->frag_off & bpf_htons(TENET_IP_DF));
		return 0;
	}
	if (pkt->l3_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h = p;

		if (p + sizeof(*ip6h) > ctx->data_end)
			return -TENET_DROP_IPV6_TRUNCATED;
		l3->family = TENET_AF_IPV6;
		__builtin_memcpy(l3->saddr, &ip6h->saddr, 16);
		__builtin_memcpy(l3->daddr, &ip6h->daddr, 16);
		l3->hdr_len = sizeof(*ip6h);
		l3->ttl = ip6h->hop_limit;
		l3->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
		l3->proto = ip6h->nexthdr;
		l3->df = 1;
		return 0;
	}
	return -TENET_DROP_PORT_ETHERTYPE;
}

/* fe80::/10 */
static __always_inline int tenet_ipv6_is_link_local(const __be32 *a)
{
	return (a[0] & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000);
}

/* :: */
static __always_inline int tenet_ipv6_is_unspecified(const __be32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* The first byte of the L4 header when it is directly after the IP header, or -1. */
static __always_inline int tenet_l3_first_l4_byte(const struct tenet_ctx *ctx,
						  const struct tenet_l3 *l3)
{
	__u8 b;

	if (l3->later_frag || l3->len <= l3->hdr_len)
		return -1;
	if (tenet_ctx_load_bytes(ctx, l3->off + l3->hdr_len, &b, 1) < 0)
		return -1;
	return b;
}

#endif /* TENET_LIB_L3_H */
