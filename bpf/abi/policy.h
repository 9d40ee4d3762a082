/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Network virtualization policy as the datapath sees it: the tables the agent's compiler fills
 * from the validated policy (ports, virtual subnets, lookup records, customer routes, local
 * provider addresses) and the underlay neighbours it resolves from the host's neighbour table.
 *
 * Atomic multi-table changes: generations
 * ----------------------------------------
 * A policy change often spans tables (a VM that moves changes its port and every lookup record
 * naming it), and a packet must never see half of it. Every policy value therefore holds two
 * versions, one per generation, and a bit mask saying in which generations the entry exists:
 *
 *	struct tenet_X_entry { __u8 live; __u8 pad[7]; struct tenet_X v[2]; };
 *
 * The active generation (0 or 1) is one __u32 in TENET_MAP_GENERATION. A packet reads it once on
 * entry and uses that generation for every lookup, so it sees one consistent snapshot. The agent
 * commits a change in three steps:
 *   1. stage: for every touched key, write the whole entry with v[next] (and live bit `next`) set
 *      to the new state and v[active] (and live bit `active`) left as it is — readers of the
 *      active generation see nothing new, because a hash or LPM update replaces the element as a
 *      whole under RCU;
 *   2. flip: write next into TENET_MAP_GENERATION; new packets see the whole change at once;
 *   3. settle: wait one RCU grace period (an update of a map-in-map slot returns only after
 *      synchronize_rcu(), so every packet that began under the old generation has finished), then
 *      rewrite the touched entries with both versions equal and delete entries live in neither.
 * Memory is one extra value per entry rather than a second copy of every table, and the cost of a
 * change is proportional to what it touches.
 *
 * Counters, connection state and token buckets are not policy: they have no generations.
 */
#ifndef TENET_ABI_POLICY_H
#define TENET_ABI_POLICY_H

#include <linux/types.h>

/* Bit of entry->live for generation g. */
#define TENET_LIVE(g) ((__u8)(1u << (g)))

/* Value of TENET_MAP_GENERATION (array, one slot). */
struct tenet_generation {
	__u32 active; /* 0 or 1 */
};
_Static_assert(sizeof(struct tenet_generation) == 4, "struct tenet_generation is ABI: 4 bytes");

/* Address family of a customer address, carried in __u8 fields. */
enum tenet_family {
	TENET_AF_IPV4 = 4,
	TENET_AF_IPV6 = 6,
};

/*
 * A customer address (CA) of either family in a fixed 16 bytes: IPv4 in addr[0..3] in network
 * order with addr[4..15] zero, IPv6 as is. One key shape for both families keeps one table.
 */
struct tenet_ca_key {
	__u32 vsid;  /* virtual subnet ID, 4096..16777214 */
	__u8 family; /* enum tenet_family */
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct tenet_ca_key) == 24, "struct tenet_ca_key is ABI: 24 bytes");

/* Flags of a lookup record. */
enum tenet_record_flags {
	/* The CA belongs to a VM port on this host: deliver to ifindex, never encapsulate. */
	TENET_RECORD_LOCAL = 1,
	/* The CA is the virtual subnet's gateway (the distributed router): ARP/ND only. */
	TENET_RECORD_GATEWAY = 2,
};

/*
 * A lookup record: where customer address (vsid, CA) lives. The whole truth about CA location;
 * a live migration is a change of pa (and of LOCAL/ifindex on the hosts involved).
 */
struct tenet_lookup_record {
	__u8 mac[6];   /* the VM's (or gateway's) MAC in the virtual subnet */
	__u16 flags;   /* enum tenet_record_flags */
	__be32 pa;     /* provider address of the host the CA lives on (0 for the gateway) */
	__u32 ifindex; /* LOCAL: the host-side VM port to deliver to; else 0 */
};
_Static_assert(sizeof(struct tenet_lookup_record) == 16,
	       "struct tenet_lookup_record is ABI: 16 bytes");

struct tenet_lookup_record_entry {
	__u8 live;
	__u8 pad[7];
	struct tenet_lookup_record v[2];
};
_Static_assert(sizeof(struct tenet_lookup_record_entry) == 40,
	       "struct tenet_lookup_record_entry is ABI: 40 bytes");

/* A VM network adapter on this host, keyed by the host-side port's ifindex (__u32). */
struct tenet_port {
	__u32 vsid;
	__u32 rdid;  /* routing domain, a number the compiler assigns */
	__u8 mac[6]; /* the only source MAC the VM may use */
	__u16 mtu;   /* tenant MTU: underlay MTU - 42 unless policy lowers it */
	__be32 pa;   /* local provider address used as the outer source */
	__u32 flags; /* reserved, 0 */
};
_Static_assert(sizeof(struct tenet_port) == 24, "struct tenet_port is ABI: 24 bytes");

struct tenet_port_entry {
	__u8 live;
	__u8 pad[7];
	struct tenet_port v[2];
};
_Static_assert(sizeof(struct tenet_port_entry) == 56, "struct tenet_port_entry is ABI: 56 bytes");

/*
 * A virtual subnet, keyed by VSID (__u32). The gateway addresses are the distributed router's CAs
 * in this subnet, one per family (zero: the subnet has no gateway of that family). They are the
 * source of the ICMP errors the router sends (time exceeded, fragmentation needed, packet too
 * big); the ARP/ND answers for them come from their lookup records (TENET_RECORD_GATEWAY).
 */
