// Where the compiled BPF objects live and how the agent loads them. Maps are pinned by name under
// one pin root per datapath instance (the versioned TENET_PIN_ROOT for a host agent, a private
// directory for tests and labs), so the XDP and tc objects share their maps and a restarted agent
// reuses the pinned ones instead of starting from zero.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Objects } from '../abi/generated.js';
import { BpfObject } from '../bpf/index.js';

export type ObjectName = keyof typeof Objects;

/** build/bpf/ of this checkout, found from this file in agent/ (tsx, vitest) or dist/agent/. */
export function bpfBuildDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'bpf');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    dir = resolve(dir, '..');
  }
  throw new Error('BPF objects not found (build/bpf/): run scripts/setup');
}

export function objectPath(name: ObjectName): string {
  return join(bpfBuildDir(), Objects[name].file);
}

/** Opens and loads one product object with its maps pinned (or reused) under pinRoot. */
export async function loadObject(name: ObjectName, pinRoot: string): Promise<BpfObject> {
  const obj = BpfObject.open(objectPath(name), { pinRoot });
  try {
    await obj.load();
  } catch (e) {
    obj.close();
    throw e;
  }
  return obj;
}
