/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Names and sizes of every map tenet pins. The names are the C identifiers of the map definitions
 * (the headers in lib/ declare the maps through these macros) and, since the maps are pinned by
 * name, their file names under TENET_PIN_ROOT. They stay within 15 characters, the kernel's object
 * name limit, so bpftool shows them whole. The agent's copies are generated from BTF; never spell
 * a map name as a string anywhere else.
 */
#ifndef TENET_ABI_MAPS_H
#define TENET_ABI_MAPS_H

/* Per-CPU hash: struct tenet_port_key -> struct tenet_counter (lib/counters.h). */
#define TENET_MAP_PORT_COUNTERS tenet_port_ctrs
/* Ports on one host (NICs, VFs, VM ports) times two directions. */
#define TENET_PORT_COUNTERS_MAX 4096

/* Per-CPU array: __u32 enum tenet_drop_reason -> struct tenet_counter (lib/counters.h). */
#define TENET_MAP_DROP_COUNTERS tenet_drop_ctrs
/*
 * Slots for drop reasons. Fixed, so appending a reason to the catalogue does not change the map
 * and pinned maps keep working; growing it is an ABI version bump. test/unit/abi.test.ts checks
 * that every reason in the catalogue fits.
 */
#define TENET_DROP_REASON_SLOTS 64

/* Ring buffer of struct tenet_event_record (lib/events.h). */
#define TENET_MAP_EVENTS tenet_events
/* Bytes: a power of two, a multiple of the page size. 2730 drop events of 88 + 8 bytes. */
#define TENET_EVENTS_RING_BYTES (256 * 1024)

#endif /* TENET_ABI_MAPS_H */
