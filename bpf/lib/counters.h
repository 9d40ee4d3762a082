/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The traffic and drop counters the datapath keeps and the agent exports as metrics: the two maps
 * and the helpers that bump them. Counters are per-CPU so the hot path updates them with plain
 * adds; the agent sums the CPUs at scrape time. Nothing here ever resets a counter.
 */
#ifndef TENET_LIB_COUNTERS_H
#define TENET_LIB_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/counters.h"
#include "abi/maps.h"
#include "lib/ctx.h"

/*
 * Port counters. Key: struct tenet_port_key (ifindex, direction). Value: struct tenet_counter.
 * Written by the datapath: every entry point counts each frame it sees before validating it, so
 * these match what arrived at the port (drops are also counted per reason below). The agent reads
 * them and deletes a port's entries when it removes the port. A hash because ifindexes are sparse
 * and ports come and go; per-CPU so updates need no atomics; preallocated (the default) so the
 * datapath can insert the first entry of a port from any context. TENET_PORT_COUNTERS_MAX entries:
 * 2048 ports, two directions each.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct tenet_port_key);
	__type(value, struct tenet_counter);
	__uint(max_entries, TENET_PORT_COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_PORT_COUNTERS SEC(".maps");

/*
 * Drop counters. Key: __u32 enum tenet_drop_reason. Value: struct tenet_counter. Written by the
 * datapath (lib/drop.h) once per dropped packet; read by the agent as tenet_drops_total{reason}.
 * An array because the reasons are a small dense catalogue; per-CPU so updates need no atomics;
 * TENET_DROP_REASON_SLOTS entries so the catalogue can grow without changing the map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_counter);
	__uint(max_entries, TENET_DROP_REASON_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_DROP_COUNTERS SEC(".maps");

/*
 * Zeroes. Key: __u32 0. Value: struct tenet_zero. Written by nobody (created zeroed); read by the
 * datapath as the first value of a new counter or bucket entry (tenet_zero_get()), which keeps
 * zeroed structs off the stack. An array of one: always present.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_zero);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ZERO SEC(".maps");

/* The zero value (never NULL in practice: the array's one slot always exists). */
static __always_inline const void *tenet_zero_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&TENET_MAP_ZERO, &zero);
}

static __always_inline void tenet_counter_add(struct tenet_counter *c, __u64 bytes)
{
	c->packets++;
	c->bytes += bytes;
}

/* Counts the frame in ctx against its port and direction, creating the entry on first use. */
static __always_inline void tenet_count_port(const struct tenet_ctx *ctx)
{
	struct tenet_port_key key = {
		.ifindex = ctx->ifindex,
		.direction = ctx->direction,
	};
	struct tenet_counter first = {
		.packets = 1,
		.bytes = ctx->len,
	};
	struct tenet_counter *c;

	c = bpf_map_lookup_elem(&TENET_MAP_PORT_COUNTERS, &key);
	if (c) {
		tenet_counter_add(c, ctx->len);
		return;
	}
	/* Sets this CPU's copy and zeroes the others. Another CPU may win the race: then add. */
	if (!bpf_map_update_elem(&TENET_MAP_PORT_COUNTERS, &key, &first, BPF_NOEXIST))
		return;
	c = bpf_map_lookup_elem(&TENET_MAP_PORT_COUNTERS, &key);
	if (c)
		tenet_counter_add(c, ctx->len);
}

/* reason: a positive enum tenet_drop_reason. Reasons beyond the array are not counted. */
static __always_inline void tenet_count_drop(__u32 reason, __u32 len)
{
	struct tenet_counter *c;

	c = bpf_map_lookup_elem(&TENET_MAP_DROP_COUNTERS, &reason);
	if (c)
		tenet_counter_add(c, len);
}

#endif /* TENET_LIB_COUNTERS_H */
