// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture for the ABI generator's tests (test/unit/abi.test.ts); never loaded. It has a struct with
 * every kind of member the ABI allows (big-endian, signed and unsigned integers of each width,
 * byte arrays, arrays of integers and of structs, nested structs, padding), an enum with aliases,
 * a map-in-map and knobs, so the generated codecs can be checked against bytes written out by
 * hand.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "lib/btf_anchors.h"

enum tenet_fixture_kind {
	TENET_FIXTURE_KIND_ZERO = 0,
	TENET_FIXTURE_KIND_SEVEN = 7,
	TENET_FIXTURE_KIND_ALIAS = 7,
	TENET_FIXTURE_KIND_MAX = 0x7fffffff,
};

struct tenet_fixture_inner {
	__be16 port;
	__u8 proto;
	__u8 pad;
	__be32 addr;
};
_Static_assert(sizeof(struct tenet_fixture_inner) == 8, "struct tenet_fixture_inner: 8 bytes");

struct tenet_fixture {
	__be16 be16;
	__u8 u8;
	__s8 s8;
	__be32 be32;
	__s32 s32;
	__u16 u16;
	__s16 s16;
	__be64 be64;
	__u64 u64;
	__s64 s64;
	__u8 mac[6];
	__u8 pad0[2];
	__be32 words[2];
	struct tenet_fixture_inner inner;
	struct tenet_fixture_inner pair[2];
	__u32 u32;
	__u32 pad1;
};
_Static_assert(sizeof(struct tenet_fixture) == 88, "struct tenet_fixture: 88 bytes");

const volatile enum tenet_fixture_kind tenet_btf_fixture_kind = TENET_FIXTURE_KIND_ZERO;
const volatile __s32 tenet_cfg_fixture_delta = -5;
const volatile __u64 tenet_cfg_fixture_big = 1ULL << 40;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tenet_fixture_inner);
	__type(value, struct tenet_fixture);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} tenet_fx_hash SEC(".maps");

struct tenet_fx_inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct tenet_fx_inner_map);
} tenet_fx_outer SEC(".maps");

SEC("xdp")
int tenet_fixture_prog(struct xdp_md *ctx)
{
	return tenet_cfg_fixture_delta < 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
