// Properties of the generation-aware reconciler, checked with fast-check on small random tables
// (small key spaces so that keys collide, change and nest often):
//   - after a reconcile the maps hold exactly the desired tables, settled (live in both
//     generations, both versions equal), and a second plan is empty;
//   - at every single map write between the start and the end of a transaction, a reader of the
//     old generation sees exactly the old tables and, once the generation has flipped, a reader
//     of the new one sees exactly the new tables. The reader is modelled on the datapath: it
//     reads the generation once, looks keys up exactly in hash maps and by longest prefix in the
//     route LPM trie (an entry whose live bit is clear is a miss, with no fallback);
//   - a failure anywhere in staging or in the flip rolls the maps back to exactly what they were;
//   - a failure while settling leaves the new tables visible, and the next reconcile completes.
// Initial states are either settled tables or arbitrary leftovers (any live masks and values,
// as an agent that died mid-transaction would leave them).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  liveBit,
  rowsOf,
  TABLE_NAMES,
  TABLES,
  type CaKey,
  type CompiledTables,
  type Entry,
  type InstalledRow,
  type KeyOf,
  type LocalPa,
  type Port,
  type LookupRecord,
  type MeterClass,
  type MeterKey,
  type RouteKey,
  type Route,
  type TableDef,
  type TableName,
  type ValueOf,
  type Vsubnet,
} from '../../agent/compiler/tables.js';
import {
  applyPlan,
  isEmptyPlan,
  MemoryPolicyTables,
  planTransaction,
  readInstalled,
  reconcile,
  SettleError,
  StageError,
  type Generation,
  type MemoryEvent,
} from '../../agent/reconciler/index.js';

// ---- generators -------------------------------------------------------------------------------

const macArb = fc.integer({ min: 1, max: 3 }).map((b) => Uint8Array.of(2, 0, 0, 0, 0, b));

const portValue: fc.Arbitrary<Port> = fc.record({
  vsid: fc.constantFrom(4096, 4097),
  rdid: fc.constantFrom(1, 2),
  mac: macArb,
  mtu: fc.constantFrom(1400, 1458),
  pa: fc.constantFrom(0xc6120001, 0xc6120002),
  flags: fc.constant(0),
});
const vsubnetValue: fc.Arbitrary<Vsubnet> = fc.record({
  rdid: fc.constantFrom(1, 2),
  gw_mac: macArb,
  flags: fc.constant(0),
  gw_ip4: fc.constantFrom(0, 0xc6130101),
  gw_ip6: fc.constant(new Uint8Array(16)),
});
const caKey: fc.Arbitrary<CaKey> = fc
  .record({ vsid: fc.constantFrom(4096, 4097), host: fc.integer({ min: 1, max: 4 }) })
  .map(({ vsid, host }) => {
    const addr = new Uint8Array(16);
    addr.set([198, 19, 1, host]);
    return { vsid, family: 4, addr };
  });
const recordValue: fc.Arbitrary<LookupRecord> = fc.record({
  mac: macArb,
  flags: fc.constantFrom(0, 1, 2),
  pa: fc.constantFrom(0, 0xc6120001, 0xc6120002),
  ifindex: fc.constantFrom(0, 10),
});

/** Route prefixes nest: 10.a.b.c with a, b, c in {0, 1} at lengths 0, 8, 16, 24, 32. */
const routeKey: fc.Arbitrary<RouteKey> = fc
  .record({
    rdid: fc.constantFrom(1, 2),
    len: fc.constantFrom(0, 8, 16, 24, 32),
    a: fc.integer({ min: 0, max: 1 }),
    b: fc.integer({ min: 0, max: 1 }),
    c: fc.integer({ min: 0, max: 1 }),
  })
  .map(({ rdid, len, a, b, c }) => {
    const full = [10, a, b, c];
    const addr = new Uint8Array(16);
    for (let i = 0; i < 4; i++) {
      const keep = Math.max(0, Math.min(8, len - i * 8));
      addr[i] = (full[i] as number) & ((0xff00 >> keep) & 0xff);
    }
    return { prefixlen: 64 + len, rdid, family: 4, addr };
  });
