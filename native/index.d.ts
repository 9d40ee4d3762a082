// SPDX-License-Identifier: Apache-2.0
// Types of the tenet native addon (native/build/Release/tenet_native.node), a thin N-API binding
// over the system libbpf (1.1). This file is the only description of the addon's surface; the TS
// layer in agent/bpf/ loads it and adds behaviour (typed maps, batching, fallbacks).
//
// Error contract (every function and method below):
// - A failure of libbpf, the bpf() syscall or another syscall throws the class registered with
//   setErrorClass(), constructed as `new Ctor(message, init)` with `init: BpfErrorInit`: `code` is
//   the errno name ('ENOENT', 'E2BIG', 'EPERM', 'EINVAL', 'EBADF', ...), `errno` the positive
//   number, `op` the failing call ('bpf_map_update_elem', 'bpf_object__load', 'bpf_xdp_attach',
//   'if_nametoindex', ...).
// - Using a handle after close() throws that class with code 'EBADF' and `op` naming the method,
//   e.g. 'BpfMap.lookup'.
// - Wrong argument types, missing required options, and key/value buffers of the wrong size throw
//   a plain TypeError (never reaching the kernel). Size errors read like
//   "BpfMap.update: value must be 8 bytes, got 4".
// - Nothing in the addon aborts the process on bad input.
//
// Byte layout: keys and values are raw bytes in host byte order as the kernel stores them. For
// per-CPU maps (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE) a value buffer
// is numPossibleCpus() slots of round_up(valueSize, 8) bytes, in and out (see
// BpfMap.valueBufferSize). For map-in-map outers (ARRAY_OF_MAPS, HASH_OF_MAPS) a value written is
// a u32 inner map fd and a value read is the u32 inner map id; for PROG_ARRAY likewise a program
// fd / id.

/// <reference types="node" />

/** Fields the native side passes to the registered error class's constructor. */
export interface BpfErrorInit {
  /** errno name, e.g. 'ENOENT'. */
  code: string;
  /** Positive errno value. */
  errno: number;
  /** The failing operation: a libbpf/syscall name or, for EBADF after close, 'Class.method'. */
  op: string;
  /** bpf_object__load only: the kernel verifier log of the rejected program. */
  log?: string;
  /** libbpf's own messages printed during the failing call (open, load, attach). */
  libbpfLog?: string;
  /** Batch operations: elements processed before the failure. */
  processed?: number;
}

export type BpfErrorClass = new (message: string, init: BpfErrorInit) => Error;

/** Registers the class every BpfError is constructed from (agent/bpf/errors.ts does this). */
export function setErrorClass(ctor: BpfErrorClass): void;

/** libbpf version the addon runs against, e.g. 'v1.1'. */
export function libbpfVersion(): string;

/** Possible CPUs (/sys/devices/system/cpu/possible): the slot count of per-CPU map values. */
export function numPossibleCpus(): number;

/** Native handles currently holding kernel resources in this JS environment (leak checks). */
export function liveHandles(): number;

// ---- objects -------------------------------------------------------------------------------------

export interface ObjectOpenOptions {
  /**
   * Directory where maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)` are pinned on load
   * (as `<pinRoot>/<map name>`), or reused if a compatible map is already pinned there.
   * libbpf's default is /sys/fs/bpf.
   */
  pinRoot?: string;
  /** Per-map pin paths (map name -> path): reused if pinned and compatible, else pinned on load. */
  mapPinPaths?: Record<string, string>;
  /**
   * Verifier log buffer size in bytes (default 4 MiB). The kernel fails a load with ENOSPC
   * instead of the verifier's error when a rejected program's log does not fit.
   */
  logSize?: number;
  /** Kernel log level for loads (default 0: a log is produced only when a load fails). */
  logLevel?: number;
}

