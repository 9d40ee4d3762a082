// The journal of record-level changes next to the state file (agent/daemon/state-journal.ts):
// appended entries are replayed onto the state file's policy at load, in version order; a full
// save empties the journal; entries the state file already holds are skipped; a torn or corrupted
// entry stops the replay there (the entries before it count, nothing after it).

import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
  readFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateFile } from '../../agent/daemon/state.js';
import { encodeEntry } from '../../agent/daemon/state-journal.js';
import { parsePolicy, type Policy } from '../../agent/policy/index.js';

const BASE = parsePolicy({
  providerAddresses: [{ host: 'hv1', address: '198.18.0.1', interface: 'eth0' }],
  routingDomains: [
    { name: 'blue', virtualSubnets: [{ name: 'web', vsid: 5001, prefixes: ['198.19.1.0/24'] }] },
  ],
  lookupRecords: [{ vsid: 5001, ca: '198.19.1.10', mac: '02:00:00:00:00:10', pa: '198.18.0.1' }],
});
const rec = (i: number, mac = i) => ({
  vsid: 5001,
  ca: `198.19.1.${i}`,
  mac: `02:00:00:00:00:${mac.toString(16).padStart(2, '0')}`,
  pa: '198.18.0.1',
});
const withRecords = (list: ReturnType<typeof rec>[]): Policy => ({ ...BASE, lookupRecords: list });

describe('state journal', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tenet-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replays appended record changes onto the saved policy, in order', async () => {
    const f = new StateFile(dir);
    await f.save(BASE, 1n);
    await f.appendRecords(withRecords([rec(10), rec(11)]), 2n, { upserts: [rec(11)], removes: [] });
    await f.appendRecords(withRecords([rec(10, 0x20), rec(11)]), 3n, {
      upserts: [rec(10, 0x20)],
      removes: [],
    });
    await f.appendRecords(withRecords([rec(11)]), 4n, {
      upserts: [],
      removes: [{ vsid: 5001, ca: '198.19.1.10' }],
    });
    expect(existsSync(f.journal.path)).toBe(true);
    const loaded = await new StateFile(dir).load();
    expect(loaded).toMatchObject({ kind: 'loaded', version: 4n, journal: { applied: 3 } });
    if (loaded.kind !== 'loaded') throw new Error('not loaded');
    expect(loaded.policy.lookupRecords).toEqual([rec(11)]);
  });

  it('a full save empties the journal; entries the file already holds are skipped', async () => {
    const f = new StateFile(dir);
    await f.save(BASE, 1n);
    await f.appendRecords(withRecords([rec(10), rec(12)]), 2n, { upserts: [rec(12)], removes: [] });
    await f.save(withRecords([rec(10), rec(12)]), 2n);
    expect(existsSync(f.journal.path)).toBe(false);
    // A crash between the state file's rename and the journal's removal leaves old entries.
    writeFileSync(f.journal.path, encodeEntry(2n, { upserts: [rec(13)], removes: [] }));
    const loaded = await f.load();
    expect(loaded).toMatchObject({ kind: 'loaded', version: 2n, journal: { applied: 0 } });
    if (loaded.kind !== 'loaded') throw new Error('not loaded');
    expect(loaded.policy.lookupRecords.map((r) => r.ca)).toEqual(['198.19.1.10', '198.19.1.12']);
  });

  it('stops at a torn or corrupted entry, keeping the ones before it', async () => {
    const f = new StateFile(dir);
    await f.save(BASE, 1n);
    await f.appendRecords(withRecords([rec(10), rec(14)]), 2n, { upserts: [rec(14)], removes: [] });
    const good = readFileSync(f.journal.path, 'utf8');
    appendFileSync(
      f.journal.path,
      encodeEntry(3n, { upserts: [rec(15)], removes: [] }).slice(0, 50),
    );
    let loaded = await f.load();
    expect(loaded).toMatchObject({
      kind: 'loaded',
      version: 2n,
      journal: { applied: 1, stopped: 'a torn last entry (no end of line)' },
    });
    const bad = encodeEntry(3n, { upserts: [rec(15)], removes: [] }).replace(
      '198.19.1.15',
      '198.19.1.16',
    );
    writeFileSync(f.journal.path, good + bad);
    loaded = await f.load();
    expect(loaded).toMatchObject({
      kind: 'loaded',
      version: 2n,
      journal: { applied: 1, stopped: 'checksum mismatch at version 3' },
    });
    if (loaded.kind !== 'loaded') throw new Error('not loaded');
    expect(loaded.policy.lookupRecords.map((r) => r.ca)).toEqual(['198.19.1.10', '198.19.1.14']);
  });
});
