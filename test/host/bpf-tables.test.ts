// The reconciler over real BPF maps (agent/reconciler/bpf-tables.ts): maps created with the
// product's layouts (from the generated descriptors), some with a small capacity to fill them up.
// What the maps hold after a reconcile is compared byte for byte with compile()'s output.

import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Maps } from '../../agent/abi/generated.js';
import { BpfMap } from '../../agent/bpf/index.js';
import { compile, type CompiledTables, type HostFacts } from '../../agent/compiler/index.js';
import { TABLE_NAMES, TABLES, type TableDef, type TableName } from '../../agent/compiler/tables.js';
import { parsePolicy } from '../../agent/policy/index.js';
import {
  BpfPolicyTables,
  isMapFull,
  MapFullError,
  type PolicyMaps,
} from '../../agent/reconciler/bpf-tables.js';
import { reconcile, StageError } from '../../agent/reconciler/index.js';
import { describePrivileged } from '../helpers/privilege.js';

const DEMO = readFileSync(new URL('../../scripts/lab/demo-policy.yaml', import.meta.url), 'utf8');

const HV1: HostFacts = new Map([
  ['eth0', { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 }],
  ['vm-blue1', { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 }],
  ['vm-red1', { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 }],
]);

/** A private map with the layout of a product map (optionally fewer entries). */
function createLike(name: keyof typeof Maps, maxEntries?: number): BpfMap {
  const d = Maps[name];
  return BpfMap.create({
    type: d.typeId,
    keySize: d.keySize,
    valueSize: d.valueSize,
    maxEntries: maxEntries ?? d.maxEntries,
    flags: d.flags,
  });
}

function createTables(capacity: Partial<Record<TableName, number>> = {}): BpfPolicyTables {
  const maps = { generation: createLike('tenet_gen') } as Record<TableName | 'generation', BpfMap>;
  for (const t of TABLE_NAMES) maps[t] = createLike(TABLES[t].map, capacity[t]);
  return new BpfPolicyTables(maps as PolicyMaps);
}

/** table -> key hex -> entry hex, straight from the kernel. */
function snapshot(tables: BpfPolicyTables): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const t of TABLE_NAMES) {
    const map = tables.maps[t];
    const rows: Record<string, string> = {};
    for (let k = map.nextKey(null); k !== null; k = map.nextKey(k)) {
      rows[k.toString('hex')] = (map.lookup(k) as Buffer).toString('hex');
    }
    out[t] = rows;
  }
  return out;
}

/** What a settled map holds for `compiled`: every key live in both generations, v[0] = v[1]. */
function expectSettled(tables: BpfPolicyTables, compiled: CompiledTables): void {
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const want = compiled[t] as ReadonlyMap<string, { key: unknown; value: unknown }>;
    const got = new Map<string, string>();
    for (const row of tables.table(t).getAll() as {
      key: unknown;
      entry: { live: number; v: unknown[] };
    }[]) {
      expect(row.entry.live, `${t} ${def.keyId(row.key)}`).toBe(3);
      const v0 = def.valueId(row.entry.v[0]);
      expect(def.valueId(row.entry.v[1])).toBe(v0);
      got.set(def.keyId(row.key), v0);
    }
    const expected = new Map([...want].map(([id, r]) => [id, def.valueId(r.value)]));
    expect(Object.fromEntries(got), t).toEqual(Object.fromEntries(expected));
  }
}

