// ABI-version migration under traffic (issue 4, item 6: "a changed map layout migrates through a
// new versioned pin path without a forwarding gap"), on the demo lab (scripts/lab/demo-lab.yaml +
// demo-policy.yaml) with in-process HostAgents, one per hypervisor, each inside its host's
// namespace, their pins under <lab bpffs>/<host>/tenet/v<N>.
//
// The "previous release" is the current sources built with -DTENET_ABI_TEST_VSID_COUNTERS_PAD
// (bpf/abi/policy.h: the per-VSID counters' value is 40 bytes instead of 32, a real layout change
// that needs a conversion) as ABI v1; the "new release" the current sources built with
// -DTENET_ABI_VERSION_OVERRIDE=2 (bpf/abi/version.h), driven by an agent told it speaks v2.
//   1. v1 agents apply the demo policy and stop (the datapath keeps running); sequenced UDP streams
//      cross the lab; v2 agents start on the empty v2 roots (nothing is touched yet) and apply the
//      same policy: no stream loses a packet, every attachment keeps its link id and gets a new
//      program, every counter in v2 is at least what was last read in v1 (the VSID counters
//      converted from 40 to 32 bytes), the v1 pins are gone, the v2 pins are there;
//   2. a datapath of a NEWER version next to the pin root refuses the start, changing nothing;
//   3. an old map whose layout no migration function reads refuses the start, changing nothing.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Maps, type MapName } from '../../agent/abi/generated.js';
import { BpfMap, MapType } from '../../agent/bpf/index.js';
import { HostAgent, MigrationError, readAll, recordingLogger } from '../../agent/host/index.js';
import { parsePolicy, type PolicyDocument } from '../../agent/policy/index.js';
import { buildTopology, loadLabFile, ping, useLab, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { ROOT } from '../helpers/tenetd.js';
import {
  attachments,
  buildVariantObjects,
  formatReport,
  mapIds,
  Traffic,
  type AttachmentSnapshot,
  type StreamSpec,
} from './harness.js';

const LAB_DIR = join(ROOT, 'scripts', 'lab');
const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];
const RATE = 500;
const MAX_STREAM_S = 60;
const COUNTER_MAPS: readonly MapName[] = [
  'tenet_port_ctrs',
  'tenet_vsid_ctrs',
  'tenet_drop_ctrs',
  'tenet_meter_ctr',
];

const STREAMS: readonly StreamSpec[] = [
  {
    name: 'blue-vm1 -> blue-vm2 (hv1 -> hv2)',
    from: 'blue-vm1',
    to: 'blue-vm2',
    dst: '198.19.1.12',
    port: 7101,
  },
  {
    name: 'blue-vm2 -> blue-vm1 (hv2 -> hv1, IPv6)',
    from: 'blue-vm2',
    to: 'blue-vm1',
    dst: 'fd00:1:1::11',
    port: 7102,
  },
  {
    name: 'blue-vm2 -> blue-db1 (within hv2)',
    from: 'blue-vm2',
    to: 'blue-db1',
    dst: '198.19.2.21',
    port: 7103,
  },
  {
    name: 'red-vm1 -> red-vm2 (hv1 -> hv2)',
    from: 'red-vm1',
    to: 'red-vm2',
    dst: '198.19.1.12',
    port: 7104,
  },
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Every counter field of the counter maps, summed over CPUs, as `map key field` -> value. Only
 * the fields of the current layout (the first valueSize bytes): the old VSID layout's pad is not
 * a counter.
 */
function rawCounters(pinRoot: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const name of COUNTER_MAPS) {
    const map = BpfMap.openPinned(join(pinRoot, name));
    try {
      const stride = Math.ceil(map.valueSize / 8) * 8;
      const cpus = map.valueBufferSize / stride;
      const fields = Maps[name].valueSize / 8;
      for (const [key, value] of readAll(map)) {
        for (let f = 0; f < fields; f++) {
          let sum = 0n;
          for (let c = 0; c < cpus; c++) sum += value.readBigUInt64LE(c * stride + f * 8);
          out.set(`${name} ${key} ${f}`, sum);
        }
      }
    } finally {
      map.close();
    }
  }
  return out;
}