const routeValue: fc.Arbitrary<Route> = fc.record({
  vsid: fc.constantFrom(4096, 4097),
  flags: fc.constantFrom(1, 2),
  nexthop: fc.constantFrom(0, 7).map((b) => {
    const n = new Uint8Array(16);
    n[3] = b;
    return n;
  }),
});
const localPaValue: fc.Arbitrary<LocalPa> = fc.record({
  ifindex: fc.constantFrom(2, 3),
  mac: macArb,
  mtu: fc.constantFrom(1500, 9000),
});

/** Meter prefixes nest like route prefixes, per port and direction. */
const meterKey: fc.Arbitrary<MeterKey> = fc
  .record({ route: routeKey, ifindex: fc.constantFrom(10, 11), direction: fc.constantFrom(0, 1) })
  .map(({ route, ifindex, direction }) => ({
    prefixlen: route.prefixlen,
    ifindex,
    direction,
    family: 4,
    addr: route.addr,
  }));
const meterValue: fc.Arbitrary<MeterClass> = fc.record({ class_id: fc.constantFrom(1, 2, 3) });

const ARBS: { [T in TableName]: { key: fc.Arbitrary<KeyOf<T>>; value: fc.Arbitrary<ValueOf<T>> } } =
  {
    ports: { key: fc.integer({ min: 1, max: 5 }), value: portValue },
    vsubnets: { key: fc.constantFrom(4096, 4097, 4098), value: vsubnetValue },
    records: { key: caKey, value: recordValue },
    routes: { key: routeKey, value: routeValue },
    localPas: { key: fc.constantFrom(0xc6120001, 0xc6120002), value: localPaValue },
    meterClasses: { key: meterKey, value: meterValue },
  };

function tableArb<T extends TableName>(t: T) {
  return fc.array(fc.record({ key: ARBS[t].key, value: ARBS[t].value }), { maxLength: 8 });
}

const compiledArb: fc.Arbitrary<CompiledTables> = fc
  .record({
    ports: tableArb('ports'),
    vsubnets: tableArb('vsubnets'),
    records: tableArb('records'),
    routes: tableArb('routes'),
    localPas: tableArb('localPas'),
    meterClasses: tableArb('meterClasses'),
  })
  .map(
    (r) =>
      Object.fromEntries(
        TABLE_NAMES.map((t) => [t, rowsOf(t, r[t] as never)]),
      ) as unknown as CompiledTables,
  );

function entryArb<T extends TableName>(t: T): fc.Arbitrary<Entry<ValueOf<T>>> {
  return fc
    .record({ live: fc.integer({ min: 0, max: 3 }), v: fc.tuple(ARBS[t].value, ARBS[t].value) })
    .map(({ live, v }) => ({ live, v: [...v] }));
}

/** Whatever an agent could have left in the maps, and the generation it left active. */
const rawStateArb = fc.record({
  active: fc.constantFrom<Generation>(0, 1),
  rows: fc.record({
    ports: fc.array(fc.record({ key: ARBS.ports.key, entry: entryArb('ports') }), { maxLength: 6 }),
    vsubnets: fc.array(fc.record({ key: ARBS.vsubnets.key, entry: entryArb('vsubnets') }), {
      maxLength: 6,
    }),
    records: fc.array(fc.record({ key: ARBS.records.key, entry: entryArb('records') }), {
      maxLength: 6,
    }),
    routes: fc.array(fc.record({ key: ARBS.routes.key, entry: entryArb('routes') }), {
      maxLength: 8,
    }),
    localPas: fc.array(fc.record({ key: ARBS.localPas.key, entry: entryArb('localPas') }), {
      maxLength: 6,
    }),
    meterClasses: fc.array(
      fc.record({ key: ARBS.meterClasses.key, entry: entryArb('meterClasses') }),
      { maxLength: 6 },
    ),
  }),
});

/** A starting point: settled tables (the usual case) or raw leftovers. */
const startArb = fc.oneof(
  compiledArb.map((c) => ({ kind: 'settled' as const, compiled: c })),
  rawStateArb.map((r) => ({ kind: 'raw' as const, raw: r })),
);

