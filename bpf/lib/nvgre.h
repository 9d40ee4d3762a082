/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * NVGRE (RFC 7637): encapsulation of a VM's frame towards the host of a remote CA (tc, on the VM
 * port), and validation and decapsulation of NVGRE from the wire (XDP, on the physical NIC).
 *
 * The encapsulated frame, 42 bytes in front of the inner Ethernet frame:
 *   outer Ethernet: to the underlay next hop of the remote PA, from the MAC of the NIC that owns
 *                   the port's PA, EtherType IPv4;
 *   outer IPv4:     IHL 5, DSCP of the inner packet, ECN per RFC 6040 normal mode (lib/ecn.h),
 *                   total length, ID 0, DF, TTL 64, protocol 47, checksum, from the port's PA to
 *                   the record's PA;
 *   GRE:            flags/version 0x2000 (key present only), protocol 0x6558, key
 *                   VSID << 8 | FlowID (lib/flow_hash.h).
 * bpf_skb_adjust_room() inserts the 42 bytes after the original Ethernet header, which becomes the
 * outer one, and marks the skb as GRE-encapsulated Ethernet (inner headers, SKB_GSO_GRE) so TSO
 * and GSO segment it correctly; BPF_F_ADJ_ROOM_FIXED_GSO keeps gso_size, because the tenant MTU
 * (underlay MTU - 42) already leaves room for the outer headers and shrinking the MSS would only
 * make segments smaller than they need be.
 *
 * Decapsulation accepts only IPv4 protocol 47 to a live local PA (anything else is host traffic
 * and passes untouched): the checks in order are in tenet_nvgre_decap(). The outer headers (14 +
 * IHL * 4 + 8 bytes) are removed with bpf_xdp_adjust_head(), Ethernet padding after the outer IP
 * packet with bpf_xdp_adjust_tail(), and the inner frame is redirected to the VM port of its
 * destination record.
 */
#ifndef TENET_LIB_NVGRE_H
#define TENET_LIB_NVGRE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/counters.h"
#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/acl.h"
#include "lib/counters.h"
#include "lib/csum.h"
#include "lib/ctx.h"
#include "lib/ecn.h"
#include "lib/eth.h"
#include "lib/flow_hash.h"
#include "lib/gen.h"
#include "lib/l3.h"
#include "lib/meter.h"
#include "lib/parse.h"
#include "lib/qos.h"
#include "lib/redirect.h"
#include "lib/tables.h"

#define TENET_NVGRE_FLAGS 0x2000 /* K bit; C, S, version 0 */
#define TENET_NVGRE_PROTO ETH_P_TEB
#define TENET_NVGRE_OUTER_TTL 64
/* Outer IPv4 (20) + GRE with key (8) + inner Ethernet (14): what adjust_room inserts. */
#define TENET_NVGRE_ROOM 42
#define TENET_NVGRE_ADJ_FLAGS                                              \
	(BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_GRE |      \
	 BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN) | \
	 BPF_F_ADJ_ROOM_FIXED_GSO)

struct tenet_gre_key_hdr {
	__be16 flags;
	__be16 proto;
	__be32 key;
};

struct tenet_nvgre_outer {
	struct ethhdr eth;
	struct iphdr ip;
	struct tenet_gre_key_hdr gre;
	struct ethhdr inner;
} __attribute__((packed));

/* Adds one packet of len bytes to the VSID's encap (decap = 0) or decap counters. */
static __always_inline void tenet_count_vsid(__u32 vsid, int decap, __u32 len)
{
	struct tenet_vsid_counters *c;

	c = bpf_map_lookup_elem(&TENET_MAP_VSID_COUNTERS, &vsid);
	if (!c) {
		const void *zero = tenet_zero_get();

		if (!zero)
			return;
		_Static_assert(sizeof(struct tenet_vsid_counters) <= sizeof(struct tenet_zero),
			       "tenet_zero must cover a VSID counter");
		/* Sets this CPU's copy and zeroes the others; another CPU may win the race. */
		bpf_map_update_elem(&TENET_MAP_VSID_COUNTERS, &vsid, zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&TENET_MAP_VSID_COUNTERS, &vsid);
		if (!c)
			return;
	}
	if (decap) {
		c->decap_packets++;
		c->decap_bytes += len;
	} else {
		c->encap_packets++;
		c->encap_bytes += len;
	}
}

