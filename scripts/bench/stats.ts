// Shared by the benchmarks: min/median/max of repeated runs (figures from one run are noisy; the
// median of several is what we quote) and a description of the machine the figures came from.

import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';

export interface Summary {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new Error('summarize: no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

export function machineDescription(): Record<string, string | number> {
  const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    kernel,
    node: process.version,
  };
}
