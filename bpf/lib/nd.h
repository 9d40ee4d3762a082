/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * IPv6 neighbour discovery from a VM (ICMPv6 types 133 to 137 directly after the fixed header),
 * answered in the datapath like ARP (lib/arp.h). In order (agent/model/ does the same):
 *   1. router solicitation, router advertisement, redirect: consumed (tenet has no RA service, and
 *      a VM must never act as a router);
 *   2. hop limit not 255, code not 0, ICMP length under 24, or a multicast target: malformed
 *      (RFC 4861 7.1.1, 7.1.2);
 *   3. the first TENET_ND_MAX_OPTS options: one cut off or of length 0 is malformed; a source
 *      (NS) or target (NA) link-layer address option that is not the port's MAC is spoofing;
 *   4. solicitation from :: (duplicate address detection): consumed;
 *   5. a source that is not link-local must be a local record of this port, else spoof
 *      (link-local sources are allowed for ND and nothing else);
 *   6. advertisement: its target must be a local record of this port (else spoof); consumed;
 *   7. solicitation for a CA with a record in the port's virtual subnet (or the gateway): the
 *      frame becomes the advertisement (Ethernet to the port's MAC from the record's MAC; IPv6
 *      from the target to the solicitation's source, hop limit 255; NA flags R (the target is
 *      the gateway), S and O; the target; one target link-layer address option with the
 *      record's MAC; 86 bytes in all) and goes back out of the port. Any other target: drop.
 */
#ifndef TENET_LIB_ND_H
#define TENET_LIB_ND_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/drop_reasons.h"
#include "abi/policy.h"
#include "lib/csum.h"
#include "lib/ctx.h"
#include "lib/eth.h"
#include "lib/gen.h"
#include "lib/l3.h"
#include "lib/redirect.h"
#include "lib/tables.h"

#define TENET_ND_RS 133
#define TENET_ND_RA 134
#define TENET_ND_NS 135
#define TENET_ND_NA 136
#define TENET_ND_REDIRECT 137
#define TENET_ND_OPT_SLL 1
#define TENET_ND_OPT_TLL 2
#define TENET_ND_MAX_OPTS 4
#define TENET_ND_HOP_LIMIT 255
#define TENET_ND_NA_ROUTER 0x80
#define TENET_ND_NA_SOLICITED 0x40
#define TENET_ND_NA_OVERRIDE 0x20

/* ICMPv6 header and target of an NS or NA (RFC 4861 4.3, 4.4). */
struct tenet_nd_msg {
	__u8 type;
	__u8 code;
	__sum16 check;
	__u8 flags;
	__u8 reserved[3];
	__be32 target[4];
};

struct tenet_nd_opt {
	__u8 type;
	__u8 len; /* units of 8 bytes */
	__u8 mac[6];
};

/* The neighbour advertisement the datapath answers with. */
struct tenet_nd_na_frame {
	struct ethhdr eth;
	struct ipv6hdr ip6;
	struct tenet_nd_msg na;
	struct tenet_nd_opt tll;
} __attribute__((packed));

/* The ND message type of an IPv6 packet in l3, or 0 when it is not ND. */
static __always_inline int tenet_nd_type(const struct tenet_ctx *ctx, const struct tenet_l3 *l3)
{
	int t;

	if (l3->family != TENET_AF_IPV6 || l3->proto != IPPROTO_ICMPV6)
		return 0;
	t = tenet_l3_first_l4_byte(ctx, l3);
	return t >= TENET_ND_RS && t <= TENET_ND_REDIRECT ? t : 0;
}

/* Source check of ND: link-local, or a local record of this port. */
static __always_inline int tenet_nd_src_ok(__u32 gen, const struct tenet_port *port, __u32 ifindex,
					   const struct tenet_l3 *l3)
{
	const struct tenet_lookup_record *rec;

	if (tenet_ipv6_is_link_local(l3->saddr))
		return 1;
	rec = tenet_record_get(gen, port->vsid, TENET_AF_IPV6, l3->saddr);
	return rec && (rec->flags & TENET_RECORD_LOCAL) && rec->ifindex == ifindex;
}