/** An ELF object opened with libbpf. */
export declare class BpfObject {
  private constructor();
  /** bpf_object__open_file. Missing file: code 'ENOENT', op 'bpf_object__open_file'. */
  static open(path: string, opts?: ObjectOpenOptions): BpfObject;
  /**
   * bpf_object__load on a worker thread. Rejects with op 'bpf_object__load' and `log` set to the
   * verifier log when a program is rejected. A load can be attempted once per open().
   */
  load(): Promise<void>;
  /** Map names as libbpf knows them (internal maps such as '.rodata' included). */
  mapNames(): string[];
  programNames(): string[];
  /** A handle with its own fd: it stays valid after the object is closed. Needs load(). */
  map(name: string): BpfMap;
  /** A handle with its own fd: it stays valid after the object is closed. Needs load(). */
  program(name: string): BpfProgram;
  /**
   * A copy of the initial contents of an internal map ('.rodata', '.data', '.bss', '.kconfig'),
   * the ELF's global variables. Unknown map: code 'ENOENT'; a map without initial contents (an
   * ordinary map): 'EINVAL' (op 'BpfObject.initialValue').
   */
  initialValue(map: string): Buffer;
  /**
   * Overwrites `data.length` bytes of an internal map's initial contents at `offset`: how the
   * `const volatile` load-time knobs in '.rodata' are set (agent/bpf/knobs.ts writes them by
   * name from the generated Objects[...].knobs offsets). Only before load(): after it the
   * values are frozen in the kernel (code 'EBUSY', op 'BpfObject.writeInitialValue'). Unknown map
   * 'ENOENT', an ordinary map 'EINVAL'; bytes beyond the map's size: TypeError.
   */
  writeInitialValue(map: string, offset: number, data: Uint8Array): void;
  /**
   * bpf_map__set_max_entries: the capacity `map` is created with (before load() only; after it
   * code 'EBUSY'). Unknown map 'ENOENT'; maxEntries not a positive u32: TypeError. A map pinned
   * by name is reused only when its max_entries equals this, else load() fails (EINVAL).
   */
  setMaxEntries(map: string, maxEntries: number): void;
  /** Frees the object (idempotent). Maps/programs handed out stay open. */
  close(): void;
  readonly loaded: boolean;
  readonly closed: boolean;
  readonly path: string;
}

// ---- maps ----------------------------------------------------------------------------------------

export interface MapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface MapCreateOptions {
  /** BPF_MAP_TYPE_* (see agent/bpf/constants.ts MapType). */
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* map flags, e.g. BPF_F_NO_PREALLOC. */
  flags?: number;
  /** Kernel map name (up to 15 characters of [A-Za-z0-9_.]). */
  name?: string;
  /** Template inner map for ARRAY_OF_MAPS / HASH_OF_MAPS. */
  innerMap?: BpfMap;
  /** map_extra (bloom filter hash count). */
  mapExtra?: number | bigint;
}

export interface LookupBatchOptions {
  /** null/absent: start at the beginning; else the nextBatch of the previous call. */
  inBatch?: Buffer | null;
  /** Maximum elements to return; > 0 (values above maxEntries are treated as maxEntries). */
  count: number;
}

export interface LookupBatchResult {
  /** count * keySize bytes. */
  keys: Buffer;
  /** count * valueBufferSize bytes. */
  values: Buffer;
  count: number;
  /** Position to continue from; null once the map is exhausted (this result may still hold elements). */
  nextBatch: Buffer | null;
}

export declare class BpfMap {
  private constructor();
  /** bpf_obj_get; EINVAL if the pin is not a map. */
  static openPinned(path: string): BpfMap;
  static fromId(id: number): BpfMap;
  /** bpf_map_create. */
  static create(opts: MapCreateOptions): BpfMap;
  /** Removes a pin (unlink). Missing pin: code 'ENOENT', op 'unlink'. */
  static unpin(path: string): void;

  /** The fd (EBADF after close). */
  readonly fd: number;
  readonly closed: boolean;
  /** Cached from the kernel when the handle was created. */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  /** Bytes of one value buffer: valueSize, or for per-CPU maps ncpus * round_up(valueSize, 8). */
  readonly valueBufferSize: number;
  readonly maxEntries: number;

  /** Fresh bpf_map_info from the kernel. */
  info(): MapInfo;
  /** bpf_map_lookup_elem; null when the key is absent (ENOENT). */
  lookup(key: Uint8Array): Buffer | null;
  /**
   * bpf_map_update_elem with flags BPF_ANY (0, default) / BPF_NOEXIST (1) / BPF_EXIST (2) /
   * BPF_F_LOCK (4). A full hash map fails with code 'E2BIG'; NOEXIST on a present key 'EEXIST';
   * EXIST on an absent key 'ENOENT'.
   */
  update(key: Uint8Array, value: Uint8Array, flags?: number | bigint): void;
  /** bpf_map_delete_elem; false when the key was absent. */
  delete(key: Uint8Array): boolean;
  /** bpf_map_get_next_key; null key gives the first key; null result at the end. */
  nextKey(key: Uint8Array | null): Buffer | null;
  /** bpf_map_lookup_batch. ENOSPC: `count` is smaller than one hash bucket; retry larger. */
  lookupBatch(opts: LookupBatchOptions): LookupBatchResult;
  /**
   * bpf_map_update_batch of `count` elements (keys: count*keySize bytes, values:
   * count*valueBufferSize bytes, exactly). Returns the count updated; on failure the error's
   * `processed` says how many were.
   */
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flags?: number | bigint): number;
  /** bpf_map_delete_batch; a missing key fails with 'ENOENT' and `processed`. */
  deleteBatch(keys: Uint8Array, count: number): number;
  /** bpf_obj_pin. */
  pin(path: string): void;
  /** Closes this handle's fd (idempotent). */
  close(): void;
}

