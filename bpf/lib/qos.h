/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * QoS stage of the pipeline (abi/qos.h has the model): classification of what a VM sends for the
 * HTB shaper on the uplink, and the token-bucket policer for traffic no qdisc of ours can shape
 * (NVGRE decapsulated in XDP and redirected to the VM; host-local VM-to-VM traffic).
 *
 * Hook points (before metering at each, so a frame the policer drops is never billed; at
 * delivery after the ACL too):
 *   tenet_qos_outbound()  from a VM, after the source checks (lib/forward.h; before the outbound
 *                         ACL, which needs the routed destination: placing it after would
 *                         take the port program past its 512-byte stack): sets skb->priority
 *                         to the port's HTB leaf, or its destination class's leaf;
 *   tenet_qos_local()     host-local delivery (lib/forward.h): the source port's outbound
 *                         policer, then the destination port's inbound policer;
 *   tenet_qos_inbound()   NVGRE decapsulation (lib/nvgre.h): the destination port's inbound
 *                         policer.
 *
 * The policer is a token bucket per (port, direction) shared by every CPU, kept as GCRA's
 * theoretical arrival time in one 64-bit word that every CPU updates with compare-and-swap: two
 * CPUs drawing from one bucket never admit more than burst + rate * elapsed.
 */
#ifndef TENET_LIB_QOS_H
#define TENET_LIB_QOS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#include "abi/counters.h"
#include "abi/drop_reasons.h"
#include "abi/maps.h"
#include "abi/policy.h"
#include "abi/qos.h"
#include "lib/counters.h"
#include "lib/ctx.h"
#include "lib/l3.h"

#define TENET_NS_PER_SEC 1000000000ULL

/*
 * QoS of each VM port. Key: __u32 ifindex. Value: struct tenet_qos_port. Written by the agent
 * (agent/host/qos.ts) from the policy; read for every packet from or to a port. A hash: ifindexes
 * are sparse; sized like the ports map. A port without an entry has no QoS.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tenet_qos_port);
	__uint(max_entries, TENET_QOS_PORTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_QOS_PORTS SEC(".maps");

/*
 * Destination classes of ports' outbound traffic. Key: struct tenet_qos_class_key (port, family,
 * remote prefix). Value: struct tenet_qos_class (the HTB leaf). Written by the agent; read for
 * packets of ports flagged TENET_QOS_PORT_CLASSES. An LPM trie: classes are prefixes, longest
 * wins (the kernel requires BPF_F_NO_PREALLOC for it).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tenet_qos_class_key);
	__type(value, struct tenet_qos_class);
	__uint(max_entries, TENET_QOS_CLASSES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_QOS_CLASSES SEC(".maps");

/*
 * Tenant class caps. Key: __u32 bucket id (struct tenet_qos_class.tenant_bucket). Value: struct
 * tenet_qos_rate. Written by the agent from the policy's tenantQos; read for packets whose
 * destination class names a tenant bucket. A hash: ids are the compiler's, few per host.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tenet_qos_rate);
	__uint(max_entries, TENET_QOS_TENANT_CAPS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_QOS_TENANT_CAPS SEC(".maps");

/*
 * Token buckets. Key: struct tenet_port_key (port, direction). Value: struct tenet_qos_bucket.
 * Written by the datapath only (created full on first use, then drawn by compare-and-swap); the
 * agent deletes a port's buckets when the port leaves. A plain (not per-CPU) hash:
 * the bucket is shared by all CPUs, which is the point. Pinned, so it survives the agent.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tenet_port_key);
	__type(value, struct tenet_qos_bucket);
	__uint(max_entries, TENET_QOS_BUCKETS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_QOS_BUCKETS SEC(".maps");

/*
 * QoS counters. Key: struct tenet_port_key. Value: struct tenet_qos_counters. Written by the
 * datapath; read by the agent at scrape time (tenet_qos_*_total). Per-CPU: no atomics on the hot
 * path. Preallocated so the first entry of a port can be inserted from any context.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct tenet_port_key);
	__type(value, struct tenet_qos_counters);
	__uint(max_entries, TENET_QOS_COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_QOS_COUNTERS SEC(".maps");

/*
 * The QoS stage's working space (struct tenet_qos_scratch). Key: __u32 0. Written and read only
 * by the datapath, within one packet. A per-CPU array: no contention, always present.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_qos_scratch);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_QOS_SCRATCH SEC(".maps");

static __always_inline struct tenet_qos_scratch *tenet_qos_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&TENET_MAP_QOS_SCRATCH, &zero);
}

static __always_inline void tenet_qos_count(__u32 ifindex, __u8 direction, int dropped, __u32 len)
{
	struct tenet_qos_scratch *scr = tenet_qos_scratch();
	struct tenet_port_key *key;
	struct tenet_qos_counters *c;

	if (!scr)
		return;
	key = &scr->counter_key;
	key->ifindex = ifindex;
	key->direction = direction;
	__builtin_memset(key->pad, 0, sizeof(key->pad));
	c = bpf_map_lookup_elem(&TENET_MAP_QOS_COUNTERS, key);
	if (!c) {
		const void *zero = tenet_zero_get();

		if (!zero)
			return;
		bpf_map_update_elem(&TENET_MAP_QOS_COUNTERS, key, zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&TENET_MAP_QOS_COUNTERS, key);
		if (!c)
			return;
	}
	if (dropped) {
		c->dropped_packets++;
		c->dropped_bytes += len;
	} else {
		c->passed_packets++;
		c->passed_bytes += len;
	}
}

/* Caps count the VM's IP bytes: the frame without its Ethernet header. */
static __always_inline __u32 tenet_qos_ip_len(__u32 frame_len)
{
	return frame_len > ETH_HLEN ? frame_len - ETH_HLEN : 0;
}

