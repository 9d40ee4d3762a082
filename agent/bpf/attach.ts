// Attaching tc programs the best way the running kernel allows. tcx links (kernel >= 6.6) need no
// qdisc, keep other programs' attachments intact and can be pinned to outlive the agent; older
// kernels only have netlink cls_bpf filters on a clsact qdisc. attachTc() tries tcx and falls back
// when the kernel does not know the tcx attach type.

import { isBpfError } from './errors.js';
import {
  type BpfLink,
  type BpfProgram,
  type Target,
  type TcDirection,
  tcAttach,
  tcDetach,
  tcxLinkAttach,
} from './native.js';

export type TcAttachment =
  | { readonly kind: 'tcx'; readonly link: BpfLink; detach(): void }
  | {
      readonly kind: 'netlink';
      readonly handle: number;
      readonly priority: number;
      detach(): void;
    };

export interface AttachTcOptions extends Target {
  direction: TcDirection;
  /** Try tcx first (default true); false forces netlink tc. */
  preferTcx?: boolean;
  /** netlink fallback only: filter priority (default: kernel's choice). */
  priority?: number;
}

/** True if a tcx attach failed because the kernel has no tcx (as opposed to a real error). */
export function isTcxUnsupported(e: unknown): boolean {
  // Kernels before 6.6 reject the unknown attach type in BPF_LINK_CREATE with EINVAL.
  return isBpfError(e, 'EINVAL') && e.op === 'bpf_link_create';
}

export function attachTc(prog: BpfProgram, opts: AttachTcOptions): TcAttachment {
  const { direction, preferTcx = true, priority, ...target } = opts;
  if (preferTcx) {
    try {
      const link = tcxLinkAttach(prog, { ...target, direction });
      return {
        kind: 'tcx',
        link,
        detach(): void {
          link.detach();
          link.close();
        },
      };
    } catch (e) {
      if (!isTcxUnsupported(e)) throw e;
    }
  }
  const r = tcAttach({
    ...target,
    direction,
    prog,
    ...(priority !== undefined ? { priority } : {}),
  });
  return {
    kind: 'netlink',
    handle: r.handle,
    priority: r.priority,
    detach(): void {
      tcDetach({ ...target, direction, handle: r.handle, priority: r.priority });
    },
  };
}