// ---- programs ------------------------------------------------------------------------------------

export interface ProgramInfo {
  id: number;
  name: string;
  /** BPF_PROG_TYPE_*. */
  type: number;
  /** Hex program tag. */
  tag: string;
  xlatedInsns: number;
  jitedLen: number;
  verifiedInsns: number;
  /** Ids of the maps the program uses (its internal '.rodata' map among them). */
  mapIds: number[];
}

export interface TestRunOptions {
  /** Input packet (or other data). */
  data?: Uint8Array;
  /** Output buffer size (default data.length + 256); ENOSPC if the output does not fit. */
  dataOutSize?: number;
  /** Input context (struct xdp_md / struct __sk_buff ...). */
  ctx?: Uint8Array | null;
  /** Output context size (default ctx length; 0 = no output ctx). */
  ctxOutSize?: number;
  /** Runs; durationNs is the average per run. */
  repeat?: number;
  /** BPF_F_TEST_RUN_* flags. */
  flags?: number;
  cpu?: number;
  batchSize?: number;
}

export interface TestRunResult {
  /** The program's return value (verdict). */
  retval: number;
  /** Output data, as long as the program left it. */
  data: Buffer;
  ctx: Buffer | null;
  durationNs: number;
}

export declare class BpfProgram {
  private constructor();
  /** bpf_obj_get; EINVAL if the pin is not a program. */
  static openPinned(path: string): BpfProgram;
  static fromId(id: number): BpfProgram;
  readonly fd: number;
  readonly closed: boolean;
  info(): ProgramInfo;
  pin(path: string): void;
  close(): void;
  /** bpf_prog_test_run_opts (synchronous). */
  testRun(opts: TestRunOptions): TestRunResult;
}

// ---- links ---------------------------------------------------------------------------------------

export interface LinkInfo {
  id: number;
  progId: number;
  /** BPF_LINK_TYPE_* (XDP = 6, TCX = 11, NETKIT = 13). */
  type: number;
  /** XDP, tcx and netkit links; 0 once the link is detached. */
  ifindex?: number;
  /** tcx and netkit links: the attach type (BPF_TCX_INGRESS = 46, BPF_TCX_EGRESS = 47). */
  attachType?: number;
}

export declare class BpfLink {
  private constructor();
  /** bpf_obj_get; EINVAL if the pin is not a link. */
  static openPinned(path: string): BpfLink;
  static fromId(id: number): BpfLink;
  static unpin(path: string): void;
  readonly fd: number;
  readonly closed: boolean;
  info(): LinkInfo;
  /** A pinned link keeps the program attached after every fd is closed. */
  pin(path: string): void;
  /**
   * bpf_link_update: atomically swap the program. With oldProg (BPF_F_REPLACE) the swap happens
   * only if the link still runs oldProg (else code 'EPERM').
   */
  update(newProg: BpfProgram, opts?: { oldProg?: BpfProgram }): void;
  /** bpf_link_detach: detach now; the link object stays (defunct) until closed and unpinned. */
  detach(): void;
  /** Closes this fd; an unpinned link with no other fds detaches. */
  close(): void;
}

// ---- interfaces ----------------------------------------------------------------------------------

/**
 * An interface by index or name (exactly one), optionally inside another network namespace given
 * as a path (e.g. /run/netns/NAME). The calling thread enters the namespace for the duration of the
 * call and always returns. Unknown name: code 'ENODEV', op 'if_nametoindex'.
 */
export interface Target {
  ifindex?: number;
  ifname?: string;
  netns?: string;
}

export function ifNameToIndex(target: Target): number;

export type XdpMode = 'native' | 'generic' | 'auto';

export interface XdpAttachOptions extends Target {
  prog: BpfProgram;
  /** 'native' = XDP_FLAGS_DRV_MODE, 'generic' = XDP_FLAGS_SKB_MODE, 'auto' (default) = kernel's choice. */
  mode?: XdpMode;
  /** Atomic replace: succeed only if this program is the one attached (else code 'EEXIST'). */
  replace?: BpfProgram;
  /** Fail with 'EBUSY' instead of replacing an attached program (XDP_FLAGS_UPDATE_IF_NOEXIST). */
  exclusive?: boolean;
}

