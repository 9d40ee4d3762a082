// Resizing the lookup-records map of a live datapath (tenetd's capacity.lookupRecords,
// agent/host/capacity.ts) on the demo lab (scripts/lab/demo-lab.yaml + demo-policy.yaml) with
// in-process HostAgents, under sequenced UDP streams:
//   1. up (65536 -> 131072) and down (131072 -> 4096): agents stop, new agents start with the new
//      capacity (the old map's pin is moved aside, the new map is filled with the same entries)
//      and apply the same policy: no stream loses a packet, every attachment keeps its link id
//      and gets a program that uses the new map, the policy maps hold exactly what they held, the
//      old pin is gone;
//   2. down below the records the map holds is refused with a clear error, changing nothing.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { BpfMap, BpfProgram } from '../../agent/bpf/index.js';
import { CapacityError, RESIZING_SUFFIX } from '../../agent/host/capacity.js';
import { HostAgent, recordingLogger } from '../../agent/host/index.js';
import { parsePolicy, type PolicyDocument } from '../../agent/policy/index.js';
import { buildTopology, loadLabFile, useLab, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { ROOT } from '../helpers/tenetd.js';
import { attachments, dumpPolicyMaps, formatReport, Traffic, type StreamSpec } from './harness.js';

const LAB_DIR = join(ROOT, 'scripts', 'lab');
const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];
const RATE = 500;