struct tenet_vsubnet {
	__u32 rdid;
	__u8 gw_mac[6];	 /* the distributed router's MAC in this subnet */
	__u16 flags;	 /* reserved, 0 */
	__be32 gw_ip4;	 /* IPv4 gateway CA, or 0 */
	__u8 gw_ip6[16]; /* IPv6 gateway CA, or all zero */
};
_Static_assert(sizeof(struct tenet_vsubnet) == 32, "struct tenet_vsubnet is ABI: 32 bytes");

struct tenet_vsubnet_entry {
	__u8 live;
	__u8 pad[3];
	struct tenet_vsubnet v[2];
};
_Static_assert(sizeof(struct tenet_vsubnet_entry) == 68,
	       "struct tenet_vsubnet_entry is ABI: 68 bytes");

/*
 * Key of the customer route LPM trie. prefixlen counts bits from rdid on: 64 bits of rdid,
 * family and pad always match exactly, so a route for prefix /p has prefixlen 64 + p.
 */
struct tenet_route_key {
	__u32 prefixlen;
	__u32 rdid;
	__u8 family; /* enum tenet_family */
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct tenet_route_key) == 28, "struct tenet_route_key is ABI: 28 bytes");

/* Bits of the route key that precede the address: rdid (32), family (8), pad (24). */
#define TENET_ROUTE_KEY_FIXED_BITS 64

enum tenet_route_flags {
	/* Next hop is the destination itself, found by lookup record in vsid. */
	TENET_ROUTE_ONLINK = 1,
	/* Next hop is nexthop (a CA in vsid): forward to its record's MAC and PA. */
	TENET_ROUTE_GATEWAY = 2,
};

/* A customer route: where a prefix of a routing domain goes. */
struct tenet_route {
	__u32 vsid;	  /* destination virtual subnet */
	__u32 flags;	  /* enum tenet_route_flags */
	__u8 nexthop[16]; /* TENET_ROUTE_GATEWAY: CA of the next hop, same family as the key */
};
_Static_assert(sizeof(struct tenet_route) == 24, "struct tenet_route is ABI: 24 bytes");

struct tenet_route_entry {
	__u8 live;
	__u8 pad[7];
	struct tenet_route v[2];
};
_Static_assert(sizeof(struct tenet_route_entry) == 56, "struct tenet_route_entry is ABI: 56 bytes");

/*
 * A provider address of this host, keyed by the PA (__be32): decapsulation accepts NVGRE only
 * to these, and encapsulation sends from the physical NIC that owns the source PA.
 */
struct tenet_local_pa {
	__u32 ifindex; /* the physical NIC (or VF) that owns the PA */
	__u8 mac[6];   /* its MAC: the outer source MAC */
	__u16 mtu;     /* underlay MTU of that NIC */
};
_Static_assert(sizeof(struct tenet_local_pa) == 12, "struct tenet_local_pa is ABI: 12 bytes");

struct tenet_local_pa_entry {
	__u8 live;
	__u8 pad[3];
	struct tenet_local_pa v[2];
};
_Static_assert(sizeof(struct tenet_local_pa_entry) == 28,
	       "struct tenet_local_pa_entry is ABI: 28 bytes");

/*
 * The underlay next hop towards a remote PA, keyed by the remote PA (__be32). Not policy but a
 * reflection of the host's neighbour table, refreshed by the agent when it changes; a single
 * element update is atomic, so it has no generations.
 */
struct tenet_underlay_nh {
	__u8 mac[6]; /* destination MAC of the outer frame */
	__u8 pad[2];
};
_Static_assert(sizeof(struct tenet_underlay_nh) == 8, "struct tenet_underlay_nh is ABI: 8 bytes");

/* Per-VSID NVGRE traffic, the value of the per-CPU VSID counters keyed by VSID (__u32). */
struct tenet_vsid_counters {
	__u64 encap_packets;
	__u64 encap_bytes;
	__u64 decap_packets;
	__u64 decap_bytes;
#ifdef TENET_ABI_TEST_VSID_COUNTERS_PAD
	/*
	 * Tests only: a deliberately different layout (40 bytes) for an "older ABI" build, so the
	 * agent's counter migration converts a changed value layout (agent/host/migrate.ts).
	 */
	__u64 test_pad;
#endif
};
#ifdef TENET_ABI_TEST_VSID_COUNTERS_PAD
_Static_assert(sizeof(struct tenet_vsid_counters) == 40, "test layout: 40 bytes");
#else
_Static_assert(sizeof(struct tenet_vsid_counters) == 32,
	       "struct tenet_vsid_counters is ABI: 32 bytes");
#endif

/*
 * Where the last packet this CPU redirected went: the value of the per-CPU debug slot
 * TENET_MAP_REDIRECT_DEBUG. Lets a test-run (which reports only the verdict) and an operator check
 * the target of a redirect.
 */
struct tenet_redirect_debug {
	__u32 ifindex; /* target interface of the last bpf_redirect() */
	__u32 flags;   /* its flags (0: egress of ifindex; BPF_F_INGRESS) */
	__u64 count;   /* redirects by this CPU since load */
};
_Static_assert(sizeof(struct tenet_redirect_debug) == 16,
	       "struct tenet_redirect_debug is ABI: 16 bytes");

/*
 * Per-CPU scratch space of the datapath (TENET_MAP_SCRATCH): buffers too big for the 512-byte BPF
 * stack, used while building ICMP errors and ND answers. Not read by the agent; in the ABI only
 * because every map's value type is.
 */
struct tenet_scratch {
	__u8 quote[128]; /* the quoted packet of an ICMP error (TENET_ICMP_QUOTE_MAX) */
	__u8 frame[128]; /* headers under construction */
};
_Static_assert(sizeof(struct tenet_scratch) == 256, "struct tenet_scratch is ABI: 256 bytes");

#endif /* TENET_ABI_POLICY_H */
