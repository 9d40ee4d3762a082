/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The one way a tenet program drops a packet: a helper returns a negated enum tenet_drop_reason,
 * and the entry point hands it to tenet_drop(), which counts the packet under its reason, sends a
 * drop event if enabled, and returns the hook's drop verdict. No program returns XDP_DROP or
 * TC_ACT_SHOT by itself, so every drop is counted and has a reason.
 */
#ifndef TENET_LIB_DROP_H
#define TENET_LIB_DROP_H

#include "abi/drop_reasons.h"
#include "lib/counters.h"
#include "lib/ctx.h"
#include "lib/events.h"

/*
 * Load-time knob: send a ring-buffer event for every drop. Off by default: under a flood of
 * malformed frames the counters suffice and the copies would only cost. The agent sets it when
 * an operator asks to watch drops.
 */
const volatile __u8 tenet_cfg_drop_events = 0;

/* reason: a negated enum tenet_drop_reason, as returned by the helpers. */
static __always_inline int tenet_drop(const struct tenet_ctx *ctx, int reason)
{
	__u32 r = -reason;

	tenet_count_drop(r, ctx->len);
	if (tenet_cfg_drop_events)
		tenet_event_drop(ctx, r);
	return tenet_ctx_verdict_drop(ctx);
}

#endif /* TENET_LIB_DROP_H */
