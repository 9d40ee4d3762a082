// Shared by the binding tests: paths of the BPF fixtures built from bpf/testing/ and private
// bpffs directories for pins (removed by the caller in afterAll, also on failure).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** build/bpf/testing/<name>.o, built by `make -C bpf`. */
export function fixture(name: string): string {
  const p = `${REPO}build/bpf/testing/${name}.o`;
  if (!existsSync(p)) throw new Error(`fixture ${p} missing: run make -C bpf`);
  return p;
}

/** A fresh /sys/fs/bpf/tenet-test-<random> directory (bpffs must be mounted). */
export function makeBpffsDir(label: string): string {
  const dir = `/sys/fs/bpf/tenet-test-${label}-${randomBytes(4).toString('hex')}`;
  mkdirSync(dir);
  return dir;
}

/** Removes a bpffs directory and every pin in it; tolerates it being gone. */
export function removeBpffsDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Open file descriptors of this process. */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Unique short suffix for names (kernel map names are at most 15 characters). */
export function shortId(): string {
  return randomBytes(3).toString('hex');
}
