// The reconciler on concrete cases: the demo policy installed into in-memory tables, idempotence,
// adoption after a restart, a live migration, the LPM covering rule, leftovers, and every
// failure path with its report and rollback.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  compile,
  rowsOf,
  TABLE_NAMES,
  TABLES,
  type CompiledTables,
  type HostFacts,
  type InstalledTables,
  type RouteKey,
  type Route,
} from '../../agent/compiler/index.js';
import { parsePolicy } from '../../agent/policy/index.js';
import {
  applyPlan,
  isEmptyPlan,
  MemoryPolicyTables,
  planTransaction,
  readInstalled,
  reconcile,
  SettleError,
  StageError,
} from '../../agent/reconciler/index.js';

const DEMO_TEXT = readFileSync(
  new URL('../../scripts/lab/demo-policy.yaml', import.meta.url).pathname,
  'utf8',
);
/* eslint-disable @typescript-eslint/no-explicit-any -- raw documents are mutated */
const demoDoc = (): any => parseYaml(DEMO_TEXT);

const HV1: HostFacts = {
  eth0: { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 },
  'vm-blue1': { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 },
  'vm-red1': { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 },
  'vm-blue2': { ifindex: 12, mac: 'fe:00:00:00:00:0c', mtu: 1500 },
};
const HV2: HostFacts = {
  eth0: { ifindex: 2, mac: '02:00:00:00:0e:02', mtu: 1500 },
  'vm-blue2': { ifindex: 20, mac: 'fe:00:00:00:00:14', mtu: 1500 },
  'vm-red2': { ifindex: 21, mac: 'fe:00:00:00:00:15', mtu: 1500 },
  'vm-bluedb1': { ifindex: 22, mac: 'fe:00:00:00:00:16', mtu: 1500 },
};

const compileDoc = (doc: unknown, host: string, facts: HostFacts) =>
  compile(parsePolicy(doc), host, facts);

/** The demo after blue-vm2 moved from hv2 to hv1. */
function migratedDoc() {
  const doc = demoDoc();
  doc.ports[2].host = 'hv1';
  doc.lookupRecords[2].pa = doc.lookupRecords[3].pa = '198.18.0.1';
  return doc;
}

function sizes(mem: MemoryPolicyTables) {
  return Object.fromEntries(TABLE_NAMES.map((t) => [t, mem.rows(t).size]));
}

const zeroChanges = { added: 0, changed: 0, removed: 0 };

