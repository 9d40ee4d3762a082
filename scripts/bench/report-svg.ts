// A small hand-written SVG chart of a bench document: one horizontal bar per ratio figure (unit
// `ratio`), the median as the bar, min..max as a whisker, a line at 1.0, coloured by target
// (green met, red missed, grey no target). Ratios are what survives between machines, so they
// are what the chart shows.

import { fmt, type BenchDocument } from './report.js';

const xmlEsc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export interface Bar {
  label: string;
  min: number;
  median: number;
  max: number;
  met?: boolean;
}

export function ratioBars(doc: BenchDocument): Bar[] {
  const bars: Bar[] = [];
  for (const s of doc.sections) {
    for (const f of s.figures) {
      if (f.unit !== 'ratio') continue;
      bars.push({
        label: f.label,
        min: f.value.min,
        median: f.value.median,
        max: f.value.max,
        ...(f.met === undefined ? {} : { met: f.met }),
      });
    }
  }
  return bars;
}

export function renderSvg(doc: BenchDocument): string {
  const bars = ratioBars(doc);
  const labelW = 430;
  const plotW = 420;
  const rowH = 18;
  const top = 48;
  const height = top + Math.max(1, bars.length) * rowH + 30;
  const width = labelW + plotW + 70;
  const maxV = Math.max(1.5, ...bars.map((b) => b.max)) * 1.05;
  const x = (v: number): number => labelW + (Math.max(0, v) / maxV) * plotW;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  );
  o.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  o.push(
    `<text x="10" y="18" font-size="14" font-weight="bold">${xmlEsc(
      `tenet benchmark ${doc.date.slice(0, 10)} (${doc.mode}, ${doc.commit})`,
    )}</text>`,
  );
  o.push(
    `<text x="10" y="34" fill="#555">${xmlEsc(
      `ratios, median with min-max; green: target met, red: missed, grey: no target; ` +
        `${doc.machine.cores ?? '?'} cores, kernel ${doc.machine.kernel ?? '?'}`,
    )}</text>`,
  );
  // Grid: integers up to maxV (at most ~10 lines).
  const step = Math.max(1, Math.ceil(maxV / 10));
  for (let g = 0; g <= maxV; g += step) {
    o.push(
      `<line x1="${x(g)}" y1="${top - 4}" x2="${x(g)}" y2="${top + bars.length * rowH}" ` +
        `stroke="${g === 1 ? '#000' : '#ddd'}" stroke-width="${g === 1 ? 1.2 : 1}"/>`,
    );
    o.push(
      `<text x="${x(g)}" y="${top + bars.length * rowH + 14}" text-anchor="middle">${g}</text>`,
    );
  }
  if (step > 1)
    o.push(
      `<line x1="${x(1)}" y1="${top - 4}" x2="${x(1)}" y2="${top + bars.length * rowH}" stroke="#000"/>`,
    );
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const colour = b.met === undefined ? '#999' : b.met ? '#2a9d4b' : '#d1362f';
    o.push(`<text x="${labelW - 6}" y="${y + 12}" text-anchor="end">${xmlEsc(b.label)}</text>`);
    o.push(
      `<rect x="${labelW}" y="${y + 3}" width="${Math.max(1, x(b.median) - labelW).toFixed(1)}" ` +
        `height="${rowH - 6}" fill="${colour}"/>`,
    );
    o.push(
      `<line x1="${x(b.min).toFixed(1)}" y1="${y + rowH / 2}" x2="${x(b.max).toFixed(1)}" ` +
        `y2="${y + rowH / 2}" stroke="#222"/>`,
    );
    o.push(`<text x="${(x(b.max) + 4).toFixed(1)}" y="${y + 12}">${xmlEsc(fmt(b.median))}</text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}