/* Compare-and-swap attempts before a contended packet is treated as over the limit. */
#define TENET_QOS_CAS_TRIES 4

/*
 * Takes len bytes from the bucket of (ifindex, direction) configured by rate (GCRA, see struct
 * tenet_qos_bucket). Returns 1 if the packet conforms, 0 if it is over the limit. A missing
 * bucket is created full. Each attempt reads the state, decides, and publishes with one
 * compare-and-swap, so concurrent CPUs can never both spend the same credit; a CPU that loses
 * TENET_QOS_CAS_TRIES races in a row drops (never admits more than the bucket allows).
 */
static __always_inline int tenet_qos_take(__u32 ifindex, __u8 direction,
					  const struct tenet_qos_rate *rate, __u32 len)
{
	struct tenet_qos_scratch *scr = tenet_qos_scratch();
	__u64 now = bpf_ktime_get_ns();
	__u64 bps = rate->bytes_per_sec;
	/* Burst time and this packet's time, rounded up: never more credit than configured. */
	__u64 tau = rate->burst_bytes * TENET_NS_PER_SEC / bps;
	__u64 inc = ((__u64)len * TENET_NS_PER_SEC + bps - 1) / bps;
	struct tenet_port_key *key;
	struct tenet_qos_bucket *b;
	int i;

	if (!scr)
		return 1; /* cannot happen (a per-CPU array slot); fail open like a full map */
	key = &scr->bucket_key;
	key->ifindex = ifindex;
	key->direction = direction;
	__builtin_memset(key->pad, 0, sizeof(key->pad));
	b = bpf_map_lookup_elem(&TENET_MAP_QOS_BUCKETS, key);
	if (!b) {
		const void *zero = tenet_zero_get();

		if (!zero)
			return 1;
		bpf_map_update_elem(&TENET_MAP_QOS_BUCKETS, key, zero, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&TENET_MAP_QOS_BUCKETS, key);
		if (!b)
			return 1; /* the map is full: fail open, QoS is not a security control */
	}
#pragma unroll
	for (i = 0; i < TENET_QOS_CAS_TRIES; i++) {
		__u64 old = b->tat_ns;
		__u64 next = (old > now ? old : now) + inc;

		if (next > now + tau)
			return 0;
		if (__sync_val_compare_and_swap(&b->tat_ns, old, next) == old)
			return 1;
	}
	return 0;
}

/*
 * Polices len bytes against one of a port's caps; counts a drop, and a pass if count_pass.
 * 0 to go on, or drop_reason negated when the bucket is empty.
 */
static __always_inline int tenet_qos_police(__u32 ifindex, __u8 direction,
					    const struct tenet_qos_rate *rate, __u32 len,
					    int drop_reason, int count_pass)
{
	if (!rate->bytes_per_sec)
		goto pass;
	if (!tenet_qos_take(ifindex, direction, rate, len)) {
		tenet_qos_count(ifindex, direction, 1, len);
		return -drop_reason;
	}
pass:
	if (count_pass)
		tenet_qos_count(ifindex, direction, 0, len);
	return 0;
}

