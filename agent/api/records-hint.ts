// What a record-level change did to the document's lookupRecords, as the CRUD functions of
// objects.ts report it to the store (which then may take the incremental path of
// records-fast.ts), and the positions index the store lends them so that finding a record by
// (vsid, ca) does not scan a million-entry list.

import type { LookupRecord } from '../policy/index.js';

/** The lookup records a change touched; everything else in the document is unchanged. */
export interface RecordsHint {
  /** Indices in the NEXT document's lookupRecords of records added or replaced (raw input). */
  readonly upserted: readonly number[];
  /** Index in the CURRENT document of a record removed (at most one: DeleteLookupRecord). */
  readonly removedAt?: number;
}

/** `vsid/ca` (canonical CA): a record's identity. */
export const recordKeyText = (vsid: number, ca: string): string => `${vsid}/${ca}`;

const positions = new WeakMap<readonly LookupRecord[], ReadonlyMap<string, number>>();

/** Lends the index of `list` (key -> position); it must stay exact while registered. */
export function registerRecordPositions(
  list: readonly LookupRecord[],
  index: ReadonlyMap<string, number>,
): void {
  positions.set(list, index);
}

/** Position of (vsid, ca) in list through a registered index; undefined: no index for list. */
export function indexedPosition(
  list: readonly LookupRecord[],
  vsid: number,
  ca: string,
): number | undefined {
  const index = positions.get(list);
  if (index === undefined) return undefined;
  const i = index.get(recordKeyText(vsid, ca));
  if (i === undefined) return -1;
  const r = list[i];
  // Defensive: an index that disagrees with the list is ignored (the caller scans).
  return r !== undefined && r.vsid === vsid && r.ca === ca ? i : undefined;
}