describe('reconcile', () => {
  it('installs the demo policy into empty tables in one flip, settled', async () => {
    const mem = new MemoryPolicyTables();
    const result = await reconcile(mem, compileDoc(demoDoc(), 'hv1', HV1));
    expect(result).toMatchObject({ unchanged: false, flipped: true, generation: 1 });
    expect(result.changes).toEqual({
      vsubnets: { added: 3, changed: 0, removed: 0 },
      routes: { added: 8, changed: 0, removed: 0 },
      records: { added: 16, changed: 0, removed: 0 },
      localPas: { added: 1, changed: 0, removed: 0 },
      ports: { added: 2, changed: 0, removed: 0 },
      meterClasses: { added: 0, changed: 0, removed: 0 },
    });
    expect(mem.activeGeneration).toBe(1);
    expect(sizes(mem)).toEqual({
      vsubnets: 3,
      routes: 8,
      records: 16,
      localPas: 1,
      ports: 2,
      meterClasses: 0,
    });
    for (const t of TABLE_NAMES) {
      for (const row of mem.rows(t).values()) expect(row.entry.live).toBe(3);
    }
    expect(mem.ops).toEqual({ upserts: 60, deletes: 0, generationWrites: 1, barriers: 1 });
  });

  it('changes nothing when the same policy is applied twice', async () => {
    const mem = new MemoryPolicyTables();
    const tables = compileDoc(demoDoc(), 'hv2', HV2);
    await reconcile(mem, tables);
    const ops = { ...mem.ops };
    const again = await reconcile(mem, compileDoc(demoDoc(), 'hv2', HV2));
    expect(again.unchanged).toBe(true);
    expect(again.flipped).toBe(false);
    expect(mem.ops).toEqual(ops);
    expect(
      isEmptyPlan(planTransaction(await readInstalled(mem), tables, mem.activeGeneration)),
    ).toBe(true);
  });

  it('adopts what a previous agent installed (a restart reconciles by difference)', async () => {
    const maps = new MemoryPolicyTables();
    await reconcile(maps, compileDoc(demoDoc(), 'hv1', HV1));
    // A new agent process: it knows nothing but what the maps hold.
    const installed: InstalledTables = await readInstalled(maps);
    expect(installed.records.size).toBe(16);
    const plan = planTransaction(
      installed,
      compileDoc(demoDoc(), 'hv1', HV1),
      maps.readGeneration(),
    );
    expect(isEmptyPlan(plan)).toBe(true);
    const moved = planTransaction(installed, compileDoc(migratedDoc(), 'hv1', HV1), 1);
    expect(moved.nextGeneration).toBe(0);
  });

  it('applies a live migration as one change on both hosts', async () => {
    const hv1 = new MemoryPolicyTables();
    const hv2 = new MemoryPolicyTables();
    await reconcile(hv1, compileDoc(demoDoc(), 'hv1', HV1));
    await reconcile(hv2, compileDoc(demoDoc(), 'hv2', HV2));

    const on1 = await reconcile(hv1, compileDoc(migratedDoc(), 'hv1', HV1));
    expect(on1.changes).toEqual({
      vsubnets: zeroChanges,
      routes: zeroChanges,
      records: { added: 0, changed: 2, removed: 0 },
      localPas: zeroChanges,
      ports: { added: 1, changed: 0, removed: 0 },
      meterClasses: zeroChanges,
    });
    expect(on1).toMatchObject({ flipped: true, staged: 3, settled: 3, deleted: 0 });
    const rec = [...hv1.rows('records').values()].find(
      (r) => r.key.vsid === 5001 && r.key.addr[3] === 12 && r.key.family === 4,
    );
    expect(rec?.entry.v[0]).toMatchObject({ flags: 1, ifindex: 12, pa: 0xc6120001 });

    const on2 = await reconcile(hv2, compileDoc(migratedDoc(), 'hv2', HV2));
    expect(on2.changes.ports).toEqual({ added: 0, changed: 0, removed: 1 });
    expect(on2.changes.records).toEqual({ added: 0, changed: 2, removed: 0 });
    expect(hv2.rows('ports').size).toBe(2);
  });

  it('does not let a new longer prefix hide the covering route from old readers', () => {
    const key = (len: number, b1: number): RouteKey => {
      const addr = new Uint8Array(16);
      addr.set([10, b1, 0, 0]);
      return { prefixlen: 64 + len, rdid: 7, family: 4, addr };
    };
    const value = (vsid: number): Route => ({ vsid, flags: 1, nexthop: new Uint8Array(16) });
    const empty = <T extends keyof CompiledTables>(t: T) => rowsOf(t, []);
    const tables = (routes: { key: RouteKey; value: Route }[]): CompiledTables => ({
      ports: empty('ports'),
      vsubnets: empty('vsubnets'),
      records: empty('records'),
      localPas: empty('localPas'),
      meterClasses: empty('meterClasses'),
      routes: rowsOf('routes', routes),
    });
    const settled = (c: CompiledTables): InstalledTables =>
      Object.fromEntries(
        TABLE_NAMES.map((t) => [
          t,
          new Map(
            [...c[t]].map(([id, r]) => [
              id,
              { key: r.key, entry: { live: 3, v: [r.value, r.value] } },
            ]),
          ),
        ]),
      ) as unknown as InstalledTables;

    const before = tables([{ key: key(8, 0), value: value(4096) }]);
    const after = tables([
      { key: key(8, 0), value: value(4096) },
      { key: key(16, 1), value: value(4097) },
    ]);
    // Adding 10.1.0.0/16 under 10.0.0.0/8 with generation 0 active: old readers that match the
    // /16 must still get the /8's answer.
    const add = planTransaction(settled(before), after, 0);
    expect(add.stage.routes).toEqual([
      { key: key(16, 1), entry: { live: 3, v: [value(4096), value(4097)] }, previous: undefined },
    ]);
    expect(add.settle.routes.upserts).toHaveLength(1);
    // Removing it again: new readers get the /8's answer from the stale key until it is deleted.
    const remove = planTransaction(settled(after), before, 1);
    expect(remove.stage.routes).toEqual([
      {
        key: key(16, 1),
        entry: { live: 3, v: [value(4096), value(4097)] },
        previous: { live: 3, v: [value(4097), value(4097)] },
      },
    ]);
    expect(remove.settle.routes.deletes).toEqual([key(16, 1)]);
    expect(remove.changes.routes).toEqual({ added: 0, changed: 0, removed: 1 });
  });

  it('tidies leftovers of a dead agent without a flip when readers see the right tables', async () => {
    const mem = new MemoryPolicyTables();
    const desired = compileDoc(demoDoc(), 'hv1', HV1);
    await reconcile(mem, desired);
    // A port staged in generation 0 (inactive) by an agent that died before flipping.
    mem.table('ports').upsertBatch([
      {
        key: 99,
        entry: {
          live: 1,
          v: [
            { vsid: 5001, rdid: 1, mac: new Uint8Array(6), mtu: 1458, pa: 1, flags: 0 },
            TABLES.ports.zero(),
          ],
        },
      },
    ]);
    const plan = planTransaction(await readInstalled(mem), desired, 1);
    expect(plan.nextGeneration).toBe(1);
    expect(plan.stage.ports).toEqual([]);
    expect(plan.settle.ports).toEqual({ upserts: [], deletes: [99] });
    await applyPlan(mem, plan);
    expect(mem.rows('ports').has(TABLES.ports.keyId(99))).toBe(false);
    expect(mem.activeGeneration).toBe(1);
  });
});

