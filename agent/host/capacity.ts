// Capacity of the lookup-records map (tenetd's `capacity.lookupRecords`), and resizing it under
// a running datapath without a forwarding gap.
//
// tenet_records is a plain hash map pinned by name that the XDP and tc programs reference
// directly (bpf/lib/tables.h); a map's max_entries is fixed when it is created. The capacity is
// therefore chosen at load time (bpf_map__set_max_entries through loadObject's maxEntries), and a
// different capacity for an existing datapath means a new map and new programs that use it:
//
//   1. begin (HostAgent.start, before the objects are loaded): the pinned map's size differs from
//      the configured one. Shrinking below the entries it holds is refused (CapacityError, nothing
//      changed). Otherwise the pin moves to tenet_records-resizing (pinned there, then unlinked;
//      the map, still used by the attached programs, is untouched), so the load creates a new map of the
//      new size at tenet_records while reusing every other pinned map (counters, generation, ...);
//   2. copy: the new map is made to hold exactly what the old one holds (both generations of every
//      entry, byte for byte), in batches. The old programs keep forwarding from the old map; no
//      policy write happens until the next applyPolicy, so the two stay equal;
//   3. cutover (first applyPolicy, before its reconcile): the attachments are upgraded to the
//      programs just loaded with atomic link updates (attach.ts sees that they use another
//      tenet_records instance); each switched link reads a map equal to the one it read before;
//   4. finish: the .resizing pin is removed (the old map is freed once the last old program goes);
//      only then does the reconcile write the new map.
// An agent that dies between 1 and 4 finds tenet_records-resizing at its next start and resumes:
// the copy is redone (the new map is made equal to the old one again), which is right because no
// reconcile ran on the new map before step 4. The old pin is the source of truth until then.

import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Maps } from '../abi/generated.js';
import { BpfMap, isBpfError } from '../bpf/index.js';

export const RECORDS_MAP = Maps.tenet_records.name;
/** The compiled-in default capacity (TENET_RECORDS_MAX), which existing pins have. */
export const DEFAULT_RECORDS_CAPACITY = Maps.tenet_records.maxEntries;
/** Name of the old map's pin while a resize is in progress. */
export const RESIZING_SUFFIX = '-resizing'; // bpffs reserves names with dots

/** A capacity the datapath cannot take; nothing was changed. */
export class CapacityError extends Error {
  override readonly name = 'CapacityError';
}

export interface RecordsResize {
  /** Pin of the old map (tenet_records-resizing). */
  readonly oldPin: string;
  readonly newPin: string;
  readonly from: number;
  readonly to: number;
  /** Entries the old map held when the resize began. */
  readonly entries: number;
  /** True when an interrupted resize was found and is being resumed. */
  readonly resumed: boolean;
}

const LOOKUP_CHUNK = 8192;

/** Raw entries of a map (keys and values concatenated), read with batch lookups. */
function readAll(map: BpfMap): { keys: Buffer; values: Buffer; count: number } {
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  let count = 0;
  let token: Buffer | null = null;
  let chunk = LOOKUP_CHUNK;
  for (;;) {
    let r;
    try {
      r = map.lookupBatch({ inBatch: token, count: chunk });
    } catch (e) {
      if (isBpfError(e, 'ENOSPC') && chunk < 1 << 20) {
        chunk *= 2;
        continue;
      }
      throw e;
    }
    keys.push(r.keys.subarray(0, r.count * map.keySize));
    values.push(r.values.subarray(0, r.count * map.valueBufferSize));
    count += r.count;
    if (r.nextBatch === null) break;
    token = r.nextBatch;
  }
  return { keys: Buffer.concat(keys), values: Buffer.concat(values), count };
}

/** Entries of a hash map, counted with batch lookups. */
export function countEntries(map: BpfMap): number {
  return readAll(map).count;
}

function withPinned<T>(path: string, f: (m: BpfMap) => T): T {
  const m = BpfMap.openPinned(path);
  try {
    return f(m);
  } finally {
    m.close();
  }
}

/**
 * Step 1: decides whether the records map must be resized to `capacity` and, if so, moves the old
 * pin aside so the load creates the new map. Throws CapacityError (changing nothing) for a size
 * that cannot hold what the map holds, or an interrupted resize to another size.
 */
