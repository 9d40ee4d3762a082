/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Port metering: the metering class table, the per-class counters and tenet_meter(), the one call
 * each hook point makes. What is counted: every IPv4/IPv6 frame that crosses a VM port's boundary
 * through the datapath, once, in the direction it crosses it:
 *   outbound (TENET_DIR_RX, from the VM): a frame the VM sent that passed the port checks and the
 *     source checks (and, once the ACL stage is in, the outbound ACL), before switching, routing
 *     and encapsulation; the remote address is its destination CA as the VM addressed it;
 *   inbound (TENET_DIR_TX, to the VM): a frame about to be redirected to the VM's port, by
 *     host-local delivery (lib/forward.h) or after NVGRE decapsulation (lib/nvgre.h); the remote
 *     address is its source CA.
 * Bytes are the Ethernet frame at that point (headers to payload, no FCS; after decapsulation
 * the inner frame). ARP and ND (answered by the datapath), ICMP errors the distributed router
 * makes, and drops before the hook point are not metered. Counters are never reset: the agent
 * keeps baselines (agent/metering/).
 */
#ifndef TENET_LIB_METER_H
#define TENET_LIB_METER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/counters.h"
#include "abi/maps.h"
#include "abi/meter.h"
#include "abi/policy.h"
#include "lib/gen.h"

/*
 * Metering classes. Key: struct tenet_meter_key (prefixlen, port ifindex, direction, family,
 * remote prefix). Value: struct tenet_meter_class_entry (generations, abi/policy.h). Written by
 * the reconciler from the compiled meter rules; read for every metered frame. An LPM trie for the
 * longest remote prefix; the fixed 64 bits before the address keep ports, directions and
 * families apart. Not preallocated (kernel requirement for LPM tries).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tenet_meter_key);
	__type(value, struct tenet_meter_class_entry);
	__uint(max_entries, TENET_METER_CLASSES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_METER_CLASSES SEC(".maps");

/*
 * Per-class traffic. Key: struct tenet_meter_ctr_key (port ifindex, class id, direction). Value:
 * struct tenet_counter. Written by the datapath (first use creates the entry); read by the agent
 * for Measure and metrics; deleted by the agent only after it has folded a port's final totals
 * into its durable ledger (the port left the host or its interface was replaced). Per-CPU so
 * updates need no atomics; a preallocated hash so the datapath can insert from any context.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct tenet_meter_ctr_key);
	__type(value, struct tenet_counter);
	__uint(max_entries, TENET_METER_COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_METER_COUNTERS SEC(".maps");

/* The class of remote address addr (4 or 16 bytes) on port ifindex, direction dir, in gen. */
static __always_inline __u32 tenet_meter_class(__u32 gen, __u32 ifindex, __u8 dir, __u8 family,
					       const void *addr)
{
	struct tenet_meter_key key = {
		.ifindex = ifindex,
		.direction = dir,
		.family = family,
	};
	struct tenet_meter_class_entry *e;
	const struct tenet_meter_class *c;

	if (family == TENET_AF_IPV4) {
		key.prefixlen = TENET_METER_KEY_FIXED_BITS + 32;
		__builtin_memcpy(key.addr, addr, 4);
	} else {
		key.prefixlen = TENET_METER_KEY_FIXED_BITS + 128;
		__builtin_memcpy(key.addr, addr, 16);
	}
	e = bpf_map_lookup_elem(&TENET_MAP_METER_CLASSES, &key);
	c = TENET_GEN_PICK(e, gen);
	return c ? c->class_id : TENET_METER_CLASS_DEFAULT;
}

/*
 * Counts a frame of len bytes on port ifindex in direction dir (TENET_DIR_RX: from the VM,
 * TENET_DIR_TX: to the VM) in the class its remote address selects. Never changes the verdict.
 */
static __always_inline void tenet_meter(__u32 gen, __u32 ifindex, __u8 dir, __u8 family,
					const void *remote, __u32 len)
{
	struct tenet_meter_ctr_key key = {
		.ifindex = ifindex,
		.direction = dir,
	};
	struct tenet_counter first = {
		.packets = 1,
		.bytes = len,
	};
	struct tenet_counter *c;

#ifdef TENET_BENCH_NO_METER
	/* Benchmarks only (scripts/bench/metering.ts): the same datapath without metering. */
	return;
#endif
	key.class_id = tenet_meter_class(gen, ifindex, dir, family, remote);
	c = bpf_map_lookup_elem(&TENET_MAP_METER_COUNTERS, &key);
	if (c) {
		c->packets++;
		c->bytes += len;
		return;
	}
	/* Sets this CPU's copy and zeroes the others. Another CPU may win the race: then add. */
	if (!bpf_map_update_elem(&TENET_MAP_METER_COUNTERS, &key, &first, BPF_NOEXIST))
		return;
	c = bpf_map_lookup_elem(&TENET_MAP_METER_COUNTERS, &key);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

#endif /* TENET_LIB_METER_H */
