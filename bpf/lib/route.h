/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The distributed router: what happens to a packet a VM sends to its virtual subnet's gateway MAC.
 * Every host routes its own VMs' packets (no hop through a central router), from the customer
 * routes of the port's routing domain:
 *   1. longest-prefix match of the destination in the routing domain, else drop;
 *   2. the route's virtual subnet must be live and in the same routing domain, else drop;
 *   3. (the caller) TTL / hop limit <= 1: ICMP time exceeded back to the VM;
 *   4. the next hop is the destination itself (on-link) or the route's next-hop CA (gateway
 *      route); its lookup record in the route's virtual subnet gives MAC and location;
 *   5. (after the MTU check) the rewrite: TTL / hop limit - 1 (IPv4 checksum updated with
 *      bpf_l3_csum_replace), Ethernet source = the destination subnet's gateway MAC, destination =
 *      the record's MAC.
 */
#ifndef TENET_LIB_ROUTE_H
#define TENET_LIB_ROUTE_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/ctx.h"
#include "lib/eth.h"
#include "lib/gen.h"
#include "lib/l3.h"

/* Where a routed packet goes: the destination subnet and the CA of the next hop in it. */
struct tenet_route_hop {
	__be32 target[4];
	__u32 vsid;
	__u8 gw_mac[6]; /* the destination subnet's gateway MAC: the new source MAC */
	__u8 pad[2];
};

static __always_inline int tenet_route_resolve(__u32 gen, const struct tenet_port *port,
					       const struct tenet_l3 *l3,
					       struct tenet_route_hop *hop)
{
	const struct tenet_vsubnet *vsub;
	const struct tenet_route *rt;

	rt = tenet_route_get(gen, port->rdid, l3->family, l3->daddr);
	if (!rt)
		return -TENET_DROP_ROUTE_UNKNOWN;
	vsub = tenet_vsubnet_get(gen, rt->vsid);
	if (!vsub || vsub->rdid != port->rdid)
		return -TENET_DROP_ROUTE_VSID_UNKNOWN;
	hop->vsid = rt->vsid;
	tenet_mac_copy(hop->gw_mac, vsub->gw_mac);
	if (rt->flags & TENET_ROUTE_GATEWAY)
		__builtin_memcpy(hop->target, rt->nexthop, 16);
	else
		__builtin_memcpy(hop->target, l3->daddr, 16);
	return 0;
}

/* TTL / hop limit - 1 and the new MACs. tc only; l3->ttl > 1. */
static __always_inline int tenet_route_rewrite(struct tenet_ctx *ctx, const struct tenet_l3 *l3,
					       const __u8 *src_mac, const __u8 *dst_mac)
{
	struct __sk_buff *skb = ctx->raw;
	__u8 macs[12];
	__u8 ttl = l3->ttl - 1;

	__builtin_memcpy(macs, dst_mac, 6);
	__builtin_memcpy(macs + 6, src_mac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return -TENET_DROP_ENCAP_FAILED;
	if (l3->family == TENET_AF_IPV4) {
		__be16 old_word = bpf_htons((__u16)l3->ttl << 8 | l3->proto);
		__be16 new_word = bpf_htons((__u16)ttl << 8 | l3->proto);

		if (bpf_skb_store_bytes(skb, l3->off + offsetof(struct iphdr, ttl), &ttl, 1, 0) <
			    0 ||
		    bpf_l3_csum_replace(skb, l3->off + offsetof(struct iphdr, check), old_word,
					new_word, sizeof(__u16)) < 0)
			return -TENET_DROP_ENCAP_FAILED;
	} else {
		if (bpf_skb_store_bytes(skb, l3->off + offsetof(struct ipv6hdr, hop_limit), &ttl, 1,
					0) < 0)
			return -TENET_DROP_ENCAP_FAILED;
	}
	tenet_ctx_reload(ctx);
	return 0;
}

#endif /* TENET_LIB_ROUTE_H */
