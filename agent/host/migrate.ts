// Migration of a live datapath from an older ABI version's pin root to this agent's.
//
// Pins live under a versioned root, <base>/v<N> (bpf/abi/version.h). An agent of version N whose
// root is versioned looks at its siblings in <base>: only entries named v<digits>, nothing else in
// <base> is read or touched. A sibling of a NEWER version holding anything refuses the start (an
// older agent must not run next to a newer datapath); one of an OLDER version holding pins is a
// datapath to migrate. planMigration() checks everything before the agent touches anything:
//   - every map pinned in the old root is one this file knows what to do with:
//       REBUILT_MAPS   policy and underlay maps: the new maps are filled by the first reconcile of
//                      the policy (and the underlay resolver), not copied;
//       TRANSIENT_MAPS ring buffer and per-CPU scratch/debug slots: nothing to carry over;
//       COUNTER_MIGRATIONS counters: copied into the new maps through a per-map migration
//                      function chosen by the OLD map's layout (type, key and value sizes);
//     a map with no entry (or a counter map whose old layout no function reads) refuses;
//   - every pin under the old links/ is a BPF link whose program this agent has loaded.
// The cutover itself runs in HostAgent.applyPolicy (it needs the policy, see agent.ts):
//   1. the new maps are filled by a reconcile of the policy (no program reads them yet);
//   2. counters: new += old (a snapshot S; the new maps have no traffic yet);
//   3. every OLD pinned link is updated atomically to the new program (BPF_F_REPLACE against the
//      program it runs): same link id, no moment without a program; then pinned under <root>/links/;
//   4. counters: new += (old now - S), the packets the old programs counted between the snapshot
//      and the switch; so counters never go backwards;
//   5. the old pins (only the ones planned, then the emptied directories) are removed.
// Counter migrations must be linear in the counter values (fields moved, widened, dropped or
// added as zero), since step 4 converts a difference.
// A cutover that fails half-way leaves both datapaths carrying the policy (each link runs either
// program); the next apply retries it. An agent that dies half-way finds the old root again at its
// next start and resumes: links already switched move to the programs just loaded (same links),
// and the old maps' counters are added once more (counted twice for that window, never less).

import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Maps, type MapName } from '../abi/generated.js';
import { BpfLink, BpfMap, BpfProgram, isBpfError, MapType, type MapInfo } from '../bpf/index.js';
import { parsePinName } from './attach.js';

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  constructor(
    readonly pinRoot: string,
    readonly problems: readonly string[],
  ) {
    super(
      [
        `cannot start on ${pinRoot}: refusing to migrate the datapath next to it (nothing was changed):`,
        ...problems.map((p) => `  ${p}`),
      ].join('\n'),
    );
  }
}

/** How one counter map's old layout becomes the new one. */
export interface MapMigration {
  /** Human description for the log ("same layout", "40-byte padded value -> 32"). */
  readonly describe: string;
  /** The old map's layout this migration reads. */
  readonly from: { readonly type: number; readonly keySize: number; readonly valueSize: number };
  /** Old key bytes -> new key bytes. */
  readonly key: (old: Buffer) => Buffer;
  /** One CPU's old value (valueSize bytes) -> the new value (the new map's valueSize bytes). */
  readonly value: (old: Buffer) => Buffer;
}

/** Maps the first reconcile (and the underlay resolver) fills from the policy. */
export const REBUILT_MAPS: readonly MapName[] = [
  'tenet_gen',
  'tenet_local_pas',
  'tenet_meter_cls',
  'tenet_ports',
  'tenet_records',
  'tenet_routes',
  'tenet_underlay',
  'tenet_vsubnets',
  // Receive steering: written by the steering controller from the policy at the same apply.
  'tenet_steer',
  'tenet_cpumap',
  // QoS configuration: written by the QoS stage of the same apply (agent/host/qos.ts), just after
  // the cutover; until then the new programs classify nothing (HTB's default class) and police
  // nothing, for the milliseconds between the link switch and that write.
  'tenet_qos_ports',
  'tenet_qos_cls',
  'tenet_qos_tcaps',
  // Port ACL rule sets: written by the ACL writer (agent/reconciler/acl.ts) at the same apply.
  'tenet_acl_ports',
  'tenet_acl_field',
  'tenet_acl_rules',
];

