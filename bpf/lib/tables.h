/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The network virtualization tables (abi/policy.h): the maps the agent's compiler and reconciler
 * fill from policy, the underlay neighbours it mirrors from the host's neighbour table, the
 * per-VSID NVGRE counters and the redirect debug slot. Every product program includes this header
 * so that all of them share one pinned copy of each map (LIBBPF_PIN_BY_NAME) and the agent's ABI
 * module gets codecs for every policy struct. Lookups go through lib/gen.h, which applies the
 * generation scheme; nothing else reads these maps directly.
 *
 * Sizes are in abi/maps.h. Hash maps are preallocated (the default): updates from the agent never
 * fail for lack of memory once the map exists, and lookups cost the same under churn. The LPM trie
 * cannot be preallocated (the kernel requires BPF_F_NO_PREALLOC).
 */
#ifndef TENET_LIB_TABLES_H
#define TENET_LIB_TABLES_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/maps.h"
#include "abi/policy.h"

/*
 * Active generation. Key: __u32 0. Value: struct tenet_generation. Written by the reconciler (the
 * "flip" of a commit), read once by every packet on entry. An array of one: the cheapest lookup,
 * and a single aligned 4-byte store is atomic for readers. Absent (never written) reads as 0.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_generation);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_GENERATION SEC(".maps");

/*
 * VM ports of this host. Key: __u32 ifindex of the host-side port. Value: struct tenet_port_entry.
 * Written by the reconciler; read by tc on the port for every frame the VM sends (a frame from an
 * interface without a live entry is dropped: fail closed). A hash: ifindexes are sparse.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tenet_port_entry);
	__uint(max_entries, TENET_PORTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_PORTS SEC(".maps");

/*
 * Virtual subnets. Key: __u32 VSID. Value: struct tenet_vsubnet_entry. Written by the reconciler;
 * read when routing (gateway MAC and addresses, routing domain) and on decapsulation (a VSID
 * without a live entry is unknown: drop). A hash: VSIDs are 24-bit and sparse.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tenet_vsubnet_entry);
	__uint(max_entries, TENET_VSUBNETS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_VSUBNETS SEC(".maps");

/*
 * Lookup records. Key: struct tenet_ca_key (VSID, family, CA). Value:
 * struct tenet_lookup_record_entry. Written by the reconciler; read for the source check, ARP/ND
 * answers, switching, routing and decapsulation. A hash with an exact key: the whole truth about
 * where each CA lives.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tenet_ca_key);
	__type(value, struct tenet_lookup_record_entry);
	__uint(max_entries, TENET_RECORDS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_RECORDS SEC(".maps");

/*
 * Customer routes of the distributed router. Key: struct tenet_route_key (prefixlen, routing
 * domain, family, prefix). Value: struct tenet_route_entry. Written by the reconciler; read when a
 * VM sends to its gateway's MAC. An LPM trie for longest-prefix match; the fixed 64 bits before
 * the address keep routing domains and families apart. Not preallocated (kernel requirement).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tenet_route_key);
	__type(value, struct tenet_route_entry);
	__uint(max_entries, TENET_ROUTES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_ROUTES SEC(".maps");

/*
 * Provider addresses of this host. Key: __be32 PA. Value: struct tenet_local_pa_entry. Written by
 * the reconciler; read on decapsulation (NVGRE to any other address is not ours and passes) and on
 * encapsulation (the NIC and MAC that send from the port's PA). A hash of a few entries.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct tenet_local_pa_entry);
	__uint(max_entries, TENET_LOCAL_PAS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_LOCAL_PAS SEC(".maps");

/*
 * Underlay next hops. Key: __be32 remote PA. Value: struct tenet_underlay_nh. Written by the
 * agent from the host's neighbour table (and refreshed when it changes); read on encapsulation for
 * the outer destination MAC. No generations: each entry is replaced whole and atomically, and it
 * is a fact about the underlay rather than policy. A hash: PAs are sparse.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct tenet_underlay_nh);
	__uint(max_entries, TENET_UNDERLAY_NH_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_UNDERLAY_NH SEC(".maps");

/*
 * NVGRE traffic per virtual subnet. Key: __u32 VSID. Value: struct tenet_vsid_counters. Written
 * by the datapath (first use creates the entry), read by the agent at scrape time, deleted by the
 * agent when the subnet goes. Per-CPU so updates need no atomics; a preallocated hash so the
 * datapath can insert from any context.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, __u32);
	__type(value, struct tenet_vsid_counters);
	__uint(max_entries, TENET_VSID_COUNTERS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_VSID_COUNTERS SEC(".maps");

/*
 * Last redirect of each CPU. Key: __u32 0. Value: struct tenet_redirect_debug. Written by the
 * datapath just before it returns a redirect verdict; read by datapath tests (a test-run reports
 * only the verdict, not the target) and by operators debugging a path. A per-CPU array of one:
 * a lookup and three stores per redirected packet, no contention.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_redirect_debug);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_REDIRECT_DEBUG SEC(".maps");

/*
 * Scratch buffers. Key: __u32 0. Value: struct tenet_scratch. Written and read by the datapath
 * only, within one packet (tc and XDP programs do not nest on a CPU), for what does not fit the
 * 512-byte stack. A per-CPU array of one: no contention, never reallocated.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_scratch);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} TENET_MAP_SCRATCH SEC(".maps");

static __always_inline struct tenet_scratch *tenet_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&TENET_MAP_SCRATCH, &zero);
}

/*
 * BTF anchors of the policy enums, which travel in fixed-width fields (see lib/btf_anchors.h):
 * read-only globals no code reads, so the agent's ABI module gets Family, RecordFlags and
 * RouteFlags generated.
 */
const volatile enum tenet_family tenet_btf_family = TENET_AF_IPV4;
const volatile enum tenet_record_flags tenet_btf_record_flags = TENET_RECORD_LOCAL;
const volatile enum tenet_route_flags tenet_btf_route_flags = TENET_ROUTE_ONLINK;

#endif /* TENET_LIB_TABLES_H */
