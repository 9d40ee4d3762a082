// The pin root: a bpffs directory holding one datapath instance's maps (pinned by name) and links
// (links/). Before the agent loads its objects against a pin root it checks that what is pinned
// there is of its own ABI: the directory's version (TENET_PIN_ROOT ends in /v<TENET_ABI_VERSION>)
// and every pinned map's type, key and value sizes, capacity and flags against the descriptors
// generated from the objects' BTF. A mismatch stops the agent before it touches anything: maps of
// another layout are migrated through a new versioned pin root, never reused or flushed.

import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Maps, TENET_ABI_VERSION } from '../abi/generated.js';
import type { MapDescriptor } from '../abi/descriptors.js';
import { BpfMap } from '../bpf/index.js';

/** statfs f_type of bpffs (include/uapi/linux/magic.h BPF_FS_MAGIC). */
const BPF_FS_MAGIC = 0xcafe4a11;
/** Kernel object names are cut to BPF_OBJ_NAME_LEN - 1 characters. */
const OBJ_NAME_MAX = 15;

export class PinRootError extends Error {
  override readonly name = 'PinRootError';
}

/** Pinned maps whose layout is not the one this agent was built for. */
export class AbiMismatchError extends Error {
  override readonly name = 'AbiMismatchError';
  constructor(
    readonly pinRoot: string,
    readonly problems: readonly string[],
  ) {
    super(
      [
        `the maps pinned under ${pinRoot} are not of tenet ABI version ${TENET_ABI_VERSION}; ` +
          'refusing to adopt them (nothing was changed):',
        ...problems.map((p) => `  ${p}`),
      ].join('\n'),
    );
  }
}

/** Makes sure pinRoot exists and lies on a bpffs mount. */
export function preparePinRoot(pinRoot: string, abiVersion: number = TENET_ABI_VERSION): void {
  const version = /^v(\d+)$/.exec(basename(pinRoot))?.[1];
  if (version !== undefined && Number(version) !== abiVersion) {
    throw new AbiMismatchError(pinRoot, [
      `the pin root is versioned v${version}; this agent speaks ABI v${abiVersion}`,
    ]);
  }
  try {
    mkdirSync(pinRoot, { recursive: true });
  } catch (e) {
    throw new PinRootError(`cannot create pin root ${pinRoot}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const type = Number(statfsSync(pinRoot).type);
  if (type !== BPF_FS_MAGIC) {
    throw new PinRootError(
      `pin root ${pinRoot} is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)`,
    );
  }
}

export interface PinnedMapsReport {
  /** Maps found pinned with the expected layout (they will be reused). */
  readonly adopted: readonly string[];
  /** Maps not pinned yet (they will be created). */
  readonly absent: readonly string[];
  /** Kernel ids of the adopted maps. */
  readonly ids: Readonly<Record<string, number>>;
}

/**
 * Checks every pinned map under pinRoot against its generated descriptor. `anySize` names maps
 * whose capacity is configurable (tenetd's `capacity`): their max_entries is not checked here
 * (agent/host/capacity.ts resizes them).
 */
export function checkPinnedMaps(
  pinRoot: string,
  anySize: ReadonlySet<string> = new Set(),
): PinnedMapsReport {
  const adopted: string[] = [];
  const absent: string[] = [];
  const ids: Record<string, number> = {};
  const problems: string[] = [];
  for (const desc of Object.values(Maps) as MapDescriptor<unknown, unknown>[]) {
    if (desc.pinning !== 'by_name') continue;
    const path = join(pinRoot, desc.name);
    if (!existsSync(path)) {
      absent.push(desc.name);
      continue;
    }
    let info;
    try {
      const m = BpfMap.openPinned(path);
      try {
        info = m.info();
      } finally {
        m.close();
      }
    } catch (e) {
      problems.push(`${desc.name}: cannot open the pin: ${(e as Error).message}`);
      continue;
    }
    const want = {
      name: desc.name.slice(0, OBJ_NAME_MAX),
      type: desc.typeId,
      keySize: desc.keySize,
      valueSize: desc.valueSize,
      maxEntries: anySize.has(desc.name) ? info.maxEntries : desc.maxEntries,
      flags: desc.flags,
    };
    const diffs = (Object.keys(want) as (keyof typeof want)[])
      .filter((k) => info[k] !== want[k])
      .map((k) => `${k} ${String(info[k])} (expected ${String(want[k])})`);
    if (diffs.length > 0) problems.push(`${desc.name}: ${diffs.join(', ')}`);
    else {
      adopted.push(desc.name);
      ids[desc.name] = info.id;
    }
  }
  if (problems.length > 0) throw new AbiMismatchError(pinRoot, problems);
  return { adopted, absent, ids };
}
