/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Records the datapath sends to the agent through the events ring buffer (abi/maps.h): today one
 * record per dropped packet when drop events are enabled, with the reason and the first bytes of
 * the frame, so "tenetctl monitor" can show what was dropped and why. Events are best effort: when
 * the ring is full the record is lost, the drop itself is still counted.
 */
#ifndef TENET_ABI_EVENTS_H
#define TENET_ABI_EVENTS_H

#include <linux/types.h>

/* What a struct tenet_event_record reports. Carried in a __u16 field. */
enum tenet_event_kind {
	TENET_EVENT_NONE = 0,
	/* A packet was dropped; reason says why. */
	TENET_EVENT_DROP = 1,
};

/* Bytes of the frame copied into an event: Ethernet, two VLAN tags, IPv4 and 22 bytes of L4. */
#define TENET_EVENT_SAMPLE_LEN 64

struct tenet_event_record {
	__u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 pkt_len;	  /* length of the whole frame */
	__u16 kind;	  /* enum tenet_event_kind */
	__u16 reason;	  /* enum tenet_drop_reason */
	__u16 sample_len; /* bytes of sample that hold frame data, at most TENET_EVENT_SAMPLE_LEN */
	__u8 direction;	  /* enum tenet_direction */
	__u8 pad;
	__u8 sample[TENET_EVENT_SAMPLE_LEN];
};
_Static_assert(sizeof(struct tenet_event_record) == 88,
	       "struct tenet_event_record is ABI: 88 bytes");

#endif /* TENET_ABI_EVENTS_H */
