// `npm run bench -- --compare OLD.json [NEW.json]`: new / old of every figure present in both
// documents (matched by its stable key), with the direction that is better for its unit, so a
// regression between two commits reads off one table.

import { fmt, type BenchDocument } from './report.js';

export interface CompareRow {
  key: string;
  label: string;
  unit: string;
  old: number;
  new: number;
  /** new median / old median (NaN when old is 0). */
  ratio: number;
  /** 'better' | 'worse' | 'same' (within 5%), by the unit's direction; 'n/a' without one. */
  verdict: 'better' | 'worse' | 'same' | 'n/a';
}

export interface Comparison {
  rows: CompareRow[];
  onlyOld: string[];
  onlyNew: string[];
}

/** Units where a larger figure is better; everything else (ns, ms, MiB, packets, ...) is a cost. */
const HIGHER_IS_BETTER = new Set(['Mbit/s', 'Gbit/s', 'pps', 'records/s', 'tps', 'x']);
const NO_DIRECTION = new Set(['insns']);

function figures(doc: BenchDocument): Map<string, { label: string; unit: string; median: number }> {
  const m = new Map<string, { label: string; unit: string; median: number }>();
  for (const s of doc.sections)
    for (const f of s.figures)
      m.set(f.key, { label: f.label, unit: f.unit, median: f.value.median });
  return m;
}

export function compareDocuments(
  oldDoc: BenchDocument,
  newDoc: BenchDocument,
  tolerance = 0.05,
): Comparison {
  const a = figures(oldDoc);
  const b = figures(newDoc);
  const rows: CompareRow[] = [];
  for (const [key, n] of b) {
    const o = a.get(key);
    if (o === undefined) continue;
    const ratio = o.median === 0 ? (n.median === 0 ? 1 : NaN) : n.median / o.median;
    let verdict: CompareRow['verdict'];
    if (NO_DIRECTION.has(n.unit) || Number.isNaN(ratio)) verdict = 'n/a';
    else if (Math.abs(ratio - 1) <= tolerance) verdict = 'same';
    else {
      // Ratios to a baseline are costs (x times a no-op) unless the key says it is a gain.
      const higher = HIGHER_IS_BETTER.has(n.unit) || (n.unit === 'ratio' && /vs_|of_/.test(key));
      verdict = ratio > 1 === higher ? 'better' : 'worse';
    }
    rows.push({ key, label: n.label, unit: n.unit, old: o.median, new: n.median, ratio, verdict });
  }
  return {
    rows,
    onlyOld: [...a.keys()].filter((k) => !b.has(k)),
    onlyNew: [...b.keys()].filter((k) => !a.has(k)),
  };
}

export function renderComparison(c: Comparison, oldName: string, newName: string): string {
  const L = [`new / old medians: ${newName} vs ${oldName}`, ''];
  const w = Math.max(10, ...c.rows.map((r) => r.key.length));
  L.push(
    `${'key'.padEnd(w)}  ${'old'.padStart(12)}  ${'new'.padStart(12)}  ${'new/old'.padStart(8)}  verdict`,
  );
  for (const r of c.rows) {
    L.push(
      `${r.key.padEnd(w)}  ${fmt(r.old).padStart(12)}  ${fmt(r.new).padStart(12)}  ` +
        `${(Number.isNaN(r.ratio) ? 'n/a' : r.ratio.toFixed(3)).padStart(8)}  ${r.verdict}` +
        ` (${r.unit})`,
    );
  }
  if (c.onlyOld.length) L.push('', `only in ${oldName}: ${c.onlyOld.join(', ')}`);
  if (c.onlyNew.length) L.push('', `only in ${newName}: ${c.onlyNew.join(', ')}`);
  const worse = c.rows.filter((r) => r.verdict === 'worse').length;
  L.push('', `${c.rows.length} figures compared, ${worse} worse by more than the tolerance`);
  return L.join('\n');
}
