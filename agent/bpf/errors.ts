// Errors of the BPF layer. The native addon constructs every libbpf/syscall failure as a BpfError
// (registered in native.ts), so callers branch on `code` ('ENOENT', 'E2BIG', ...) and `op` instead
// of parsing messages. This module owns the presentation: a hint for the errnos whose libc text
// misleads ("Argument list too long" for a full map).

import type { BpfErrorInit } from '../../native/index.js';

/** What an errno means for a given operation, where strerror's text says something else. */
function hintFor(init: BpfErrorInit): string | undefined {
  const { code, op } = init;
  if (op === 'bpf_map_update_elem' || op === 'bpf_map_update_batch') {
    if (code === 'E2BIG') return 'the map is full (max_entries reached)';
    if (code === 'EEXIST') return 'the key exists and BPF_NOEXIST was given';
    if (code === 'ENOENT') return 'the key does not exist and BPF_EXIST was given';
  }
  if (op === 'bpf_object__load') {
    if (code === 'EPERM') return 'loading BPF needs CAP_BPF/CAP_SYS_ADMIN (run as root)';
    if (code === 'ENOSPC') return 'the verifier log did not fit: raise ObjectOpenOptions.logSize';
  }
  if (op === 'bpf_obj_pin' && code === 'EPERM') return 'pin paths must be inside a mounted bpffs';
  if (op === 'bpf_link_create' && code === 'EBUSY') {
    return 'another program is attached through netlink or a link';
  }
  return undefined;
}

export class BpfError extends Error {
  /** errno name, e.g. 'ENOENT'. */
  readonly code: string;
  /** Positive errno value. */
  readonly errno: number;
  /** The failing operation ('bpf_map_update_elem', 'bpf_object__load', 'BpfMap.lookup' ...). */
  readonly op: string;
  // `declare`: these are own properties only when the failure has them.
  /** bpf_object__load: the verifier log. */
  declare readonly log?: string;
  /** libbpf's messages printed during the failing call. */
  declare readonly libbpfLog?: string;
  /** Batch operations: elements processed before the failure. */
  declare readonly processed?: number;

  constructor(message: string, init: BpfErrorInit) {
    const hint = hintFor(init);
    super(hint ? `${message}: ${hint}` : message);
    this.name = 'BpfError';
    this.code = init.code;
    this.errno = init.errno;
    this.op = init.op;
    const self = this as { -readonly [P in 'log' | 'libbpfLog' | 'processed']?: BpfError[P] };
    if (init.log !== undefined) self.log = init.log;
    if (init.libbpfLog !== undefined) self.libbpfLog = init.libbpfLog;
    if (init.processed !== undefined) self.processed = init.processed;
  }
}

/**
 * A chunked batch operation that stopped part-way. `done` counts the elements that were applied
 * across all chunks before the failure (the kernel reports progress within the failing chunk);
 * code, errno and op are those of the underlying failure, which is also the `cause`.
 */
export class BatchError extends BpfError {
  readonly done: number;

  constructor(done: number, cause: BpfError) {
    super(`${cause.message} (after ${done} elements)`, {
      code: cause.code,
      errno: cause.errno,
      op: cause.op,
      processed: done,
    });
    this.name = 'BatchError';
    this.done = done;
    this.cause = cause;
  }
}

export function isBpfError(e: unknown, code?: string): e is BpfError {
  return e instanceof BpfError && (code === undefined || e.code === code);
}
