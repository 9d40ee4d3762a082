/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * IPv4 and IPv6 packets from a VM (tc ingress on its port), after the port checks of
 * tenet_port.bpf.c and outside ND (lib/nd.h). In order (agent/model/ does the same):
 *   1. IPv6 link-local source: drop (allowed only for ND);
 *   2. the source CA must be a local lookup record of this port in its virtual subnet, else spoof;
 *   3. to the subnet's gateway MAC: routed (lib/route.h): route, TTL / hop limit <= 1 gets ICMP
 *      time exceeded, the next hop's record in the route's subnet;
 *      to any other MAC: switched in the port's subnet: the destination's record, whose MAC must
 *      be the frame's destination MAC;
 *   4. a gateway record is no destination (the router answers only ARP and ND);
 *   5. MTU: a packet longer than the port's tenant MTU (for GSO: headers + gso_size) gets ICMP
 *      fragmentation needed (IPv4 with DF) or packet too big (IPv6), advertising the tenant MTU;
 *      IPv4 without DF is dropped (it cannot be fragmented here). A port MTU of 0 means no limit;
 *   6. routed packets are rewritten (lib/route.h);
 *   7. a LOCAL record: redirected to its port (host-local delivery, no encapsulation); otherwise
 *      NVGRE-encapsulated to the record's PA (lib/nvgre.h).
 */
#ifndef TENET_LIB_FORWARD_H
#define TENET_LIB_FORWARD_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>

#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/acl.h"
#include "lib/ctx.h"
#include "lib/eth.h"
#include "lib/gen.h"
#include "lib/icmp_err.h"
#include "lib/l3.h"
#include "lib/meter.h"
#include "lib/nvgre.h"
#include "lib/parse.h"
#include "lib/qos.h"
#include "lib/redirect.h"
#include "lib/route.h"

/* Length of the IP packets the frame in ctx puts on the wire: for GSO, one segment's. */
static __always_inline __u32 tenet_l3_wire_len(const struct tenet_ctx *ctx,
					       const struct tenet_pkt *pkt,
					       const struct tenet_l3 *l3)
{
	struct __sk_buff *skb = ctx->raw;
	__u32 gso = skb->gso_size;
	__u32 l4_hdr = 0;

	if (!gso)
		return l3->len;
	if ((pkt->flags & TENET_PKT_F_L4) && pkt->l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = ctx->data + (pkt->l4_off & 0xff);

		if ((void *)(th + 1) <= ctx->data_end)
			l4_hdr = th->doff * 4;
	} else if (pkt->flags & TENET_PKT_F_L4) {
		l4_hdr = 8;
	}
	return (pkt->l4_off ? pkt->l4_off - l3->off : l3->hdr_len) + l4_hdr + gso;
}

/* 0 if the packet fits the port's MTU, else the ICMP error's verdict or a drop. */
static __always_inline int tenet_mtu_check(struct tenet_ctx *ctx, const struct tenet_pkt *pkt,
					   const struct tenet_l3 *l3, const struct tenet_port *port,
					   const struct tenet_vsubnet *vsub)
{
	if (!port->mtu || tenet_l3_wire_len(ctx, pkt, l3) <= port->mtu)
		return 0;
	if (l3->family == TENET_AF_IPV4) {
		if (!l3->df)
			return -TENET_DROP_MTU_EXCEEDED;
		return tenet_icmp_error(ctx, l3, port, vsub, TENET_ICMP_DEST_UNREACH,
					TENET_ICMP_FRAG_NEEDED, port->mtu);
	}
	return tenet_icmp_error(ctx, l3, port, vsub, TENET_ICMPV6_PKT_TOOBIG, 0, port->mtu);
}

