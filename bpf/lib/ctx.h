/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * One view of a packet for XDP and tc, so every other helper in bpf/lib/ is written once. An entry
 * point fills a struct tenet_ctx from its struct xdp_md or struct __sk_buff and passes it down.
 * The kind is a compile-time constant in every entry point; since all helpers are always inlined,
 * clang folds the "if XDP ... else tc" branches away and each program keeps only its own helper
 * calls (the verifier rejects tc-only helpers in XDP programs even on dead paths it can see).
 *
 * data/data_end are the bounds for direct packet access. They are invalidated by any helper that
 * changes the packet (bpf_skb_pull_data, adjust_room, ...): call tenet_ctx_reload() after those.
 */
#ifndef TENET_LIB_CTX_H
#define TENET_LIB_CTX_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "abi/counters.h"

enum tenet_ctx_kind {
	TENET_CTX_XDP = 0,
	TENET_CTX_SKB = 1,
};

/*
 * Bytes a tc entry point makes linear before parsing: Ethernet (14), two VLAN tags (8), an IPv4
 * header with the most options (60) and a TCP header without options (20) is 102; rounded up.
 * XDP programs here do not set the frags flag, so their packets are always linear.
 */
#define TENET_TC_PULL_LEN 128

struct tenet_ctx {
	void *data;
	void *data_end;
	void *raw;	/* the struct xdp_md or struct __sk_buff */
	__u32 len;	/* whole frame, linear or not */
	__u32 ifindex;	/* interface the hook runs on */
	__u8 kind;	/* enum tenet_ctx_kind */
	__u8 direction; /* enum tenet_direction */
};

static __always_inline void tenet_ctx_reload(struct tenet_ctx *ctx)
{
	if (ctx->kind == TENET_CTX_XDP) {
		struct xdp_md *xdp = ctx->raw;

		ctx->data = (void *)(long)xdp->data;
		ctx->data_end = (void *)(long)xdp->data_end;
		/* No frags: linear part = frame. (Pointer subtraction needs CAP_PERFMON.) */
		ctx->len = ctx->data_end - ctx->data;
	} else {
		struct __sk_buff *skb = ctx->raw;

		ctx->data = (void *)(long)skb->data;
		ctx->data_end = (void *)(long)skb->data_end;
		ctx->len = skb->len;
	}
}

/* XDP runs only where a frame arrives, so the direction is always RX. */
static __always_inline void tenet_ctx_from_xdp(struct tenet_ctx *ctx, struct xdp_md *xdp)
{
	ctx->raw = xdp;
	ctx->kind = TENET_CTX_XDP;
	ctx->direction = TENET_DIR_RX;
	ctx->ifindex = xdp->ingress_ifindex;
	tenet_ctx_reload(ctx);
}

/*
 * direction: TENET_DIR_RX for tc ingress, TENET_DIR_TX for tc egress. If the headers the parser
 * reads are not all in the linear part of the skb, pull them in. That is rare (GRO and some
 * drivers build such skbs) and costs a copy when the skb is cloned, so it only happens when the
 * linear part is short. A pull fails only when the kernel is out of memory; the parser then sees
 * the short linear part and drops the packet as truncated, counted under that reason.
 */
static __always_inline void tenet_ctx_from_skb(struct tenet_ctx *ctx, struct __sk_buff *skb,
					       __u8 direction)
{
	__u32 want = skb->len < TENET_TC_PULL_LEN ? skb->len : TENET_TC_PULL_LEN;

	ctx->raw = skb;
	ctx->kind = TENET_CTX_SKB;
	ctx->direction = direction;
	ctx->ifindex = skb->ifindex;
	if ((void *)(long)skb->data + want > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, want);
	tenet_ctx_reload(ctx);
}

/* Copies len bytes at offset off of the frame (linear or not) to to. len must be known > 0. */
static __always_inline long tenet_ctx_load_bytes(const struct tenet_ctx *ctx, __u32 off, void *to,
						 __u32 len)
{
	if (ctx->kind == TENET_CTX_XDP)
		return bpf_xdp_load_bytes(ctx->raw, off, to, len);
	return bpf_skb_load_bytes(ctx->raw, off, to, len);
}

/* The verdicts that let a packet go on, or drop it, in this hook. */
static __always_inline int tenet_ctx_verdict_pass(const struct tenet_ctx *ctx)
{
	return ctx->kind == TENET_CTX_XDP ? XDP_PASS : TC_ACT_OK;
}

static __always_inline int tenet_ctx_verdict_drop(const struct tenet_ctx *ctx)
{
	return ctx->kind == TENET_CTX_XDP ? XDP_DROP : TC_ACT_SHOT;
}

#endif /* TENET_LIB_CTX_H */
