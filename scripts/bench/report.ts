// The document `npm run bench` writes (bench/results/<date>.json): the machine, the mode, and
// every section's figures under stable keys. Shared by the writers (markdown, SVG) and compare.

import type { SectionResult } from './section.js';

export const RESULTS_SCHEMA = 1;

export interface SectionRun extends SectionResult {
  /** Wall time of the section, seconds. */
  readonly seconds: number;
  /** Set when the section failed: what it said. Its figures are whatever it returned (none). */
  readonly error?: string;
}

export interface BenchDocument {
  readonly schema: number;
  readonly benchmark: 'tenet';
  readonly date: string;
  /** `git describe --always --dirty` of the tree that ran. */
  readonly commit: string;
  readonly mode: 'quick' | 'full';
  readonly machine: Record<string, string | number>;
  readonly sections: readonly SectionRun[];
}

/** Formats a number for a table: 3 significant digits, thousands separated, no exponent. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

/** Every figure with a target, in document order. */
export function targets(doc: BenchDocument): Array<{
  section: string;
  key: string;
  label: string;
  target: string;
  median: number;
  unit: string;
  met: boolean;
  note?: string;
}> {
  const out = [];
  for (const s of doc.sections) {
    for (const f of s.figures) {
      if (f.target === undefined) continue;
      out.push({
        section: s.section,
        key: f.key,
        label: f.label,
        target: f.target,
        median: f.value.median,
        unit: f.unit,
        met: f.met === true,
        ...(f.note === undefined ? {} : { note: f.note }),
      });
    }
  }
  return out;
}
