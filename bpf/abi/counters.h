/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Layouts of tenet's traffic and drop counters: what the datapath counts and the agent reads at
 * scrape time. Counters live in per-CPU maps (abi/maps.h), so every CPU writes its own copy without
 * atomics and the agent sums the copies. They are never reset: an agent restart or a program
 * reload keeps counting from where the pinned map was.
 */
#ifndef TENET_ABI_COUNTERS_H
#define TENET_ABI_COUNTERS_H

#include <linux/types.h>

/*
 * Direction of a packet relative to the host, at the interface it is counted on. For a physical
 * NIC, RX is traffic from the wire. For a VM port (the host side of a veth or tap), RX is what the
 * VM sent and TX what the host delivers to the VM. Carried in __u8 fields.
 */
enum tenet_direction {
	TENET_DIR_RX = 0,
	TENET_DIR_TX = 1,
};

/* Key of the per-port traffic counters: one entry per interface and direction. */
struct tenet_port_key {
	__u32 ifindex;
	__u8 direction; /* enum tenet_direction */
	__u8 pad[3];
};
_Static_assert(sizeof(struct tenet_port_key) == 8, "struct tenet_port_key is ABI: 8 bytes");

/*
 * A packet and byte count, the value of both the port counters and the drop counters. Bytes are
 * the frame length the hook sees: from the Ethernet header to the end of the payload, no FCS.
 */
struct tenet_counter {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct tenet_counter) == 16, "struct tenet_counter is ABI: 16 bytes");

/*
 * Zeroes: the first value of a new counter or state entry (per-CPU counters, QoS buckets), read
 * from a map so that no stage spends the port program's 512-byte stack on a zeroed struct. Sized
 * for the largest such value, with room to grow.
 */
struct tenet_zero {
	__u8 bytes[64];
};
_Static_assert(sizeof(struct tenet_zero) == 64, "struct tenet_zero is ABI: 64 bytes");

#endif /* TENET_ABI_COUNTERS_H */
