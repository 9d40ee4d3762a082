// SPDX-License-Identifier: GPL-2.0
/*
 * No-op programs: the per-packet cost baseline. Benchmarks report every tenet path as a ratio to
 * these, measured in the same run, so machine speed cancels out.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int noop_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int noop_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