describePrivileged('ABI-version migration of a live datapath (demo lab)', () => {
  const ref = useLab('migration', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const base = (h: string): string => join(ref.value.bpffs, h, 'tenet');
  const root = (h: string, v: number): string => join(base(h), `v${v}`);
  const netns = (h: Host): string => topo().host(h).ns.path;
  const tmp = mkdtempSync(join(tmpdir(), 'tenet-migration-'));
  const policy = parsePolicy(
    parseYaml(readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8')) as PolicyDocument,
  );
  const agents = new Set<HostAgent>();
  const running = new Set<Traffic>();
  let oldDir = '';
  let newDir = '';

  afterAll(async () => {
    await Promise.all([...running].map((t) => t.abort()));
    for (const a of agents) await a.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  async function start(h: Host, version: 1 | 2, logger = recordingLogger()): Promise<HostAgent> {
    const a = await HostAgent.start({
      hostName: h,
      pinRoot: root(h, version),
      netns: netns(h),
      logger,
      abiVersion: version,
      bpfDir: version === 1 ? oldDir : newDir,
      underlay: { refreshIntervalMs: 0, probeHoldMs: 200, debounceMs: 20 },
    });
    agents.add(a);
    return a;
  }

  async function stop(a: HostAgent): Promise<void> {
    await a.stop();
    agents.delete(a);
  }

  beforeAll(async () => {
    [oldDir, newDir] = await Promise.all([
      buildVariantObjects(join(tmp, 'bpf-v1'), ['-DTENET_ABI_TEST_VSID_COUNTERS_PAD']),
      buildVariantObjects(join(tmp, 'bpf-v2'), ['-DTENET_ABI_VERSION_OVERRIDE=2']),
    ]);
  }, 120_000);

  it('v1 -> v2 under traffic: no loss, same links with new programs, counters carried over and converted, v1 pins removed', async () => {
    for (const h of HOSTS) {
      const a = await start(h, 1);
      await a.applyPolicy(policy);
      await stop(a); // the datapath keeps running from its pins
      // The old build really has the other layout.
      const vsid = BpfMap.openPinned(join(root(h, 1), 'tenet_vsid_ctrs'));
      expect(vsid.valueSize, `${h} v1 VSID counters value size`).toBe(40);
      vsid.close();
    }
    for (const [from, to] of [
      ['blue-vm1', '198.19.1.12'],
      ['blue-vm2', 'fd00:1:1::11'],
      ['blue-vm2', '198.19.2.21'],
      ['red-vm1', '198.19.1.12'],
    ] as const) {
      const r = await ping(topo().vm(from).ns, to, { count: 1, timeoutS: 3 });
      expect(r.received, `${from} -> ${to}: ${r.error ?? ''}`).toBe(1);
    }

    const before: Record<string, Record<string, AttachmentSnapshot>> = {};
    const lastV1: Record<string, Map<string, bigint>> = {};
    const logs = { hv1: recordingLogger(), hv2: recordingLogger() };
    const t = await Traffic.start(topo(), STREAMS, [], { rate: RATE, maxSeconds: MAX_STREAM_S });
    running.add(t);
    let report;
    try {
      await sleep(1000);
      const fresh: HostAgent[] = [];
      for (const h of HOSTS) {
        before[h] = attachments(root(h, 1));
        const a = await start(h, 2, logs[h]);
        fresh.push(a);
        // Nothing switched yet: the v1 links still run the v1 programs.
        expect(a.pendingMigration).toBe(root(h, 1));
        expect(attachments(root(h, 1))).toEqual(before[h]);
        expect(existsSync(join(root(h, 2), 'links'))).toBe(false);
        lastV1[h] = rawCounters(root(h, 1));
      }
      await sleep(300);
      for (const [i, h] of HOSTS.entries()) {
        lastV1[h] = rawCounters(root(h, 1));
        await fresh[i]!.applyPolicy(policy);
        expect(fresh[i]!.pendingMigration).toBeUndefined();
      }
      await sleep(1000);
      report = await t.stop();
    } catch (e) {
      await t.abort();
      throw e;
    } finally {
      running.delete(t);
    }

    console.log(formatReport('migration v1 -> v2 of both hosts under traffic', report));
    for (const s of report.streams) {
      expect(s.sent, `${s.name}: packets sent`).toBeGreaterThan(RATE);
      expect(s.errors, `${s.name}: send errors`).toBe(0);
      expect(s.received, `${s.name}: received of ${s.sent} sent`).toBe(s.sent);
      expect(s.finSeen, `${s.name}: end marker`).toBe(true);
    }
    for (const h of HOSTS) {
      const after = attachments(root(h, 2));
      const names = Object.keys(before[h]!).sort();
      expect(names.length).toBeGreaterThanOrEqual(3);
      expect(Object.keys(after).sort()).toEqual(names);
      for (const n of names) {
        const [o, u] = [before[h]![n]!, after[n]!];
        console.log(
          `  ${h} ${n}: link ${o.linkId} -> ${u.linkId}; program ${o.progId} -> ${u.progId}`,
        );
        expect(u.linkId, `${h} ${n} link id`).toBe(o.linkId);
        expect(u.progId, `${h} ${n} program id`).not.toBe(o.progId);
      }
      // v1 pins gone, v2 pins present.
      expect(existsSync(root(h, 1)), `${h} v1 pin root`).toBe(false);
      const pinned = Object.values(Maps)
        .filter((d) => d.pinning === 'by_name')
        .map((d) => d.name)
        .sort();
      expect(Object.keys(mapIds(root(h, 2))).sort()).toEqual(pinned);
      // Counters never went backwards; the VSID ones came through the 40 -> 32 conversion.
      const now = rawCounters(root(h, 2));
      const back = [...lastV1[h]!]
        .filter(([k, v]) => (now.get(k) ?? -1n) < v)
        .map(([k, v]) => `${k}: ${v} -> ${now.get(k) ?? 'missing'}`);
      expect(back, `${h} counters that went backwards`).toEqual([]);
      const vsidPackets = [...lastV1[h]!].filter(
        ([k, v]) => k.startsWith('tenet_vsid_ctrs') && v > 0n,
      );
      expect(
        vsidPackets.length,
        `${h} VSID counters with traffic before the migration`,
      ).toBeGreaterThan(0);
      const done = logs[h].records.find(
        (r) => r.message === 'migrated the datapath to a new ABI version',
      );
      expect(done?.fields).toMatchObject({
        from: root(h, 1),
        fromVersion: 1,
        toVersion: 2,
        left: [],
      });
      expect(done?.fields.maps).toContain(
        'tenet_vsid_ctrs: counters (value of 40 bytes (trailing pad) -> 32)',
      );
      console.log(`  ${h}: ${JSON.stringify(done?.fields.maps)}`);
    }
  }, 150_000);

  it('pins of a newer ABI next to the pin root: refused, nothing touched', async () => {
    const h: Host = 'hv1';
    const v2Before = { maps: mapIds(root(h, 2)), links: attachments(root(h, 2)) };
    expect(Object.keys(v2Before.links).length).toBeGreaterThan(0);
    // An agent of the old version (v1) next to the v2 datapath.
    await expect(start(h, 1)).rejects.toThrow(MigrationError);
    await expect(start(h, 1)).rejects.toThrow(/NEWER ABI \(v2\)/);
    expect(existsSync(root(h, 1)), 'v1 root not created').toBe(false);
    // A v2 agent next to a v3 datapath.
    mkdirSync(root(h, 3), { recursive: true });
    const m = BpfMap.create({
      type: MapType.ARRAY,
      keySize: 4,
      valueSize: 4,
      maxEntries: 1,
      name: 'tenet_gen',
    });
    m.pin(join(root(h, 3), 'tenet_gen'));
    m.close();
    try {
      await expect(start(h, 2)).rejects.toThrow(/NEWER ABI \(v3\)/);
      expect(readdirSync(root(h, 3))).toEqual(['tenet_gen']);
    } finally {
      rmSync(root(h, 3), { recursive: true, force: true });
    }
    expect(mapIds(root(h, 2))).toEqual(v2Before.maps);
    expect(attachments(root(h, 2))).toEqual(v2Before.links);
  });

  it('an old map layout with no migration function: refused, nothing touched', async () => {
    const host = 'nomig';
    mkdirSync(root(host, 1), { recursive: true });
    const pins = [
      { name: 'tenet_gen', type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 },
      // A VSID counter value of 24 bytes: no function reads it.
      {
        name: 'tenet_vsid_ctrs',
        type: MapType.PERCPU_HASH,
        keySize: 4,
        valueSize: 24,
        maxEntries: 16,
      },
    ];
    for (const p of pins) {
      const m = BpfMap.create({ ...p });
      m.pin(join(root(host, 1), p.name));
      m.close();
    }
    const err = await HostAgent.start({
      hostName: 'hv1',
      pinRoot: root(host, 2),
      netns: netns('hv1'),
      abiVersion: 2,
      bpfDir: newDir,
    }).then(
      (a) => {
        agents.add(a);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MigrationError);
    expect(String((err as Error).message)).toMatch(
      /tenet_vsid_ctrs: no migration function reads its v1 layout .*value 24 bytes/,
    );
    expect(existsSync(root(host, 2)), 'v2 root not created').toBe(false);
    expect(readdirSync(root(host, 1)).sort()).toEqual(['tenet_gen', 'tenet_vsid_ctrs']);
  });
});