/* FlowID of the (inner) packet in l3; pkt says whether its ports are there. */
static __always_inline __u8 tenet_nvgre_flow_id(const struct tenet_pkt *pkt,
						const struct tenet_l3 *l3)
{
	__be16 sport = 0, dport = 0;

	if ((pkt->flags & TENET_PKT_F_L4) && !(pkt->flags & TENET_PKT_F_FRAGMENT)) {
		sport = pkt->sport;
		dport = pkt->dport;
	}
	return tenet_flow_id(l3->saddr, l3->daddr, l3->family == TENET_AF_IPV4 ? 1 : 4, sport,
			     dport, l3->proto);
}

/*
 * Encapsulates the frame in ctx (from a VM on port, already rewritten if routed) for the remote
 * record rec of virtual subnet vsid and redirects it to the NIC of the port's PA. tc only.
 */
static __always_inline int tenet_nvgre_encap(struct tenet_ctx *ctx, const struct tenet_pkt *pkt,
					     const struct tenet_l3 *l3, __u32 gen,
					     const struct tenet_port *port,
					     const struct tenet_lookup_record *rec, __u32 vsid)
{
	struct __sk_buff *skb = ctx->raw;
	const struct tenet_underlay_nh *nh;
	const struct tenet_local_pa *lpa;
	struct tenet_nvgre_outer h;
	__u32 inner_len = skb->len;
	__u8 flow_id;

	lpa = tenet_local_pa_get(gen, port->pa);
	if (!lpa)
		return -TENET_DROP_ENCAP_NO_LOCAL_PA;
	nh = tenet_underlay_get(rec->pa);
	if (!nh)
		return -TENET_DROP_ENCAP_NO_UNDERLAY_NH;
	flow_id = tenet_nvgre_flow_id(pkt, l3);

	__builtin_memset(&h, 0, sizeof(h));
	if (bpf_skb_load_bytes(skb, 0, &h.inner, sizeof(h.inner)) < 0)
		return -TENET_DROP_ENCAP_FAILED;
	tenet_mac_copy(h.eth.h_dest, nh->mac);
	tenet_mac_copy(h.eth.h_source, lpa->mac);
	h.eth.h_proto = bpf_htons(ETH_P_IP);
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tos = tenet_ecn_encap_tos(l3->tos);
	h.ip.tot_len = bpf_htons(inner_len + sizeof(h.ip) + sizeof(h.gre));
	h.ip.frag_off = bpf_htons(TENET_IP_DF);
	h.ip.ttl = TENET_NVGRE_OUTER_TTL;
	h.ip.protocol = IPPROTO_GRE;
	h.ip.saddr = port->pa;
	h.ip.daddr = rec->pa;
	h.ip.check = tenet_csum_fold(bpf_csum_diff(NULL, 0, (void *)&h.ip, sizeof(h.ip), 0));
	h.gre.flags = bpf_htons(TENET_NVGRE_FLAGS);
	h.gre.proto = bpf_htons(TENET_NVGRE_PROTO);
	h.gre.key = bpf_htonl(vsid << 8 | flow_id);

	if (bpf_skb_adjust_room(skb, TENET_NVGRE_ROOM, BPF_ADJ_ROOM_MAC, TENET_NVGRE_ADJ_FLAGS) < 0)
		return -TENET_DROP_ENCAP_FAILED;
	if (bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0) < 0)
		return -TENET_DROP_ENCAP_FAILED;
	tenet_count_vsid(vsid, 0, inner_len);
	return tenet_redirect(lpa->ifindex);
}

/*
 * The lookup record that vouches for the inner source of a packet in virtual subnet vsub when the
 * source has no record there. That is the normal case for routed traffic: the sending host's
 * distributed router encapsulates with the destination's VSID, and the source lives in another
 * subnet of the routing domain. Its subnet is found as the router found the destination's, by the
 * routing domain's customer routes; for a gateway route, the record of the next hop (a source
 * behind a virtual appliance arrives from the appliance's host). NULL if there is none.
 */
static __always_inline const struct tenet_lookup_record *
tenet_nvgre_routed_src(__u32 gen, const struct tenet_vsubnet *vsub, const struct tenet_l3 *in,
		       __u32 *src_vsid)
{
	const struct tenet_vsubnet *svsub;
	const struct tenet_route *rt;

	rt = tenet_route_get(gen, vsub->rdid, in->family, in->saddr);
	if (!rt)
		return NULL;
	svsub = tenet_vsubnet_get(gen, rt->vsid);
	if (!svsub || svsub->rdid != vsub->rdid)
		return NULL;
	*src_vsid = rt->vsid;
	if (rt->flags & TENET_ROUTE_GATEWAY)
		return tenet_record_get(gen, rt->vsid, in->family, rt->nexthop);
	return tenet_record_get(gen, rt->vsid, in->family, in->saddr);
}

