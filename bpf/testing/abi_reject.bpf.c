// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture for the ABI generator's tests (test/unit/abi.test.ts); never loaded. Every struct here
 * breaks one rule of bpf/abi/, and generation from this object must fail naming each of them.
 */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "lib/btf_anchors.h"

struct tenet_reject_hole {
	__u8 a;
	__u32 b;
};

struct tenet_reject_tail {
	__u32 a;
	__u8 b;
};

struct tenet_reject_bitfield {
	__u32 a : 3;
	__u32 b : 29;
};

union tenet_reject_union {
	__u32 a;
	__u8 b[4];
};

struct tenet_reject_member_union {
	union {
		__u32 a;
		__u8 b[4];
	} u;
};

struct tenet_reject_enum {
	enum tenet_direction dir;
};

struct tenet_reject_ptr {
	__u64 *p;
};

struct tenet_reject_foreign {
	struct iphdr ip;
};

enum tenet_reject_negative {
	TENET_REJECT_NEGATIVE_ONE = -1,
};

const volatile enum tenet_reject_negative tenet_btf_reject_negative = TENET_REJECT_NEGATIVE_ONE;
struct tenet_reject_hole *const volatile tenet_btf_reject_hole = 0;
struct tenet_reject_tail *const volatile tenet_btf_reject_tail = 0;
struct tenet_reject_bitfield *const volatile tenet_btf_reject_bitfield = 0;
union tenet_reject_union *const volatile tenet_btf_reject_union = 0;
struct tenet_reject_member_union *const volatile tenet_btf_reject_member_union = 0;
struct tenet_reject_enum *const volatile tenet_btf_reject_enum = 0;
struct tenet_reject_ptr *const volatile tenet_btf_reject_ptr = 0;
struct tenet_reject_foreign *const volatile tenet_btf_reject_foreign = 0;

char LICENSE[] SEC("license") = "GPL";
