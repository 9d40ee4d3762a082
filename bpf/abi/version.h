/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ABI version of the contract between tenet's BPF programs and its agent: every struct in
 * bpf/abi/, every map name and size in abi/maps.h, and the drop-reason numbering.
 *
 * Bump TENET_ABI_VERSION (TENET_ABI_VERSION_VALUE below, and TENET_PIN_ROOT with it) whenever a
 * layout changes in a way an older reader would misread (a field moves, changes width or meaning,
 * a map changes type, key or value). Appending a drop reason or
 * adding a new map does not need a bump. Maps are pinned under TENET_PIN_ROOT, which carries the
 * version, so an agent of version N never adopts the maps of version M: it builds new ones next to
 * the old and migrates. The agent's copy of the version (agent/abi/generated.ts) is generated from
 * the objects' BTF, so these two lines are the only ones to edit (gen-abi checks they agree). A
 * newer agent migrates an older datapath (agent/host/migrate.ts).
 */
#ifndef TENET_ABI_VERSION_H
#define TENET_ABI_VERSION_H

/*
 * Tests only: -DTENET_ABI_VERSION_OVERRIDE=<n> builds the same sources as another ABI version (a
 * "previous" or "next" release) so the agent's migration between versioned pin roots can be
 * exercised (test/resilience/migration.test.ts). Product builds (make -C bpf) never set it, and
 * TENET_PIN_ROOT below keeps the real version: such a build is loaded with an explicit pin root.
 */
#ifdef TENET_ABI_VERSION_OVERRIDE
#define TENET_ABI_VERSION_VALUE TENET_ABI_VERSION_OVERRIDE
#else
#define TENET_ABI_VERSION_VALUE 1
#endif

enum tenet_abi {
	TENET_ABI_VERSION = TENET_ABI_VERSION_VALUE,
};

/* bpffs directory the agent passes to libbpf as pin_root_path, followed by "/v<version>". */
#define TENET_PIN_BASE "/sys/fs/bpf/tenet"
#define TENET_PIN_ROOT TENET_PIN_BASE "/v1"

#endif /* TENET_ABI_VERSION_H */
