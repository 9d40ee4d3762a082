// `npm run bench`: every section of scripts/bench/sections.ts in one run, each building and
// tearing down what it needs (labs, daemons, pins), then bench/results/<date>.json (stable keys),
// <date>.md (tables) and <date>.svg (ratio chart).
//
// Usage: npm run bench [-- --full] [--sections a,b] [--out DIR] [--compare OLD.json [NEW.json]]
//        npm run bench -- --render R.json
//   --full         longer runs, more repetitions (default: quick, a few minutes on 2 cores)
//   --sections     run a subset, by section key (per_packet,end_to_end,control_plane,restart,...)
//   --out          where to write (default bench/results/; files <date>[-full].json/.md/.svg)
//   --compare OLD  after the run, print new/old of every figure; with a second file, compare the
//                  two files without running anything
//   --render R.json  rewrite R.md and R.svg from R.json (no run)
// A section that fails is reported as failed in the documents (with its error) and the run goes
// on; the exit code is then 1.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compareDocuments, renderComparison } from './compare.js';
import { RESULTS_SCHEMA, type BenchDocument, type SectionRun } from './report.js';
import { renderMarkdown } from './report-md.js';
import { renderSvg } from './report-svg.js';
import { SECTIONS } from './sections.js';
import { machineDescription } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

function commit(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], {
      cwd: REPO,
      encoding: 'utf8',
    }).trim();
  } catch {
    return 'unknown';
  }
}

function readDoc(path: string): BenchDocument {
  const doc = JSON.parse(readFileSync(path, 'utf8')) as BenchDocument;
  if (doc.schema !== RESULTS_SCHEMA || !Array.isArray(doc.sections))
    throw new Error(`${path}: not a tenet bench document (schema ${RESULTS_SCHEMA})`);
  return doc;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      full: { type: 'boolean', default: false },
      sections: { type: 'string' },
      out: { type: 'string', default: join(REPO, 'bench', 'results') },
      compare: { type: 'string' },
      render: { type: 'string' },
    },
  });
  if (values.render !== undefined) {
    // Rewrite the markdown and SVG of an existing result (after a change to the writers).
    const d = readDoc(values.render);
    const base = values.render.replace(/\.json$/, '');
    writeFileSync(`${base}.md`, renderMarkdown(d));
    writeFileSync(`${base}.svg`, renderSvg(d));
    console.log(`written ${base}.md, ${base}.svg`);
    return 0;
  }
  if (values.compare !== undefined && positionals.length === 1) {
    const c = compareDocuments(readDoc(values.compare), readDoc(positionals[0]!));
    console.log(renderComparison(c, values.compare, positionals[0]!));
    return 0;
  }
  if (positionals.length > 0) throw new Error(`unexpected arguments: ${positionals.join(' ')}`);
  const known = SECTIONS.map(([k]) => k);
  const wanted = values.sections?.split(',').map((s) => s.trim()) ?? known;
  for (const w of wanted)
    if (!known.includes(w))
      throw new Error(`--sections: unknown section ${w} (known: ${known.join(', ')})`);
  const old = values.compare === undefined ? undefined : readDoc(values.compare);

  const quick = !values.full;
  const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
  const runs: SectionRun[] = [];
  const started = new Date();
  for (const [key, section] of SECTIONS) {
    if (!wanted.includes(key)) continue;
    log(`section ${key} (${quick ? 'quick' : 'full'})`);
    const t0 = performance.now();
    try {
      const r = await section({ quick, log });
      runs.push({ ...r, seconds: (performance.now() - t0) / 1000 });
      log(`section ${key} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      log(`section ${key} FAILED: ${e instanceof Error ? (e.stack ?? msg) : msg}`);
      runs.push({
        section: key,
        title: key,
        figures: [],
        notes: [],
        error: msg,
        seconds: (performance.now() - t0) / 1000,
      });
    }
  }
  const doc: BenchDocument = {
    schema: RESULTS_SCHEMA,
    benchmark: 'tenet',
    date: started.toISOString(),
    commit: commit(),
    mode: quick ? 'quick' : 'full',
    machine: machineDescription(),
    sections: runs,
  };
  mkdirSync(values.out, { recursive: true });
  // <date>.json for the default quick run, <date>-full.json for --full (both may be kept).
  const stem = join(values.out, started.toISOString().slice(0, 10) + (quick ? '' : '-full'));
  writeFileSync(`${stem}.json`, JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(`${stem}.md`, renderMarkdown(doc));
  writeFileSync(`${stem}.svg`, renderSvg(doc));
  log(`written ${stem}.json, .md, .svg`);
  if (old !== undefined)
    console.log(renderComparison(compareDocuments(old, doc), values.compare!, `${stem}.json`));
  return runs.some((r) => r.error !== undefined) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
