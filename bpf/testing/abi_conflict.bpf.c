// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture for the ABI generator's tests (test/unit/abi.test.ts); never loaded. It defines a struct
 * and a map that the product objects also define, differently, as an object built from stale
 * sources would: generating from it together with a product object must fail.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

enum tenet_abi {
	TENET_ABI_VERSION = 1,
};

struct tenet_counter {
	__u64 packets;
};

const volatile enum tenet_abi tenet_abi_version = TENET_ABI_VERSION;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tenet_counter);
	__uint(max_entries, 32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tenet_drop_ctrs SEC(".maps");

char LICENSE[] SEC("license") = "GPL";
