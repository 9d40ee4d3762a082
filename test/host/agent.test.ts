// The host agent against the real kernel on a two-hypervisor lab (switch, hv1, hv2, the demo's
// VM ports): the demo policy applied to both hosts, the maps read back with TypedMap and compared
// with compile(); idempotence (no writes, same links); restart adoption (same map and link ids, no
// writes); a missing interface (clear error, nothing changed); live migration of a VM between the
// hosts; underlay next hops resolved to the other host's NIC MAC, following neighbour changes,
// and unresolved PAs counted.
//
// Each host agent runs against its lab namespace (netns path: iproute2 through nsenter, attach
// calls inside the namespace) with its own pin root under the lab's /sys/fs/bpf/tenet-test-<id>/,
// which the lab removes at teardown.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { BE32 } from '../../agent/abi/codec.js';
import { Maps, UnderlayNhCodec } from '../../agent/abi/generated.js';
import { BpfLink, BpfMap, LinkType, TypedMap, xdpQuery } from '../../agent/bpf/index.js';
import { compile, CompileError, type CompiledTables } from '../../agent/compiler/index.js';
import { StageError } from '../../agent/reconciler/index.js';
import { TABLE_NAMES, TABLES, type Entry, type TableDef } from '../../agent/compiler/tables.js';
import {
  ATTACHMENTS,
  commandRunner,
  HostAgent,
  isMapFull,
  mapIds,
  readHostInterfaces,
  recordingLogger,
  type AttachmentInfo,
} from '../../agent/host/index.js';
import {
  formatMac,
  parsePolicy,
  type Policy,
  type PolicyDocument,
} from '../../agent/policy/index.js';
import { buildTopology, runOk, useLab, type Topology, type TopologySpec } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';

const DEMO = parseYaml(
  readFileSync(new URL('../../scripts/lab/demo-policy.yaml', import.meta.url), 'utf8'),
) as PolicyDocument;

const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];

// The demo's interfaces: eth0 is each hypervisor's physical NIC, vm-* the VM ports.
const SPEC: TopologySpec = {
  hosts: [
    {
      name: 'hv1',
      phys: { name: 'eth0', addrs: ['198.18.0.1/24'] },
      vms: [
        { name: 'blue1', port: 'vm-blue1', mac: '02:00:00:b1:00:11' },
        { name: 'red1', port: 'vm-red1', mac: '02:00:00:4e:00:11' },
      ],
    },
    {
      name: 'hv2',
      phys: { name: 'eth0', addrs: ['198.18.0.2/24'] },
      vms: [
        { name: 'blue2', port: 'vm-blue2', mac: '02:00:00:b1:00:12' },
        { name: 'red2', port: 'vm-red2', mac: '02:00:00:4e:00:12' },
        { name: 'bluedb1', port: 'vm-bluedb1', mac: '02:00:00:b2:00:21' },
      ],
    },
  ],
};

/** blue-vm1 (198.19.1.11, fd00:1:1::11 in VSID 5001) moved from hv1 to hv2. */
function migrated(doc: PolicyDocument): PolicyDocument {
  return {
    ...doc,
    ports: doc.ports.map((p) => (p.name === 'blue-vm1' ? { ...p, host: 'hv2' } : p)),
    lookupRecords: doc.lookupRecords.map((r) =>
      r.vsid === 5001 && r.mac === '02:00:00:b1:00:11' ? { ...r, pa: '198.18.0.2' } : r,
    ),
  };
}

/** The demo plus a third host that does not exist in the lab (its PA cannot resolve). */
function withPhantomHost(doc: PolicyDocument): PolicyDocument {
  return {
    ...doc,
    providerAddresses: [
      ...doc.providerAddresses,
      { host: 'hv3', address: '198.18.0.3', interface: 'eth0', prefixLength: 24 },
    ],
    lookupRecords: [
      ...doc.lookupRecords,
      { vsid: 5001, ca: '198.19.1.13', mac: '02:00:00:b1:00:13', pa: '198.18.0.3' },
    ],
  };
}

type Dump = Record<string, Record<string, { live: number; v: string[] }>>;

/** Every policy map of a pin root, read with TypedMap: table -> key hex -> entry (value hex). */
function dumpTables(pinRoot: string): Dump {
  const out: Dump = {};
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const m = new TypedMap(BpfMap.openPinned(join(pinRoot, def.map)), def.key, def.entry);
    try {
      const rows: Dump[string] = {};
      for (const [k, e] of m.entries() as IterableIterator<[unknown, Entry<unknown>]>) {
        rows[def.keyId(k)] = { live: e.live, v: e.v.map((v) => def.valueId(v)) };
      }
      out[t] = rows;
    } finally {
      m.close();
    }
  }
  return out;
}

