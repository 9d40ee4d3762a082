// Port metering (bpf/lib/meter.h) through BPF_PROG_TEST_RUN: which class a frame counts in (v4
// and v6 remote prefixes, longest prefix, the default class), at each hook point (outbound at the
// source port, inbound at host-local delivery and at NVGRE decapsulation), per direction, per
// generation, and that drops count nothing. Expected classes and byte counts are written by hand
// from the class table below; the reference model (agent/model/meter.ts) must agree with the
// program on every case. The compiler and validation of meter rules are checked without BPF.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Maps, type MeterClassEntry, type MeterKey } from '../../agent/abi/generated.js';
import { BpfMap, PerCpuTypedMap, TypedMap, sumPerCpu } from '../../agent/bpf/index.js';
import { compileMeterClasses } from '../../agent/compiler/meter.js';
import { simulate, type MeterDelta } from '../../agent/model/index.js';
import { packet, parseCidr } from '../../agent/packet/index.js';
import { meterClassId, parsePolicy, PolicyError } from '../../agent/policy/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { join } from 'node:path';
import {
  BLUE1,
  GW1_MAC,
  PA_A,
  PA_B,
  PORT_IFINDEX,
  VM1,
  VM2,
  VM2_IFINDEX,
  VM3,
  VM3_IFINDEX,
  VM4,
  baseTables,
  both,
} from './fixture.js';
import { useDatapath } from './harness.js';

// ---- the class table under test ------------------------------------------------------------

const OUT = 0; // TENET_DIR_RX at the port: from the VM
const IN = 1; // TENET_DIR_TX at the port: to the VM
const INTERNET = 101;
const INTRANET = 102;
const RACK = 103;
const TENANT6 = 104;
const STAGED = 106;

const meterKey = (ifindex: number, direction: number, cidr: string): MeterKey => {
  const c = parseCidr(cidr);
  const addr = new Uint8Array(16);
  addr.set(c.bytes);
  return { prefixlen: 64 + c.prefixLen, ifindex, direction, family: c.family, addr };
};

type ClassRow = { key: MeterKey; entry: MeterClassEntry };
const row = (ifindex: number, dir: number, cidr: string, id: number): ClassRow => ({
  key: meterKey(ifindex, dir, cidr),
  entry: both({ class_id: id }),
});

/** vm1 (PORT_IFINDEX) and vm2 (VM2_IFINDEX) have classes; vm3 has none. */
function classTable(): ClassRow[] {
  return [
    row(PORT_IFINDEX, OUT, '0.0.0.0/0', INTERNET),
    row(PORT_IFINDEX, OUT, '::/0', INTERNET),
    row(PORT_IFINDEX, OUT, '198.18.0.0/15', INTRANET),
    row(PORT_IFINDEX, OUT, '198.18.10.14/32', RACK),
    row(PORT_IFINDEX, OUT, 'fd00:10::/64', TENANT6),
    // A longer prefix being staged: generation 0 holds the covering class (as the reconciler
    // writes it), generation 1 the new one.
    {
      key: meterKey(PORT_IFINDEX, OUT, '198.18.10.12/32'),
      entry: { live: 3, v: [{ class_id: INTRANET }, { class_id: STAGED }] },
    },
    // Inbound classes are separate: the /32 above is outbound only.
    row(PORT_IFINDEX, IN, '0.0.0.0/0', INTERNET),
    row(VM2_IFINDEX, IN, '198.18.0.0/15', INTRANET),
  ];
}

// ---- frames ----------------------------------------------------------------------------------

const udp4 = (dst: string, dmac: string, src = VM1.ip4) =>
  packet()
    .eth({ src: VM1.mac, dst: dmac })
    .ipv4({ src, dst, ttl: 64, df: true, id: 9 })
    .udp({ sport: 40000, dport: 5000 })
    .payload('metered')
    .build();
