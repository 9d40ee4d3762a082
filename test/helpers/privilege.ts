/**
 * Gate for tests that need root, BPF and network namespaces.
 *
 * Privileged tests run whenever the process has what they need. Without it they are skipped with
 * the reason printed, so a developer without root still gets a useful run, except under CI=true,
 * where a missing privilege must fail the run: a CI that silently skipped the datapath tests would
 * report green while testing nothing.
 */
import { readFileSync } from 'node:fs';
import { describe, it } from 'vitest';

// Capability bits from include/uapi/linux/capability.h.
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;

export interface PrivilegeCheck {
  ok: boolean;
  reason: string;
}

function effectiveCapabilities(): bigint {
  const status = readFileSync('/proc/self/status', 'utf8');
  const line = status.split('\n').find((l) => l.startsWith('CapEff:'));
  if (!line) return 0n;
  return BigInt('0x' + line.slice('CapEff:'.length).trim());
}

function isBpffsMounted(): boolean {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => {
    const [, mountPoint, fsType] = l.split(' ');
    return mountPoint === '/sys/fs/bpf' && fsType === 'bpf';
  });
}

/** What the privileged layers need: BPF, netlink/netns administration, and a bpffs to pin in. */
export function checkPrivileges(): PrivilegeCheck {
  const caps = effectiveCapabilities();
  const missing: string[] = [];
  for (const [name, bit] of [
    ['CAP_BPF', CAP_BPF],
    ['CAP_NET_ADMIN', CAP_NET_ADMIN],
    ['CAP_SYS_ADMIN', CAP_SYS_ADMIN],
  ] as const) {
    if ((caps & (1n << bit)) === 0n) missing.push(name);
  }
  if (missing.length > 0) {
    return { ok: false, reason: `missing capabilities ${missing.join(', ')} (run as root)` };
  }
  if (!isBpffsMounted()) {
    return { ok: false, reason: 'bpffs is not mounted at /sys/fs/bpf (run scripts/setup)' };
  }
  return { ok: true, reason: '' };
}

export const privileges: PrivilegeCheck = checkPrivileges();
export const inCI = process.env.CI === 'true';

/**
 * A describe block for tests that need root and BPF. Without privileges: skipped with the reason
 * printed, or, under CI=true, replaced by a failing test that names what is missing.
 */
export function describePrivileged(name: string, fn: () => void): void {
  if (privileges.ok) {
    describe(name, fn);
    return;
  }
  if (inCI) {
    describe(name, () => {
      it('has the privileges it needs (CI=true forbids skipping)', () => {
        throw new Error(`privileged test cannot run under CI: ${privileges.reason}`);
      });
    });
    return;
  }
  console.warn(`[tenet] skipping privileged tests "${name}": ${privileges.reason}`);
  describe.skip(name, fn);
}
