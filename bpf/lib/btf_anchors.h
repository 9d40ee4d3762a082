/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Puts every ABI type into the BTF of the object that includes this header (each product entry
 * file does). The agent's ABI module is generated from that BTF (scripts/gen-abi.ts), but clang
 * emits BTF only for types that a global, a map or a non-inlined function mentions. Structs that
 * are map keys or values get there on their own; the enums, which travel in fixed-width fields,
 * and the ring-buffer record, which no map definition names, are anchored here by read-only
 * globals that no code reads. They cost a few bytes of .rodata.
 *
 * tenet_abi_version also lets anyone read the ABI version of a compiled object from its .rodata.
 */
#ifndef TENET_LIB_BTF_ANCHORS_H
#define TENET_LIB_BTF_ANCHORS_H

#include "abi/counters.h"
#include "abi/drop_reasons.h"
#include "abi/events.h"
#include "abi/version.h"

const volatile enum tenet_abi tenet_abi_version = TENET_ABI_VERSION;
const volatile enum tenet_drop_reason tenet_btf_drop_reason = TENET_DROP_NONE;
const volatile enum tenet_direction tenet_btf_direction = TENET_DIR_RX;
const volatile enum tenet_event_kind tenet_btf_event_kind = TENET_EVENT_NONE;
struct tenet_event_record *const volatile tenet_btf_event_record = 0;

#endif /* TENET_LIB_BTF_ANCHORS_H */