async function tablesFrom(start: Start) {
  const mem = new MemoryPolicyTables({
    generation: start.kind === 'raw' ? start.raw.active : 0,
  });
  if (start.kind === 'settled') {
    await reconcile(mem, start.compiled);
  } else {
    for (const t of TABLE_NAMES) {
      mem.table(t).upsertBatch(start.raw.rows[t] as InstalledRow<never, never>[]);
    }
  }
  return mem;
}
type Start =
  | { kind: 'settled'; compiled: CompiledTables }
  | { kind: 'raw'; raw: { active: Generation; rows: Record<TableName, unknown[]> } };

// ---- the reader model -------------------------------------------------------------------------

/** Route lookups: every /32 of the generated prefixes' space and one outside it, per rdid. */
const QUERIES: RouteKey[] = [1, 2].flatMap((rdid) =>
  [
    [10, 0, 0, 0],
    [10, 0, 0, 1],
    [10, 0, 1, 0],
    [10, 0, 1, 1],
    [10, 1, 0, 0],
    [10, 1, 0, 1],
    [10, 1, 1, 0],
    [10, 1, 1, 1],
    [11, 0, 0, 0],
  ].map((a) => {
    const addr = new Uint8Array(16);
    addr.set(a);
    return { prefixlen: 96, rdid, family: 4, addr };
  }),
);

/** Host addresses every LPM table is queried at, in its own key shape. */
function lpmQueries(t: TableName): unknown[] {
  if (t === 'routes') return QUERIES;
  return QUERIES.flatMap((q) =>
    [10, 11].flatMap((ifindex) =>
      [0, 1].map((direction) => ({
        prefixlen: 96,
        ifindex,
        direction,
        family: 4,
        addr: q.addr,
      })),
    ),
  );
}

type View = Map<string, string>;

/** Everything a packet reading generation g would get: `table/key -> value id | miss`. */
function readerView(mem: MemoryPolicyTables, g: Generation, keys: Map<TableName, Set<string>>) {
  const view: View = new Map();
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const rows = mem.rows(t) as ReadonlyMap<string, InstalledRow<unknown, unknown>>;
    const slot = (row: InstalledRow<unknown, unknown> | undefined): string =>
      row === undefined || (row.entry.live & liveBit(g)) === 0
        ? 'miss'
        : def.valueId(row.entry.v[g]);
    if (def.lpm !== undefined) {
      const lpm = def.lpm;
      for (const q of lpmQueries(t)) {
        // The LPM trie: the longest prefix present, whatever its live bits.
        let best: InstalledRow<unknown, unknown> | undefined;
        for (const row of rows.values()) {
          if (
            lpm.covers(row.key, q) &&
            (best === undefined || lpm.prefixLength(row.key) > lpm.prefixLength(best.key))
          ) {
            best = row;
          }
        }
        view.set(`${t}/${def.keyId(q)}`, slot(best));
      }
    } else {
      for (const id of keys.get(t) ?? []) view.set(`${t}/${id}`, slot(rows.get(id)));
    }
  }
  return view;
}

/** What a reader must see when the tables hold `desired`. */
function expectedView(desired: CompiledTables, keys: Map<TableName, Set<string>>): View {
  const view: View = new Map();
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const rows = desired[t] as ReadonlyMap<string, { key: unknown; value: unknown }>;
    if (def.lpm !== undefined) {
      const lpm = def.lpm;
      for (const q of lpmQueries(t)) {
        let best: { key: unknown; value: unknown } | undefined;
        for (const row of rows.values()) {
          if (
            lpm.covers(row.key, q) &&
            (best === undefined || lpm.prefixLength(row.key) > lpm.prefixLength(best.key))
          ) {
            best = row;
          }
        }
        view.set(`${t}/${def.keyId(q)}`, best === undefined ? 'miss' : def.valueId(best.value));
      }
    } else {
      for (const id of keys.get(t) ?? []) {
        const row = rows.get(id);
        view.set(`${t}/${id}`, row === undefined ? 'miss' : def.valueId(row.value));
      }
    }
  }
  return view;
}