const tcp6 = (dst: string, dmac: string) =>
  packet()
    .eth({ src: VM1.mac, dst: dmac })
    .ipv6({ src: VM1.ip6, dst, hopLimit: 64 })
    .tcp({ sport: 40001, dport: 443, seq: 1, ack: 2, flags: 'PA' })
    .payload('metered over ipv6, a little longer')
    .build();
const nvgreFrom4 = (inner: Buffer) =>
  packet()
    .eth({ src: '02:00:00:00:10:02', dst: '02:00:00:00:10:01' })
    .ipv4({ src: PA_B, dst: PA_A, df: true, ttl: 63 })
    .nvgre({ vsid: BLUE1, flowId: 0x11 })
    .payload(inner)
    .build();
const inner4 = (dst: string, dmac: string) =>
  packet()
    .eth({ src: VM4.mac, dst: dmac })
    .ipv4({ src: VM4.ip4, dst, ttl: 64, id: 3 })
    .udp({ sport: 5353, dport: 9999 })
    .payload('from host B')
    .build();
const inner6 = (dst: string, dmac: string) =>
  packet()
    .eth({ src: VM4.mac, dst: dmac })
    .ipv6({ src: VM4.ip6, dst, hopLimit: 64 })
    .udp({ sport: 5353, dport: 9999 })
    .payload('from host B over ipv6')
    .build();

interface MeterCase {
  name: string;
  hook: 'port' | 'xdp';
  input: () => Buffer;
  gen?: 0 | 1;
  /** Expected counter deltas: [ifindex, direction, class, bytes]. */
  expect: () => Array<[number, 'inbound' | 'outbound', number, number]>;
}

const len = (f: Buffer): number => f.length;

const CASES: MeterCase[] = [
  {
    name: 'v4 local delivery: outbound at the source in intranet, inbound at the destination',
    hook: 'port',
    input: () => udp4(VM2.ip4, VM2.mac),
    expect: () => [
      [PORT_IFINDEX, 'outbound', INTRANET, len(udp4(VM2.ip4, VM2.mac))],
      [VM2_IFINDEX, 'inbound', INTRANET, len(udp4(VM2.ip4, VM2.mac))],
    ],
  },
  {
    name: 'v4 to a remote VM: the longest prefix (/32 rack) wins over /15 and /0',
    hook: 'port',
    input: () => udp4(VM4.ip4, VM4.mac),
    expect: () => [[PORT_IFINDEX, 'outbound', RACK, len(udp4(VM4.ip4, VM4.mac))]],
  },
  {
    name: 'v4 routed to another subnet: outbound intranet; a port without classes counts default',
    hook: 'port',
    input: () => udp4(VM3.ip4, GW1_MAC),
    expect: () => [
      [PORT_IFINDEX, 'outbound', INTRANET, len(udp4(VM3.ip4, GW1_MAC))],
      [VM3_IFINDEX, 'inbound', 0, len(udp4(VM3.ip4, GW1_MAC))],
    ],
  },
  {
    name: 'v6 local delivery: outbound by the v6 prefix; the destination has no v6 class: default',
    hook: 'port',
    input: () => tcp6(VM2.ip6, VM2.mac),
    expect: () => [
      [PORT_IFINDEX, 'outbound', TENANT6, len(tcp6(VM2.ip6, VM2.mac))],
      [VM2_IFINDEX, 'inbound', 0, len(tcp6(VM2.ip6, VM2.mac))],
    ],
  },
  {
    name: 'v6 to a remote VM: fd00:10::/64 wins over ::/0',
    hook: 'port',
    input: () => tcp6(VM4.ip6, VM4.mac),
    expect: () => [[PORT_IFINDEX, 'outbound', TENANT6, len(tcp6(VM4.ip6, VM4.mac))]],
  },
  {
    name: 'generation 1 sees the staged /32 class, generation 0 the covering one',
    hook: 'port',
    gen: 1,
    input: () => udp4(VM2.ip4, VM2.mac),
    expect: () => [
      [PORT_IFINDEX, 'outbound', STAGED, len(udp4(VM2.ip4, VM2.mac))],
      [VM2_IFINDEX, 'inbound', INTRANET, len(udp4(VM2.ip4, VM2.mac))],
    ],
  },
  {
    name: 'a spoofed source is dropped before metering: nothing counted',
    hook: 'port',
    input: () => udp4(VM2.ip4, VM2.mac, '198.18.10.99'),
    expect: () => [],
  },
  {
    name: 'NVGRE decap to vm2: inbound intranet, bytes of the inner frame',
    hook: 'xdp',
    input: () => nvgreFrom4(inner4(VM2.ip4, VM2.mac)),
    expect: () => [[VM2_IFINDEX, 'inbound', INTRANET, len(inner4(VM2.ip4, VM2.mac))]],
  },
  {
    name: 'NVGRE decap to vm1: inbound classes only (the outbound /32 rack does not apply)',
    hook: 'xdp',
    input: () => nvgreFrom4(inner4(VM1.ip4, VM1.mac)),
    expect: () => [[PORT_IFINDEX, 'inbound', INTERNET, len(inner4(VM1.ip4, VM1.mac))]],
  },
  {
    name: 'NVGRE decap v6 to vm1: no inbound v6 class: default',
    hook: 'xdp',
    input: () => nvgreFrom4(inner6(VM1.ip6, VM1.mac)),
    expect: () => [[PORT_IFINDEX, 'inbound', 0, len(inner6(VM1.ip6, VM1.mac))]],
  },
];

