/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * QoS as the datapath sees it (lib/qos.h): per-port configuration the agent writes from the
 * policy's portQos/uplinks, the destination classes (metering classes by remote prefix) that get
 * their own HTB class, the token buckets that police what cannot be shaped, and the per-port QoS
 * counters.
 *
 * The model (docs/qos.md):
 *   outbound to the uplink: the program only classifies, by setting skb->priority to an HTB
 *     classid on the physical NIC; the kernel's HTB qdisc there shapes (caps, minimums,
 *     borrowing). This is the TCP-friendly path: packets queue instead of being dropped;
 *   inbound (NVGRE decapsulated in XDP, or host-local from another VM port) and outbound
 *     host-local VM-to-VM traffic bypass any qdisc the agent could shape with, so they are policed
 *     by a token bucket shared by all CPUs (compare-and-swap on one word per bucket).
 *
 * None of this is generation-scoped policy: a packet that sees an old and a new QoS entry at once
 * is only rate-limited by one or the other. Bucket state is written by the datapath only; the
 * agent writes configuration, never credit, so an agent restart grants no extra credit.
 */
#ifndef TENET_ABI_QOS_H
#define TENET_ABI_QOS_H

#include <linux/types.h>

/* Major number of the HTB qdisc tenet installs on an uplink (handle 7e:). */
#define TENET_QOS_HTB_MAJOR 0x7e

/* A token bucket's configuration: rate 0 means no limit. */
struct tenet_qos_rate {
	__u64 bytes_per_sec;
	__u64 burst_bytes;
};
_Static_assert(sizeof(struct tenet_qos_rate) == 16, "struct tenet_qos_rate is ABI: 16 bytes");

enum tenet_qos_port_flags {
	/* The port has destination classes: look the destination up in TENET_MAP_QOS_CLASSES. */
	TENET_QOS_PORT_CLASSES = 1,
};

/*
 * QoS of one VM port, keyed by the port's __u32 ifindex. classid: the HTB leaf on the uplink for
 * what the port sends there (TC_H_MAKE(TENET_QOS_HTB_MAJOR << 16, minor); 0 leaves skb->priority
 * alone, so the HTB default class takes it). inbound: the policer of everything delivered to the
 * VM. outbound: the policer of what the VM sends to other VM ports of this host (the uplink path
 * is shaped by HTB instead).
 */
struct tenet_qos_port {
	__u32 classid;
	__u32 flags; /* enum tenet_qos_port_flags */
	struct tenet_qos_rate inbound;
	struct tenet_qos_rate outbound;
};
_Static_assert(sizeof(struct tenet_qos_port) == 40, "struct tenet_qos_port is ABI: 40 bytes");

/*
 * Destination class of a port's outbound traffic: LPM key (port ifindex, family, remote address).
 * prefixlen counts TENET_QOS_CLASS_KEY_FIXED_BITS plus the prefix length.
 */
struct tenet_qos_class_key {
	__u32 prefixlen;
	__u32 ifindex;
	__u8 family; /* enum tenet_family (abi/policy.h) */
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct tenet_qos_class_key) == 28,
	       "struct tenet_qos_class_key is ABI: 28 bytes");

/* Bits of the class key that precede the address: ifindex (32), family (8), pad (24). */
#define TENET_QOS_CLASS_KEY_FIXED_BITS 64

/*
 * What a destination class does to a port's packet: classid, the HTB leaf on the uplink (0: the
 * port's own); tenant_bucket, a tenant-wide cap on this class shared by all the tenant's ports
 * (an id in TENET_MAP_QOS_TENANT_CAPS, policed; 0: none).
 */
struct tenet_qos_class {
	__u32 classid;
	__u32 tenant_bucket;
};
_Static_assert(sizeof(struct tenet_qos_class) == 8, "struct tenet_qos_class is ABI: 8 bytes");

/*
 * Tenant class caps' buckets are kept in TENET_MAP_QOS_BUCKETS under this pseudo port: key
 * { TENET_QOS_TENANT_BUCKET | id, TENET_QOS_DIR_TENANT }. Real ifindexes never set the top bit.
 */
#define TENET_QOS_TENANT_BUCKET 0x80000000u
#define TENET_QOS_DIR_TENANT 2

/*
 * A token bucket's state, keyed by struct tenet_port_key (port ifindex, direction: TX for what is
 * delivered to the VM, RX for what it sends). It is kept as GCRA's theoretical arrival time: the
 * bucket is full when tat_ns <= now, and holds (now + burst time - tat_ns) * rate bytes otherwise;
 * a packet of len bytes moves tat_ns on by len / rate. One 64-bit word, so every CPU updates it
 * with compare-and-swap and no lock. Created by the datapath (full) on first use; the agent never
 * writes it, so an agent restart grants no extra credit.
 */
struct tenet_qos_bucket {
	__u64 tat_ns;
};
_Static_assert(sizeof(struct tenet_qos_bucket) == 8, "struct tenet_qos_bucket is ABI: 8 bytes");

/*
 * What the QoS stage did with a port's packets, keyed by struct tenet_port_key: RX is what the
 * VM sent (passed: classified for the shaper or admitted by the local policer; dropped: policed),
 * TX what was to be delivered to it. Packets the HTB shaper delayed or dropped are its class
 * statistics (the agent reads them with tc).
 */
struct tenet_qos_counters {
	__u64 passed_packets;
	__u64 passed_bytes;
	__u64 dropped_packets;
	__u64 dropped_bytes;
};
_Static_assert(sizeof(struct tenet_qos_counters) == 32,
	       "struct tenet_qos_counters is ABI: 32 bytes");

/*
 * Per-CPU working space of the QoS stage: its map keys, so that they do not take the port
 * program's stack (shared by the ACL, metering and QoS stages and close to the 512-byte limit).
 */
struct tenet_qos_scratch {
	struct tenet_qos_class_key class_key;
	__u8 pad[4];
	struct tenet_port_key counter_key;
	struct tenet_port_key bucket_key;
};
_Static_assert(sizeof(struct tenet_qos_scratch) == 48, "struct tenet_qos_scratch is ABI: 48 bytes");

#endif /* TENET_ABI_QOS_H */
