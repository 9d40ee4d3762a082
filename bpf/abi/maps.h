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

/* Array, one slot: __u32 0 -> struct tenet_zero (lib/counters.h); never written. */
#define TENET_MAP_ZERO tenet_zero

/* Ring buffer of struct tenet_event_record (lib/events.h). */
#define TENET_MAP_EVENTS tenet_events
/* Bytes: a power of two, a multiple of the page size. 2730 drop events of 88 + 8 bytes. */
#define TENET_EVENTS_RING_BYTES (256 * 1024)

/*
 * Network virtualization policy (abi/policy.h, lib/tables.h). The policy maps hold two
 * generations per value; TENET_MAP_GENERATION says which one packets use.
 */

/* Array, one slot: __u32 0 -> struct tenet_generation. */
#define TENET_MAP_GENERATION tenet_gen

/* Hash: __u32 ifindex of a host-side VM port -> struct tenet_port_entry. */
#define TENET_MAP_PORTS tenet_ports
/* VM network adapters on one host. */
#define TENET_PORTS_MAX 1024

/* Hash: __u32 VSID -> struct tenet_vsubnet_entry. */
#define TENET_MAP_VSUBNETS tenet_vsubnets
/* Virtual subnets one host knows (those of its VMs and the subnets they route to). */
#define TENET_VSUBNETS_MAX 4096

/* Hash: struct tenet_ca_key -> struct tenet_record_entry. */
#define TENET_MAP_RECORDS tenet_records
/* Lookup records: every CA of every virtual subnet the host's VMs can reach, local or remote. */
#define TENET_RECORDS_MAX 65536

/* LPM trie: struct tenet_route_key -> struct tenet_route_entry. */
#define TENET_MAP_ROUTES tenet_routes
/* Customer routes of all routing domains on one host. */
#define TENET_ROUTES_MAX 16384

/* Hash: __be32 provider address -> struct tenet_local_pa_entry. */
#define TENET_MAP_LOCAL_PAS tenet_local_pas
/* Provider addresses of one host: one or a few per physical NIC. */
#define TENET_LOCAL_PAS_MAX 64

/* Hash: __be32 remote provider address -> struct tenet_underlay_nh (no generations). */
#define TENET_MAP_UNDERLAY_NH tenet_underlay
/* Remote hosts one host sends NVGRE to. */
#define TENET_UNDERLAY_NH_MAX 16384

/* Per-CPU hash: __u32 VSID -> struct tenet_vsid_counters. */
#define TENET_MAP_VSID_COUNTERS tenet_vsid_ctrs
/* As many as virtual subnets. */
#define TENET_VSID_COUNTERS_MAX TENET_VSUBNETS_MAX

/* Per-CPU array, one slot: __u32 0 -> struct tenet_redirect_debug. */
#define TENET_MAP_REDIRECT_DEBUG tenet_redir_dbg

/* Per-CPU array, one slot: __u32 0 -> struct tenet_scratch. */
#define TENET_MAP_SCRATCH tenet_scratch

/* Port ACLs (abi/acl.h, lib/acl.h). */

/* Hash: __u32 ifindex of a host-side VM port -> struct tenet_acl_port. */
#define TENET_MAP_ACL_PORTS tenet_acl_ports
/* LPM trie: struct tenet_acl_field_key -> struct tenet_acl_bits. */
#define TENET_MAP_ACL_FIELDS tenet_acl_field
/*
 * Field entries on one host over all rule sets, the two of a flip included. Each is a 1.3 KiB
 * bitmap, allocated only when written (LPM tries are never preallocated).
 */
