// Metering end to end on the demo lab with a tenetd per hypervisor (datapath.backend: host, each
// in its host's network namespace) and real traffic: blue-vm2 has metering classes "web"
// (198.19.1.0/24, its own subnet) and "db" (198.19.2.0/24, reached through the distributed
// router). Pings with a known count reach it across hosts (NVGRE decapsulation) and from the same
// host (host-local delivery); then it live-migrates from hv2 to hv1 (its link re-plugged, the
// policy applied to the destination, then the source), its totals are exported from hv2 and
// imported on hv1, more pings follow, and the totals on hv1 must equal exactly what crossed the
// port on both hosts: no loss, no double counting, and nothing left to count on hv2.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { TenetClient } from '../../agent/api/client.js';
import type { Plain } from '../../agent/api/proto.js';
import { buildTopology, loadLabFile, ping, useLab, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { ROOT, killDaemon, startDaemon, tenetdConfig, type DaemonProc } from '../helpers/tenetd.js';

const LAB_DIR = join(ROOT, 'scripts', 'lab');
const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];
/** An ICMP echo frame with ping's default 56-byte payload: Ethernet 14 + IPv4 20 + ICMP 8 + 56. */
const ECHO_FRAME = 98;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

function policyWith(vm2Host: Host): Doc {
  const doc = parseYaml(readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8'));
  const pa = vm2Host === 'hv1' ? '198.18.0.1' : '198.18.0.2';
  for (const p of doc.ports) if (p.name === 'blue-vm2') p.host = vm2Host;
  for (const r of doc.lookupRecords) if (r.mac === '02:00:00:b1:00:12') r.pa = pa;
  doc.portAcls = [
    {
      port: 'blue-vm2',
      rules: [
        {
          name: 'web',
          direction: 'both',
          action: 'meter',
          meteringClass: 'web',
          remotePrefix: '198.19.1.0/24',
        },
        {
          name: 'db',
          direction: 'both',
          action: 'meter',
          meteringClass: 'db',
          remotePrefix: '198.19.2.0/24',
        },
      ],
    },
  ];
  return doc;
}

/** `class/direction` -> [packets, bytes] of blue-vm2 (only non-zero entries). */
function totals(res: Plain): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  const port = ((res.ports as Plain[]) ?? [])[0] ?? (res.port as Plain);
  for (const t of (port?.totals as Plain[]) ?? []) {
    const p = Number(t.packets ?? 0);
    if (p > 0) out[`${t.meterClass}/${t.direction}`] = [p, Number(t.bytes ?? 0)];
  }
  return out;
}

const expectTotals = (counts: Record<string, number>): Record<string, [number, number]> =>
  Object.fromEntries(Object.entries(counts).map(([k, n]) => [k, [n, n * ECHO_FRAME]]));

