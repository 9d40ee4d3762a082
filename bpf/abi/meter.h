/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Port metering (Hyper-V's metering ACLs): the layouts of the per-port metering class table the
 * compiler fills from the policy's `meter` rules and of the per-class traffic counters the
 * datapath keeps (lib/meter.h).
 *
 * A port's metering classes are remote prefixes per direction: the remote address of a packet
 * (the destination of what the VM sends, the source of what it receives) selects the class of
 * the longest prefix among the port's meter rules for that direction; a packet no prefix covers
 * counts in the implicit default class 0, so the classes of a port sum to its metered total.
 *
 * The class table is policy and uses the generation scheme of abi/policy.h (two versions per
 * entry and a live mask), so a port's classes change atomically together with the rest of a
 * policy change: one generation flip. Counters are not policy: no generations, never reset.
 */
#ifndef TENET_ABI_METER_H
#define TENET_ABI_METER_H

#include <linux/types.h>

/* Class id of the implicit default class (traffic no meter prefix of the port covers). */
#define TENET_METER_CLASS_DEFAULT 0

/*
 * Key of the metering class LPM trie. prefixlen counts bits from ifindex on: 64 bits of ifindex,
 * direction, family and pad always match exactly, so a class prefix /p has prefixlen 64 + p.
 */
struct tenet_meter_key {
	__u32 prefixlen;
	__u32 ifindex;	/* the host-side VM port */
	__u8 direction; /* enum tenet_direction: RX = from the VM (outbound), TX = to the VM */
	__u8 family;	/* enum tenet_family */
	__u8 pad[2];
	__u8 addr[16]; /* remote prefix, IPv4 in addr[0..3] */
};
_Static_assert(sizeof(struct tenet_meter_key) == 28, "struct tenet_meter_key is ABI: 28 bytes");

/* Bits of the meter key that precede the address: ifindex (32), direction, family, pad (32). */
#define TENET_METER_KEY_FIXED_BITS 64

/* The metering class a prefix selects. */
struct tenet_meter_class {
	__u32 class_id; /* compiler-assigned, never TENET_METER_CLASS_DEFAULT */
};
_Static_assert(sizeof(struct tenet_meter_class) == 4, "struct tenet_meter_class is ABI: 4 bytes");

struct tenet_meter_class_entry {
	__u8 live;
	__u8 pad[3];
	struct tenet_meter_class v[2];
};
_Static_assert(sizeof(struct tenet_meter_class_entry) == 12,
	       "struct tenet_meter_class_entry is ABI: 12 bytes");

/* Key of the per-class counters (value: struct tenet_counter of abi/counters.h). */
struct tenet_meter_ctr_key {
	__u32 ifindex;	/* the host-side VM port */
	__u32 class_id; /* struct tenet_meter_class.class_id, or TENET_METER_CLASS_DEFAULT */
	__u8 direction; /* enum tenet_direction */
	__u8 pad[3];
};
_Static_assert(sizeof(struct tenet_meter_ctr_key) == 12,
	       "struct tenet_meter_ctr_key is ABI: 12 bytes");

#endif /* TENET_ABI_METER_H */