export interface XdpDetachOptions extends Target {
  /** Which attachment to remove; 'auto' means driver mode where the driver supports XDP. */
  mode?: XdpMode;
  /** Detach only if this program is the one attached (else code 'EEXIST'). */
  expected?: BpfProgram;
}

export interface XdpQueryResult {
  /** 0 when nothing is attached. */
  progId: number;
  mode: 'none' | 'native' | 'generic' | 'offload';
  ifindex: number;
}

/** Netlink XDP attach (bpf_xdp_attach). */
export function xdpAttach(opts: XdpAttachOptions): void;
/** Netlink XDP detach (bpf_xdp_detach). */
export function xdpDetach(opts: XdpDetachOptions): void;
/** bpf_xdp_query. */
export function xdpQuery(target: Target): XdpQueryResult;
/** XDP as a BPF link (bpf_link_create BPF_XDP); netlink attach on the device then fails with EBUSY. */
export function xdpLinkAttach(prog: BpfProgram, opts: Target & { mode?: XdpMode }): BpfLink;

export type TcDirection = 'ingress' | 'egress';

export interface TcAttachOptions extends Target {
  direction: TcDirection;
  prog: BpfProgram;
  /** Filter handle (0/absent: kernel picks). */
  handle?: number;
  /** Filter priority 1..65535 (0/absent: kernel picks). */
  priority?: number;
  /** Replace the filter at (handle, priority) (both required). */
  replace?: boolean;
}

export interface TcFilterId extends Target {
  direction: TcDirection;
  handle: number;
  priority: number;
}

export interface TcAttachResult {
  handle: number;
  priority: number;
  progId: number;
  ifindex: number;
}

/** Creates the clsact qdisc if missing and attaches a direct-action cls_bpf filter (bpf_tc_attach). */
export function tcAttach(opts: TcAttachOptions): TcAttachResult;
/** bpf_tc_detach of one filter; the clsact qdisc stays (see tcHookDestroy). */
export function tcDetach(opts: TcFilterId): void;
/** bpf_tc_query; null if no such filter (or no clsact qdisc). */
export function tcQuery(opts: TcFilterId): { progId: number } | null;
/** Deletes the device's clsact qdisc and with it every tc filter on it; false if there was none. */
export function tcHookDestroy(target: Target): boolean;
/**
 * tcx link (kernel >= 6.6; bpf_link_create with BPF_TCX_INGRESS/EGRESS). On kernels without tcx it
 * throws code 'EINVAL', op 'bpf_link_create': fall back to tcAttach.
 */
export function tcxLinkAttach(prog: BpfProgram, opts: Target & { direction: TcDirection }): BpfLink;

// ---- ring buffers --------------------------------------------------------------------------------

/**
 * Delivers records of a BPF_MAP_TYPE_RINGBUF map to `onRecord` (each a copied Buffer) from the
 * Node event loop. Keeps the event loop alive while open unless unref()'d. An exception thrown by
 * `onRecord` stops that drain and becomes an uncaught exception (like an EventEmitter listener).
 */
export declare class RingBuffer {
  constructor(map: BpfMap, onRecord: (data: Buffer) => void);
  /** Drains available records synchronously; returns how many were delivered. */
  consume(): number;
  /** Stops delivery and frees the ring buffer (idempotent; allowed inside onRecord). */
  close(): void;
  ref(): this;
  unref(): this;
  readonly closed: boolean;
}

// ---- unix sockets (tenetd's control socket and systemd readiness) -------------------------------
// Not BPF: two syscalls Node has no API for, kept in the addon so tenetd needs no other native
// module. Failures follow the error contract above (op 'getsockopt(SO_PEERCRED)', 'sendto', ...).

/** Credentials the kernel recorded for the peer of a connected unix socket (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /**
   * Supplementary groups (SO_PEERGROUPS, recorded at connect like the rest); absent when the
   * kernel has no SO_PEERGROUPS (< 4.13).
   */
  groups?: number[];
}

/**
 * SO_PEERCRED of a connected unix stream socket, by fd (Node: `socket._handle.fd`). A socket
 * that is not a unix socket throws code 'ENOPROTOOPT' or 'ENOTSOCK'; a closed fd 'EBADF'.
 */
export function peerCredentials(fd: number): PeerCredentials;

/**
 * Sends `state` (e.g. "READY=1") as one datagram to the unix socket `socketPath` — the value of
 * $NOTIFY_SOCKET: an absolute path, or '@name' for the abstract namespace (sd_notify(3)).
 */
export function sdNotify(socketPath: string, state: string): void;
