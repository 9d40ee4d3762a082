// The incremental path of record-level changes (agent/api/records-fast.ts) against the full path
// (validate, compile, diff and reconcile the whole document): random sequences of
// CreateLookupRecord / UpdateLookupRecord / DeleteLookupRecord / bulk MERGE operations, drawn from
// small pools so that every rule fires now and then (unknown VSID, CA outside the subnet, the
// gateway's CA or MAC, unknown PA, a MAC naming two adapters, a port's address or MAC, a customer
// route's next hop, malformed fields), run through two stores over the real compiler and
// reconciler on in-memory tables: one with the incremental path, one without. After every
// operation both must agree on the outcome (the same status and message, or success), the
// document, the version and every entry of every table.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReconcilerBackend } from '../../agent/api/backend.js';
import { ApiError } from '../../agent/api/errors.js';
import * as obj from '../../agent/api/objects.js';
import { PolicyStore } from '../../agent/api/store.js';
import { TABLE_NAMES } from '../../agent/compiler/tables.js';
import {
  formatMac,
  gatewayMac,
  parsePolicy,
  type LookupRecord,
  type Policy,
  type PolicyDocument,
} from '../../agent/policy/index.js';
import { MemoryPolicyTables } from '../../agent/reconciler/index.js';

const PORT_MAC = '02:00:00:00:0a:01';
const BASE: PolicyDocument = {
  providerAddresses: [
    { host: 'hv1', address: '198.18.0.1', interface: 'eth0', prefixLength: 24 },
    { host: 'hv2', address: '198.18.0.2', interface: 'eth0', prefixLength: 24 },
  ],
  routingDomains: [
    {
      name: 'blue',
      virtualSubnets: [
        {
          name: 'web',
          vsid: 5001,
          prefixes: ['198.19.1.0/24', 'fd00:1:1::/64'],
          gateway: { ipv4: '198.19.1.1', ipv6: 'fd00:1:1::1' },
        },
      ],
    },
    {
      name: 'red',
      virtualSubnets: [{ name: 'db', vsid: 5002, prefixes: ['198.19.2.0/24'], gateway: {} }],
    },
  ],
  ports: [
    {
      name: 'vm1',
      host: 'hv1',
      interface: 'vm-a',
      mac: PORT_MAC,
      vsid: 5001,
      addresses: ['198.19.1.11'],
    },
  ],
  lookupRecords: [
    { vsid: 5001, ca: '198.19.1.11', mac: PORT_MAC, pa: '198.18.0.1' },
    { vsid: 5001, ca: '198.19.1.20', mac: '02:00:00:00:0b:20', pa: '198.18.0.2' },
    { vsid: 5002, ca: '198.19.2.5', mac: '02:00:00:00:0c:05', pa: '198.18.0.2' },
  ],
  customerRoutes: [{ routingDomain: 'blue', prefix: '198.19.200.0/24', nextHop: '198.19.1.20' }],
  portAcls: [],
  portSteering: [],
  uplinks: [],
  portQos: [],
  tenantQos: [],
};

const FACTS = {
  eth0: { ifindex: 2, mac: '02:00:00:00:00:e0', mtu: 1500 },
  'vm-a': { ifindex: 3, mac: '02:00:00:00:00:a0', mtu: 1500 },
};

const VSIDS = [5001, 5001, 5002, 5999];
const CAS = [
  '198.19.1.11', // the port's address
  '198.19.1.12',
  '198.19.1.13',
  '198.19.1.14',
  'FD00:1:1::12', // not canonical: the same CA as fd00:1:1::12
  'fd00:1:1::13',
  '198.19.1.1', // the gateway
  '198.19.1.20', // a next hop
  '198.19.9.9', // outside 5001 (inside nothing)
  '198.19.2.5',
  '198.19.2.6',
  'not-an-ip',
];
const MACS = [
  '02:00:00:00:00:01',
  '02:00:00:00:00:02',
  '02:00:00:00:00:03',
  '02:00:00:00:0b:20', // the next hop's record's MAC
  PORT_MAC,
  formatMac(gatewayMac(5001)),
  '02:00:00:00:00:0G', // malformed
];
const PAS = ['198.18.0.1', '198.18.0.2', '198.18.0.2', '198.18.0.9', '198.18.0'];

