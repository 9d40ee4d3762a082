// SPDX-License-Identifier: GPL-2.0
/*
 * Counting programs for the binding's attach tests: each bumps its own slot of a per-CPU counter
 * and lets the packet through, so a test can send real packets over a veth and prove which program
 * (XDP native/generic, a replacement, tc netlink or tcx) saw them.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* Slots of hits; one per program below. */
enum {
	SLOT_XDP = 0,
	SLOT_XDP_ALT = 1,
	SLOT_TC = 2,
	SLOT_TC_ALT = 3,
	SLOT_MAX = 4,
};

/* hits: key u32 slot, value u64 packets per CPU; written by the programs, read by the tests. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void bump(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &slot);

	if (v)
		*v += 1;
}

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	bump(SLOT_XDP);
	return XDP_PASS;
}

SEC("xdp")
int count_xdp_alt(struct xdp_md *ctx)
{
	bump(SLOT_XDP_ALT);
	return XDP_PASS;
}

SEC("tc")
int count_tc(struct __sk_buff *skb)
{
	bump(SLOT_TC);
	return TC_ACT_OK;
}

SEC("tc")
int count_tc_alt(struct __sk_buff *skb)
{
	bump(SLOT_TC_ALT);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
