/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Events from the datapath to the agent: the ring buffer and the helpers that fill records in it.
 * Events are best effort and never change a verdict: a full ring loses the record, not the packet.
 */
#ifndef TENET_LIB_EVENTS_H
#define TENET_LIB_EVENTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/events.h"
#include "abi/maps.h"
#include "lib/ctx.h"

/*
 * Event ring. Records: struct tenet_event_record. Written by the datapath (drop events, when
 * enabled); read by the agent, which is the only consumer. A ring buffer rather than a perf
 * buffer: one buffer shared by all CPUs keeps events in order and reserves in place, no copy.
 * TENET_EVENTS_RING_BYTES holds a few thousand records, enough to ride out a burst between two
 * polls of the agent.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TENET_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_EVENTS SEC(".maps");

/* Sends a TENET_EVENT_DROP record with the first TENET_EVENT_SAMPLE_LEN bytes of the frame. */
static __always_inline void tenet_event_drop(const struct tenet_ctx *ctx, __u32 reason)
{
	struct tenet_event_record *ev;
	__u32 n = ctx->len;

	ev = bpf_ringbuf_reserve(&TENET_MAP_EVENTS, sizeof(*ev), 0);
	if (!ev)
		return;
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->ifindex = ctx->ifindex;
	ev->pkt_len = ctx->len;
	ev->kind = TENET_EVENT_DROP;
	ev->reason = reason;
	ev->direction = ctx->direction;
	ev->pad = 0;
	__builtin_memset(ev->sample, 0, sizeof(ev->sample));
	if (n > TENET_EVENT_SAMPLE_LEN)
		n = TENET_EVENT_SAMPLE_LEN;
	if (n == 0 || tenet_ctx_load_bytes(ctx, 0, ev->sample, n) < 0)
		n = 0;
	ev->sample_len = n;
	bpf_ringbuf_submit(ev, 0);
}

#endif /* TENET_LIB_EVENTS_H */
