// SPDX-License-Identifier: Apache-2.0
// libbpf's *_opts structs must be zeroed (including padding) and carry their own size in .sz.
// libbpf's LIBBPF_OPTS macro relies on C compound literals and statement expressions, which are
// not portable C++; this is the C++ spelling of the same contract.
#pragma once

#include <cstring>

namespace tenet {

// Zeroes in place: libbpf's OPTS_VALID rejects non-zero bytes after the last known field, and
// padding is not guaranteed to survive a copy (returning the struct by value lost it).
template <typename T> void InitOpts(T &opts)
{
	memset(&opts, 0, sizeof(opts));
	opts.sz = sizeof(opts);
}

} // namespace tenet