/** Mostly well-formed and valid values (so sequences build up), now and then any of the pool. */
const mostly = <T>(good: readonly T[], all: readonly T[]): fc.Arbitrary<T> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...good) },
    { weight: 1, arbitrary: fc.constantFrom(...all) },
  );

const record = fc.record({
  vsid: mostly([5001], VSIDS),
  ca: mostly(['198.19.1.12', '198.19.1.13', '198.19.1.14', 'FD00:1:1::12', 'fd00:1:1::13'], CAS),
  mac: mostly(['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'], MACS),
  pa: mostly(['198.18.0.1', '198.18.0.2'], PAS),
});

type Op =
  | { kind: 'apply'; keep: number[]; edits: LookupRecord[]; port: boolean; reverse: boolean }
  | { kind: 'create'; rec: LookupRecord }
  | { kind: 'update'; rec: LookupRecord }
  | { kind: 'delete'; vsid: number; ca: string }
  | { kind: 'merge'; recs: LookupRecord[] };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: record.map((rec) => ({ kind: 'create' as const, rec })) },
  { weight: 4, arbitrary: record.map((rec) => ({ kind: 'update' as const, rec })) },
  {
    weight: 2,
    arbitrary: fc
      .record({ vsid: fc.constantFrom(...VSIDS), ca: fc.constantFrom(...CAS) })
      .map((k) => ({ kind: 'delete' as const, ...k })),
  },
  {
    weight: 2,
    arbitrary: fc
      .array(record, { minLength: 1, maxLength: 4 })
      .map((recs) => ({ kind: 'merge' as const, recs })),
  },
  {
    // A whole document: the current one with records dropped (keep: which to keep, by
    // position modulo the count), records edited or added, sometimes reordered, sometimes with
    // another change (a port removed) that must take the full path.
    weight: 2,
    arbitrary: fc
      .record({
        keep: fc.array(fc.nat(50), { maxLength: 12 }),
        edits: fc.array(record, { maxLength: 3 }),
        port: fc.boolean(),
        reverse: fc.boolean(),
      })
      .map((o) => ({ kind: 'apply' as const, ...o, port: o.port && o.keep.length % 5 === 0 })),
  },
);

/** What the service does for each request (agent/api/service.ts), against one store. */
async function run(store: PolicyStore, o: Op): Promise<void> {
  const change = (method: string, f: (doc: PolicyDocument) => obj.Change) => {
    let c: obj.Change | undefined;
    return store.commit(
      method,
      (doc) => {
        c = f(doc);
        return c.next;
      },
      {
        get rewrite() {
          return c?.rewrite;
        },
        get records() {
          return c?.records;
        },
      },
    );
  };
  switch (o.kind) {
    case 'apply': {
      const cur = store.policy as PolicyDocument;
      const n = cur.lookupRecords.length;
      const kept =
        n === 0
          ? []
          : [...new Set(o.keep.map((k) => k % n))]
              .sort((a, b) => a - b)
              .map((k) => cur.lookupRecords[k]!);
      let list: unknown[] = [...kept, ...o.edits];
      if (o.reverse) list = list.reverse();
      const doc = { ...cur, lookupRecords: list, ...(o.port ? { ports: [] } : {}) };
      await store.commit('Apply', () => doc, { whole: true });
      return;
    }
    case 'create':
      await change('CreateLookupRecord', (doc) => obj.createLookupRecord(doc, o.rec));
      return;
    case 'update':
      await change('UpdateLookupRecord', (doc) => obj.updateLookupRecord(doc, o.rec));
      return;
    case 'delete':
      await change('DeleteLookupRecord', (doc) =>
        obj.deleteLookupRecord(doc, o.vsid, obj.ipKey(o.ca, 'ca')),
      );
      return;
    case 'merge':
      await change('BulkLoadLookupRecords', (doc) => obj.mergeLookupRecordsChange(doc, o.recs));
      return;
  }
}