/*
 * NVGRE from the wire (XDP). Returns 0 when the frame is not NVGRE to a local PA (pass it on),
 * the XDP_REDIRECT verdict when it was decapsulated and sent to its VM port, or a negated drop
 * reason. The checks, in order:
 *   outer IPv4 (untagged) protocol 47 to a live local PA, else pass;
 *   an outer fragment; GRE cut off; flags/version not 0x2000; protocol not 0x6558; VSID not
 *   live; inner Ethernet or IP header cut off or longer than the outer payload; inner 802.1Q;
 *   inner not IPv4/IPv6 (or bad version, IHL, length); the inner source's record (in the VSID,
 *   or for a routed packet in the subnet the routing domain's routes give) not naming the outer
 *   source as its PA; inner destination not a local record of the VSID; outer CE over inner
 *   Not-ECT.
 */
static __always_inline int tenet_nvgre_decap(struct tenet_ctx *ctx, const struct tenet_pkt *pkt,
					     __u32 gen)
{
	struct xdp_md *xdp = ctx->raw;
	const struct tenet_lookup_record *src, *dst;
	const struct tenet_vsubnet *vsub;
	struct tenet_gre_key_hdr *gre;
	struct ethhdr *ieth;
	struct iphdr *iph;
	struct tenet_l3 in;
	__u32 gre_off, inner_off, ip_end, avail, vsid, src_vsid, frame_len, tail;
	__u8 *ecn_byte;
	int ecn, old_ecn, ret;

	if (pkt->l3_proto != ETH_P_IP || pkt->vlan_depth || pkt->l4_proto != IPPROTO_GRE)
		return 0;
	iph = ctx->data + pkt->l3_off;
	if ((void *)(iph + 1) > ctx->data_end)
		return 0;
	if (!tenet_local_pa_get(gen, iph->daddr))
		return 0;
	if (pkt->flags & TENET_PKT_F_FRAGMENT)
		return -TENET_DROP_NVGRE_OUTER_FRAGMENT;

	gre_off = pkt->l3_off + iph->ihl * 4;
	ip_end = pkt->l3_off + pkt->l3_len;
	if (gre_off + 4 > ip_end)
		return -TENET_DROP_NVGRE_TRUNCATED;
	gre = ctx->data + (gre_off & 0xff);
	if ((void *)gre + 4 > ctx->data_end)
		return -TENET_DROP_NVGRE_TRUNCATED;
	if (gre->flags != bpf_htons(TENET_NVGRE_FLAGS))
		return -TENET_DROP_NVGRE_BAD_FLAGS;
	if (gre->proto != bpf_htons(TENET_NVGRE_PROTO))
		return -TENET_DROP_NVGRE_BAD_PROTOCOL;
	if (gre_off + sizeof(*gre) > ip_end || (void *)(gre + 1) > ctx->data_end)
		return -TENET_DROP_NVGRE_TRUNCATED;
	vsid = bpf_ntohl(gre->key) >> 8;
	vsub = tenet_vsubnet_get(gen, vsid);
	if (!vsub)
		return -TENET_DROP_NVGRE_VSID_UNKNOWN;

	inner_off = gre_off + sizeof(*gre);
	avail = ip_end - inner_off;
	ieth = (void *)(gre + 1);
	if (avail < sizeof(*ieth) || (void *)(ieth + 1) > ctx->data_end)
		return -TENET_DROP_NVGRE_INNER_TRUNCATED;
	avail -= sizeof(*ieth);
	if (tenet_proto_is_vlan(ieth->h_proto))
		return -TENET_DROP_NVGRE_INNER_VLAN;

	__builtin_memset(&in, 0, sizeof(in));
	if (ieth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip4 = (void *)(ieth + 1);
		__u32 ihl, tot;

		if (avail < sizeof(*ip4) || (void *)(ip4 + 1) > ctx->data_end)
			return -TENET_DROP_NVGRE_INNER_TRUNCATED;
		ihl = ip4->ihl * 4;
		if (ip4->version != 4 || ihl < sizeof(*ip4))
			return -TENET_DROP_NVGRE_INNER_MALFORMED;
		tot = bpf_ntohs(ip4->tot_len);
		if (ihl > avail || tot > avail)
			return -TENET_DROP_NVGRE_INNER_TRUNCATED;
		if (tot < ihl)
			return -TENET_DROP_NVGRE_INNER_MALFORMED;
		in.family = TENET_AF_IPV4;
		in.saddr[0] = ip4->saddr;
		in.daddr[0] = ip4->daddr;
		in.tos = ip4->tos;
		ecn_byte = &ip4->tos;
	} else if (ieth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(ieth + 1);

		if (avail < sizeof(*ip6) || (void *)(ip6 + 1) > ctx->data_end)
			return -TENET_DROP_NVGRE_INNER_TRUNCATED;
		if (ip6->version != 6)
			return -TENET_DROP_NVGRE_INNER_MALFORMED;
		if (sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > avail)
			return -TENET_DROP_NVGRE_INNER_TRUNCATED;
		in.family = TENET_AF_IPV6;
		__builtin_memcpy(in.saddr, &ip6->saddr, 16);
		__builtin_memcpy(in.daddr, &ip6->daddr, 16);
		in.tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		ecn_byte = &ip6->flow_lbl[0];
	} else {
		return -TENET_DROP_NVGRE_INNER_MALFORMED;
	}

	src_vsid = vsid;
	src = tenet_record_get(gen, vsid, in.family, in.saddr);
	if (!src)
		src = tenet_nvgre_routed_src(gen, vsub, &in, &src_vsid);
	if (!src || src->pa != iph->saddr)
		return -TENET_DROP_NVGRE_FOREIGN_PA;
	dst = tenet_record_get(gen, vsid, in.family, in.daddr);
	if (!dst || !(dst->flags & TENET_RECORD_LOCAL))
		return -TENET_DROP_NVGRE_DST_NOT_LOCAL;

	/* Inbound ACL of the destination port, on the inner packet before it moves (lib/acl.h). */
	ret = tenet_acl(ctx, inner_off + sizeof(*ieth), in.family, dst->ifindex, TENET_ACL_IN,
			src_vsid);
	if (ret < 0)
		return ret;

	old_ecn = in.tos & TENET_ECN_MASK;
	ecn = tenet_ecn_decap(iph->tos & TENET_ECN_MASK, old_ecn);
	if (ecn < 0)
		return -TENET_DROP_NVGRE_ECN_CE_NOT_ECT;
	if (ecn != old_ecn) {
		if (in.family == TENET_AF_IPV4) {
			struct iphdr *ip4 = (void *)(ieth + 1);
			__be16 old_word, new_word;

			if ((void *)(ip4 + 1) > ctx->data_end)
				return -TENET_DROP_DECAP_FAILED;
			old_word = *(__be16 *)ip4;
			ip4->tos = (ip4->tos & ~TENET_ECN_MASK) | ecn;
			new_word = *(__be16 *)ip4;
			tenet_csum_replace2(&ip4->check, old_word, new_word);
		} else {
			/* Traffic class bits 1..0 are bits 5..4 of the second byte. */
			*ecn_byte = (*ecn_byte & ~(TENET_ECN_MASK << 4)) | (ecn << 4);
		}
	}

	frame_len = ctx->len;
	tail = frame_len > ip_end ? frame_len - ip_end : 0;
	if (bpf_xdp_adjust_head(xdp, inner_off))
		return -TENET_DROP_DECAP_FAILED;
	if (tail && bpf_xdp_adjust_tail(xdp, -(int)tail))
		return -TENET_DROP_DECAP_FAILED;
	tenet_ctx_reload(ctx);

	ret = tenet_qos_inbound(ctx, dst->ifindex);
	if (ret < 0)
		return ret;
	tenet_count_vsid(vsid, 1, ctx->len);
	{
		struct tenet_ctx out = *ctx;

		out.ifindex = dst->ifindex;
		out.direction = TENET_DIR_TX;
		tenet_count_port(&out);
	}
	/* Inbound meter of the destination port, last: what is delivered (lib/meter.h). */
	tenet_meter(gen, dst->ifindex, TENET_DIR_TX, in.family, in.saddr, ctx->len);
	return tenet_redirect(dst->ifindex);
}

#endif /* TENET_LIB_NVGRE_H */