describe('reconcile failures', () => {
  /** The demo on hv1 plus a third subnet in blue with two VMs: touches several tables. */
  function grownDoc() {
    const doc = demoDoc();
    doc.routingDomains[0].virtualSubnets.push({
      name: 'blue-app',
      vsid: 5003,
      prefixes: ['198.19.3.0/24'],
      gateway: { ipv4: '198.19.3.1' },
    });
    doc.lookupRecords.push(
      { vsid: 5003, ca: '198.19.3.31', mac: '02:00:00:b3:00:31', pa: '198.18.0.2' },
      { vsid: 5003, ca: '198.19.3.32', mac: '02:00:00:b3:00:32', pa: '198.18.0.2' },
    );
    return doc;
  }

  /** Everything the maps hold, both slots included. */
  const stateOf = (mem: MemoryPolicyTables) =>
    JSON.stringify(
      TABLE_NAMES.map((t) =>
        [...mem.rows(t)].map(([id, r]) => [
          id,
          r.entry.live,
          r.entry.v.map((v) => TABLES[t].valueId(v as never)),
        ]),
      ),
    );

  async function installedDemo(capacity?: Record<string, number>) {
    const mem = new MemoryPolicyTables({ capacity });
    await reconcile(mem, compileDoc(demoDoc(), 'hv1', HV1));
    const before = stateOf(mem);
    return { mem, snapshot: () => before, now: () => stateOf(mem) };
  }

  it('rolls back every table when a map is full (E2BIG) and says which and how many', async () => {
    // records holds the demo's 16 and room for one more; the change adds three.
    const { mem, snapshot, now } = await installedDemo({ records: 17 });
    const err = await reconcile(mem, compileDoc(grownDoc(), 'hv1', HV1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    const stage = err as StageError;
    expect(stage.failure).toMatchObject({ table: 'records', op: 'upsert', attempted: 3, done: 1 });
    expect(stage.message).toBe(
      'policy not applied: upsert of 2 of 3 records entries failed: E2BIG: records is full (17 entries); ' +
        'nothing became visible, staged entries rolled back',
    );
    expect(stage.rollbackFailures).toEqual([]);
    // vsubnets and routes had been staged before records failed: all undone.
    expect(now()).toBe(snapshot());
    expect(mem.activeGeneration).toBe(1);
    expect(sizes(mem)).toEqual({
      vsubnets: 3,
      routes: 8,
      records: 16,
      localPas: 1,
      ports: 2,
      meterClasses: 0,
    });
  });

  it('rolls back the whole batch when an implementation throws instead of reporting', async () => {
    const { mem, snapshot, now } = await installedDemo();
    mem.injectFault({ op: 'upsert', table: 'routes', atElement: 0, throws: true });
    const err = await reconcile(mem, compileDoc(grownDoc(), 'hv1', HV1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as StageError).failure).toMatchObject({ table: 'routes', attempted: 1, done: 0 });
    expect(now()).toBe(snapshot());
  });

  it('rolls back when the flip fails', async () => {
    const { mem, snapshot, now } = await installedDemo();
    mem.injectFault({ op: 'generation' });
    const err = await reconcile(mem, compileDoc(grownDoc(), 'hv1', HV1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as StageError).failure).toMatchObject({ table: null, op: 'generation' });
    expect(now()).toBe(snapshot());
    expect(mem.activeGeneration).toBe(1);
  });

  it('reports a rollback that fails too', async () => {
    const { mem } = await installedDemo({ records: 17 });
    mem.injectFault({ op: 'delete', table: 'routes' });
    const err = (await reconcile(mem, compileDoc(grownDoc(), 'hv1', HV1)).catch(
      (e: unknown) => e,
    )) as StageError;
    expect(err.rollbackFailures).toMatchObject([{ table: 'routes', op: 'delete', done: 0 }]);
    expect(err.message).toMatch(/rollback incomplete: delete of 1 of 1 routes entries failed/);
    // Readers never saw it, and the next reconcile (with room) cleans up.
    expect(mem.activeGeneration).toBe(1);
  });

  it('keeps the new generation when settling fails, and the next reconcile finishes', async () => {
    const { mem } = await installedDemo();
    mem.injectFault({ op: 'barrier' });
    const desired = compileDoc(grownDoc(), 'hv1', HV1);
    const err = await reconcile(mem, desired).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SettleError);
    expect((err as SettleError).generation).toBe(0);
    expect((err as Error).message).toMatch(
      /^policy applied \(generation 0 active\) but settling failed/,
    );
    expect(mem.activeGeneration).toBe(0);
    const next = await reconcile(mem, desired);
    expect(next.unchanged).toBe(false);
    expect(next.flipped).toBe(false); // readers already see the policy: only tidying is left
    expect(await reconcile(mem, desired)).toMatchObject({ unchanged: true });
    for (const t of TABLE_NAMES) {
      for (const row of mem.rows(t).values()) expect(row.entry.live).toBe(3);
    }
  });
});