const STREAMS: readonly StreamSpec[] = [
  {
    name: 'blue-vm1 -> blue-vm2',
    from: 'blue-vm1',
    to: 'blue-vm2',
    dst: '198.19.1.12',
    port: 7201,
  },
  {
    name: 'blue-vm2 -> blue-vm1 (IPv6)',
    from: 'blue-vm2',
    to: 'blue-vm1',
    dst: 'fd00:1:1::11',
    port: 7202,
  },
  {
    name: 'blue-vm2 -> blue-db1',
    from: 'blue-vm2',
    to: 'blue-db1',
    dst: '198.19.2.21',
    port: 7203,
  },
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function recordsMap(pinRoot: string): { id: number; maxEntries: number } {
  const m = BpfMap.openPinned(join(pinRoot, 'tenet_records'));
  try {
    return { id: m.info().id, maxEntries: m.maxEntries };
  } finally {
    m.close();
  }
}

/** Ids of the maps a program uses. */
function programMapIds(progId: number): number[] {
  const p = BpfProgram.fromId(progId);
  try {
    return p.info().mapIds;
  } finally {
    p.close();
  }
}

describePrivileged('resizing the lookup-records map of a live datapath (demo lab)', () => {
  const ref = useLab('records-resize', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const root = (h: Host): string => join(ref.value.bpffs, h);
  const policy = parsePolicy(
    parseYaml(readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8')) as PolicyDocument,
  );
  const agents = new Map<Host, HostAgent>();
  const running = new Set<Traffic>();

  afterAll(async () => {
    await Promise.all([...running].map((t) => t.abort()));
    for (const a of agents.values()) await a.stop();
  });

  async function start(h: Host, recordsCapacity?: number, logger = recordingLogger()) {
    const a = await HostAgent.start({
      hostName: h,
      pinRoot: root(h),
      netns: topo().host(h).ns.path,
      logger,
      ...(recordsCapacity === undefined ? {} : { recordsCapacity }),
      underlay: { refreshIntervalMs: 0, probeHoldMs: 200, debounceMs: 20 },
    });
    agents.set(h, a);
    return a;
  }

  async function resizeUnderTraffic(capacity: number): Promise<void> {
    for (const h of HOSTS) await agents.get(h)?.stop();
    const before = Object.fromEntries(
      HOSTS.map((h) => [
        h,
        {
          links: attachments(root(h)),
          maps: dumpPolicyMaps(root(h)),
          records: recordsMap(root(h)),
          // Attachments whose program reads the records map (the old programs are freed later).
          readers: new Set(
            Object.entries(attachments(root(h)))
              .filter(([, l]) => programMapIds(l.progId).includes(recordsMap(root(h)).id))
              .map(([name]) => name),
          ),
        },
      ]),
    );
    const t = await Traffic.start(topo(), STREAMS, [], { rate: RATE, maxSeconds: 60 });
    running.add(t);
    let report;
    try {
      await sleep(800);
      for (const h of HOSTS) {
        const a = await start(h, capacity);
        // Loaded and copied, nothing switched: the links still run the old programs.
        expect(a.pendingResize).toMatchObject({
          from: before[h]!.records.maxEntries,
          to: capacity,
        });
        expect(existsSync(join(root(h), `tenet_records${RESIZING_SUFFIX}`))).toBe(true);
        expect(attachments(root(h))).toEqual(before[h]!.links);
        await sleep(200);
        const r = await a.applyPolicy(policy);
        expect(r.reconcile.unchanged, `${h}: the copy already held the policy`).toBe(true);
        expect(a.pendingResize).toBeUndefined();
      }
      await sleep(800);
      report = await t.stop();
    } catch (e) {
      await t.abort();
      throw e;
    } finally {
      running.delete(t);
    }
    console.log(formatReport(`records map resized to ${capacity} under traffic`, report));
    for (const s of report.streams) {
      expect(s.sent, `${s.name}: packets sent`).toBeGreaterThan(RATE);
      expect(s.errors, `${s.name}: send errors`).toBe(0);
      expect(s.received, `${s.name}: received of ${s.sent} sent`).toBe(s.sent);
    }
    for (const h of HOSTS) {
      const now = recordsMap(root(h));
      expect(now.maxEntries).toBe(capacity);
      expect(now.id).not.toBe(before[h]!.records.id);
      expect(existsSync(join(root(h), `tenet_records${RESIZING_SUFFIX}`))).toBe(false);
      expect(dumpPolicyMaps(root(h))).toEqual(before[h]!.maps);
      const links = attachments(root(h));
      expect(Object.keys(links).sort()).toEqual(Object.keys(before[h]!.links).sort());
      let switched = 0;
      for (const [name, l] of Object.entries(links)) {
        const old = before[h]!.links[name]!;
        expect(l.linkId, `${h} ${name} link id`).toBe(old.linkId);
        const usedOld = before[h]!.readers.has(name);
        // Programs that read the records map run a new program bound to the new map; the
        // others (tc egress reads no record) are kept as they were.
        if (usedOld) {
          switched++;
          expect(l.progId, `${h} ${name} program id`).not.toBe(old.progId);
          expect(programMapIds(l.progId), `${h} ${name} uses the new map`).toContain(now.id);
        } else {
          expect(l.progId, `${h} ${name} program id`).toBe(old.progId);
        }
      }
      expect(switched, `${h}: attachments switched to the new map`).toBeGreaterThanOrEqual(2);
    }
  }

  it('applies the demo policy at the default capacity', async () => {
    for (const h of HOSTS) {
      const a = await start(h);
      await a.applyPolicy(policy);
      expect(recordsMap(root(h)).maxEntries).toBe(65536);
    }
  });

  it('resizes up (65536 -> 131072) under traffic: no loss, same links, same entries', async () => {
    await resizeUnderTraffic(131072);
  });

  it('resizes down (131072 -> 4096) under traffic: no loss, same links, same entries', async () => {
    await resizeUnderTraffic(4096);
  });

  it('refuses to shrink below the records it holds, changing nothing', async () => {
    const h: Host = 'hv1';
    await agents.get(h)?.stop();
    agents.delete(h);
    const before = { links: attachments(root(h)), maps: dumpPolicyMaps(root(h)) };
    const held = recordsMap(root(h));
    const n = before.maps.filter((l) => l.startsWith('tenet_records ')).length;
    expect(n).toBeGreaterThan(8);
    const err = await start(h, 8).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CapacityError);
    expect((err as Error).message).toBe(
      `cannot resize tenet_records from 4096 to 8 entries: it holds ${n} lookup records ` +
        `(remove records first, or configure capacity.lookupRecords >= ${n}); nothing was changed`,
    );
    expect(recordsMap(root(h))).toEqual(held);
    expect(existsSync(join(root(h), `tenet_records${RESIZING_SUFFIX}`))).toBe(false);
    expect(attachments(root(h))).toEqual(before.links);
    expect(dumpPolicyMaps(root(h))).toEqual(before.maps);
    // The same size still starts and changes nothing.
    const a = await start(h, 4096);
    expect(a.pendingResize).toBeUndefined();
    expect((await a.applyPolicy(policy)).reconcile.unchanged).toBe(true);
  });
});
