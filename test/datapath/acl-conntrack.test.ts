// The ACL connection tracking table's load-time size and its behaviour when full: the objects
// are loaded with tenet_acl_ct sized 1024 (the agent's aclConntrackEntries), 4096 stateful flows
// are opened through tenet_port_ingress, and then: the table holds at most its size, the
// datapath counted every insert (so evictions = inserts - entries), and the reply of the first
// flow, long evicted, is classified as new traffic (denied, counted as ct_miss). A second load
// asking for another size reuses the pinned table as it is.

import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GenerationCodec, Maps, type MapName } from '../../agent/abi/generated.js';
import { U32 } from '../../agent/abi/codec.js';
import { BpfMap, TypedMap, type BpfObject } from '../../agent/bpf/index.js';
import { compileAcls } from '../../agent/compiler/acl.js';
import { loadObject } from '../../agent/datapath/objects.js';
import { packet } from '../../agent/packet/index.js';
import { AclTables } from '../../agent/reconciler/acl.js';
import { describePrivileged } from '../helpers/privilege.js';
import { PA_A, PA_B, PORT_IFINDEX, VM1, VM4, baseTables } from './fixture.js';

const SIZE = 1024;
const FLOWS = 4096;

describePrivileged('ACL conntrack: load-time size, LRU eviction counted', () => {
  const pinRoot = `/sys/fs/bpf/tenet-test-${randomBytes(4).toString('hex')}`;
  const objs: BpfObject[] = [];
  let acl: AclTables;

  beforeAll(async () => {
    mkdirSync(pinRoot, { recursive: true });
    for (const name of ['tenet_port', 'tenet_xdp'] as const)
      objs.push(await loadObject(name, pinRoot, { mapSizes: { tenet_acl_ct: SIZE } }));
    const t = baseTables();
    const open = (name: MapName): TypedMap<unknown, unknown> => {
      const d = Maps[name];
      return new TypedMap(BpfMap.openPinned(join(pinRoot, name)), d.key as never, d.value as never);
    };
    const w = (name: MapName, rows: Iterable<readonly [unknown, unknown]>): void => {
      const m = open(name);
      for (const [k, v] of rows) m.set(k, v);
      m.close();
    };
    w('tenet_ports', t.ports);
    w('tenet_vsubnets', t.vsubnets);
    w(
      'tenet_records',
      t.records.map((r) => [r.key, r.entry] as const),
    );
    w(
      'tenet_routes',
      t.routes.map((r) => [r.key, r.entry] as const),
    );
    w('tenet_local_pas', t.localPas);
    w('tenet_underlay', t.underlay);
    const gen = new TypedMap(BpfMap.openPinned(join(pinRoot, 'tenet_gen')), U32, GenerationCodec);
    gen.set(0, { active: 0 });
    gen.close();
    acl = new AclTables(pinRoot);
    acl.apply(
      compileAcls(
        [
          {
            port: 'vm1',
            rules: [
              {
                name: 'udp-out',
                direction: 'outbound',
                action: 'allow',
                protocol: 17,
                stateful: true,
              },
              { name: 'deny-in', direction: 'inbound', action: 'deny' },
            ],
          },
        ],
        () => PORT_IFINDEX,
      ),
    );
  });
  afterAll(() => {
    acl?.close();
    for (const o of objs) o.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it("holds at most its size, counts inserts, and an evicted flow's reply is new traffic", async () => {
    const port = objs[0]!.program('tenet_port_ingress');
    const xdp = objs[1]!.program('tenet_xdp_rx');
    try {
      const out = (sport: number): Buffer =>
        packet()
          .eth({ src: VM1.mac, dst: VM4.mac })
          .ipv4({ src: VM1.ip4, dst: VM4.ip4, ttl: 64, df: true })
          .udp({ sport, dport: 5000 })
          .payload('ct')
          .build();
      for (let i = 0; i < FLOWS; i++) {
        const r = port.testRun({ data: out(10000 + i), dataOutSize: 512 });
        expect(r.retval).toBe(7);
      }
      const reply = (dport: number): Buffer =>
        packet()
          .eth({ src: '02:00:00:00:10:02', dst: '02:00:00:00:10:01' })
          .ipv4({ src: PA_B, dst: PA_A, df: true, ttl: 63 })
          .nvgre({ vsid: 5001, flowId: 1 })
          .payload(
            packet()
              .eth({ src: VM4.mac, dst: VM1.mac })
              .ipv4({ src: VM4.ip4, dst: VM1.ip4, ttl: 64 })
              .udp({ sport: 5000, dport })
              .payload('re')
              .build(),
          )
          .build();
      const before = acl.snapshot();
      // The newest flow is still tracked.
      expect(xdp.testRun({ data: reply(10000 + FLOWS - 1), dataOutSize: 512 }).retval).toBe(4);
      // The oldest flows were evicted: the kernel's LRU is approximate (per-CPU free lists, and
      // the test process may move between CPUs), so which old flow went is not fixed; of the
      // first OLD flows, most are gone, and each reply is either tracked or treated as new
      // traffic (denied inbound), never anything else.
      const OLD = 64;
      let denied = 0;
      for (let i = 0; i < OLD; i++) {
        const retval = xdp.testRun({ data: reply(10000 + i), dataOutSize: 512 }).retval;
        expect([1, 4]).toContain(retval);
        if (retval === 1) denied++;
      }
      expect(denied).toBeGreaterThan(OLD / 2);
      const s = acl.snapshot();
      expect(s.conntrack.capacity).toBe(SIZE);
      expect(s.conntrack.entries).toBeLessThanOrEqual(SIZE);
      expect(s.stats.ct_insert).toBe(BigInt(FLOWS));
      expect(Number(s.stats.ct_insert) - s.conntrack.entries).toBeGreaterThanOrEqual(FLOWS - SIZE);
      expect(s.stats.ct_reply - before.stats.ct_reply).toBe(BigInt(1 + OLD - denied));
      expect(s.stats.ct_miss - before.stats.ct_miss).toBe(BigInt(denied));
    } finally {
      port.close();
      xdp.close();
    }
  });

  it('a later load asking for another size reuses the pinned table', async () => {
    const again = await loadObject('tenet_port', pinRoot, { mapSizes: { tenet_acl_ct: 8192 } });
    try {
      const m = BpfMap.openPinned(join(pinRoot, 'tenet_acl_ct'));
      expect(m.maxEntries).toBe(SIZE);
      m.close();
    } finally {
      again.close();
    }
  });
});
