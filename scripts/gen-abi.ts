// Generates agent/abi/generated.ts, the agent's side of the BPF ABI, from the BTF and ELF symbols
// of the product objects (build/bpf/NAME.o for every bpf/NAME.bpf.c). Build them first: make -C bpf.
//
//   npx tsx scripts/gen-abi.ts            write agent/abi/generated.ts
//   npx tsx scripts/gen-abi.ts --check    exit 1 if the committed file differs from what the
//                                         current objects give (CI)
//   options: --out FILE, --bpftool PATH, and object files to use instead of the product objects

import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

import { GENERATED_FILE, REPO_ROOT, generateAbi } from './abi/index.js';

function main(argv: string[]): number {
  let check = false;
  let out = GENERATED_FILE;
  let bpftool: string | undefined;
  const objects: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--check') check = true;
    else if (a === '--out') out = argv[++i] ?? '';
    else if (a === '--bpftool') bpftool = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log('usage: gen-abi [--check] [--out FILE] [--bpftool PATH] [OBJECT.o ...]');
      return 0;
    } else if (a.startsWith('-')) {
      console.error(`gen-abi: unknown option ${a}`);
      return 2;
    } else objects.push(a);
  }

  let source: string;
  try {
    source = generateAbi({ objects: objects.length > 0 ? objects : undefined, bpftool }).source;
  } catch (err) {
    console.error(`gen-abi: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }

  const shown = relative(REPO_ROOT, out);
  if (check) {
    let current = '';
    try {
      current = readFileSync(out, 'utf8');
    } catch {
      console.error(`gen-abi: ${shown} does not exist; run: make -C bpf && npm run gen:abi`);
      return 1;
    }
    if (current === source) {
      console.log(`gen-abi: ${shown} is up to date`);
      return 0;
    }
    const a = current.split('\n');
    const b = source.split('\n');
    let line = 0;
    while (line < a.length && line < b.length && a[line] === b[line]) line++;
    console.error(
      `gen-abi: ${shown} is stale (first difference at line ${line + 1}); ` +
        'run: make -C bpf && npm run gen:abi, and commit the result',
    );
    console.error(`  committed: ${a[line] ?? '<end of file>'}`);
    console.error(`  generated: ${b[line] ?? '<end of file>'}`);
    return 1;
  }
  writeFileSync(out, source);
  console.log(`gen-abi: wrote ${shown}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
