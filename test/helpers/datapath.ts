/**
 * Loading tenet's product objects for datapath tests: each test file gets its own pin root under
 * /sys/fs/bpf/tenet-test-<random>/, so files running in parallel never share maps, and the
 * directory is removed in afterAll even when a test failed. (Pinned-by-name maps must be pinned
 * somewhere; without a private root libbpf would pin them in /sys/fs/bpf itself.)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { loadObject, type ObjectName } from '../../agent/datapath/objects.js';
import type { BpfObject } from '../../agent/bpf/index.js';

export const TEST_PIN_PREFIX = '/sys/fs/bpf/tenet-test-';

export interface LoadedObjects {
  pinRoot: string;
  objects: Partial<Record<ObjectName, BpfObject>>;
  get(name: ObjectName): BpfObject;
}

/** Loads the named objects in beforeAll (sharing maps through one pin root), frees them after. */
export function useObjects(...names: ObjectName[]): LoadedObjects {
  const loaded: LoadedObjects = {
    pinRoot: `${TEST_PIN_PREFIX}${randomBytes(4).toString('hex')}`,
    objects: {},
    get(name) {
      const o = this.objects[name];
      if (!o) throw new Error(`object ${name} was not loaded by useObjects()`);
      return o;
    },
  };
  beforeAll(async () => {
    mkdirSync(loaded.pinRoot, { recursive: true });
    for (const name of names) loaded.objects[name] = await loadObject(name, loaded.pinRoot);
  });
  afterAll(() => {
    for (const o of Object.values(loaded.objects)) o?.close();
    rmSync(loaded.pinRoot, { recursive: true, force: true });
  });
  return loaded;
}
