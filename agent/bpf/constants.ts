// Named values of the kernel's BPF ABI (include/uapi/linux/bpf.h, linux/if_link.h, linux/pkt_cls.h)
// that the agent passes through the binding. The kernel never renumbers these; values newer than
// the build host's headers (tcx, netkit) are included because the target kernel has them.

/** enum bpf_map_type. */
export const MapType = {
  UNSPEC: 0,
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  SOCKMAP: 15,
  CPUMAP: 16,
  XSKMAP: 17,
  SOCKHASH: 18,
  CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20,
  PERCPU_CGROUP_STORAGE: 21,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  DEVMAP_HASH: 25,
  STRUCT_OPS: 26,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
  BLOOM_FILTER: 30,
  USER_RINGBUF: 31,
  CGRP_STORAGE: 32,
  ARENA: 33,
} as const;
export type MapType = (typeof MapType)[keyof typeof MapType];

/** Map types whose values are per possible CPU (value buffers are ncpus 8-byte-aligned slots). */
export const PER_CPU_MAP_TYPES: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
  MapType.PERCPU_CGROUP_STORAGE,
]);

/** Map types whose values are other maps (write an fd, read an id). */
export const MAP_IN_MAP_TYPES: ReadonlySet<number> = new Set([
  MapType.ARRAY_OF_MAPS,
  MapType.HASH_OF_MAPS,
]);

/** enum bpf_prog_type. */
export const ProgType = {
  UNSPEC: 0,
  SOCKET_FILTER: 1,
  KPROBE: 2,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  TRACEPOINT: 5,
  XDP: 6,
  PERF_EVENT: 7,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  LWT_IN: 10,
  LWT_OUT: 11,
  LWT_XMIT: 12,
  SOCK_OPS: 13,
  SK_SKB: 14,
  CGROUP_DEVICE: 15,
  SK_MSG: 16,
  RAW_TRACEPOINT: 17,
  CGROUP_SOCK_ADDR: 18,
  LWT_SEG6LOCAL: 19,
  LIRC_MODE2: 20,
  SK_REUSEPORT: 21,
  FLOW_DISSECTOR: 22,
  CGROUP_SYSCTL: 23,
  RAW_TRACEPOINT_WRITABLE: 24,
  CGROUP_SOCKOPT: 25,
  TRACING: 26,
  STRUCT_OPS: 27,
  EXT: 28,
  LSM: 29,
  SK_LOOKUP: 30,
  SYSCALL: 31,
  NETFILTER: 32,
} as const;
export type ProgType = (typeof ProgType)[keyof typeof ProgType];

/** The enum bpf_attach_type values tenet uses. */
export const AttachType = {
  XDP_DEVMAP: 33,
  XDP_CPUMAP: 35,
  XDP: 37,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
  NETKIT_PRIMARY: 54,
  NETKIT_PEER: 55,
} as const;
export type AttachType = (typeof AttachType)[keyof typeof AttachType];

/** enum bpf_link_type. */
export const LinkType = {
  UNSPEC: 0,
  RAW_TRACEPOINT: 1,
  TRACING: 2,
  CGROUP: 3,
  ITER: 4,
  NETNS: 5,
  XDP: 6,
  PERF_EVENT: 7,
  KPROBE_MULTI: 8,
  STRUCT_OPS: 9,
  NETFILTER: 10,
  TCX: 11,
  UPROBE_MULTI: 12,
  NETKIT: 13,
  SOCKMAP: 14,
} as const;
export type LinkType = (typeof LinkType)[keyof typeof LinkType];

/** Flags of element updates (bpf_map_update_elem / update batch). */
export const UpdateFlags = {
  /** Create or update. */
  ANY: 0,
  /** Create only: EEXIST if present. */
  NOEXIST: 1,
  /** Update only: ENOENT if absent. */
  EXIST: 2,
  /** Take the value's bpf_spin_lock. */
  F_LOCK: 4,
} as const;
export const BPF_ANY = UpdateFlags.ANY;
export const BPF_NOEXIST = UpdateFlags.NOEXIST;
export const BPF_EXIST = UpdateFlags.EXIST;
export const BPF_F_LOCK = UpdateFlags.F_LOCK;

/** Map creation flags (map_flags). */
export const MapFlags = {
  NO_PREALLOC: 1 << 0,
  NO_COMMON_LRU: 1 << 1,
  NUMA_NODE: 1 << 2,
  RDONLY: 1 << 3,
  WRONLY: 1 << 4,
  STACK_BUILD_ID: 1 << 5,
  ZERO_SEED: 1 << 6,
  RDONLY_PROG: 1 << 7,
  WRONLY_PROG: 1 << 8,
  CLONE: 1 << 9,
  MMAPABLE: 1 << 10,
  PRESERVE_ELEMS: 1 << 11,
  INNER_MAP: 1 << 12,
} as const;

/** enum xdp_action. */
export const XdpAction = {
  ABORTED: 0,
  DROP: 1,
  PASS: 2,
  TX: 3,
  REDIRECT: 4,
} as const;
export type XdpAction = (typeof XdpAction)[keyof typeof XdpAction];

/** TC_ACT_* verdicts of direct-action tc programs. */
export const TcAction = {
  UNSPEC: -1,
  OK: 0,
  RECLASSIFY: 1,
  SHOT: 2,
  PIPE: 3,
  STOLEN: 4,
  QUEUED: 5,
  REPEAT: 6,
  REDIRECT: 7,
} as const;
export type TcAction = (typeof TcAction)[keyof typeof TcAction];

/** BPF_F_TEST_RUN_* flags of BpfProgram.testRun. */
export const TestRunFlags = {
  ON_CPU: 1 << 0,
  XDP_LIVE_FRAMES: 1 << 1,
} as const;
