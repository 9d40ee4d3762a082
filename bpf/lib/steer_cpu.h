/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The receive pipeline of a steered frame, on the CPU chosen for its port: the body of the cpumap
 * program tenet_xdp_cpu (tenet_xdp.bpf.c). The frame was counted against the NIC on the receiving
 * CPU (lib/steer.h); here it is parsed again (parse results do not travel with a frame) and goes
 * through the same validation, decapsulation, inbound policy and delivery (lib/nvgre.h) as a frame
 * processed in place. ingress_ifindex is still the NIC's: the cpumap keeps the receiving device.
 *
 * Kept in a header so a test object can run it through BPF_PROG_TEST_RUN, which the kernel refuses
 * for programs of the cpumap attach type (bpf/testing/steer_cpu.bpf.c).
 */
#ifndef TENET_LIB_STEER_CPU_H
#define TENET_LIB_STEER_CPU_H

#include <linux/bpf.h>

#include "lib/ctx.h"
#include "lib/drop.h"
#include "lib/gen.h"
#include "lib/nvgre.h"
#include "lib/parse.h"
#include "lib/steer.h"

static __always_inline int tenet_steer_cpu_run(struct xdp_md *xdp)
{
	struct tenet_ctx ctx;
	struct tenet_pkt pkt;
	__u32 gen;
	int ret;

	tenet_ctx_from_xdp(&ctx, xdp);
	ret = tenet_parse(&ctx, &pkt);
	if (ret < 0)
		return tenet_drop(&ctx, ret);
	gen = tenet_gen_active();
	tenet_steer_count_pipeline(&ctx, &pkt, gen);

	ret = tenet_nvgre_decap(&ctx, &pkt, gen);
	if (ret < 0)
		return tenet_drop(&ctx, ret);
	if (ret > 0)
		return ret;
	return tenet_ctx_verdict_pass(&ctx);
}

#endif /* TENET_LIB_STEER_CPU_H */