/*
 * From a VM on port ifindex (tc): sets skb->priority to the HTB leaf for this packet's
 * destination on the uplink, and polices the tenant's cap on the destination's class if there
 * is one. Ports without QoS keep the priority the kernel gave (the uplink's HTB default class
 * takes them). 0, or a negated drop reason when a tenant class cap is exceeded; counts the packet
 * as passed or dropped for the port.
 */
static __always_inline int tenet_qos_outbound(const struct tenet_ctx *ctx,
					      const struct tenet_l3 *l3)
{
	/* Copies: taking the address of a ctx field would force ctx to the stack. */
	__u32 ifindex = ctx->ifindex, len = ctx->len;
	struct __sk_buff *skb = ctx->raw;
	const struct tenet_qos_port *q;
	__u32 classid;

	q = bpf_map_lookup_elem(&TENET_MAP_QOS_PORTS, &ifindex);
	if (!q)
		return 0;
	classid = q->classid;
	if (q->flags & TENET_QOS_PORT_CLASSES) {
		struct tenet_qos_scratch *scr = tenet_qos_scratch();
		struct tenet_qos_class_key *key;
		const struct tenet_qos_class *c;

		if (!scr)
			return 0;
		key = &scr->class_key;
		__builtin_memset(key, 0, sizeof(*key));
		key->ifindex = ifindex;
		key->family = l3->family;
		key->prefixlen =
			TENET_QOS_CLASS_KEY_FIXED_BITS + (l3->family == TENET_AF_IPV4 ? 32 : 128);
		__builtin_memcpy(key->addr, l3->daddr, 16);
		c = bpf_map_lookup_elem(&TENET_MAP_QOS_CLASSES, key);
		if (c && c->classid)
			classid = c->classid;
		if (c && c->tenant_bucket) {
			__u32 id = c->tenant_bucket;
			const struct tenet_qos_rate *r;

			r = bpf_map_lookup_elem(&TENET_MAP_QOS_TENANT_CAPS, &id);
			if (r && r->bytes_per_sec &&
			    !tenet_qos_take(TENET_QOS_TENANT_BUCKET | id, TENET_QOS_DIR_TENANT, r,
					    tenet_qos_ip_len(len))) {
				tenet_qos_count(ifindex, TENET_DIR_RX, 1, len);
				return -TENET_DROP_QOS_POLICED_LOCAL;
			}
		}
	}
	/* Counted here once; the local policer counts only what it drops. */
	tenet_qos_count(ifindex, TENET_DIR_RX, 0, len);
	if (classid)
		skb->priority = classid;
	return 0;
}

/*
 * Host-local delivery (tc) from port ctx->ifindex to port dst_ifindex: the source's outbound cap,
 * then the destination's inbound cap, both policed. 0 to deliver, or a negated drop reason.
 */
static __always_inline int tenet_qos_local(const struct tenet_ctx *ctx, __u32 dst_ifindex)
{
	__u32 src_ifindex = ctx->ifindex, len = tenet_qos_ip_len(ctx->len);
	const struct tenet_qos_port *q;
	int ret;

	q = bpf_map_lookup_elem(&TENET_MAP_QOS_PORTS, &src_ifindex);
	if (q) {
		ret = tenet_qos_police(src_ifindex, TENET_DIR_RX, &q->outbound, len,
				       TENET_DROP_QOS_POLICED_LOCAL, 0);
		if (ret < 0)
			return ret;
	}
	q = bpf_map_lookup_elem(&TENET_MAP_QOS_PORTS, &dst_ifindex);
	if (!q)
		return 0;
	return tenet_qos_police(dst_ifindex, TENET_DIR_TX, &q->inbound, len, TENET_DROP_QOS_POLICED,
				1);
}

/* To the VM on port dst_ifindex from the wire (XDP, after decapsulation): its inbound cap. */
static __always_inline int tenet_qos_inbound(const struct tenet_ctx *ctx, __u32 dst_ifindex)
{
	__u32 len = tenet_qos_ip_len(ctx->len);
	const struct tenet_qos_port *q;

	q = bpf_map_lookup_elem(&TENET_MAP_QOS_PORTS, &dst_ifindex);
	if (!q)
		return 0;
	return tenet_qos_police(dst_ifindex, TENET_DIR_TX, &q->inbound, len, TENET_DROP_QOS_POLICED,
				1);
}

#endif /* TENET_LIB_QOS_H */
