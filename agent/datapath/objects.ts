// Where the compiled BPF objects live and how the agent loads them. Maps are pinned by name under
// one pin root per datapath instance (the versioned TENET_PIN_ROOT for a host agent, a private
// directory for tests and labs), so the XDP and tc objects share their maps and a restarted agent
// reuses the pinned ones instead of starting from zero.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Objects } from '../abi/generated.js';
import { BpfMap, BpfObject, setKnobs, type KnobValue } from '../bpf/index.js';

export type ObjectName = keyof typeof Objects;

/** The load-time knobs of the product objects (each object has the ones its code includes). */
export type KnobName = {
  [O in ObjectName]: keyof (typeof Objects)[O]['knobs'];
}[ObjectName] &
  string;

export interface LoadObjectOptions {
  /**
   * Load-time knobs to set (written into .rodata before load). A knob the object does not have
   * is skipped: the objects share most knobs, and a setting should not fail for the one that
   * does not need it.
   */
  readonly knobs?: Readonly<Partial<Record<KnobName, KnobValue>>>;
  /** Directory of the objects (default bpfBuildDir()). */
  readonly dir?: string;
  /**
   * Load-time map sizes (max_entries) by map name, for maps the object has. A map already
   * pinned under pinRoot keeps its size (it is reused as it is, with its contents); a new size
   * takes effect when the map is created.
   */
  readonly mapSizes?: Readonly<Record<string, number>>;
  /**
   * Capacities (max_entries) of maps, by map name, set before load (bpf_map__set_max_entries):
   * tenetd's `capacity` setting, applied even over a pinned map of another size (the caller
   * resizes: agent/host/capacity.ts). A map the object does not have is skipped, like a knob.
   */
  readonly maxEntries?: Readonly<Record<string, number>>;
}

/** The datapath's knobs from the agent's settings. */
export function datapathKnobs(opts: {
  dropEvents?: boolean;
}): Partial<Record<KnobName, KnobValue>> {
  return { tenet_cfg_drop_events: opts.dropEvents === true ? 1 : 0 };
}

/**
 * The directory of the product objects: $TENET_BPF_DIR when set (an installed package's objects,
 * or a test's rebuilt variant: a restarted agent given new objects upgrades its attachments
 * atomically), else build/bpf/ of this checkout, found from this file in agent/ (tsx, vitest) or
 * dist/agent/.
 */
export function bpfBuildDir(): string {
  const override = process.env.TENET_BPF_DIR;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'bpf');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    dir = resolve(dir, '..');
  }
  throw new Error('BPF objects not found (build/bpf/): run scripts/setup');
}

export function objectPath(name: ObjectName, dir: string = bpfBuildDir()): string {
  return join(dir, Objects[name].file);
}

function pinnedSize(path: string): number {
  const m = BpfMap.openPinned(path);
  try {
    return m.maxEntries;
  } finally {
    m.close();
  }
}

/** Opens and loads one product object with its maps pinned (or reused) under pinRoot. */
export async function loadObject(
  name: ObjectName,
  pinRoot: string,
  opts: LoadObjectOptions = {},
): Promise<BpfObject> {
  const obj = BpfObject.open(objectPath(name, opts.dir), { pinRoot });
  try {
    if (opts.knobs !== undefined) {
      const layout = Objects[name].knobs;
      const values = Object.fromEntries(
        Object.entries(opts.knobs).filter(
          ([k, v]) => v !== undefined && Object.hasOwn(layout, k),
        ) as [string, KnobValue][],
      );
      setKnobs(obj, layout, values);
    }
    const maps = new Set(obj.mapNames());
    for (const [map, size] of Object.entries(opts.mapSizes ?? {})) {
      if (!maps.has(map)) continue;
      const pinned = join(pinRoot, map);
      obj.setMaxEntries(map, existsSync(pinned) ? pinnedSize(pinned) : size);
    }
    for (const [map, n] of Object.entries(opts.maxEntries ?? {})) {
      if (maps.has(map)) obj.setMaxEntries(map, n);
    }
    await obj.load();
  } catch (e) {
    obj.close();
    throw e;
  }
  return obj;
}
