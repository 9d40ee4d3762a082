/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Generation-aware lookups in the policy tables (lib/tables.h, abi/policy.h). A packet reads the
 * active generation once, on entry, with tenet_gen_active(), and passes that number to every
 * lookup here, so all its decisions come from one consistent snapshot even while the agent flips
 * the generation. An entry whose live bit for that generation is clear is absent: every lookup
 * returns NULL for it, exactly as for a missing key. The underlay next hops have no generations
 * and are read directly.
 */
#ifndef TENET_LIB_GEN_H
#define TENET_LIB_GEN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/policy.h"
#include "lib/tables.h"

/* The generation packets use now: 0 or 1 (0 while the agent has never written one). */
static __always_inline __u32 tenet_gen_active(void)
{
	struct tenet_generation *g;
	__u32 zero = 0;

	g = bpf_map_lookup_elem(&TENET_MAP_GENERATION, &zero);
	return g ? g->active & 1 : 0;
}

/* Expands to the generation's version of an entry, or NULL when the entry is not live in it. */
#define TENET_GEN_PICK(entry, gen) \
	((entry) && ((entry)->live & TENET_LIVE(gen)) ? &(entry)->v[(gen)&1] : NULL)

static __always_inline const struct tenet_port *tenet_port_get(__u32 gen, __u32 ifindex)
{
	struct tenet_port_entry *e = bpf_map_lookup_elem(&TENET_MAP_PORTS, &ifindex);

	return TENET_GEN_PICK(e, gen);
}

static __always_inline const struct tenet_vsubnet *tenet_vsubnet_get(__u32 gen, __u32 vsid)
{
	struct tenet_vsubnet_entry *e = bpf_map_lookup_elem(&TENET_MAP_VSUBNETS, &vsid);

	return TENET_GEN_PICK(e, gen);
}

/* addr: 4 bytes (TENET_AF_IPV4) or 16 bytes (TENET_AF_IPV6) in network order. */
static __always_inline const struct tenet_lookup_record *
tenet_record_get(__u32 gen, __u32 vsid, __u8 family, const void *addr)
{
	struct tenet_ca_key key = {
		.vsid = vsid,
		.family = family,
	};
	struct tenet_lookup_record_entry *e;

	if (family == TENET_AF_IPV4)
		__builtin_memcpy(key.addr, addr, 4);
	else
		__builtin_memcpy(key.addr, addr, 16);
	e = bpf_map_lookup_elem(&TENET_MAP_RECORDS, &key);
	return TENET_GEN_PICK(e, gen);
}

/*
 * Longest-prefix match of addr in routing domain rdid. The trie answers with the longest prefix
 * present in the map whatever its generations; when that entry is not live in gen the lookup
 * fails. The reconciler keeps that correct while a more specific route is staged: it gives the
 * staged key, in the active generation's slot, the value of the route that covers it there.
 */
static __always_inline const struct tenet_route *tenet_route_get(__u32 gen, __u32 rdid, __u8 family,
								 const void *addr)
{
	struct tenet_route_key key = {
		.rdid = rdid,
		.family = family,
	};
	struct tenet_route_entry *e;

	if (family == TENET_AF_IPV4) {
		key.prefixlen = TENET_ROUTE_KEY_FIXED_BITS + 32;
		__builtin_memcpy(key.addr, addr, 4);
	} else {
		key.prefixlen = TENET_ROUTE_KEY_FIXED_BITS + 128;
		__builtin_memcpy(key.addr, addr, 16);
	}
	e = bpf_map_lookup_elem(&TENET_MAP_ROUTES, &key);
	return TENET_GEN_PICK(e, gen);
}

static __always_inline const struct tenet_local_pa *tenet_local_pa_get(__u32 gen, __be32 pa)
{
	struct tenet_local_pa_entry *e = bpf_map_lookup_elem(&TENET_MAP_LOCAL_PAS, &pa);

	return TENET_GEN_PICK(e, gen);
}

static __always_inline const struct tenet_underlay_nh *tenet_underlay_get(__be32 pa)
{
	return bpf_map_lookup_elem(&TENET_MAP_UNDERLAY_NH, &pa);
}

#endif /* TENET_LIB_GEN_H */