const canon = (d: MeterDelta[]): string[] =>
  d.map((x) => `${x.ifindex}/${x.direction}/${x.classId}: ${x.packets} ${x.bytes}`).sort();

describePrivileged('metering datapath (test-run)', () => {
  const dp = useDatapath();
  let classes: TypedMap<MeterKey, MeterClassEntry>;
  let ctrs: PerCpuTypedMap<
    { ifindex: number; class_id: number; direction: number },
    { packets: bigint; bytes: bigint }
  >;

  const counters = (): Map<string, { packets: bigint; bytes: bigint }> => {
    const out = new Map<string, { packets: bigint; bytes: bigint }>();
    for (const [k, v] of ctrs.entries())
      out.set(
        `${k.ifindex}/${k.direction === OUT ? 'outbound' : 'inbound'}/${k.class_id}`,
        sumPerCpu(v, ['packets', 'bytes']),
      );
    return out;
  };
  const deltas = (
    a: Map<string, { packets: bigint; bytes: bigint }>,
    b: Map<string, { packets: bigint; bytes: bigint }>,
  ): string[] => {
    const out: string[] = [];
    for (const [k, v] of b) {
      const o = a.get(k) ?? { packets: 0n, bytes: 0n };
      if (v.packets !== o.packets) out.push(`${k}: ${v.packets - o.packets} ${v.bytes - o.bytes}`);
    }
    return out.sort();
  };

  it.each(CASES)('$name', (c) => {
    const root = dp.pinRoot;
    classes ??= new TypedMap(
      BpfMap.openPinned(join(root, 'tenet_meter_cls')),
      Maps.tenet_meter_cls.key,
      Maps.tenet_meter_cls.value,
    );
    ctrs ??= new PerCpuTypedMap(
      BpfMap.openPinned(join(root, 'tenet_meter_ctr')),
      Maps.tenet_meter_ctr.key,
      Maps.tenet_meter_ctr.value,
    );
    const gen = c.gen ?? 0;
    const tables = { ...baseTables(), meterClasses: classTable() };
    dp.install(tables, gen);
    for (const k of [...classes.keys()]) classes.delete(k);
    for (const r of tables.meterClasses) classes.set(r.key, r.entry);

    const input = c.input();
    const before = counters();
    const r = c.hook === 'port' ? dp.runPort(input) : dp.runXdp(input);
    const got = deltas(before, counters());
    const want = c
      .expect()
      .map(([ifindex, dir, cls, bytes]) => `${ifindex}/${dir}/${cls}: 1 ${bytes}`)
      .sort();
    expect(got, `${c.name} (verdict ${r.verdict})`).toEqual(want);

    const m = simulate(
      tables,
      gen,
      input,
      c.hook === 'port'
        ? { kind: 'port-ingress', ifindex: PORT_IFINDEX }
        : { kind: 'phys-xdp', ifindex: PORT_IFINDEX },
    );
    expect(m.verdict).toBe(r.verdict);
    expect(canon(m.meters ?? []), `model: ${c.name}`).toEqual(got);
  });

  it('model and program agree on random class tables, generations and addresses', () => {
    const v4 = fc
      .tuple(fc.constantFrom(10, 11, 20), fc.constantFrom(11, 12, 14, 200))
      .map(([c, d]) => `198.18.${c}.${d}`);
    const prefix = fc.tuple(v4, fc.constantFrom(0, 8, 15, 16, 24, 30, 32)).map(([a, len]) => {
      const n = a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
      const masked = len === 0 ? 0 : (n >>> (32 - len)) << (32 - len);
      return `${[24, 16, 8, 0].map((sh) => (masked >>> sh) & 0xff).join('.')}/${len}`;
    });
    const entry = fc.record({
      live: fc.constantFrom(1, 2, 3),
      a: fc.integer({ min: 1, max: 4 }),
      b: fc.integer({ min: 1, max: 4 }),
    });
    const rowArb = fc.record({
      ifindex: fc.constantFrom(PORT_IFINDEX, VM2_IFINDEX),
      dir: fc.constantFrom(OUT, IN),
      cidr: prefix,
      e: entry,
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(rowArb, {
          maxLength: 8,
          selector: (r) => `${r.ifindex}/${r.dir}/${r.cidr}`,
        }),
        fc.oneof(v4, fc.constant(VM2.ip4)),
        fc.constantFrom(0, 1),
        (rows, dst, gen) => {
          const meterClasses = rows.map((r) => ({
            key: meterKey(r.ifindex, r.dir, r.cidr),
            entry: { live: r.e.live, v: [{ class_id: r.e.a }, { class_id: r.e.b }] },
          }));
          const tables = { ...baseTables(), meterClasses };
          dp.install(tables, gen);
          for (const k of [...classes.keys()]) classes.delete(k);
          for (const r of meterClasses) classes.set(r.key, r.entry);
          const frame = udp4(dst, dst === VM2.ip4 ? VM2.mac : VM4.mac);
          const before = counters();
          const r = dp.runPort(frame);
          const got = deltas(before, counters());
          const m = simulate(tables, gen, frame, { kind: 'port-ingress', ifindex: PORT_IFINDEX });
          expect(m.verdict).toBe(r.verdict);
          expect(canon(m.meters ?? [])).toEqual(got);
          // The source is valid, so every frame the datapath lets out is metered outbound; one to
          // an unknown destination is dropped before the meter (after the outbound ACL).
          if (r.verdict === 'drop') expect(got).toEqual([]);
          else expect(got.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('counts repeated frames cumulatively and never resets', () => {
    const tables = { ...baseTables(), meterClasses: classTable() };
    dp.install(tables, 0);
    for (const k of [...classes.keys()]) classes.delete(k);
    for (const r of tables.meterClasses) classes.set(r.key, r.entry);
    const key = `${PORT_IFINDEX}/outbound/${RACK}`;
    const before = counters().get(key) ?? { packets: 0n, bytes: 0n };
    const f = udp4(VM4.ip4, VM4.mac);
    for (let i = 0; i < 25; i++) expect(dp.runPort(f).verdict).toBe('redirect');
    const after = counters().get(key);
    expect(after?.packets).toBe(before.packets + 25n);
    expect(after?.bytes).toBe(before.bytes + 25n * BigInt(f.length));
    classes?.close();
    ctrs?.close();
  });
});

// ---- compiler and validation (no BPF) ------------------------------------------------------

const DEMO = readFileSync(new URL('../../scripts/lab/demo-policy.yaml', import.meta.url), 'utf8');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const demo = (): any => parseYaml(DEMO);
const FACTS = {
  eth0: { ifindex: 2, mac: '02:00:00:00:00:01', mtu: 1500 },
  'vm-blue1': { ifindex: 7, mac: '02:00:00:00:00:07', mtu: 1500 },
  'vm-red1': { ifindex: 8, mac: '02:00:00:00:00:08', mtu: 1500 },
};

describe('meter rules compile to the class table', () => {
  it('one entry per prefix and direction, for this host only, class ids from names', () => {
    const doc = demo();
    doc.portAcls = [
      {
        port: 'blue-vm1',
        rules: [
          {
            name: 'i4',
            direction: 'both',
            action: 'meter',
            meteringClass: 'internet',
            remotePrefix: '0.0.0.0/0',
          },
          {
            name: 'i6',
            direction: 'outbound',
            action: 'meter',
            meteringClass: 'internet',
            remotePrefix: '::/0',
          },
          {
            name: 'dc',
            direction: 'inbound',
            action: 'meter',
            meteringClass: 'intranet',
            remotePrefix: '198.18.0.0/15',
          },
          { name: 'web', direction: 'inbound', action: 'allow', protocol: 'tcp', localPorts: 443 },
        ],
      },
      {
        port: 'blue-vm2',
        rules: [
          {
            name: 'x',
            direction: 'both',
            action: 'meter',
            meteringClass: 'x',
            remotePrefix: '0.0.0.0/0',
          },
        ],
      },
    ];
    const rows = [...compileMeterClasses(parsePolicy(doc), 'hv1', FACTS).values()];
    const shown = rows
      .map(({ key, value }) => {
        const bytes = key.family === 4 ? key.addr.subarray(0, 4) : key.addr;
        return `${key.ifindex} ${key.direction} ${key.family} ${Buffer.from(bytes).toString('hex')}/${key.prefixlen - 64} -> ${value.class_id}`;
      })
      .sort();
    const internet = meterClassId('internet');
    const intranet = meterClassId('intranet');
    expect(shown).toEqual(
      [
        `7 0 4 00000000/0 -> ${internet}`,
        `7 1 4 00000000/0 -> ${internet}`,
        `7 0 6 ${'00'.repeat(16)}/0 -> ${internet}`,
        `7 1 4 c6120000/15 -> ${intranet}`,
      ].sort(),
    );
    // FNV-1a of "internet", computed independently: never 0, stable across hosts.
    expect(internet).toBe(fnv('internet'));
  });

  it('rejects the same prefix in two classes and the reserved default name, with paths', () => {
    const doc = demo();
    doc.portAcls = [
      {
        port: 'blue-vm1',
        rules: [
          {
            name: 'a',
            direction: 'both',
            action: 'meter',
            meteringClass: 'a',
            remotePrefix: '198.18.0.0/15',
          },
          {
            name: 'b',
            direction: 'inbound',
            action: 'meter',
            meteringClass: 'b',
            remotePrefix: '198.18.0.0/15',
          },
          {
            name: 'c',
            direction: 'inbound',
            action: 'meter',
            meteringClass: 'default',
            remotePrefix: '10.0.0.0/8',
          },
        ],
      },
    ];
    let err: unknown;
    try {
      parsePolicy(doc);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    const paths = (err as PolicyError).issues.map((i) => i.path);
    expect(paths).toContain('portAcls[0].rules[1].remotePrefix');
    expect(paths).toContain('portAcls[0].rules[2].meteringClass');
  });
});

function fnv(s: string): number {
  let h = 2166136261;
  for (const ch of Buffer.from(s)) {
    h ^= ch;
    h = Number((BigInt(h) * 16777619n) & 0xffffffffn);
  }
  return h;
}
