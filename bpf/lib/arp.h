/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ARP from a VM, answered in the datapath: ARP never leaves the port, so there is no flooding and
 * a VM learns only what the lookup records say. In order (agent/model/ does the same):
 *   1. cut off, not Ethernet/IPv4 (htype 1, ptype 0x0800, 6/4), op not request/reply: malformed;
 *   2. sender MAC not the port's: spoof;
 *   3. sender IP 0.0.0.0: an RFC 5227 probe, consumed;
 *   4. sender IP not a local record of this port: spoof;
 *   5. sender IP = target IP: gratuitous, consumed;
 *   6. a reply: consumed (the datapath never asks, so nobody waits for it);
 *   7. a request for a CA with a lookup record in the port's virtual subnet (a VM here or
 *      elsewhere, or the gateway): the frame is rewritten into the reply in place (Ethernet
 *      to the asker from the record's MAC; op 2; sender = the record's MAC and the asked IP;
 *      target = the asker) and redirected back out of the port; trailing padding is left as it
 *      was. Any other target: counted drop.
 */
#ifndef TENET_LIB_ARP_H
#define TENET_LIB_ARP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>

#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/ctx.h"
#include "lib/eth.h"
#include "lib/gen.h"
#include "lib/redirect.h"

#define TENET_ARP_REQUEST 1
#define TENET_ARP_REPLY 2

/* An Ethernet/IPv4 ARP packet (RFC 826). */
struct tenet_arp {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

static __always_inline int tenet_arp_from_vm(struct tenet_ctx *ctx, __u32 gen,
					     const struct tenet_port *port)
{
	struct ethhdr *eth = ctx->data;
	struct tenet_arp *arp = ctx->data + sizeof(*eth);
	const struct tenet_lookup_record *rec;
	__u8 spa[4], tpa[4];
	__u16 op;

	if ((void *)(arp + 1) > ctx->data_end)
		return -TENET_DROP_ARP_MALFORMED;
	op = bpf_ntohs(arp->op);
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4 || (op != TENET_ARP_REQUEST && op != TENET_ARP_REPLY))
		return -TENET_DROP_ARP_MALFORMED;
	if (!tenet_mac_eq(arp->sha, port->mac))
		return -TENET_DROP_ARP_SPOOF;
	__builtin_memcpy(spa, arp->spa, 4);
	__builtin_memcpy(tpa, arp->tpa, 4);
	if ((spa[0] | spa[1] | spa[2] | spa[3]) == 0)
		return -TENET_DROP_ARP_PROBE;
	rec = tenet_record_get(gen, port->vsid, TENET_AF_IPV4, spa);
	if (!rec || !(rec->flags & TENET_RECORD_LOCAL) || rec->ifindex != ctx->ifindex)
		return -TENET_DROP_ARP_SPOOF;
	if (spa[0] == tpa[0] && spa[1] == tpa[1] && spa[2] == tpa[2] && spa[3] == tpa[3])
		return -TENET_DROP_ARP_GRATUITOUS;
	if (op == TENET_ARP_REPLY)
		return -TENET_DROP_ARP_REPLY;

	rec = tenet_record_get(gen, port->vsid, TENET_AF_IPV4, tpa);
	if (!rec)
		return -TENET_DROP_ARP_UNKNOWN_TARGET;

	/* The lookups do not move the packet: eth and arp are still valid. */
	tenet_mac_copy(eth->h_dest, port->mac);
	tenet_mac_copy(eth->h_source, rec->mac);
	arp->op = bpf_htons(TENET_ARP_REPLY);
	tenet_mac_copy(arp->tha, port->mac);
	tenet_mac_copy(arp->sha, rec->mac);
	__builtin_memcpy(arp->tpa, spa, 4);
	__builtin_memcpy(arp->spa, tpa, 4);
	return tenet_redirect(ctx->ifindex);
}

#endif /* TENET_LIB_ARP_H */
