// A small hand-written SVG chart of a bench document: one horizontal bar per ratio figure (unit
// `ratio`), the median as the bar, min..max as a whisker, a line at 1.0, coloured by target
// (green met, red missed, grey no target). Ratios are what survives between machines, so they
// are what the chart shows.

import { fmt, type BenchDocument } from './report.js';

const xmlEsc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export interface Bar {
  section: string;
  label: string;
  min: number;
  median: number;
  max: number;
  met?: boolean;
  /** The number in the figure's target (`<= 10x no-op` -> 10), drawn as a tick. */
  target?: number;
}

export function ratioBars(doc: BenchDocument): Bar[] {
  const bars: Bar[] = [];
  for (const s of doc.sections) {
    for (const f of s.figures) {
      if (f.unit !== 'ratio') continue;
      const t = f.target === undefined ? undefined : /[<>]=?\s*([\d.]+)/.exec(f.target)?.[1];
      bars.push({
        section: s.title,
        label: f.label,
        min: f.value.min,
        median: f.value.median,
        max: f.value.max,
        ...(f.met === undefined ? {} : { met: f.met }),
        ...(t === undefined ? {} : { target: Number(t) }),
      });
    }
  }
  return bars;
}

const r1 = (v: number): string => v.toFixed(1);

/** One panel per section (each with its own scale: x times a no-op and overlay/VXLAN differ). */
export function renderSvg(doc: BenchDocument): string {
  const bars = ratioBars(doc);
  const panels: Bar[][] = [];
  for (const b of bars) {
    const last = panels[panels.length - 1];
    if (last !== undefined && last[0]!.section === b.section) last.push(b);
    else panels.push([b]);
  }
  const labelW = 430;
  const plotW = 420;
  const rowH = 18;
  const head = 24; // panel title
  const foot = 22; // axis labels
  const width = labelW + plotW + 70;
  const height = 48 + panels.reduce((h, p) => h + head + p.length * rowH + foot, 0) + 10;
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
      `ratios: median bar, min-max whisker, target tick; green met, red missed, grey no target; ` +
        `${doc.machine.cores ?? '?'} cores, kernel ${doc.machine.kernel ?? '?'}`,
    )}</text>`,
  );
  let y0 = 48;
  for (const p of panels) {
    o.push(`<text x="10" y="${y0 + 15}" font-weight="bold">${xmlEsc(p[0]!.section)}</text>`);
    const top = y0 + head;
    const bottom = top + p.length * rowH;
    const maxV = Math.max(1.5, ...p.map((b) => Math.max(b.max, b.target ?? 0))) * 1.08;
    const x = (v: number): number => labelW + (Math.max(0, v) / maxV) * plotW;
    const step = maxV <= 2.5 ? 0.5 : Math.max(1, Math.ceil(maxV / 10));
    for (let g = 0; g <= maxV; g += step) {
      o.push(
        `<line x1="${r1(x(g))}" y1="${top - 4}" x2="${r1(x(g))}" y2="${bottom}" ` +
          `stroke="${g === 1 ? '#000' : '#ddd'}"/>`,
      );
      o.push(`<text x="${r1(x(g))}" y="${bottom + 14}" text-anchor="middle">${g}</text>`);
    }
    p.forEach((b, i) => {
      const y = top + i * rowH;
      const colour = b.met === undefined ? '#999' : b.met ? '#2a9d4b' : '#d1362f';
      o.push(`<text x="${labelW - 6}" y="${y + 12}" text-anchor="end">${xmlEsc(b.label)}</text>`);
      o.push(
        `<rect x="${labelW}" y="${y + 3}" width="${r1(Math.max(1, x(b.median) - labelW))}" ` +
          `height="${rowH - 6}" fill="${colour}"/>`,
      );
      o.push(
        `<line x1="${r1(x(b.min))}" y1="${y + rowH / 2}" x2="${r1(x(b.max))}" ` +
          `y2="${y + rowH / 2}" stroke="#222"/>`,
      );
      if (b.target !== undefined)
        o.push(
          `<line x1="${r1(x(b.target))}" y1="${y + 1}" x2="${r1(x(b.target))}" y2="${y + rowH - 1}" ` +
            `stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`,
        );
      o.push(
        `<text x="${r1(Math.max(x(b.max), x(b.median)) + 4)}" y="${y + 12}">${xmlEsc(fmt(b.median))}</text>`,
      );
    });
    y0 = bottom + foot;
  }
  o.push('</svg>');
  return o.join('\n') + '\n';
}
