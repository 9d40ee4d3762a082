/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ICMP errors the distributed router sends back to a VM: time exceeded when a routed packet's
 * TTL / hop limit runs out, and fragmentation needed (IPv4 with DF) / packet too big (IPv6) when
 * a packet is longer than the port's tenant MTU, so path MTU discovery works across the overlay.
 * The frame that came in is turned into the error in place (bpf_skb_change_tail, then stores) and
 * redirected back out of the port it came from, towards the VM.
 *
 * The error (agent/model/icmp.ts builds the same bytes):
 *   Ethernet: to the port's MAC, from the gateway MAC of the port's virtual subnet;
 *   IPv4: TOS 0xc0, ID 0, no DF, TTL 64, from the subnet's IPv4 gateway address, to the sender;
 *   IPv6: traffic class 0, flow label 0, hop limit 64, from the subnet's IPv6 gateway address;
 *   ICMP: type/code, the 4-byte field (next-hop MTU in its low 16 bits for fragmentation needed,
 *         the MTU for packet too big, else 0), then the quote: the first
 *         min(IP length, TENET_ICMP_QUOTE_MAX) bytes of the offending IP packet, rounded down to
 *         a multiple of 4. That is more than the IP header plus 8 bytes both RFCs require and all
 *         a sender's stack reads (the headers that identify its socket); it keeps the error small
 *         and its checksum one bpf_csum_diff() over a stack buffer.
 * No error is sent about an ICMP error, an IPv4 fragment other than the first, or a packet to a
 * multicast or broadcast address (RFC 1812 4.3.2.7, RFC 4443 2.4; packet too big about IPv6
 * multicast is allowed): those packets are dropped with TENET_DROP_ICMP_ERR_SUPPRESSED. A subnet
 * without a gateway address of the family cannot send one: TENET_DROP_ICMP_ERR_NO_SOURCE.
 */
#ifndef TENET_LIB_ICMP_ERR_H
#define TENET_LIB_ICMP_ERR_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/csum.h"
#include "lib/ctx.h"
#include "lib/eth.h"
#include "lib/l3.h"
#include "lib/redirect.h"
#include "lib/tables.h"

#define TENET_ICMP_QUOTE_MAX 128

#define TENET_ICMP_DEST_UNREACH 3
#define TENET_ICMP_FRAG_NEEDED 4
#define TENET_ICMP_TIME_EXCEEDED 11
#define TENET_ICMPV6_PKT_TOOBIG 2
#define TENET_ICMPV6_TIME_EXCEED 3

#define TENET_ICMP_ERR_TTL 64
#define TENET_ICMP_ERR_TOS 0xc0

struct tenet_icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 check;
	__be32 rest;
} __attribute__((packed));

struct tenet_icmp4_err_hdr {
	struct ethhdr eth;
	struct iphdr ip;
	struct tenet_icmp_hdr icmp;
} __attribute__((packed));

struct tenet_icmp6_err_hdr {
	struct ethhdr eth;
	struct ipv6hdr ip6;
	struct tenet_icmp_hdr icmp;
} __attribute__((packed));

/* Whether RFC 1812 / RFC 4443 forbid an error about the packet in l3. */
static __always_inline int tenet_icmp_err_forbidden(const struct tenet_ctx *ctx,
						    const struct tenet_l3 *l3, int too_big)
{
	int t;

	if (l3->family == TENET_AF_IPV4) {
		__u32 d = bpf_ntohl(l3->daddr[0]);

		if (l3->later_frag || (d >> 28) == 0xe || d == 0xffffffff)
			return 1;
		if (l3->proto == IPPROTO_ICMP) {
			t = tenet_l3_first_l4_byte(ctx, l3);
			return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
		}
		return 0;
	}
	if (!too_big && (bpf_ntohl(l3->daddr[0]) >> 24) == 0xff)
		return 1;
	if (l3->proto == IPPROTO_ICMPV6) {
		t = tenet_l3_first_l4_byte(ctx, l3);
		return t >= 0 && t < 128;
	}
	return 0;
}

/*
 * Turns the frame into the ICMP error (type, code, rest: host order) about it and redirects it back
 * to the VM on the port it came from. vsub: the port's virtual subnet. tc only. The quote and the
 * new headers are built in the per-CPU scratch buffers (they do not fit the stack).
 */