/* vsub: the port's virtual subnet. */
static __always_inline int tenet_ip_from_vm(struct tenet_ctx *ctx, const struct tenet_pkt *pkt,
					    const struct tenet_l3 *l3, __u32 gen,
					    const struct tenet_port *port,
					    const struct tenet_vsubnet *vsub)
{
	const struct tenet_lookup_record *rec;
	struct tenet_route_hop hop;
	struct ethhdr *eth = ctx->data;
	__u32 vsid = port->vsid;
	int routed, ret;

	if (l3->family == TENET_AF_IPV6 && tenet_ipv6_is_link_local(l3->saddr))
		return -TENET_DROP_IPV6_LINK_LOCAL_SRC;
	rec = tenet_record_get(gen, port->vsid, l3->family, l3->saddr);
	if (!rec || !(rec->flags & TENET_RECORD_LOCAL) || rec->ifindex != ctx->ifindex)
		return -TENET_DROP_IP_SRC_SPOOF;
	/* QoS of the source port: HTB class for the uplink, tenant caps (lib/qos.h). */
	ret = tenet_qos_outbound(ctx, l3);
	if (ret < 0)
		return ret;

	if ((void *)(eth + 1) > ctx->data_end)
		return -TENET_DROP_ETH_TRUNCATED;
	routed = tenet_mac_eq(eth->h_dest, vsub->gw_mac);
	if (routed) {
		ret = tenet_route_resolve(gen, port, l3, &hop);
		if (ret < 0)
			return ret;
		if (l3->ttl <= 1)
			return tenet_icmp_error(ctx, l3, port, vsub,
						l3->family == TENET_AF_IPV4 ?
							TENET_ICMP_TIME_EXCEEDED :
							TENET_ICMPV6_TIME_EXCEED,
						0, 0);
		vsid = hop.vsid;
		rec = tenet_record_get(gen, vsid, l3->family, hop.target);
		if (!rec)
			return -TENET_DROP_DST_UNKNOWN;
	} else {
		rec = tenet_record_get(gen, vsid, l3->family, l3->daddr);
		if (!rec)
			return -TENET_DROP_DST_UNKNOWN;
		if (!tenet_mac_eq(eth->h_dest, rec->mac))
			return -TENET_DROP_DST_MAC_MISMATCH;
	}
	if (rec->flags & TENET_RECORD_GATEWAY)
		return -TENET_DROP_DST_IS_GATEWAY;
	/* Outbound ACL of the source port, once the remote end's subnet is known (lib/acl.h). */
	ret = tenet_acl(ctx, l3->off, l3->family, ctx->ifindex, TENET_ACL_OUT, vsid);
	if (ret < 0)
		return ret;

	ret = tenet_mtu_check(ctx, pkt, l3, port, vsub);
	if (ret)
		return ret;
	if (routed) {
		ret = tenet_route_rewrite(ctx, l3, hop.gw_mac, rec->mac);
		if (ret < 0)
			return ret;
	}
	if (rec->flags & TENET_RECORD_LOCAL) {
		/* Inbound stages of the destination port (ACL, QoS, meter): before delivery. */
		ret = tenet_acl(ctx, l3->off, l3->family, rec->ifindex, TENET_ACL_IN, port->vsid);
		if (ret < 0)
			return ret;
		ret = tenet_qos_local(ctx, rec->ifindex);
		if (ret < 0)
			return ret;
		/* Metered last (lib/meter.h): only what leaves one port and reaches the other. */
		tenet_meter(gen, ctx->ifindex, TENET_DIR_RX, l3->family, l3->daddr, ctx->len);
		tenet_meter(gen, rec->ifindex, TENET_DIR_TX, l3->family, l3->saddr, ctx->len);
		return tenet_redirect(rec->ifindex);
	}
	/* Outbound meter of the source port: what ACL, QoS and the MTU let out (lib/meter.h). */
	tenet_meter(gen, ctx->ifindex, TENET_DIR_RX, l3->family, l3->daddr, ctx->len);
	return tenet_nvgre_encap(ctx, pkt, l3, gen, port, rec, vsid);
}

#endif /* TENET_LIB_FORWARD_H */