function keyUniverse(mem: MemoryPolicyTables, ...desired: CompiledTables[]) {
  const keys = new Map<TableName, Set<string>>();
  for (const t of TABLE_NAMES) {
    keys.set(t, new Set([...mem.rows(t).keys(), ...desired.flatMap((d) => [...d[t].keys()])]));
  }
  return keys;
}

function snapshot(mem: MemoryPolicyTables) {
  return Object.fromEntries(
    TABLE_NAMES.map((t) => [
      t,
      [...mem.rows(t)].map(([id, r]) => [
        id,
        r.entry.live,
        r.entry.v.map((v) => TABLES[t].valueId(v as never)),
      ]),
    ]),
  );
}

/** The maps hold exactly `desired`, every entry live in both generations with equal versions. */
function expectSettledAt(mem: MemoryPolicyTables, desired: CompiledTables) {
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const rows = mem.rows(t) as ReadonlyMap<string, InstalledRow<unknown, unknown>>;
    expect([...rows.keys()].sort()).toEqual([...desired[t].keys()].sort());
    for (const [id, row] of rows) {
      const want = def.valueId((desired[t].get(id) as { value: unknown }).value);
      expect(row.entry.live).toBe(3);
      expect(row.entry.v.map((v) => def.valueId(v))).toEqual([want, want]);
    }
  }
}

/**
 * Watches every change: before the flip the old generation must read as `oldView`; after it the
 * new generation must read as `newView`, and until the grace barrier the old one still as before.
 */
function watchReaders(mem: MemoryPolicyTables, keys: Map<TableName, Set<string>>, newView: View) {
  const oldGen = mem.activeGeneration;
  const oldView = readerView(mem, oldGen, keys);
  const state = {
    flipped: false,
    barrier: false,
    checks: 0,
    failure: undefined as string | undefined,
  };
  const check = (label: string, got: View, want: View) => {
    state.checks++;
    if (state.failure !== undefined) return;
    for (const [k, v] of want) {
      if (got.get(k) !== v) {
        state.failure = `${label}: ${k} reads ${got.get(k)}, expected ${v}`;
        return;
      }
    }
  };
  mem.observe((e: MemoryEvent) => {
    if (e.kind === 'generation') state.flipped = true;
    if (e.kind === 'barrier') state.barrier = true;
    const active = mem.activeGeneration;
    if (!state.barrier)
      check(`old readers after ${e.kind}`, readerView(mem, oldGen, keys), oldView);
    if (state.flipped) check(`new readers after ${e.kind}`, readerView(mem, active, keys), newView);
    if (state.barrier && !state.flipped) {
      check(`readers after ${e.kind} (no flip)`, readerView(mem, active, keys), newView);
    }
  });
  return { state, oldView };
}

const RUNS = { numRuns: 300 };