export function beginRecordsResize(pinRoot: string, capacity: number): RecordsResize | undefined {
  const newPin = join(pinRoot, RECORDS_MAP);
  const oldPin = newPin + RESIZING_SUFFIX;
  if (existsSync(oldPin)) {
    const from = withPinned(oldPin, (m) => m.maxEntries);
    const entries = withPinned(oldPin, countEntries);
    if (existsSync(newPin)) {
      const have = withPinned(newPin, (m) => m.maxEntries);
      if (have !== capacity) {
        throw new CapacityError(
          `an interrupted resize of ${RECORDS_MAP} from ${from} to ${have} entries is pending ` +
            `(${oldPin} exists): start once with capacity.lookupRecords: ${have} to finish it`,
        );
      }
    }
    if (entries > capacity) {
      throw new CapacityError(
        `cannot resize ${RECORDS_MAP} to ${capacity} entries: it holds ${entries} lookup records`,
      );
    }
    return { oldPin, newPin, from, to: capacity, entries, resumed: true };
  }
  if (!existsSync(newPin)) return undefined; // a new datapath: created at this size
  const from = withPinned(newPin, (m) => m.maxEntries);
  if (from === capacity) return undefined;
  const entries = withPinned(newPin, countEntries);
  if (entries > capacity) {
    throw new CapacityError(
      `cannot resize ${RECORDS_MAP} from ${from} to ${capacity} entries: it holds ${entries} ` +
        `lookup records (remove records first, or configure capacity.lookupRecords >= ${entries}); ` +
        'nothing was changed',
    );
  }
  movePin(newPin, oldPin);
  return { oldPin, newPin, from, to: capacity, entries, resumed: false };
}

/** Puts the old pin back after a load that failed (step 1 undone). */
export function abortRecordsResize(resize: RecordsResize): void {
  if (resize.resumed) return; // it was already aside when this agent started
  try {
    if (existsSync(resize.newPin)) unlinkSync(resize.newPin);
  } finally {
    movePin(resize.oldPin, resize.newPin);
  }
}

/** Moves a map's pin: pinned again at `to`, then unlinked at `from`; never without a pin. */
function movePin(from: string, to: string): void {
  withPinned(from, (m) => m.pin(to));
  unlinkSync(from);
}

const UPDATE_CHUNK = 8192;

/**
 * Step 2: makes the new map hold exactly the old map's entries. Returns the entries copied and
 * the stray keys deleted (from a resumed resize).
 */
export function copyRecords(resize: RecordsResize): { copied: number; deleted: number } {
  const oldMap = BpfMap.openPinned(resize.oldPin);
  const newMap = BpfMap.openPinned(resize.newPin);
  try {
    if (oldMap.keySize !== newMap.keySize || oldMap.valueSize !== newMap.valueSize) {
      throw new CapacityError(
        `${resize.oldPin} and ${resize.newPin} differ in key or value size; refusing to copy`,
      );
    }
    const { keys, values, count } = readAll(oldMap);
    const ks = oldMap.keySize;
    const vs = oldMap.valueBufferSize;
    // Stray keys first (a resumed copy): the new map must not hold what the old one does not.
    let deleted = 0;
    if (resize.resumed) {
      const wanted = new Set<string>();
      for (let i = 0; i < count; i++) wanted.add(keys.toString('hex', i * ks, (i + 1) * ks));
      const have = readAll(newMap);
      for (let i = 0; i < have.count; i++) {
        const k = have.keys.subarray(i * ks, (i + 1) * ks);
        if (!wanted.has(k.toString('hex')) && newMap.delete(k)) deleted++;
      }
    }
    for (let start = 0; start < count; start += UPDATE_CHUNK) {
      const n = Math.min(UPDATE_CHUNK, count - start);
      newMap.updateBatch(
        keys.subarray(start * ks, (start + n) * ks),
        values.subarray(start * vs, (start + n) * vs),
        n,
      );
    }
    return { copied: count, deleted };
  } finally {
    oldMap.close();
    newMap.close();
  }
}

/** Step 4: the old map's pin goes (its memory once the last old program is detached). */
export function finishRecordsResize(resize: RecordsResize): void {
  try {
    unlinkSync(resize.oldPin);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