describePrivileged('BpfPolicyTables: the reconciler over BPF maps', () => {
  let tables: BpfPolicyTables;
  const compiled = (): CompiledTables => compile(parsePolicy(DEMO), 'hv1', HV1);

  beforeEach(() => {
    tables = createTables();
  });
  afterEach(() => tables.close());

  it('installs the compiled tables, flips the generation, and re-applying writes nothing', async () => {
    const want = compiled();
    const r = await reconcile(tables, want);
    expect(r.flipped).toBe(true);
    expect(tables.readGeneration()).toBe(1);
    expectSettled(tables, want);
    const rows = TABLE_NAMES.reduce((n, t) => n + want[t].size, 0);
    // Staged once, settled once; one flip; one barrier.
    expect(tables.ops).toEqual({
      upserts: 2 * rows,
      deletes: 0,
      generationWrites: 1,
      barriers: 1,
    });

    const before = { ...tables.ops };
    const again = await reconcile(tables, compiled());
    expect(again.unchanged).toBe(true);
    expect(tables.ops).toEqual(before);
  });

  it('removes what the policy no longer has', async () => {
    await reconcile(tables, compiled());
    const policy = parsePolicy(DEMO);
    const smaller = parsePolicy({
      ...policy,
      customerRoutes: [],
      lookupRecords: policy.lookupRecords.filter((r) => r.vsid !== 6001),
      ports: policy.ports.filter((p) => p.vsid !== 6001),
      routingDomains: policy.routingDomains.filter((d) => d.name !== 'red'),
    });
    const want = compile(smaller, 'hv1', HV1);
    const r = await reconcile(tables, want);
    expect(r.deleted).toBeGreaterThan(0);
    expectSettled(tables, want);
    expect(tables.table('ports').getAll()).toHaveLength(1);
  });

  it('a full map fails the stage with MapFullError and leaves the maps as they were', async () => {
    tables.close();
    const want = compiled();
    tables = createTables({ records: want.records.size - 2 });
    const before = snapshot(tables);
    const err = await reconcile(tables, want).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StageError);
    expect(isMapFull(err)).toBe(true);
    const full = (err as StageError).cause as MapFullError;
    expect(full).toBeInstanceOf(MapFullError);
    expect(full).toMatchObject({ table: 'records', map: 'tenet_records', code: 'E2BIG' });
    expect(full.capacity).toBe(want.records.size - 2);
    expect((err as StageError).rollbackFailures).toEqual([]);
    expect(tables.readGeneration()).toBe(0);
    expect(snapshot(tables)).toEqual(before);
  });

  it('a full LPM trie (ENOSPC) is a MapFullError too', async () => {
    tables.close();
    const want = compiled();
    tables = createTables({ routes: 1 });
    const err = await reconcile(tables, want).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMapFull(err)).toBe(true);
    expect((err as StageError).cause).toMatchObject({ table: 'routes', code: 'ENOSPC' });
    expect(snapshot(tables).routes).toEqual({});
  });

  it('deleteBatch counts absent keys as deleted and reports partial upserts', async () => {
    const want = compiled();
    await reconcile(tables, want);
    const records = tables.table('records');
    const keys = [...want.records.values()].map((r) => r.key);
    const first = keys.slice(0, 3);
    expect(await records.deleteBatch(first)).toEqual({ done: 3 });
    // Again, plus the rest: the three absent ones count as done.
    const deletesBefore = tables.ops.deletes;
    expect(await records.deleteBatch([...first, ...keys.slice(3), ...first])).toEqual({
      done: keys.length + 3,
    });
    expect(tables.ops.deletes - deletesBefore).toBe(keys.length - 3);
    expect(await records.getAll()).toEqual([]);

    // An upsert batch that overflows reports how far it got.
    tables.close();
    tables = createTables({ ports: 1 });
    const ports = [...want.ports.values()].map((r) => ({
      key: r.key,
      entry: { live: 3, v: [r.value, r.value] },
    }));
    const res = await tables.table('ports').upsertBatch(ports);
    expect(res.done).toBe(1);
    expect(res.error).toBeInstanceOf(MapFullError);
  });

  it('the grace barrier is a map-in-map update that returns', () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 3; i++) tables.graceBarrier();
    expect(tables.ops.barriers).toBe(3);
    // synchronize_rcu() takes a little while, but bounded (a few ms to tens of ms).
    expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeLessThan(5000);
  });
});
