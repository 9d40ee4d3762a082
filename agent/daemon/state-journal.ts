// The journal of record-level changes next to the state file: a million-record policy is not
// rewritten whole for every UpdateLookupRecord. Each record-level change the store commits through
// the incremental path (agent/api/records-fast.ts) appends one line, written and fdatasync()ed
// before the datapath gets the change (write-ahead, like the state file):
//
//   J <version> <sha256 hex of the JSON> {"u":[[vsid,ca,mac,pa],...],"d":[[vsid,ca],...]}\n
//
// The state file holds the policy at some version V; the journal holds the changes V+1, V+2, ...
// Every full save of the state file (any other change, or the journal reaching its size limit)
// removes the journal after the new state file is in place, so a crash between the two leaves
// entries of versions <= V, which replay skips. Reading replays, in order, entries whose version
// is the next one; it stops at the first line that is torn (a crash in the middle of an append),
// fails its checksum or does not follow, and reports how many it applied and why it stopped.

import { createHash } from 'node:crypto';
import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { LookupRecord } from '../policy/index.js';

export const JOURNAL_FILE_NAME = 'policy.journal';
/** Above this size the next record-level change saves the whole state instead (compaction). */
export const JOURNAL_MAX_BYTES = 64 * 1024 * 1024;

export interface JournalDelta {
  readonly upserts: readonly LookupRecord[];
  readonly removes: readonly { readonly vsid: number; readonly ca: string }[];
}

export interface JournalEntry {
  readonly version: bigint;
  readonly delta: JournalDelta;
}

export function encodeEntry(version: bigint, delta: JournalDelta): string {
  const json = JSON.stringify({
    u: delta.upserts.map((r) => [r.vsid, r.ca, r.mac, r.pa]),
    d: delta.removes.map((k) => [k.vsid, k.ca]),
  });
  const sha = createHash('sha256').update(json).digest('hex');
  return `J ${version} ${sha} ${json}\n`;
}

/** The entries of a journal's bytes, in order, up to the first that cannot be trusted. */
export function decodeJournal(data: string): { entries: JournalEntry[]; stopped?: string } {
  const entries: JournalEntry[] = [];
  let pos = 0;
  while (pos < data.length) {
    const nl = data.indexOf('\n', pos);
    if (nl < 0) return { entries, stopped: 'a torn last entry (no end of line)' };
    const line = data.slice(pos, nl);
    pos = nl + 1;
    const m = /^J (\d+) ([0-9a-f]{64}) (.*)$/.exec(line);
    if (m === null) return { entries, stopped: `not a journal entry: ${line.slice(0, 40)}` };
    const json = m[3] as string;
    if (createHash('sha256').update(json).digest('hex') !== m[2])
      return { entries, stopped: `checksum mismatch at version ${m[1]}` };
    const body = JSON.parse(json) as {
      u: [number, string, string, string][];
      d: [number, string][];
    };
    entries.push({
      version: BigInt(m[1] as string),
      delta: {
        upserts: body.u.map(([vsid, ca, mac, pa]) => ({ vsid, ca, mac, pa })),
        removes: body.d.map(([vsid, ca]) => ({ vsid, ca })),
      },
    });
  }
  return { entries };
}

/**
 * Applies the entries that follow `version` to a policy document's lookup records (raw JSON of
 * the state file, validated afterwards with the whole document).
 */
export function replayJournal(
  doc: { lookupRecords?: LookupRecord[] },
  version: bigint,
  entries: readonly JournalEntry[],
): { version: bigint; applied: number; stopped?: string } {
  const list = doc.lookupRecords ?? [];
  doc.lookupRecords = list;
  const index = new Map<string, number>();
  list.forEach((r, i) => index.set(`${r.vsid}/${r.ca}`, i));
  let v = version;
  let applied = 0;
  for (const e of entries) {
    if (e.version <= v) continue; // older than the state file: already in it
    if (e.version !== v + 1n)
      return { version: v, applied, stopped: `version ${e.version} after ${v}` };
    for (const r of e.delta.upserts) {
      const i = index.get(`${r.vsid}/${r.ca}`);
      if (i === undefined) {
        index.set(`${r.vsid}/${r.ca}`, list.length);
        list.push(r);
      } else list[i] = r;
    }
    if (e.delta.removes.length > 0) {
      const gone = new Set(e.delta.removes.map((k) => `${k.vsid}/${k.ca}`));
      const kept = list.filter((r) => !gone.has(`${r.vsid}/${r.ca}`));
      list.length = 0;
      list.push(...kept);
      index.clear();
      list.forEach((r, i) => index.set(`${r.vsid}/${r.ca}`, i));
    }
    v = e.version;
    applied++;
  }
  return { version: v, applied };
}

/** The journal file: append (durably), size, read, remove. */
export class RecordJournal {
  readonly path: string;

  constructor(
    readonly dir: string,
    name = JOURNAL_FILE_NAME,
  ) {
    this.path = join(dir, name);
  }

  /** Appends one entry and fdatasync()s it; the caller made sure the directory exists. */
  append(version: bigint, delta: JournalDelta): void {
    const fd = openSync(this.path, 'a', 0o600);
    try {
      writeSync(fd, encodeEntry(version, delta));
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Bytes in the journal (0 when absent). */
  size(): number {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  }

  read(): string | undefined {
    try {
      return readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  remove(): void {
    try {
      unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}
