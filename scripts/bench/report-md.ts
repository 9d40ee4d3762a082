// Markdown report of a bench document: the machine, a summary of every target (met or missed),
// then one table per section with min / median / max of every figure and the section's notes.

import { fmt, targets, type BenchDocument } from './report.js';

const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderMarkdown(doc: BenchDocument): string {
  const L: string[] = [];
  L.push(`# tenet benchmark ${doc.date.slice(0, 10)} (${doc.mode})`, '');
  L.push(`Commit \`${doc.commit}\`, run ${doc.date}.`, '');
  L.push(
    'Machine: ' +
      Object.entries(doc.machine)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') +
      '.',
    '',
  );
  L.push(
    'Every figure is min / median / max over interleaved repetitions in this one run (n = ' +
      'repetitions); ratios compare figures measured side by side on this machine.',
    '',
  );
  const ts = targets(doc);
  if (ts.length > 0) {
    L.push('## Targets', '', '| target | figure | median | result |', '| --- | --- | --- | --- |');
    for (const t of ts) {
      L.push(
        `| ${esc(t.target)} | ${esc(t.label)} | ${fmt(t.median)} ${t.unit} | ${t.met ? 'met' : '**missed**'} |`,
      );
    }
    L.push('');
  }
  for (const s of doc.sections) {
    L.push(`## ${s.title} (\`${s.section}\`, ${s.seconds.toFixed(0)} s)`, '');
    if (s.error !== undefined) L.push(`**Section failed:** ${esc(s.error)}`, '');
    if (s.figures.length > 0) {
      L.push('| figure | min | median | max | unit | n | target | note |');
      L.push('| --- | ---: | ---: | ---: | --- | ---: | --- | --- |');
      for (const f of s.figures) {
        const target =
          f.target === undefined ? '' : `${esc(f.target)}: ${f.met ? 'met' : '**missed**'}`;
        L.push(
          `| ${esc(f.label)} | ${fmt(f.value.min)} | ${fmt(f.value.median)} | ${fmt(f.value.max)} | ` +
            `${f.unit} | ${f.value.n} | ${target} | ${esc(f.note ?? '')} |`,
        );
      }
      L.push('');
    }
    for (const n of s.notes) L.push(`- ${n}`);
    if (s.notes.length > 0) L.push('');
  }
  return L.join('\n');
}