static __always_inline int tenet_nd_from_vm(struct tenet_ctx *ctx, __u32 gen,
					    const struct tenet_port *port,
					    const struct tenet_l3 *l3, int type)
{
	struct __sk_buff *skb = ctx->raw;
	const struct tenet_lookup_record *rec;
	struct tenet_scratch *scratch;
	struct tenet_nd_na_frame *f;
	struct tenet_nd_msg msg;
	__u32 icmp_off = l3->off + l3->hdr_len;
	__u32 icmp_len = l3->len - l3->hdr_len;
	__u32 off = sizeof(msg);
	__be32 pseudo[2];
	__u64 sum;
	int i;

	if (type != TENET_ND_NS && type != TENET_ND_NA)
		return -TENET_DROP_ND_UNSUPPORTED;
	if (l3->ttl != TENET_ND_HOP_LIMIT || icmp_len < sizeof(msg) ||
	    bpf_skb_load_bytes(skb, icmp_off, &msg, sizeof(msg)) < 0 || msg.code != 0 ||
	    (bpf_ntohl(msg.target[0]) >> 24) == 0xff)
		return -TENET_DROP_ND_MALFORMED;

#pragma unroll
	for (i = 0; i < TENET_ND_MAX_OPTS; i++) {
		struct tenet_nd_opt opt;

		if (off >= icmp_len)
			break;
		if (off + 2 > icmp_len)
			return -TENET_DROP_ND_MALFORMED;
		if (bpf_skb_load_bytes(skb, icmp_off + off, &opt, 2) < 0)
			return -TENET_DROP_ND_MALFORMED;
		if (opt.len == 0 || off + opt.len * 8 > icmp_len)
			return -TENET_DROP_ND_MALFORMED;
		if (opt.type == (type == TENET_ND_NS ? TENET_ND_OPT_SLL : TENET_ND_OPT_TLL)) {
			if (bpf_skb_load_bytes(skb, icmp_off + off, &opt, sizeof(opt)) < 0)
				return -TENET_DROP_ND_MALFORMED;
			if (!tenet_mac_eq(opt.mac, port->mac))
				return -TENET_DROP_ND_SPOOF;
		}
		off += opt.len * 8;
	}

	if (type == TENET_ND_NS && tenet_ipv6_is_unspecified(l3->saddr))
		return -TENET_DROP_ND_DAD;
	if (!tenet_nd_src_ok(gen, port, ctx->ifindex, l3))
		return -TENET_DROP_IP_SRC_SPOOF;
	if (type == TENET_ND_NA) {
		rec = tenet_record_get(gen, port->vsid, TENET_AF_IPV6, msg.target);
		if (!rec || !(rec->flags & TENET_RECORD_LOCAL) || rec->ifindex != ctx->ifindex)
			return -TENET_DROP_ND_SPOOF;
		return -TENET_DROP_ND_ADVERT;
	}

	rec = tenet_record_get(gen, port->vsid, TENET_AF_IPV6, msg.target);
	if (!rec)
		return -TENET_DROP_ND_UNKNOWN_TARGET;

	scratch = tenet_scratch_get();
	if (!scratch)
		return -TENET_DROP_REPLY_FAILED;
	f = (void *)scratch->frame;
	__builtin_memset(f, 0, sizeof(*f));
	tenet_mac_copy(f->eth.h_dest, port->mac);
	tenet_mac_copy(f->eth.h_source, rec->mac);
	f->eth.h_proto = bpf_htons(ETH_P_IPV6);
	f->ip6.version = 6;
	f->ip6.payload_len = bpf_htons(sizeof(f->na) + sizeof(f->tll));
	f->ip6.nexthdr = IPPROTO_ICMPV6;
	f->ip6.hop_limit = TENET_ND_HOP_LIMIT;
	__builtin_memcpy(&f->ip6.saddr, msg.target, 16);
	__builtin_memcpy(&f->ip6.daddr, l3->saddr, 16);
	f->na.type = TENET_ND_NA;
	f->na.flags = TENET_ND_NA_SOLICITED | TENET_ND_NA_OVERRIDE;
	if (rec->flags & TENET_RECORD_GATEWAY)
		f->na.flags |= TENET_ND_NA_ROUTER;
	__builtin_memcpy(f->na.target, msg.target, 16);
	f->tll.type = TENET_ND_OPT_TLL;
	f->tll.len = 1;
	tenet_mac_copy(f->tll.mac, rec->mac);
	pseudo[0] = bpf_htonl(sizeof(f->na) + sizeof(f->tll));
	pseudo[1] = bpf_htonl(IPPROTO_ICMPV6);
	sum = bpf_csum_diff(NULL, 0, (void *)&f->ip6.saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, pseudo, sizeof(pseudo), sum);
	sum = bpf_csum_diff(NULL, 0, (void *)&f->na, sizeof(f->na) + sizeof(f->tll), sum);
	f->na.check = tenet_csum_fold(sum);
	if (bpf_skb_change_tail(skb, sizeof(*f), 0) < 0 ||
	    bpf_skb_store_bytes(skb, 0, f, sizeof(*f), 0) < 0)
		return -TENET_DROP_REPLY_FAILED;
	return tenet_redirect(ctx->ifindex);
}

#endif /* TENET_LIB_ND_H */