function makeStore(incremental: boolean): { store: PolicyStore; tables: MemoryPolicyTables } {
  const tables = new MemoryPolicyTables();
  const backend = new ReconcilerBackend({ hostName: 'hv1', tables, facts: () => FACTS });
  const store = new PolicyStore(backend, {}, undefined, { incrementalRecords: incremental });
  return { store, tables };
}

const hex = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? Buffer.from(v).toString('hex')
    : Array.isArray(v)
      ? v.map(hex)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hex(x)]))
        : v;

/**
 * Every entry of every table. Not the generation number: a one-record change is written settled
 * in place (no flip), the full path flips; readers see the same once entries are settled.
 */
function dump(tables: MemoryPolicyTables): unknown {
  return {
    ...Object.fromEntries(
      TABLE_NAMES.map((t) => [
        t,
        [...tables.rows(t)].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, r]) => [id, hex(r)]),
      ]),
    ),
  };
}

async function outcome(f: () => Promise<void>): Promise<string> {
  try {
    await f();
    return 'ok';
  } catch (e) {
    if (e instanceof ApiError) return `${e.code} ${e.message}`;
    throw e;
  }
}

describe('record-level changes: incremental path = full path', () => {
  it('agrees on outcome, document, version and tables for random operation sequences', async () => {
    const paths = { incremental: 0, full: 0, refused: 0, accepted: 0, appliesIncremental: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        const fast = makeStore(true);
        const full = makeStore(false);
        const base: Policy = parsePolicy(BASE);
        await fast.store.initialize({ policy: base, version: 1n });
        await full.store.initialize({ policy: parsePolicy(BASE), version: 1n });
        for (const o of ops) {
          const inc = fast.store.paths.incremental;
          const a = await outcome(() => run(fast.store, o));
          if (o.kind === 'apply' && fast.store.paths.incremental > inc) paths.appliesIncremental++;
          const b = await outcome(() => run(full.store, o));
          expect(a, JSON.stringify(o)).toBe(b);
          if (a !== 'ok') paths.refused++;
          else paths.accepted++;
          expect(fast.store.version).toBe(full.store.version);
          expect(JSON.stringify(fast.store.policy)).toBe(JSON.stringify(full.store.policy));
          expect(dump(fast.tables)).toEqual(dump(full.tables));
        }
        paths.incremental += fast.store.paths.incremental;
        paths.full += fast.store.paths.full;
      }),
      { numRuns: 150, seed: 20261121 },
    );
    // Both paths, acceptance and refusal were exercised (the pools are built for it).
    console.log(`record operations: ${JSON.stringify(paths)}`);
    expect(paths.incremental).toBeGreaterThan(150);
    expect(paths.full).toBeGreaterThan(20);
    expect(paths.refused).toBeGreaterThan(200);
    expect(paths.appliesIncremental).toBeGreaterThan(10);
  });

  it('takes the incremental path for a plain record update and touches only its entry', async () => {
    const { store, tables } = makeStore(true);
    await store.initialize({ policy: parsePolicy(BASE), version: 1n });
    const upserts: string[] = [];
    tables.observe((e) => {
      if (e.kind === 'upsert') upserts.push(`${e.table} ${e.id}`);
    });
    await run(store, {
      kind: 'create',
      rec: { vsid: 5001, ca: '198.19.1.30', mac: '02:00:00:00:00:30', pa: '198.18.0.2' },
    });
    await run(store, {
      kind: 'update',
      rec: { vsid: 5001, ca: '198.19.1.30', mac: '02:00:00:00:00:31', pa: '198.18.0.2' },
    });
    expect(store.paths).toEqual({ incremental: 2, full: 0 });
    expect(new Set(upserts.map((u) => u.split(' ')[0]))).toEqual(new Set(['records']));
    expect(new Set(upserts).size).toBe(1);
    // A port's address goes the full path.
    await run(store, {
      kind: 'update',
      rec: { vsid: 5001, ca: '198.19.1.11', mac: PORT_MAC, pa: '198.18.0.1' },
    });
    expect(store.paths).toEqual({ incremental: 2, full: 1 });
  });
});