/** What a settled datapath holds for `compiled`: each key live in both generations, v0 = v1. */
function settledDump(compiled: CompiledTables): Dump {
  const out: Dump = {};
  for (const t of TABLE_NAMES) {
    const def = TABLES[t] as TableDef<unknown, unknown>;
    const rows: Dump[string] = {};
    for (const [id, r] of compiled[t] as ReadonlyMap<string, { value: unknown }>) {
      const v = def.valueId(r.value);
      rows[id] = { live: 3, v: [v, v] };
    }
    out[t] = rows;
  }
  return out;
}

function underlayMap(pinRoot: string): Record<string, string> {
  const m = new TypedMap(
    BpfMap.openPinned(join(pinRoot, Maps.tenet_underlay.name)),
    BE32,
    UnderlayNhCodec,
  );
  try {
    const out: Record<string, string> = {};
    for (const [pa, nh] of m.entries()) {
      out[[pa >>> 24, (pa >>> 16) & 255, (pa >>> 8) & 255, pa & 255].join('.')] = formatMac(nh.mac);
    }
    return out;
  } finally {
    m.close();
  }
}

const byName = (list: readonly AttachmentInfo[]): Record<string, AttachmentInfo> =>
  Object.fromEntries(list.map((a) => [a.name, a]));

async function until(f: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const PROGRAMS = {
  xdp: ATTACHMENTS.filter((s) => s.role === 'pa-nic').map((s) => s.program),
  port: ATTACHMENTS.filter((s) => s.role === 'vm-port').map((s) => s.program),
};

describePrivileged('HostAgent on a two-host lab', () => {
  const ref = useLab('host-agent', async (lab) => {
    const topo = await buildTopology(lab, SPEC);
    const root = await lab.bpffsDir();
    return { topo, pinRoots: { hv1: join(root, 'hv1'), hv2: join(root, 'hv2') } };
  });
  const agents: Partial<Record<Host, HostAgent>> = {};
  const logs = recordingLogger();

  afterAll(async () => {
    for (const a of Object.values(agents)) await a?.stop();
  });

  const topo = (): Topology => ref.value.topo;
  const pinRoot = (h: Host): string => ref.value.pinRoots[h];
  const netns = (h: Host): string => topo().host(h).ns.path;
  const agent = (h: Host): HostAgent => {
    const a = agents[h];
    if (a === undefined) throw new Error(`no agent for ${h}`);
    return a;
  };

  function start(h: Host): Promise<HostAgent> {
    return HostAgent.start({
      hostName: h,
      pinRoot: pinRoot(h),
      netns: netns(h),
      logger: logs,
      // Tests drive refreshes themselves; the monitor stays on.
      underlay: { refreshIntervalMs: 0, probeHoldMs: 200, debounceMs: 20 },
    });
  }

  async function compiledFor(h: Host, policy: Policy): Promise<CompiledTables> {
    return compile(policy, h, await readHostInterfaces(commandRunner({ netns: netns(h) })));
  }

  it('applies the demo policy: the maps hold exactly what compile() says, programs attached', async () => {
    const policy = parsePolicy(DEMO);
    for (const h of HOSTS) {
      agents[h] = await start(h);
      const report = await agent(h).applyPolicy(policy);
      expect(report.reconcile.flipped).toBe(true);
      expect(report.detached).toEqual([]);
      expect(dumpTables(pinRoot(h))).toEqual(settledDump(await compiledFor(h, policy)));
    }

    // hv1: XDP on eth0, the port programs on both VM ports, all as pinned links.
    const ports = { hv1: ['vm-blue1', 'vm-red1'], hv2: ['vm-blue2', 'vm-bluedb1', 'vm-red2'] };
    for (const h of HOSTS) {
      const ns = topo().host(h).ns;
      const want = [
        ...PROGRAMS.xdp.map((p) => `eth0:${p}`),
        ...ports[h].flatMap((port) => PROGRAMS.port.map((p) => `${port}:${p}`)),
      ].sort();
      const list = agent(h).status().attachments;
      expect(list.map((a) => a.name).sort()).toEqual(want);
      for (const a of list) {
        expect(a.kind).toBe('link');
        expect(a.ifindex).toBe(await ns.ifindex(a.ifname));
      }
      const xdp = byName(list)[`eth0:${PROGRAMS.xdp[0]}`] as AttachmentInfo;
      expect(xdp.linkType).toBe(LinkType.XDP);
      expect(xdpQuery({ ifname: 'eth0', netns: netns(h) })).toMatchObject({
        progId: xdp.progId,
        mode: 'native',
      });
      // What iproute2 and bpffs show: the pins exist and hold the links.
      const pin = BpfLink.openPinned(join(pinRoot(h), 'links', xdp.name));
      expect(pin.info().id).toBe(xdp.linkId);
      pin.close();
    }
  });

  it('resolves underlay next hops to the other host`s NIC MAC', async () => {
    const { topo: t } = ref.value;
    expect(underlayMap(pinRoot('hv1'))).toEqual({ '198.18.0.2': t.host('hv2').phys.mac });
    expect(underlayMap(pinRoot('hv2'))).toEqual({ '198.18.0.1': t.host('hv1').phys.mac });
    for (const h of HOSTS) {
      const s = agent(h).status().underlay;
      expect(s).toMatchObject({ targets: 1, resolved: 1, unresolved: [] });
      expect(s.entries[0]).toMatchObject({ dev: 'eth0', resolved: true });
    }
  });

  it('re-applying the same policy writes nothing and attaches nothing', async () => {
    for (const h of HOSTS) {
      const before = agent(h).writes();
      const links = agent(h).status().attachments;
      const dump = dumpTables(pinRoot(h));
      const report = await agent(h).applyPolicy(parsePolicy(DEMO));
      expect(report.reconcile.unchanged).toBe(true);
      expect(report.reconcile.flipped).toBe(false);
      expect([report.attached, report.upgraded, report.detached]).toEqual([[], [], []]);
      expect(report.underlayPruned).toBe(0);
      expect(agent(h).writes()).toEqual(before);
      expect(agent(h).status().attachments).toEqual(links);
      expect(dumpTables(pinRoot(h))).toEqual(dump);
    }
    // And the plan says so without applying.
    const plan = await agent('hv1').plan(parsePolicy(DEMO));
    expect([plan.attach, plan.detach]).toEqual([[], []]);
    expect(
      Object.values(plan.plan.changes).every((c) => c.added + c.changed + c.removed === 0),
    ).toBe(true);
  });

  it('a restarted agent adopts the pinned maps and links: same ids, no writes', async () => {
    for (const h of HOSTS) {
      const links = agent(h).status().attachments;
      const maps = mapIds(pinRoot(h));
      expect(Object.keys(maps)).toEqual(
        expect.arrayContaining(['tenet_records', 'tenet_ports', 'tenet_gen', 'tenet_underlay']),
      );
      await agent(h).stop();
      // No agent process is left in the namespace (the underlay monitor is stopped)...
      const ns = topo().host(h).ns.name;
      expect((await runOk(['ip', 'netns', 'pids', ns])).stdout.trim()).toBe('');
      // ...and the datapath kept running while no agent was there.
      expect(xdpQuery({ ifname: 'eth0', netns: netns(h) }).progId).toBe(
        byName(links)[`eth0:${PROGRAMS.xdp[0]}`]?.progId,
      );
      agents[h] = await start(h);
      expect(agent(h).adopted.absent).toEqual([]);
      expect(agent(h).adopted.ids).toEqual(maps);
      expect(agent(h).status().attachments).toEqual(links);
      expect(await agent(h).hasInstalledPolicy()).toBe(true);

      const report = await agent(h).applyPolicy(parsePolicy(DEMO));
      expect(report.reconcile.unchanged).toBe(true);
      expect([report.attached, report.upgraded, report.detached]).toEqual([[], [], []]);
      expect(agent(h).writes()).toEqual({
        policy: { upserts: 0, deletes: 0, generationWrites: 0, barriers: 0 },
        underlay: { writes: 0, deletes: 0 },
        links: { created: 0, updated: 0, removed: 0 },
      });
      expect(agent(h).status().attachments).toEqual(links);
      expect(mapIds(pinRoot(h))).toEqual(maps);
    }
  });

  it('a policy naming an interface that does not exist is refused and changes nothing', async () => {
    const bad = parsePolicy({
      ...DEMO,
      ports: DEMO.ports.map((p) => (p.name === 'red-vm1' ? { ...p, interface: 'vm-nope' } : p)),
    });
    const before = {
      maps: dumpTables(pinRoot('hv1')),
      links: agent('hv1').status().attachments,
      writes: agent('hv1').writes(),
      underlay: underlayMap(pinRoot('hv1')),
    };
    const err = await agent('hv1')
      .applyPolicy(bad)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(CompileError);
    expect((err as CompileError).message).toMatch(
      /ports\[1\]\.interface: interface "vm-nope" of port "red-vm1" does not exist on host hv1/,
    );
    expect((err as CompileError).issues).toEqual([
      expect.objectContaining({ path: 'ports[1].interface' }),
    ]);
    expect({
      maps: dumpTables(pinRoot('hv1')),
      links: agent('hv1').status().attachments,
      writes: agent('hv1').writes(),
      underlay: underlayMap(pinRoot('hv1')),
    }).toEqual(before);
    // hv2 is not concerned: its part of the same document is fine.
    expect((await agent('hv2').applyPolicy(bad)).reconcile.unchanged).toBe(true);
  });

  it('counts a remote PA whose next hop cannot be resolved, within a bounded time', async () => {
    const t0 = Date.now();
    const report = await agent('hv1').applyPolicy(parsePolicy(withPhantomHost(DEMO)));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(report.underlay.unresolved).toEqual(['198.18.0.3']);
    expect(report.underlay.resolved).toBe(1);
    expect(underlayMap(pinRoot('hv1'))).not.toHaveProperty(['198.18.0.3']);
    expect(logs.records).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: 'underlay next hop unresolved',
        fields: expect.objectContaining({ pa: '198.18.0.3' }),
      }),
    );
    // Back to the demo: the phantom's record and target go.
    const back = await agent('hv1').applyPolicy(parsePolicy(DEMO));
    expect(back.reconcile.changes.records.removed).toBe(1);
    expect(back.underlay.targets).toBe(1);
  });

  it('follows neighbour changes of the underlay next hop', async () => {
    const ns = topo().host('hv1').ns;
    const real = topo().host('hv2').phys.mac;
    const fake = '02:00:00:00:0f:0f';
    await ns.addNeighbor('eth0', '198.18.0.2', fake);
    await until(() => underlayMap(pinRoot('hv1'))['198.18.0.2'] === fake);
    // The entry goes away: the resolver probes and learns the real MAC again.
    await ns.ip('neigh', 'del', '198.18.0.2', 'dev', 'eth0');
    await until(() => underlayMap(pinRoot('hv1'))['198.18.0.2'] === real);
    expect(agent('hv1').status().underlay.unresolved).toEqual([]);
  });

  it('live migration: records change on both hosts, the port moves from hv1 to hv2', async () => {
    const lab = ref.value.topo.lab;
    const hv2 = topo().host('hv2').ns;
    // The VM's new port on hv2 (its old one on hv1 stays until the hypervisor removes it).
    const vmNs = await lab.netns('blue1-moved');
    await lab.veth(
      { ns: vmNs, name: 'eth0', mac: '02:00:00:b1:00:11' },
      { ns: hv2, name: 'vm-blue1' },
    );
    const before = {
      hv1: byName(agent('hv1').status().attachments),
      hv2: byName(agent('hv2').status().attachments),
    };
    const moved = parsePolicy(migrated(DEMO));
    const oldLinks = PROGRAMS.port.map((p) =>
      BpfLink.fromId(before.hv1[`vm-blue1:${p}`]?.linkId as number),
    );

    // Destination first (the orchestrator's order does not matter for correctness).
    const r2 = await agent('hv2').applyPolicy(moved);
    expect([...r2.attached].sort()).toEqual(PROGRAMS.port.map((p) => `vm-blue1:${p}`).sort());
    expect(r2.detached).toEqual([]);
    expect(r2.reconcile.changes.ports.added).toBe(1);
    expect(r2.reconcile.changes.records.changed).toBe(2); // 198.19.1.11 and fd00:1:1::11: now LOCAL
    const r1 = await agent('hv1').applyPolicy(moved);
    expect(r1.attached).toEqual([]);
    expect([...r1.detached].sort()).toEqual(PROGRAMS.port.map((p) => `vm-blue1:${p}`).sort());
    expect(r1.reconcile.changes.ports.removed).toBe(1);
    expect(r1.reconcile.changes.records.changed).toBe(2); // now remote, at 198.18.0.2

    for (const h of HOSTS) {
      expect(dumpTables(pinRoot(h))).toEqual(settledDump(await compiledFor(h, moved)));
      // Every other attachment is the same link as before.
      const now = byName(agent(h).status().attachments);
      for (const [name, a] of Object.entries(before[h])) {
        if (name.startsWith('vm-blue1:')) continue;
        expect(now[name]?.linkId, name).toBe(a.linkId);
      }
    }
    // The VM's record on hv1 now points at hv2, whose next hop is still resolved.
    const rec = [...(await compiledFor('hv1', moved)).records.values()].find(
      (r) => r.key.vsid === 5001 && r.key.addr[3] === 11 && r.key.family === 4,
    );
    expect(rec?.value).toMatchObject({ pa: 0xc6120002, flags: 0, ifindex: 0 });
    expect(underlayMap(pinRoot('hv1'))).toHaveProperty(['198.18.0.2']);
    // hv1's old port has no program left: the links it had are detached (their objects still
    // exist while we hold an fd, with ifindex 0).
    for (const fd of oldLinks) {
      expect(fd.info().ifindex).toBe(0);
      fd.close();
    }
    const vmPort = byName(agent('hv2').status().attachments);
    for (const p of PROGRAMS.port) {
      expect(vmPort[`vm-blue1:${p}`]).toMatchObject({
        kind: 'link',
        linkType: LinkType.TCX,
        ifindex: await hv2.ifindex('vm-blue1'),
      });
    }

    // And back: the VM returns to hv1.
    const home = parsePolicy(DEMO);
    const b1 = await agent('hv1').applyPolicy(home);
    const b2 = await agent('hv2').applyPolicy(home);
    expect(b1.attached.length).toBe(PROGRAMS.port.length);
    expect(b2.detached.length).toBe(PROGRAMS.port.length);
    for (const h of HOSTS) {
      expect(dumpTables(pinRoot(h))).toEqual(settledDump(await compiledFor(h, home)));
    }
  });

  it('a full map refuses the whole change: no map, link or generation changes', async () => {
    // hv2 takes blue-vm1 back (its port interface still exists there) and 64 more PAs: one more
    // than tenet_local_pas holds.
    const doc = migrated(DEMO);
    const big = parsePolicy({
      ...doc,
      providerAddresses: [
        ...doc.providerAddresses,
        ...Array.from({ length: Maps.tenet_local_pas.maxEntries }, (_, i) => ({
          host: 'hv2',
          address: `198.18.1.${i + 1}`,
          interface: 'eth0',
          prefixLength: 24,
        })),
      ],
    });
    const before = {
      maps: dumpTables(pinRoot('hv2')),
      links: agent('hv2').status().attachments,
      generation: agent('hv2').status().generation,
    };
    const about = (message: string): number =>
      logs.records.filter(
        (r) => r.message === message && String(r.fields.attachment).startsWith('vm-blue1:'),
      ).length;
    const attachedBefore = about('attached');
    const detachedBefore = about('detached');
    const err = await agent('hv2')
      .applyPolicy(big)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(StageError);
    expect(isMapFull(err)).toBe(true);
    expect((err as StageError).cause).toMatchObject({ map: 'tenet_local_pas', code: 'E2BIG' });
    // The port links it made before reconciling were taken back.
    expect(about('attached') - attachedBefore).toBe(PROGRAMS.port.length);
    expect(about('detached') - detachedBefore).toBe(PROGRAMS.port.length);
    expect({
      maps: dumpTables(pinRoot('hv2')),
      links: agent('hv2').status().attachments,
      generation: agent('hv2').status().generation,
    }).toEqual(before);
  });

  it('a port whose interface was recreated gets a fresh attachment', async () => {
    const lab = ref.value.topo.lab;
    const hv2 = topo().host('hv2').ns;
    const name = `vm-red2:${PROGRAMS.port[0]}`;
    const old = byName(agent('hv2').status().attachments)[name] as AttachmentInfo;
    // The hypervisor deletes the VM's port and creates it again: a new ifindex.
    await hv2.ip('link', 'del', 'vm-red2');
    const vmNs = await lab.netns('red2-new');
    await lab.veth({ ns: vmNs, name: 'eth0' }, { ns: hv2, name: 'vm-red2' });
    expect(byName(agent('hv2').status().attachments)[name]?.ifindex).toBe(0); // defunct
    const r = await agent('hv2').applyPolicy(parsePolicy(DEMO));
    expect(r.attached).toContain(name);
    const now = byName(agent('hv2').status().attachments)[name] as AttachmentInfo;
    expect(now.ifindex).toBe(await hv2.ifindex('vm-red2'));
    expect(now.linkId).not.toBe(old.linkId);
    expect(r.reconcile.changes.ports).toMatchObject({ added: 1, removed: 1 });
    expect(dumpTables(pinRoot('hv2'))).toEqual(
      settledDump(await compiledFor('hv2', parsePolicy(DEMO))),
    );
  });
});