/** Maps holding nothing that outlives a packet (or a debug slot). */
export const TRANSIENT_MAPS: readonly MapName[] = [
  'tenet_events',
  'tenet_scratch',
  'tenet_redir_dbg',
  'tenet_acl_scr',
  'tenet_qos_scr',
  // Zeroes, never written.
  'tenet_zero',
];

const copy = (b: Buffer): Buffer => Buffer.from(b);

/** The map's current layout, read as is. */
function sameLayout(name: MapName): MapMigration {
  const d = Maps[name];
  return {
    describe: 'same layout',
    from: { type: d.typeId, keySize: d.keySize, valueSize: d.valueSize },
    key: copy,
    value: copy,
  };
}

/**
 * Counter maps, by name: every old layout that can be migrated. The current layout is always
 * one; a version that changes a counter layout adds the function reading the previous one here.
 */
export const COUNTER_MIGRATIONS: Readonly<Partial<Record<MapName, readonly MapMigration[]>>> = {
  tenet_port_ctrs: [sameLayout('tenet_port_ctrs')],
  tenet_qos_ctrs: [sameLayout('tenet_qos_ctrs')],
  // Policer state (one theoretical arrival time per bucket): the new map starts empty, so step 2
  // copies it; step 4 adds the old programs' advance once more, which can only move a bucket's
  // time later (less credit), never grant extra credit across an upgrade.
  tenet_qos_bkts: [sameLayout('tenet_qos_bkts')],
  tenet_drop_ctrs: [sameLayout('tenet_drop_ctrs')],
  tenet_meter_ctr: [sameLayout('tenet_meter_ctr')],
  tenet_steer_cnt: [sameLayout('tenet_steer_cnt')],
  tenet_acl_rctrs: [sameLayout('tenet_acl_rctrs')],
  tenet_acl_stats: [sameLayout('tenet_acl_stats')],
  // Connection tracking and first-fragment verdicts: copied (step 2), so established flows keep
  // their return traffic across an upgrade; step 4 adds the old programs' advance to each word,
  // which moves a last-seen time later (a flow expires a little later), never earlier.
  tenet_acl_ct: [sameLayout('tenet_acl_ct')],
  tenet_acl_frags: [sameLayout('tenet_acl_frags')],
  tenet_vsid_ctrs: [
    sameLayout('tenet_vsid_ctrs'),
    {
      // The value with a trailing 8-byte pad (bpf/abi/policy.h TENET_ABI_TEST_VSID_COUNTERS_PAD:
      // the "older ABI" build of test/resilience/migration.test.ts): the four counters stay.
      describe: 'value of 40 bytes (trailing pad) -> 32',
      from: { type: MapType.PERCPU_HASH, keySize: 4, valueSize: 40 },
      key: copy,
      value: (old) => Buffer.from(old.subarray(0, 32)),
    },
  ],
};

export interface MapPlan {
  readonly name: string;
  readonly action: 'rebuilt' | 'transient' | 'counters';
  readonly migration?: MapMigration;
}

export interface MigrationPlan {
  /** The old version's pin root and version. */
  readonly from: string;
  readonly fromVersion: number;
  readonly to: string;
  readonly toVersion: number;
  readonly maps: readonly MapPlan[];
  /** Pin names under <from>/links/. */
  readonly links: readonly string[];
}