static __always_inline int tenet_icmp_error(struct tenet_ctx *ctx, const struct tenet_l3 *l3,
					    const struct tenet_port *port,
					    const struct tenet_vsubnet *vsub, __u8 type, __u8 code,
					    __u32 rest)
{
	struct __sk_buff *skb = ctx->raw;
	struct tenet_scratch *scratch;
	struct tenet_icmp_hdr *icmp;
	__u32 q, hlen;
	__u64 sum;
	int too_big = type == TENET_ICMPV6_PKT_TOOBIG && l3->family == TENET_AF_IPV6;

	if (tenet_icmp_err_forbidden(ctx, l3, too_big))
		return -TENET_DROP_ICMP_ERR_SUPPRESSED;
	if (l3->family == TENET_AF_IPV4 ? !vsub->gw_ip4 :
					  tenet_ipv6_is_unspecified((const __be32 *)vsub->gw_ip6))
		return -TENET_DROP_ICMP_ERR_NO_SOURCE;

	q = l3->len < TENET_ICMP_QUOTE_MAX ? l3->len : TENET_ICMP_QUOTE_MAX;
	q &= ~3u;
	/* Bounds for the verifier (clang must not drop the check it can prove). */
	asm volatile("" : "+r"(q));
	if (q < 20 || q > TENET_ICMP_QUOTE_MAX)
		return -TENET_DROP_REPLY_FAILED;
	scratch = tenet_scratch_get();
	if (!scratch || bpf_skb_load_bytes(skb, l3->off, scratch->quote, q) < 0)
		return -TENET_DROP_REPLY_FAILED;

	__builtin_memset(scratch->frame, 0, sizeof(scratch->frame));
	if (l3->family == TENET_AF_IPV4) {
		struct tenet_icmp4_err_hdr *h = (void *)scratch->frame;

		tenet_mac_copy(h->eth.h_dest, port->mac);
		tenet_mac_copy(h->eth.h_source, vsub->gw_mac);
		h->eth.h_proto = bpf_htons(ETH_P_IP);
		h->ip.version = 4;
		h->ip.ihl = 5;
		h->ip.tos = TENET_ICMP_ERR_TOS;
		h->ip.tot_len = bpf_htons(sizeof(h->ip) + sizeof(h->icmp) + q);
		h->ip.ttl = TENET_ICMP_ERR_TTL;
		h->ip.protocol = IPPROTO_ICMP;
		h->ip.saddr = vsub->gw_ip4;
		h->ip.daddr = l3->saddr[0];
		h->ip.check =
			tenet_csum_fold(bpf_csum_diff(NULL, 0, (void *)&h->ip, sizeof(h->ip), 0));
		icmp = (void *)(scratch->frame + offsetof(struct tenet_icmp4_err_hdr, icmp));
		hlen = sizeof(*h);
		sum = 0;
	} else {
		struct tenet_icmp6_err_hdr *h = (void *)scratch->frame;
		__be32 pseudo[2];

		tenet_mac_copy(h->eth.h_dest, port->mac);
		tenet_mac_copy(h->eth.h_source, vsub->gw_mac);
		h->eth.h_proto = bpf_htons(ETH_P_IPV6);
		h->ip6.version = 6;
		h->ip6.payload_len = bpf_htons(sizeof(h->icmp) + q);
		h->ip6.nexthdr = IPPROTO_ICMPV6;
		h->ip6.hop_limit = TENET_ICMP_ERR_TTL;
		__builtin_memcpy(&h->ip6.saddr, vsub->gw_ip6, 16);
		__builtin_memcpy(&h->ip6.daddr, l3->saddr, 16);
		pseudo[0] = bpf_htonl(sizeof(h->icmp) + q);
		pseudo[1] = bpf_htonl(IPPROTO_ICMPV6);
		sum = bpf_csum_diff(NULL, 0, (void *)&h->ip6.saddr, 32, 0);
		sum = bpf_csum_diff(NULL, 0, pseudo, sizeof(pseudo), sum);
		icmp = (void *)(scratch->frame + offsetof(struct tenet_icmp6_err_hdr, icmp));
		hlen = sizeof(*h);
	}
	icmp->type = type;
	icmp->code = code;
	icmp->rest = bpf_htonl(rest);
	sum = bpf_csum_diff(NULL, 0, (void *)icmp, sizeof(*icmp), sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)scratch->quote, q, sum);
	icmp->check = tenet_csum_fold(sum);

	if (bpf_skb_change_tail(skb, hlen + q, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 0, scratch->frame, hlen, 0) < 0 ||
	    bpf_skb_store_bytes(skb, hlen, scratch->quote, q, 0) < 0)
		return -TENET_DROP_REPLY_FAILED;
	return tenet_redirect(ctx->ifindex);
}

#endif /* TENET_LIB_ICMP_ERR_H */
