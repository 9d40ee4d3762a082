// The durable desired policy: one file, replaced atomically on every change, read back at start.
//
// Format: one header line, then the policy as JSON:
//
//   TENET-STATE 1 version=<policy version> length=<body bytes> sha256=<hex of the body>\n
//   {"providerAddresses":[...],...}
//
// The header's format number is bumped whenever the layout changes; a file of another format is
// not guessed at. Writing: a new file next to the old one (same directory, same filesystem),
// written and fsync()ed, renamed over the old one, then the directory fsync()ed so the rename
// itself is durable. A crash at any point leaves either the old file or the new one, complete.
//
// Reading: a missing file is "absent" (first start). A file that cannot be trusted (bad header,
// another format, truncated, checksum mismatch, not JSON, not a valid policy) is renamed aside to
// `<name>.quarantine-<time>` for a human to look at and reported; the daemon then continues
// without a desired policy (see PolicyStore: it keeps what the datapath holds and waits for a
// whole-document Apply), never with an empty one.
//
// Record-level changes are appended to a journal next to the file instead of rewriting it
// (state-journal.ts); reading replays the journal onto the file's policy before validating it.

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parsePolicy, PolicyError, type Policy } from '../policy/index.js';
import {
  decodeJournal,
  JOURNAL_MAX_BYTES,
  RecordJournal,
  replayJournal,
  type JournalDelta,
  type JournalEntry,
} from './state-journal.js';

export const STATE_FORMAT = 1;
export const STATE_FILE_NAME = 'policy.state';
const MAGIC = 'TENET-STATE';

export type StateLoad =
  | {
      readonly kind: 'loaded';
      readonly policy: Policy;
      readonly version: bigint;
      /** Journal entries replayed onto the file's policy, and why replay stopped early. */
      readonly journal?: { readonly applied: number; readonly stopped?: string };
    }
  | { readonly kind: 'absent' }
  | { readonly kind: 'quarantined'; readonly reason: string; readonly movedTo: string };

export class StateFormatError extends Error {
  override readonly name = 'StateFormatError';
}

export function encodeState(policy: Policy, version: bigint): Buffer {
  const body = Buffer.from(JSON.stringify(policy), 'utf8');
  const sha = createHash('sha256').update(body).digest('hex');
  const header = `${MAGIC} ${STATE_FORMAT} version=${version} length=${body.length} sha256=${sha}\n`;
  return Buffer.concat([Buffer.from(header, 'utf8'), body]);
}

/**
 * The policy and version of a state file's bytes, with the journal's entries replayed onto it;
 * StateFormatError says what is wrong.
 */
export function decodeState(
  data: Buffer,
  journal: readonly JournalEntry[] = [],
): { policy: Policy; version: bigint; replay: { applied: number; stopped?: string } } {
  const nl = data.indexOf(0x0a);
  if (nl < 0 || nl > 512) throw new StateFormatError('no header line');
  const header = data.subarray(0, nl).toString('utf8');
  const m = /^(\S+) (\d+) version=(\d+) length=(\d+) sha256=([0-9a-f]{64})$/.exec(header);
  if (m === null || m[1] !== MAGIC)
    throw new StateFormatError(
      `not a tenet state file header: ${JSON.stringify(header.slice(0, 80))}`,
    );
  if (Number(m[2]) !== STATE_FORMAT) {
    throw new StateFormatError(`state format ${m[2]}, this tenetd reads format ${STATE_FORMAT}`);
  }
  const body = data.subarray(nl + 1);
  const length = Number(m[4]);
  if (body.length < length)
    throw new StateFormatError(`truncated: ${body.length} of ${length} bytes`);
  if (body.length > length)
    throw new StateFormatError(`${body.length - length} bytes after the end`);
  const sha = createHash('sha256').update(body).digest('hex');
  if (sha !== m[5]) throw new StateFormatError('checksum mismatch (corrupted)');
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new StateFormatError(`not JSON: ${(e as Error).message}`);
  }
  let version = BigInt(m[3] as string);
  let replay: { applied: number; stopped?: string } = { applied: 0 };
  if (journal.length > 0 && raw !== null && typeof raw === 'object') {
    const r = replayJournal(raw as { lookupRecords?: [] }, version, journal);
    version = r.version;
    replay = r.stopped === undefined ? { applied: r.applied } : r;
  }
  try {
    return { policy: parsePolicy(raw), version, replay };
  } catch (e) {
    if (e instanceof PolicyError) throw new StateFormatError(`not a valid policy: ${e.message}`);
    throw e;
  }
}

export class StateFile {
  readonly path: string;
  readonly journal: RecordJournal;

  constructor(
    readonly dir: string,
    name = STATE_FILE_NAME,
  ) {
    this.path = join(dir, name);
    this.journal = new RecordJournal(dir);
  }

  /**
   * A record-level change: one journal entry (durable before this returns), or a whole save
   * when the journal has grown past JOURNAL_MAX_BYTES (which empties it).
   */
  async appendRecords(policy: Policy, version: bigint, delta: JournalDelta): Promise<void> {
    const size = this.journal.size();
    if (size > JOURNAL_MAX_BYTES) return this.save(policy, version);
    this.journal.append(version, delta);
    if (size === 0) await syncDir(this.dir); // the new file's directory entry
  }

  /** Replaces the state atomically and durably (see the top of this file). */
  async save(policy: Policy, version: bigint): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dir, `.${basename(this.path)}.tmp-${process.pid}`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      await fh.writeFile(encodeState(policy, version));
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await fh.close();
    await rename(tmp, this.path);
    await syncDir(dirname(this.path));
    // The new file holds every journalled change: the journal goes (state-journal.ts).
    this.journal.remove();
  }

  /** Removes the state (durably); absent already is fine. */
  async forget(): Promise<void> {
    this.journal.remove();
    try {
      await unlink(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await syncDir(dirname(this.path));
  }

  /** Reads the state; quarantines a file that cannot be trusted. */
  async load(): Promise<StateLoad> {
    let data: Buffer;
    try {
      data = await readFile(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
      throw e;
    }
    const text = this.journal.read();
    const journal = text === undefined ? { entries: [] } : decodeJournal(text);
    try {
      const { policy, version, replay } = decodeState(data, journal.entries);
      const stopped = replay.stopped ?? journal.stopped;
      return {
        kind: 'loaded',
        policy,
        version,
        ...(text === undefined
          ? {}
          : {
              journal: { applied: replay.applied, ...(stopped === undefined ? {} : { stopped }) },
            }),
      };
    } catch (e) {
      if (!(e instanceof StateFormatError)) throw e;
      const movedTo = `${this.path}.quarantine-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await rename(this.path, movedTo);
      await syncDir(dirname(this.path)).catch(() => undefined);
      return { kind: 'quarantined', reason: e.message, movedTo };
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
