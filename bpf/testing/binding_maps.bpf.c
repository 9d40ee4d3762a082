// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture for the libbpf binding tests (test/native/). It declares one map of every shape the
 * binding must handle (a tiny hash to fill up, a per-CPU array, an array-of-maps with an inner
 * template, a map pinned by name, a ring buffer) and programs that touch them when test-run, so
 * the tests can watch kernel-side effects through the binding rather than trust it to be symmetric.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

/* The record emit_event writes to the ring buffer; the tests decode it by these offsets. */
struct binding_event {
	__u32 seq;
	__u32 pkt_len;
	__u32 inner_value;
	__u32 pad;
};

/* Counters bumped per CPU; two u64 fields so sum helpers have something to add. */
struct binding_stats {
	__u64 packets;
	__u64 bytes;
};

/*
 * small_hash: key u32, value u64, written only by the tests. Four entries so "map full" (E2BIG)
 * is reached after four inserts.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} small_hash SEC(".maps");

/*
 * percpu_stats: key u32 (slot), value struct binding_stats per CPU, bumped by emit_event at slot
 * 0; the tests check that a per-CPU lookup decodes to one value per possible CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct binding_stats);
} percpu_stats SEC(".maps");

/* Inner map shape of outer_maps: one u32 read by emit_event and reported in its event. */
struct binding_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

/*
 * outer_maps: key u32 slot, value an inner map (fd on update, id on lookup). Left empty in the
 * ELF: libbpf creates the inner template only to give the kernel the inner shape, and the tests
 * install inner maps they create themselves.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct binding_inner);
} outer_maps SEC(".maps");

/*
 * pinned_counter: key u32 0, value u64 run count, bumped by emit_event. Pinned by name so the
 * tests can check that a second object reuses the pinned instance (the count carries over).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counter SEC(".maps");

/* events: one struct binding_event per emit_event run, consumed by the binding's RingBuffer. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* Writes one event per run: sequence from pinned_counter, packet length, inner map value. */
SEC("xdp")
int emit_event(struct xdp_md *ctx)
{
	struct binding_event ev = {};
	struct binding_stats *st;
	__u64 *count;
	__u32 *inner_val;
	void *inner;
	__u32 zero = 0;

	count = bpf_map_lookup_elem(&pinned_counter, &zero);
	if (count) {
		*count += 1;
		ev.seq = (__u32)*count;
	}
	inner = bpf_map_lookup_elem(&outer_maps, &zero);
	if (inner) {
		inner_val = bpf_map_lookup_elem(inner, &zero);
		if (inner_val)
			ev.inner_value = *inner_val;
	}
	st = bpf_map_lookup_elem(&percpu_stats, &zero);
	if (st) {
		st->packets += 1;
		st->bytes += ctx->data_end - ctx->data;
	}
	ev.pkt_len = ctx->data_end - ctx->data;
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
	return XDP_PASS;
}

/*
 * Overwrites the first byte with 0xaa and bounces the frame, so test-run output differs from
 * input.
 */
SEC("xdp")
int mark_tx(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	__u8 *data_end = (void *)(long)ctx->data_end;

	if (data + ETH_HLEN > data_end)
		return XDP_DROP;
	data[0] = 0xaa;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
