// The ABI generator as a library: scripts/gen-abi.ts is its command line, and the unit tests call
// generateAbi() to regenerate in memory and compare with the committed file.

import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { emit } from './emit.js';
import { type AbiModel, buildModel } from './model.js';

export { AbiError, type AbiModel } from './model.js';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const GENERATED_FILE = join(REPO_ROOT, 'agent', 'abi', 'generated.ts');
export const VERSION_HEADER = join(REPO_ROOT, 'bpf', 'abi', 'version.h');
export const BPF_BUILD_DIR = join(REPO_ROOT, 'build', 'bpf');

/**
 * The product objects: build/bpf/NAME.o for every bpf/NAME.bpf.c (test-only objects are built
 * from bpf/testing/ into build/bpf/testing/). Derived from the sources, so a leftover object of a
 * deleted program is not picked up and a missing one is an error.
 */
export function productObjects(): string[] {
  const objects = readdirSync(join(REPO_ROOT, 'bpf'))
    .filter((f) => f.endsWith('.bpf.c'))
    .sort()
    .map((f) => join(BPF_BUILD_DIR, f.replace(/\.bpf\.c$/, '.o')));
  const missing = objects.filter((o) => !existsSync(o));
  if (missing.length > 0) {
    throw new Error(`${missing.join(', ')} not built: run make -C bpf`);
  }
  return objects;
}

export interface GenerateOptions {
  objects?: readonly string[];
  versionHeader?: string;
  bpftool?: string;
  codecModule?: string;
  descriptorsModule?: string;
}

export interface Generated {
  model: AbiModel;
  source: string;
}

/** Builds the model from the objects and renders generated.ts. Throws AbiError on rule breaks. */
export function generateAbi(opts: GenerateOptions = {}): Generated {
  const objects = [...(opts.objects ?? productObjects())].sort();
  const versionHeader = opts.versionHeader ?? VERSION_HEADER;
  const model = buildModel({ objects, versionHeader, bpftool: opts.bpftool });
  const rel = (p: string): string => relative(REPO_ROOT, resolve(p)).split(sep).join('/');
  const source = emit(model, {
    sources: [...objects.map(rel), rel(versionHeader)],
    codecModule: opts.codecModule,
    descriptorsModule: opts.descriptorsModule,
  });
  return { model, source };
}
