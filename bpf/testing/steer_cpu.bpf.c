// SPDX-License-Identifier: GPL-2.0
/*
 * Tests only: the cpumap program's body (lib/steer_cpu.h) as a plain XDP program, because
 * BPF_PROG_TEST_RUN refuses programs of the cpumap attach type. Loaded against the pin root of the
 * product objects under test, so it shares their maps (test/datapath/steering.test.ts).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/steer_cpu.h"

SEC("xdp")
int tenet_test_steer_cpu(struct xdp_md *xdp)
{
	return tenet_steer_cpu_run(xdp);
}

char LICENSE[] SEC("license") = "GPL";