describe('reconcile properties', () => {
  it('installs exactly the desired tables, settled, and a second plan is empty', async () => {
    await fc.assert(
      fc.asyncProperty(startArb, compiledArb, async (start, desired) => {
        const mem = await tablesFrom(start);
        await reconcile(mem, desired);
        expectSettledAt(mem, desired);
        const installed = await readInstalled(mem);
        const again = planTransaction(installed, desired, mem.activeGeneration);
        expect(TABLE_NAMES.every((t) => again.stage[t].length === 0)).toBe(true);
        expect(
          TABLE_NAMES.every(
            (t) => again.settle[t].upserts.length === 0 && again.settle[t].deletes.length === 0,
          ),
        ).toBe(true);
        const ops = { ...mem.ops };
        const second = await reconcile(mem, desired);
        expect(second.unchanged).toBe(true);
        expect(mem.ops).toEqual(ops);
      }),
      RUNS,
    );
  });

  it('never shows a reader of either generation anything but exactly the old or the new tables', async () => {
    await fc.assert(
      fc.asyncProperty(startArb, compiledArb, async (start, desired) => {
        const mem = await tablesFrom(start);
        const keys = keyUniverse(mem, desired);
        const want = expectedView(desired, keys);
        const { state, oldView } = watchReaders(mem, keys, want);
        const result = await reconcile(mem, desired);
        expect(state.failure).toBeUndefined();
        // No flip only when readers of the active generation already saw the new tables.
        if (!result.flipped) expect(oldView).toEqual(want);
        expect(readerView(mem, mem.activeGeneration, keys)).toEqual(want);
      }),
      RUNS,
    );
  });

  it('rolls a failed stage or flip back to exactly the previous maps', async () => {
    await fc.assert(
      fc.asyncProperty(
        startArb,
        compiledArb,
        fc.nat(),
        fc.nat(),
        fc.boolean(),
        async (start, desired, pickTable, pickElement, throws) => {
          const mem = await tablesFrom(start);
          const plan = planTransaction(await readInstalled(mem), desired, mem.activeGeneration);
          const staged = TABLE_NAMES.filter((t) => plan.stage[t].length > 0);
          const flips = plan.nextGeneration !== plan.active;
          if (staged.length === 0 && !flips) return;
          const before = snapshot(mem);
          const generation = mem.activeGeneration;
          const keys = keyUniverse(mem, desired);
          const { state } = watchReaders(mem, keys, expectedView(desired, keys));

          // Fail one stage batch at some element, or the flip.
          const table = staged.length === 0 ? undefined : staged[pickTable % (staged.length + 1)];
          const atElement = table === undefined ? 0 : pickElement % plan.stage[table].length;
          if (table === undefined) mem.injectFault({ op: 'generation' });
          else mem.injectFault({ op: 'upsert', table, atElement, throws });

          const err = await applyPlan(mem, plan).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(StageError);
          const failure = (err as StageError).failure;
          if (table === undefined) {
            expect(failure.op).toBe('generation');
          } else {
            expect(failure).toMatchObject({
              table,
              op: 'upsert',
              attempted: plan.stage[table].length,
              done: throws ? 0 : atElement,
            });
          }
          expect((err as StageError).rollbackFailures).toEqual([]);
          expect(snapshot(mem)).toEqual(before);
          expect(mem.activeGeneration).toBe(generation);
          expect(state.failure).toBeUndefined();
          expect(state.flipped).toBe(false);

          // Nothing was half-applied: the next attempt starts from the same place and succeeds.
          await reconcile(mem, desired);
          expectSettledAt(mem, desired);
        },
      ),
      RUNS,
    );
  });

  it('after a failed settle, the new tables stay visible and the next reconcile completes', async () => {
    await fc.assert(
      fc.asyncProperty(
        startArb,
        compiledArb,
        fc.constantFrom<'upsert' | 'delete' | 'barrier'>('upsert', 'delete', 'barrier'),
        fc.nat(),
        async (start, desired, op, pick) => {
          const mem = await tablesFrom(start);
          const plan = planTransaction(await readInstalled(mem), desired, mem.activeGeneration);
          if (isEmptyPlan(plan)) return;
          if (op === 'barrier') {
            mem.injectFault({ op: 'barrier' });
          } else {
            const ops = (t: TableName) =>
              op === 'upsert' ? plan.settle[t].upserts.length : plan.settle[t].deletes.length;
            const candidates = TABLE_NAMES.filter((t) => ops(t) > 0);
            if (candidates.length === 0) return;
            const table = candidates[pick % candidates.length] as TableName;
            // Aim at the settle batch, not at the stage batch of the same table.
            let armed = true;
            mem.observe((e) => {
              if (e.kind !== 'barrier' || !armed) return;
              armed = false;
              mem.injectFault({ op, table, atElement: pick % ops(table) });
            });
          }

          const keys = keyUniverse(mem, desired);
          const want = expectedView(desired, keys);
          const first = watchReaders(mem, keys, want);
          const err = await applyPlan(mem, plan).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(SettleError);
          expect(first.state.failure).toBeUndefined();
          expect(readerView(mem, mem.activeGeneration, keys)).toEqual(want);

          const second = watchReaders(mem, keys, want);
          await reconcile(mem, desired);
          expect(second.oldView).toEqual(want);
          expect(second.state.failure).toBeUndefined();
          expectSettledAt(mem, desired);
        },
      ),
      RUNS,
    );
  });
});
