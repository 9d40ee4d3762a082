// SPDX-License-Identifier: GPL-2.0
/*
 * tc ingress on a VM port (the host side of the VM's veth or tap): everything a VM sends meets
 * tenet_port_ingress first, and leaves it answered, delivered, encapsulated or dropped, never
 * passed to the host stack. In order:
 *   1. count the frame on the port (rx); read the active policy generation once;
 *   2. the port must be live in that generation (else drop: fail closed);
 *   3. headers validated (lib/parse.h); VLAN-tagged frames dropped (VMs get untagged ports);
 *   4. the source MAC must be the port's; the port's virtual subnet must be live;
 *   5. ARP: answered from the lookup records (lib/arp.h);
 *      IPv6 ND: answered likewise (lib/nd.h);
 *      IPv4/IPv6: source check, switching or routing, MTU, then host-local delivery or NVGRE
 *      encapsulation (lib/forward.h);
 *      anything else: dropped.
 * Every drop carries its reason (abi/drop_reasons.h). A frame redirected back to the VM (ARP and
 * ND answers, ICMP errors) or to another VM port passes that port's tc egress (tenet_tc_tx),
 * which counts it there; encapsulated frames go to the physical NIC's egress.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/arp.h"
#include "lib/btf_anchors.h"
#include "lib/counters.h"
#include "lib/ctx.h"
#include "lib/drop.h"
#include "lib/eth.h"
#include "lib/forward.h"
#include "lib/gen.h"
#include "lib/l3.h"
#include "lib/nd.h"
#include "lib/parse.h"
#include "lib/tables.h"

static __always_inline int tenet_port_rx(struct tenet_ctx *ctx)
{
	struct __sk_buff *skb = ctx->raw;
	const struct tenet_vsubnet *vsub;
	const struct tenet_port *port;
	struct tenet_pkt pkt;
	struct tenet_l3 l3;
	struct ethhdr *eth;
	__u32 gen = tenet_gen_active();
	int ret, nd;

	port = tenet_port_get(gen, ctx->ifindex);
	if (!port)
		return -TENET_DROP_PORT_UNKNOWN;
	ret = tenet_parse(ctx, &pkt);
	if (ret < 0)
		return ret;
	/* tc ingress sees an outer tag the kernel has already taken off in skb->vlan_present. */
	if (pkt.vlan_depth || skb->vlan_present)
		return -TENET_DROP_PORT_VLAN_TAGGED;
	eth = ctx->data;
	if ((void *)(eth + 1) > ctx->data_end)
		return -TENET_DROP_ETH_TRUNCATED;
	if (!tenet_mac_eq(eth->h_source, port->mac))
		return -TENET_DROP_PORT_SRC_MAC_SPOOF;
	vsub = tenet_vsubnet_get(gen, port->vsid);
	if (!vsub)
		return -TENET_DROP_PORT_VSID_UNKNOWN;

	if (pkt.l3_proto == ETH_P_ARP)
		return tenet_arp_from_vm(ctx, gen, port);
	if (pkt.l3_proto != ETH_P_IP && pkt.l3_proto != ETH_P_IPV6)
		return -TENET_DROP_PORT_ETHERTYPE;
	ret = tenet_l3_load(ctx, &pkt, &l3);
	if (ret < 0)
		return ret;
	nd = tenet_nd_type(ctx, &l3);
	if (nd)
		return tenet_nd_from_vm(ctx, gen, port, &l3, nd);
	return tenet_ip_from_vm(ctx, &pkt, &l3, gen, port, vsub);
}

SEC("tc")
int tenet_port_ingress(struct __sk_buff *skb)
{
	struct tenet_ctx ctx;
	int ret;

	tenet_ctx_from_skb(&ctx, skb, TENET_DIR_RX);
	tenet_count_port(&ctx);
	ret = tenet_port_rx(&ctx);
	if (ret < 0)
		return tenet_drop(&ctx, ret);
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
