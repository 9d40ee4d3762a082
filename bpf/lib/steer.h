/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Receive steering (abi/steer.h): on the CPU that received a frame, find the VM port an NVGRE
 * frame is for with the least work that can tell (outer IPv4 protocol 47 to a live local PA, GRE
 * key, inner addresses and ports, the destination's lookup record), pick the port's CPU and hand
 * the frame to that CPU's cpumap queue; the cpumap program (tenet_xdp_cpu) then runs the whole
 * receive pipeline there. Steering never drops: a frame it cannot classify, for a port without an
 * entry, or for a CPU without a cpumap queue goes through the pipeline in place, which validates
 * it in full and drops it with a reason where it must. A frame for the CPU it is already on is
 * queued too, so that the frames of a flow all pass through one queue and stay in order.
 *
 * The CPU of a spread (vRSS) port is cpus[hash % ncpus] with
 *   h = 0x811c9dc5; for each word w of: seed, saddr (1 or 4 words), daddr (1 or 4), ports, proto:
 *   h = (h ^ w) * 0x01000193; then murmur3 fmix32 (lib/flow_hash.h), all big-endian words as in
 *   the NVGRE FlowID, ports = sport << 16 | dport for TCP/UDP that is not an IPv4 fragment, else 0.
 * It depends only on the inner 5-tuple (and the port's seed), so all frames of a flow run on one
 * CPU, in order. agent/model/steer.ts computes the same.
 */
#ifndef TENET_LIB_STEER_H
#define TENET_LIB_STEER_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/maps.h"
#include "abi/policy.h"
#include "abi/steer.h"
#include "lib/ctx.h"
#include "lib/eth.h"
#include "lib/flow_hash.h"
#include "lib/gen.h"
#include "lib/parse.h"
#include "lib/tables.h"

/* tenet_redirect_debug.flags of a redirect to a cpumap queue: ifindex holds the CPU. */
#define TENET_REDIRECT_DEBUG_CPUMAP 0x80000000u

/* GRE flags/version of NVGRE (key only) and its protocol, as lib/nvgre.h checks them. */
#define TENET_STEER_GRE_FLAGS 0x2000
#define TENET_STEER_GRE_PROTO 0x6558

/*
 * Steering of VM ports. Key: __u32 ifindex of the host side of the VM port. Value: struct
 * tenet_steer_entry. Written by the agent (agent/host/steering.ts) from the policy's portSteering
 * and, in dynamic mode, whenever it moves a port; read by the NIC's XDP program per NVGRE frame.
 * No generations: an entry is one port's whole answer and a hash update replaces it atomically.
 * A hash because ifindexes are sparse; as many entries as VM ports.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tenet_steer_entry);
	__uint(max_entries, TENET_STEER_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_STEER SEC(".maps");

/*
 * Steering counters. Key: __u32 ifindex of a VM port. Value: struct tenet_steer_counters, per CPU:
 * the CPU slot says where the frame was steered from or where its pipeline ran. Written by the
 * datapath; read by the agent for metrics and for dynamic mode's per-CPU load. Per-CPU so the hot
 * path needs no atomics (and because the CPU is the point); a hash like the port counters.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct tenet_steer_counters);
	__uint(max_entries, TENET_STEER_COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_STEER_COUNTERS SEC(".maps");

/*
 * The per-CPU receive queues. Key: __u32 CPU. Value: struct tenet_cpumap_val, the kernel's
 * struct bpf_cpumap_val (queue size, fd of the cpumap program tenet_xdp_cpu). Written by the agent
 * for the CPUs its steering entries name; a CPU without an entry makes bpf_redirect_map() fail
 * and the frame run in place (counted as fallback). A cpumap because it is the kernel's way to
 * move an XDP frame to another CPU's kthread without building an skb first.
 */
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__type(key, __u32);
	__type(value, struct tenet_cpumap_val);
	__uint(max_entries, TENET_CPUMAP_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_CPUMAP SEC(".maps");

/* Puts enum tenet_steer_mode into the object's BTF for the generated ABI (lib/btf_anchors.h). */
const volatile enum tenet_steer_mode tenet_btf_steer_mode = TENET_STEER_NONE;

/* GRE header with a key, the only form NVGRE takes. */
struct tenet_steer_gre {
	__be16 flags;
	__be16 proto;
	__be32 key;
};

/* What steering learns about a frame: its VM port and its inner flow. */
struct tenet_steer_flow {
	__be32 saddr[4];
	__be32 daddr[4];
	__u32 ifindex; /* the destination record's VM port */
	__be16 sport;
	__be16 dport;
	__u8 words; /* 1 (IPv4) or 4 (IPv6) */
	__u8 proto;
};

/*
 * Finds the VM port of an NVGRE frame to a live local PA and its inner flow. Returns 1 with f
 * filled, 0 when the frame is not one steering can place (not NVGRE to us, malformed, unknown or
 * non-local destination): the pipeline decides about those.
 */
static __always_inline int tenet_steer_peek(const struct tenet_ctx *ctx,
					    const struct tenet_pkt *pkt, __u32 gen,
					    struct tenet_steer_flow *f)
{
	const struct tenet_lookup_record *dst;
	struct tenet_steer_gre *gre;
	struct ethhdr *ieth;
	struct iphdr *iph;
	__u32 vsid, family;
	void *l4 = NULL;

	if (pkt->l3_proto != ETH_P_IP || pkt->vlan_depth || pkt->l4_proto != IPPROTO_GRE ||
	    (pkt->flags & TENET_PKT_F_FRAGMENT))
		return 0;
	iph = ctx->data + pkt->l3_off;
	if ((void *)(iph + 1) > ctx->data_end)
		return 0;
	if (!tenet_local_pa_get(gen, iph->daddr))
		return 0;
	gre = ctx->data + ((pkt->l3_off + iph->ihl * 4) & 0xff);
	if ((void *)(gre + 1) > ctx->data_end)
		return 0;
	if (gre->flags != bpf_htons(TENET_STEER_GRE_FLAGS) ||
	    gre->proto != bpf_htons(TENET_STEER_GRE_PROTO))
		return 0;
	vsid = bpf_ntohl(gre->key) >> 8;
	ieth = (void *)(gre + 1);
	if ((void *)(ieth + 1) > ctx->data_end)
		return 0;

	__builtin_memset(f, 0, sizeof(*f));
	if (ieth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip4 = (void *)(ieth + 1);

		if ((void *)(ip4 + 1) > ctx->data_end || ip4->ihl < 5)
			return 0;
		family = TENET_AF_IPV4;
		f->words = 1;
		f->saddr[0] = ip4->saddr;
		f->daddr[0] = ip4->daddr;
		f->proto = ip4->protocol;
		if (!(ip4->frag_off & bpf_htons(0x3fff)))
			l4 = (void *)ip4 + ((ip4->ihl & 0xf) << 2);
	} else if (ieth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(ieth + 1);

		if ((void *)(ip6 + 1) > ctx->data_end)
			return 0;
		family = TENET_AF_IPV6;
		f->words = 4;
		__builtin_memcpy(f->saddr, &ip6->saddr, 16);
		__builtin_memcpy(f->daddr, &ip6->daddr, 16);
		f->proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return 0;
	}
	if (l4 && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP)) {
		__be16 *ports = l4;

		if ((void *)(ports + 2) <= ctx->data_end) {
			f->sport = ports[0];
			f->dport = ports[1];
		}
	}

	dst = tenet_record_get(gen, vsid, family, f->daddr);
	if (!dst || !(dst->flags & TENET_RECORD_LOCAL))
		return 0;
	f->ifindex = dst->ifindex;
	return 1;
}

/* The flow hash of the file comment. */
static __always_inline __u32 tenet_steer_hash(const struct tenet_steer_flow *f, __u32 seed)
{
	__u32 h = TENET_FNV_BASIS;
	int i;

	h = tenet_fnv_word(h, bpf_htonl(seed));
#pragma unroll
	for (i = 0; i < 4; i++)
		if (i < f->words)
			h = tenet_fnv_word(h, f->saddr[i]);
#pragma unroll
	for (i = 0; i < 4; i++)
		if (i < f->words)
			h = tenet_fnv_word(h, f->daddr[i]);
	h = tenet_fnv_word(h, bpf_htonl(((__u32)bpf_ntohs(f->sport) << 16) | bpf_ntohs(f->dport)));
	h = tenet_fnv_word(h, bpf_htonl(f->proto));
	return tenet_fmix32(h);
}

/* The CPU the port's entry gives for the flow. e->ncpus is known > 0. */
static __always_inline __u32 tenet_steer_pick(const struct tenet_steer_entry *e,
					      const struct tenet_steer_flow *f)
{
	__u32 n = e->ncpus > TENET_STEER_SET_MAX ? TENET_STEER_SET_MAX : e->ncpus;
	__u32 i = 0;

	if (e->mode == TENET_STEER_SPREAD && n > 1)
		i = tenet_steer_hash(f, e->seed) % n;
	/* clang knows i < n <= 16 and would drop the mask the verifier needs to see. */
	asm volatile("" : "+r"(i));
	return e->cpus[i & (TENET_STEER_SET_MAX - 1)];
}

/* This CPU's steering counters of the port, created on first use (NULL if the map is full). */
static __always_inline struct tenet_steer_counters *tenet_steer_counters(__u32 ifindex)
{
	struct tenet_steer_counters *c, first = {};

	c = bpf_map_lookup_elem(&TENET_MAP_STEER_COUNTERS, &ifindex);
	if (c)
		return c;
	/* Sets this CPU's copy and zeroes the others; another CPU may win the race. */
	bpf_map_update_elem(&TENET_MAP_STEER_COUNTERS, &ifindex, &first, BPF_NOEXIST);
	return bpf_map_lookup_elem(&TENET_MAP_STEER_COUNTERS, &ifindex);
}

/*
 * The NIC's XDP program, after parsing: returns XDP_REDIRECT when the frame went to another CPU's
 * queue, 0 when the pipeline is to run here.
 */
static __always_inline int tenet_steer_rx(struct tenet_ctx *ctx, const struct tenet_pkt *pkt,
					  __u32 gen)
{
	const struct tenet_steer_entry *e;
	struct tenet_steer_counters *c;
	struct tenet_redirect_debug *d;
	struct tenet_steer_flow f;
	__u32 cpu, zero = 0;
	long ret;

	if (ctx->kind != TENET_CTX_XDP || !tenet_steer_peek(ctx, pkt, gen, &f))
		return 0;
	e = bpf_map_lookup_elem(&TENET_MAP_STEER, &f.ifindex);
	if (!e || e->mode == TENET_STEER_NONE || e->ncpus == 0)
		return 0;
	cpu = tenet_steer_pick(e, &f);
	c = tenet_steer_counters(f.ifindex);
	/*
	 * Queued even when the chosen CPU is this one: running it in place would let it overtake
	 * frames of the same flow that another CPU received a moment ago and that still wait in
	 * this CPU's queue (a single-queue NIC, or an RSS change, moves a flow between receiving
	 * CPUs). Through the one queue of the chosen CPU a flow's frames stay in order. XDP_PASS
	 * when the CPU has no queue: then the pipeline runs here.
	 */
	ret = bpf_redirect_map(&TENET_MAP_CPUMAP, cpu, XDP_PASS);
	if (ret != XDP_REDIRECT) {
		if (c)
			c->fallback++;
		return 0;
	}
	if (c) {
		if (cpu == bpf_get_smp_processor_id())
			c->local++;
		else
			c->steered++;
	}
	d = bpf_map_lookup_elem(&TENET_MAP_REDIRECT_DEBUG, &zero);
	if (d) {
		d->ifindex = cpu;
		d->flags = TENET_REDIRECT_DEBUG_CPUMAP;
		d->count++;
	}
	return XDP_REDIRECT;
}

/* The cpumap program, after parsing: counts the frame as pipeline work of this CPU for its port. */
static __always_inline void tenet_steer_count_pipeline(const struct tenet_ctx *ctx,
						       const struct tenet_pkt *pkt, __u32 gen)
{
	struct tenet_steer_counters *c;
	struct tenet_steer_flow f;

	if (!tenet_steer_peek(ctx, pkt, gen, &f))
		return;
	c = tenet_steer_counters(f.ifindex);
	if (c)
		c->pipeline++;
}

#endif /* TENET_LIB_STEER_H */