/** The version of a versioned pin root (<base>/v<N>), else undefined. */
export function pinRootVersion(pinRoot: string): number | undefined {
  const m = /^v(\d+)$/.exec(basename(pinRoot));
  return m === null ? undefined : Number(m[1]);
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function holdsPins(dir: string): boolean {
  return entries(dir).some((e) => e !== 'links' || entries(join(dir, e)).length > 0);
}

function mapInfo(path: string): MapInfo {
  const m = BpfMap.openPinned(path);
  try {
    return m.info();
  } finally {
    m.close();
  }
}

/**
 * Looks for a datapath of another ABI version next to pinRoot and checks that it can be migrated
 * (see the file comment). Reads only. Returns undefined when there is nothing to migrate; throws
 * MigrationError when there is something that must not be migrated or run next to.
 *
 * @param programs the programs this agent loads (an old link running another one refuses).
 */
export function planMigration(
  pinRoot: string,
  abiVersion: number,
  programs: ReadonlySet<string>,
): MigrationPlan | undefined {
  const own = pinRootVersion(pinRoot);
  if (own === undefined || own !== abiVersion) return undefined;
  const base = dirname(pinRoot);
  const siblings = entries(base)
    .map((name) => ({ name, version: pinRootVersion(name) }))
    .filter((s): s is { name: string; version: number } => s.version !== undefined)
    .filter((s) => s.version !== abiVersion && holdsPins(join(base, s.name)));
  const problems: string[] = [];
  for (const s of siblings.filter((x) => x.version > abiVersion)) {
    problems.push(
      `${join(base, s.name)} holds the pins of a NEWER ABI (v${s.version}); this agent speaks ` +
        `v${abiVersion} and does not downgrade a datapath`,
    );
  }
  const older = siblings.filter((x) => x.version < abiVersion);
  if (older.length > 1) {
    problems.push(
      `several older datapaths to migrate from (${older.map((o) => join(base, o.name)).join(', ')}); ` +
        'remove the stale ones first',
    );
  }
  if (problems.length > 0) throw new MigrationError(pinRoot, problems);
  const old = older[0];
  if (old === undefined) return undefined;
  const from = join(base, old.name);

  const maps: MapPlan[] = [];
  for (const name of entries(from).filter((e) => e !== 'links')) {
    const path = join(from, name);
    let info: MapInfo;
    try {
      info = mapInfo(path);
    } catch (e) {
      problems.push(`${path}: not a map pin (${(e as Error).message})`);
      continue;
    }
    if ((REBUILT_MAPS as readonly string[]).includes(name)) {
      maps.push({ name, action: 'rebuilt' });
    } else if ((TRANSIENT_MAPS as readonly string[]).includes(name)) {
      maps.push({ name, action: 'transient' });
    } else if (Object.hasOwn(COUNTER_MIGRATIONS, name)) {
      const candidates = COUNTER_MIGRATIONS[name as MapName] ?? [];
      const migration = candidates.find(
        (m) =>
          m.from.type === info.type &&
          m.from.keySize === info.keySize &&
          m.from.valueSize === info.valueSize,
      );
      if (migration === undefined) {
        problems.push(
          `${name}: no migration function reads its v${old.version} layout (type ${info.type}, ` +
            `key ${info.keySize} bytes, value ${info.valueSize} bytes)`,
        );
      } else maps.push({ name, action: 'counters', migration });
    } else {
      problems.push(`${name}: a map this agent does not know how to migrate`);
    }
  }

  const links = entries(join(from, 'links'));
  for (const name of links) {
    const parsed = parsePinName(name);
    if (parsed === undefined || !programs.has(parsed.program)) {
      problems.push(`links/${name}: no loaded program of that name to switch it to`);
      continue;
    }
    try {
      BpfLink.openPinned(join(from, 'links', name)).close();
    } catch (e) {
      problems.push(
        isBpfError(e, 'EINVAL')
          ? `links/${name}: a netlink tc filter (not a BPF link): cannot be switched atomically`
          : `links/${name}: cannot open (${(e as Error).message})`,
      );
    }
  }
  if (problems.length > 0) throw new MigrationError(pinRoot, problems);
  return { from, fromVersion: old.version, to: pinRoot, toVersion: abiVersion, maps, links };
}

// ---------- counters ----------

const round8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Every entry of a map: key hex -> raw (all CPUs') value. */
export function readAll(map: BpfMap): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let k = map.nextKey(null); k !== null; k = map.nextKey(k)) {
    const v = map.lookup(k);
    if (v !== null) out.set(k.toString('hex'), v);
  }
  return out;
}

