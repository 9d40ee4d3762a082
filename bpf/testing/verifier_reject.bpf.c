// SPDX-License-Identifier: GPL-2.0
/*
 * Compiles cleanly but must be rejected by the verifier: it reads packet data without checking
 * it against data_end. The binding tests use it to prove that a failed load rejects with the
 * verifier log attached, and that the log names the bad access.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	__u32 *word = (void *)(long)ctx->data;

	/* No "word + 1 > data_end" check: the verifier must refuse this load. */
	return *word == 0 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
