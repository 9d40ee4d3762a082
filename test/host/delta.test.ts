// Record deltas on real BPF maps (agent/reconciler/delta.ts through BpfPolicyTables): the maps end
// up holding exactly what a whole reconcile of the changed policy writes; a one-key delta is one
// settled write (no generation flip, no grace period); several keys are one staged transaction
// (one flip); a delta into a full map fails before anything became visible and is rolled back.

import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Maps } from '../../agent/abi/generated.js';
import { BpfMap } from '../../agent/bpf/index.js';
import { compile, type HostFacts } from '../../agent/compiler/index.js';
import { recordKey, recordValue } from '../../agent/compiler/records.js';
import { TABLE_NAMES, TABLES, type TableName } from '../../agent/compiler/tables.js';
import { parsePolicy, type LookupRecord, type Policy } from '../../agent/policy/index.js';
import { BpfPolicyTables, type PolicyMaps } from '../../agent/reconciler/bpf-tables.js';
import { reconcile, reconcileDelta, StageError } from '../../agent/reconciler/index.js';
import { describePrivileged } from '../helpers/privilege.js';

const DEMO = readFileSync(new URL('../../scripts/lab/demo-policy.yaml', import.meta.url), 'utf8');
const HV1: HostFacts = new Map([
  ['eth0', { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 }],
  ['vm-blue1', { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 }],
  ['vm-red1', { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 }],
]);

function createTables(recordsCapacity?: number): BpfPolicyTables {
  const like = (name: keyof typeof Maps, max?: number): BpfMap => {
    const d = Maps[name];
    return BpfMap.create({
      type: d.typeId,
      keySize: d.keySize,
      valueSize: d.valueSize,
      maxEntries: max ?? d.maxEntries,
      flags: d.flags,
    });
  };
  const maps = { generation: like('tenet_gen') } as Record<TableName | 'generation', BpfMap>;
  for (const t of TABLE_NAMES)
    maps[t] = like(TABLES[t].map, t === 'records' ? recordsCapacity : undefined);
  return new BpfPolicyTables(maps as PolicyMaps);
}

/** Every map's entries as hex, straight from the kernel. */
function dump(tables: BpfPolicyTables): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const t of TABLE_NAMES) {
    const m = tables.maps[t];
    const rows: string[] = [];
    for (let k = m.nextKey(null); k !== null; k = m.nextKey(k))
      rows.push(`${k.toString('hex')}=${m.lookup(k)?.toString('hex')}`);
    out[t] = rows.sort();
  }
  return out;
}

const rec = (i: number, mac = i): LookupRecord => ({
  vsid: 5001,
  ca: `198.19.1.${100 + i}`,
  mac: `02:00:00:00:aa:${mac.toString(16).padStart(2, '0')}`,
  pa: '198.18.0.2',
});
const withRecords = (p: Policy, add: LookupRecord[], drop: string[] = []): Policy => ({
  ...p,
  lookupRecords: [
    ...p.lookupRecords
      .filter((r) => !drop.includes(`${r.vsid}/${r.ca}`))
      .map((r) => add.find((a) => a.ca === r.ca) ?? r),
    ...add.filter((a) => !p.lookupRecords.some((r) => r.ca === a.ca)),
  ],
});

describePrivileged('record deltas on BPF maps', () => {
  let a: BpfPolicyTables;
  let b: BpfPolicyTables;
  const base = parsePolicy(DEMO);
  beforeEach(async () => {
    a = createTables();
    b = createTables();
    for (const t of [a, b]) await reconcile(t, compile(base, 'hv1', HV1));
  });
  afterEach(() => {
    a.close();
    b.close();
  });

  it('one key: a settled write in place, no flip; the maps equal a whole reconcile', async () => {
    const before = { ...a.ops };
    const gen = a.readGeneration();
    const r = await reconcileDelta(a, {
      table: 'records',
      upserts: [{ key: recordKey(rec(1)), value: recordValue(rec(1)) }],
      removes: [],
    });
    expect(r).toMatchObject({ flipped: false, staged: 0, settled: 1 });
    expect(r.changes.records).toEqual({ added: 1, changed: 0, removed: 0 });
    expect(a.readGeneration()).toBe(gen);
    expect(a.ops.upserts - before.upserts).toBe(1);
    expect(a.ops.barriers - before.barriers).toBe(0);
    await reconcile(b, compile(withRecords(base, [rec(1)]), 'hv1', HV1));
    expect(dump(a)).toEqual(dump(b));
    // Remove it again: one delete.
    const d = await reconcileDelta(a, {
      table: 'records',
      upserts: [],
      removes: [recordKey(rec(1))],
    });
    expect(d).toMatchObject({ flipped: false, deleted: 1 });
    await reconcile(b, compile(base, 'hv1', HV1));
    expect(dump(a)).toEqual(dump(b));
  });

  it('several keys: one staged transaction with one flip; the maps equal a whole reconcile', async () => {
    const add = [rec(1), rec(2), rec(3)];
    const gen = a.readGeneration();
    const r = await reconcileDelta(a, {
      table: 'records',
      upserts: add.map((x) => ({ key: recordKey(x), value: recordValue(x) })),
      removes: [recordKey({ vsid: 5001, ca: '198.19.1.12' })],
    });
    expect(r).toMatchObject({ flipped: true, staged: 4 });
    expect(r.changes.records).toEqual({ added: 3, changed: 0, removed: 1 });
    expect(a.readGeneration()).toBe(gen === 0 ? 1 : 0);
    await reconcile(b, compile(withRecords(base, add, ['5001/198.19.1.12']), 'hv1', HV1));
    // Same entries; the generation numbers may differ (b flipped more often).
    expect(dump(a).records).toEqual(dump(b).records);
  });

  it('a delta that does not fit fails before anything is visible and is rolled back', async () => {
    const small = createTables(32);
    try {
      await reconcile(small, compile(base, 'hv1', HV1));
      const before = dump(small);
      const many = Array.from({ length: 40 }, (_, i) => rec(i + 1));
      const err = await reconcileDelta(small, {
        table: 'records',
        upserts: many.map((x) => ({ key: recordKey(x), value: recordValue(x) })),
        removes: [],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StageError);
      expect(dump(small)).toEqual(before);
    } finally {
      small.close();
    }
  });
});
