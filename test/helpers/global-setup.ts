/**
 * Runs once before any test file: brings the BPF objects up to date, so that a developer who
 * edited bpf/ and runs vitest directly tests what they wrote, and so that test files running in
 * parallel never race to rebuild the same object. (scripts/setup has already built everything in
 * CI; there this is a no-op make.)
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync('make', ['-s', '-C', 'bpf'], { cwd: root, stdio: 'inherit' });
}