/**
 * Adds the old map's counters (minus `base`, a previous readAll of it) into the new map through
 * the migration: per key, per CPU, u64 by u64. Returns what it read of the old map and how many
 * entries it wrote.
 */
export function addCounters(
  oldMap: BpfMap,
  newMap: BpfMap,
  migration: MapMigration,
  base?: ReadonlyMap<string, Buffer>,
): { read: Map<string, Buffer>; written: number } {
  const read = readAll(oldMap);
  const oldStride = round8(oldMap.valueSize);
  const newStride = round8(newMap.valueSize);
  const cpus = oldMap.valueBufferSize / oldStride;
  if (newMap.valueBufferSize / newStride !== cpus) {
    throw new Error(`${oldMap.info().name}: per-CPU value counts differ between the maps`);
  }
  let written = 0;
  for (const [hex, value] of read) {
    const prev = base?.get(hex);
    const newKey = migration.key(Buffer.from(hex, 'hex'));
    const cur = newMap.lookup(newKey) ?? Buffer.alloc(newMap.valueBufferSize);
    let changed = false;
    for (let cpu = 0; cpu < cpus; cpu++) {
      const slice = Buffer.from(
        value.subarray(cpu * oldStride, cpu * oldStride + oldMap.valueSize),
      );
      if (prev !== undefined) {
        for (let o = 0; o + 8 <= slice.length; o += 8) {
          const before = prev.readBigUInt64LE(cpu * oldStride + o);
          slice.writeBigUInt64LE(BigInt.asUintN(64, slice.readBigUInt64LE(o) - before), o);
        }
      }
      const add = migration.value(slice);
      for (let o = 0; o + 8 <= add.length; o += 8) {
        const d = add.readBigUInt64LE(o);
        if (d === 0n) continue;
        const at = cpu * newStride + o;
        cur.writeBigUInt64LE(BigInt.asUintN(64, cur.readBigUInt64LE(at) + d), at);
        changed = true;
      }
    }
    if (changed) {
      newMap.update(newKey, cur);
      written++;
    }
  }
  return { read, written };
}

// ---------- links and pins ----------

/**
 * Switches the old pinned link to `prog` atomically (only if it still runs the program it ran
 * when looked at) and pins it at `to`. Returns the link id and the programs before and after.
 */
export function switchLink(
  from: string,
  to: string,
  prog: BpfProgram,
): { linkId: number; fromProg: number; toProg: number } {
  const link = BpfLink.openPinned(from);
  try {
    const info = link.info();
    const toProg = prog.info().id;
    if (info.progId !== toProg) {
      const old = BpfProgram.fromId(info.progId);
      try {
        link.update(prog, { oldProg: old });
      } finally {
        old.close();
      }
    }
    if (!existsSync(to)) link.pin(to);
    return { linkId: info.id, fromProg: info.progId, toProg };
  } finally {
    link.close();
  }
}

/**
 * Removes the planned pins of the old root, then its links/ and itself if they are empty. What
 * it did not plan is left (and reported).
 */
export function removeOldPins(plan: MigrationPlan): { removed: string[]; left: string[] } {
  const removed: string[] = [];
  const paths = [
    ...plan.links.map((l) => join(plan.from, 'links', l)),
    ...plan.maps.map((m) => join(plan.from, m.name)),
  ];
  for (const p of paths) {
    try {
      unlinkSync(p);
      removed.push(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  for (const dir of [join(plan.from, 'links'), plan.from]) {
    try {
      rmdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw e;
    }
  }
  const left = [
    ...entries(plan.from)
      .filter((e) => e !== 'links')
      .map((e) => join(plan.from, e)),
    ...entries(join(plan.from, 'links')).map((e) => join(plan.from, 'links', e)),
  ];
  return { removed, left };
}