describePrivileged('metering across a live migration (demo lab, tenetd per host)', () => {
  const ref = useLab('metering', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const dir = mkdtempSync(join(tmpdir(), 'tenet-metering-e2e-'));
  const daemons = new Map<Host, DaemonProc>();
  const clients = new Map<Host, TenetClient>();
  const client = (h: Host): TenetClient => clients.get(h) as TenetClient;
  const meter = (h: Host, method: string, req: Plain) =>
    client(h).call('MeteringService', method, req);
  const vm = (name: string) => topo().vm(name).ns;
  async function pings(from: string, to: string, count: number): Promise<void> {
    const r = await ping(vm(from), to, { count, intervalMs: 50, timeoutS: 10 });
    expect(r.received, `${from} -> ${to}: ${r.error ?? r.stdout}`).toBe(count);
  }

  beforeAll(async () => {
    for (const h of HOSTS) {
      const config = tenetdConfig(join(dir, h), {
        hostName: h,
        pinRoot: join(ref.value.bpffs, h),
        metricsListen: null,
        logLevel: 'info',
        datapath: `datapath:\n  backend: host\n  netns: ${topo().host(h).ns.path}\n`,
      });
      const d = startDaemon(config);
      daemons.set(h, d);
      await d.waitLog((l) => l.event === 'ready', 60_000);
      clients.set(h, new TenetClient(join(dir, h, 'run', 'tenetd.sock')));
      await client(h).policy('Apply', { text: stringify(policyWith('hv2')) });
    }
  }, 120_000);
  // Registered after useLab's hooks, so the daemons stop before the lab goes.
  afterAll(async () => {
    for (const c of clients.values()) c.close();
    for (const d of daemons.values()) await killDaemon(d);
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts known traffic, follows the VM to its new host, and stays exact', async () => {
    // Before: blue-vm2 on hv2. 10 echoes from hv1 (NVGRE), 5 from blue-db1 on hv2 (routed,
    // host-local). Each echo is one frame in (request) and one out (reply).
    await pings('blue-vm1', '198.19.1.12', 10);
    await pings('blue-db1', '198.19.1.12', 5);
    const before = totals(await meter('hv2', 'Measure', { port: 'blue-vm2' }));
    expect(before).toEqual(
      expectTotals({ 'web/inbound': 10, 'web/outbound': 10, 'db/inbound': 5, 'db/outbound': 5 }),
    );

    // The live migration: link re-plugged into hv1, destination applied, then the source.
    const lab = ref.lab;
    const blue2 = vm('blue-vm2');
    await topo().host('hv2').ns.execOk(['ip', 'link', 'del', 'vm-blue2']);
    await lab.veth(
      {
        ns: blue2,
        name: 'eth0',
        mac: '02:00:00:b1:00:12',
        addrs: ['198.19.1.12/24', 'fd00:1:1::12/64'],
        mtu: 1458,
      },
      { ns: topo().host('hv1').ns, name: 'vm-blue2' },
    );
    await blue2.execOk(['ethtool', '-K', 'eth0', 'gro', 'on']);
    await blue2.execOk(['ip', 'route', 'add', 'default', 'via', '198.19.1.1']);
    const moved = stringify(policyWith('hv1'));
    await client('hv1').policy('Apply', { text: moved });
    await client('hv2').policy('Apply', { text: moved });

    // Export from the source (idempotent), import on the destination (once), release.
    const exported = await meter('hv2', 'ExportMeters', { port: 'blue-vm2' });
    expect(await meter('hv2', 'ExportMeters', { port: 'blue-vm2' })).toEqual(exported);
    const records = exported.records as Plain[];
    expect(records.map((r) => r.id)).toEqual(['hv2:blue-vm2:1']);
    const imported = await meter('hv1', 'ImportMeters', { record: records[0] });
    expect(totals(imported)).toEqual(before);
    await expect(meter('hv1', 'ImportMeters', { record: records[0] })).rejects.toMatchObject({
      code: status.ALREADY_EXISTS,
    });
    await meter('hv2', 'ExportMeters', { port: 'blue-vm2', releaseIds: [records[0]?.id] });

    // After: 7 echoes from blue-vm1 (now host-local on hv1), 4 from blue-db1 (now NVGRE).
    await pings('blue-vm1', '198.19.1.12', 7);
    await pings('blue-db1', '198.19.1.12', 4);
    const after = totals(await meter('hv1', 'Measure', { port: 'blue-vm2' }));
    expect(after).toEqual(
      expectTotals({
        'web/inbound': 17,
        'web/outbound': 17,
        'db/inbound': 9,
        'db/outbound': 9,
      }),
    );
    // The tenant view on hv1 includes blue-vm2 (and blue-vm1, which has no classes: default).
    const tenant = await meter('hv1', 'Measure', { routingDomain: 'blue' });
    expect((tenant.ports as Plain[]).map((p) => p.port).sort()).toEqual(['blue-vm1', 'blue-vm2']);

    // Nothing is left to count twice on hv2.
    await expect(meter('hv2', 'Measure', { port: 'blue-vm2' })).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
    });
    await expect(meter('hv2', 'ExportMeters', { port: 'blue-vm2' })).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
  }, 120_000);
});
