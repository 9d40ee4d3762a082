// SPDX-License-Identifier: GPL-2.0
/*
 * XDP on physical NICs and SR-IOV VFs: the first thing a frame from the wire meets. Today it
 * counts the frame against its port, validates its headers and drops malformed frames with a
 * counted reason; everything else goes on to the kernel stack. NVGRE decapsulation, the
 * provider-address ACL and CPU steering will come here, in that order, after validation.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/btf_anchors.h"
#include "lib/counters.h"
#include "lib/ctx.h"
#include "lib/drop.h"
#include "lib/parse.h"
#include "lib/tables.h"

SEC("xdp")
int tenet_xdp_rx(struct xdp_md *xdp)
{
	struct tenet_ctx ctx;
	struct tenet_pkt pkt;
	int ret;

	tenet_ctx_from_xdp(&ctx, xdp);
	tenet_count_port(&ctx);

	ret = tenet_parse(&ctx, &pkt);
	if (ret < 0)
		return tenet_drop(&ctx, ret);

	return tenet_ctx_verdict_pass(&ctx);
}

char LICENSE[] SEC("license") = "GPL";
