// SPDX-License-Identifier: GPL-2.0
/*
 * tc on VM ports (the host side of a VM's veth or tap), one program per direction: tenet_tc_rx on
 * clsact ingress sees what the VM sends, tenet_tc_tx on clsact egress what the host delivers to
 * the VM. Today both count the frame against the port, validate its headers and drop malformed
 * frames with a counted reason. The spoof guard, ARP/ND proxy, ACL, QoS, metering and NVGRE
 * encapsulation will come here, after validation.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/btf_anchors.h"
#include "lib/counters.h"
#include "lib/ctx.h"
#include "lib/drop.h"
#include "lib/meter.h" /* not used here: every product object defines every map */
#include "lib/parse.h"
#include "lib/qos.h" /* its maps, shared by every product object */
#include "lib/tables.h"

static __always_inline int tenet_tc_port(struct __sk_buff *skb, __u8 direction)
{
	struct tenet_ctx ctx;
	struct tenet_pkt pkt;
	int ret;

	tenet_ctx_from_skb(&ctx, skb, direction);
	tenet_count_port(&ctx);

	ret = tenet_parse(&ctx, &pkt);
	if (ret < 0)
		return tenet_drop(&ctx, ret);

	return tenet_ctx_verdict_pass(&ctx);
}

SEC("tc")
int tenet_tc_rx(struct __sk_buff *skb)
{
	return tenet_tc_port(skb, TENET_DIR_RX);
}

SEC("tc")
int tenet_tc_tx(struct __sk_buff *skb)
{
	return tenet_tc_port(skb, TENET_DIR_TX);
}

char LICENSE[] SEC("license") = "GPL";