#define TENET_ACL_FIELDS_MAX 65536
/* Hash: struct tenet_acl_rule_key -> struct tenet_acl_rule. */
#define TENET_MAP_ACL_RULES tenet_acl_rules
/* Allow/deny rules on one host over all rule sets, the two of a flip included. */
#define TENET_ACL_HOST_RULES_MAX 65536
/* Per-CPU hash: struct tenet_acl_rule_key -> struct tenet_counter. */
#define TENET_MAP_ACL_RULE_CTRS tenet_acl_rctrs
/* LRU hash: struct tenet_acl_ct_key -> struct tenet_acl_ct. */
#define TENET_MAP_ACL_CT tenet_acl_ct
/* Default size; the agent sets it at load time from tenetd's acl.conntrackEntries. */
#define TENET_ACL_CT_MAX 262144
/* LRU hash: struct tenet_acl_frag_key -> struct tenet_acl_frag. */
#define TENET_MAP_ACL_FRAGS tenet_acl_frags
/* Fragmented datagrams in flight on one host. */
#define TENET_ACL_FRAGS_MAX 16384
/* Per-CPU array: __u32 enum tenet_acl_stat -> struct tenet_counter. */
#define TENET_MAP_ACL_STATS tenet_acl_stats
/* Per-CPU array, one slot: __u32 0 -> struct tenet_acl_scratch. */
#define TENET_MAP_ACL_SCRATCH tenet_acl_scr

/* LPM trie: struct tenet_meter_key -> struct tenet_meter_class_entry (lib/meter.h). */
#define TENET_MAP_METER_CLASSES tenet_meter_cls
/* Meter prefixes of all VM ports of one host, both directions. */
#define TENET_METER_CLASSES_MAX 16384

/* Per-CPU hash: struct tenet_meter_ctr_key -> struct tenet_counter (lib/meter.h). */
#define TENET_MAP_METER_COUNTERS tenet_meter_ctr
/* VM ports (TENET_PORTS_MAX) x two directions x eight classes (default included) on average. */
#define TENET_METER_COUNTERS_MAX 16384
/* Hash: __u32 ifindex of a VM port -> struct tenet_steer_entry (abi/steer.h, lib/steer.h). */
#define TENET_MAP_STEER tenet_steer
/* As many as VM ports. */
#define TENET_STEER_MAX TENET_PORTS_MAX

/* Per-CPU hash: __u32 ifindex of a VM port -> struct tenet_steer_counters. */
#define TENET_MAP_STEER_COUNTERS tenet_steer_cnt
#define TENET_STEER_COUNTERS_MAX TENET_PORTS_MAX

/* CPU map: __u32 CPU -> struct tenet_cpumap_val (queue size, cpumap program). */
#define TENET_MAP_CPUMAP tenet_cpumap
/*
 * CPUs a port can be steered to: 0..255. The kernel refuses a cpumap larger than NR_CPUS (E2BIG);
 * distribution kernels build with NR_CPUS >= 256 (Debian: 8192).
 */
#define TENET_CPUMAP_MAX 256
/* QoS (abi/qos.h, lib/qos.h); no generations. */

/* Hash: __u32 ifindex of a VM port -> struct tenet_qos_port. */
#define TENET_MAP_QOS_PORTS tenet_qos_ports
#define TENET_QOS_PORTS_MAX TENET_PORTS_MAX

/* LPM trie: struct tenet_qos_class_key -> struct tenet_qos_class. */
#define TENET_MAP_QOS_CLASSES tenet_qos_cls
/* Destination-class prefixes of all ports of one host. */
#define TENET_QOS_CLASSES_MAX 16384

/* Hash: __u32 tenant bucket id -> struct tenet_qos_rate (tenant class caps). */
#define TENET_MAP_QOS_TENANT_CAPS tenet_qos_tcaps
#define TENET_QOS_TENANT_CAPS_MAX 4096

/* Hash: struct tenet_port_key -> struct tenet_qos_bucket. */
#define TENET_MAP_QOS_BUCKETS tenet_qos_bkts
/* Two buckets (inbound, local outbound) per port, and the tenant class caps'. */
#define TENET_QOS_BUCKETS_MAX (2 * TENET_PORTS_MAX + TENET_QOS_TENANT_CAPS_MAX)

/* Per-CPU hash: struct tenet_port_key -> struct tenet_qos_counters. */
#define TENET_MAP_QOS_COUNTERS tenet_qos_ctrs
#define TENET_QOS_COUNTERS_MAX (2 * TENET_PORTS_MAX)

/* Per-CPU array, one slot: __u32 0 -> struct tenet_qos_scratch. */
#define TENET_MAP_QOS_SCRATCH tenet_qos_scr

#endif /* TENET_ABI_MAPS_H */
