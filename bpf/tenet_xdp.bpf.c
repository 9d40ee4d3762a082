// SPDX-License-Identifier: GPL-2.0
/*
 * XDP on physical NICs and SR-IOV VFs: the first thing a frame from the wire meets. It counts the
 * frame against its port, validates its headers and drops malformed frames with a counted reason.
 * NVGRE (IPv4 protocol 47) addressed to a live local PA is validated and decapsulated (lib/nvgre.h)
 * and its inner frame redirected to the destination VM's port, counted as tx there and in the
 * VSID's decap counters; everything else goes on to the kernel stack untouched. The
 * provider-address ACL will come here, after validation.
 *
 * Receive steering (lib/steer.h): an NVGRE frame for a VM port with a steering entry is handed,
 * right after parsing, to the cpumap queue of the CPU chosen for the port, and tenet_xdp_cpu runs
 * the rest of the pipeline (validation, decapsulation, inbound policy, delivery) on that CPU.
 *
 * Delivery needs the VM port to accept XDP-redirected frames: a veth only receives XDP_REDIRECT
 * frames when its peer (the VM side) has an XDP program attached or GRO enabled, so the agent and
 * the lab enable GRO on the VM-side veth (ethtool -K <vm-veth> gro on); without it the kernel drops
 * the frames (counted by the veth as xdp_xmit_err, not by tenet). Redirected frames skip the
 * host-side port's tc egress, which is why the port's tx counter is bumped here.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/btf_anchors.h"
#include "lib/counters.h"
#include "lib/ctx.h"
#include "lib/drop.h"
#include "lib/gen.h"
#include "lib/nvgre.h"
#include "lib/parse.h"
#include "lib/steer.h"
#include "lib/steer_cpu.h"
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

	ret = tenet_steer_rx(&ctx, &pkt, tenet_gen_active());
	if (ret > 0)
		return ret;

	ret = tenet_nvgre_decap(&ctx, &pkt, tenet_gen_active());
	if (ret < 0)
		return tenet_drop(&ctx, ret);
	if (ret > 0)
		return ret;
	return tenet_ctx_verdict_pass(&ctx);
}

/* The cpumap program: the rest of the pipeline of a frame steered to this CPU (lib/steer_cpu.h). */
SEC("xdp/cpumap")
int tenet_xdp_cpu(struct xdp_md *xdp)
{
	return tenet_steer_cpu_run(xdp);
}

char LICENSE[] SEC("license") = "GPL";
