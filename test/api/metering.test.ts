// MeteringService end to end over the real datapath: tenet_port_ingress counts test-run frames
// into the real pinned tenet_meter_ctr map of a private pin root, the production compiler and
// reconciler install the classes, and the ledger (agent/metering) answers Measure, ResetMeters,
// ExportMeters and ImportMeters over a real gRPC socket. A second, memory-backed agent plays the
// destination host of a migration. Every refusal is checked to change nothing. Then a tenetd
// child process shows that bases, baselines and imported ids survive a kill -9.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ServiceError } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { Maps } from '../../agent/abi/generated.js';
import { ReconcilerBackend } from '../../agent/api/backend.js';
import { TenetClient, fieldViolations } from '../../agent/api/client.js';
import type { Plain } from '../../agent/api/proto.js';
import { ApiServer } from '../../agent/api/server.js';
import { PolicyStore } from '../../agent/api/store.js';
import { BpfMap, PerCpuTypedMap, TypedMap } from '../../agent/bpf/index.js';
import type { InterfaceFacts } from '../../agent/compiler/index.js';
import { MeterLedger } from '../../agent/metering/ledger.js';
import { pinnedMeterSource, staticMeterSource } from '../../agent/metering/source.js';
import { registerMeterMetrics } from '../../agent/metrics/meter.js';
import { packet } from '../../agent/packet/index.js';
import type { PolicyStore as Store } from '../../agent/api/store.js';
import { BpfPolicyTables } from '../../agent/reconciler/bpf-tables.js';
import { MemoryPolicyTables } from '../../agent/reconciler/index.js';
import { useDatapath } from '../datapath/harness.js';
import { describePrivileged } from '../helpers/privilege.js';
import { ROOT, killDaemon, startDaemon, tenetdConfig, waitServing } from '../helpers/tenetd.js';

const execFileP = promisify(execFile);
import { DEMO_POLICY_PATH, rejection } from './helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const demo = (): Doc => parseYaml(readFileSync(DEMO_POLICY_PATH, 'utf8'));

const METER_ACL = {
  port: 'blue-vm1',
  rules: [
    {
      name: 'inet',
      direction: 'both',
      action: 'meter',
      meteringClass: 'internet',
      remotePrefix: '0.0.0.0/0',
    },
    {
      name: 'dc',
      direction: 'both',
      action: 'meter',
      meteringClass: 'intranet',
      remotePrefix: '198.19.0.0/16',
    },
  ],
};

/** The demo policy with blue-vm1 on `iface` of `host` (its records at that host's PA). */
function policy(host: 'hv1' | 'hv2', iface: string): Doc {
  const doc = demo();
  const pa = host === 'hv1' ? '198.18.0.1' : '198.18.0.2';
  for (const p of doc.ports)
    if (p.name === 'blue-vm1') Object.assign(p, { host, interface: iface });
  for (const r of doc.lookupRecords) if (r.mac === '02:00:00:b1:00:11') r.pa = pa;
  doc.portAcls = [METER_ACL];
  return doc;
}

const nic = (ifindex: number): InterfaceFacts => ({ ifindex, mac: '02:00:00:00:0e:01', mtu: 1500 });
const HV1: Record<string, InterfaceFacts> = {
  eth0: nic(2),
  lo: nic(1), // blue-vm1's port: test-run frames enter on the loopback device (ifindex 1)
  'vm-gone': nic(12), // in the facts the compiler sees, but absent from the kernel
  'vm-red1': nic(11),
};
const HV2: Record<string, InterfaceFacts> = {
  eth0: nic(2),
  lo: nic(1),
  'vm-blue2': nic(20),
  'vm-red2': nic(21),
  'vm-bluedb1': nic(22),
};

interface Agent {
  client: TenetClient;
  ledger: MeterLedger;
  store: Store;
  close(): Promise<void>;
}

async function startAgent(
  host: 'hv1' | 'hv2',
  tables: BpfPolicyTables | MemoryPolicyTables,
  facts: Record<string, InterfaceFacts>,
  source: ReturnType<typeof staticMeterSource> | ReturnType<typeof pinnedMeterSource>,
): Promise<Agent & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), `tenet-meter-${host}-`));
  const log = { info() {}, warn() {}, error() {} };
  const backend = new ReconcilerBackend({ hostName: host, tables, facts: () => facts });
  const store = new PolicyStore(backend, {}, log);
  const ledger = await MeterLedger.open({
    hostName: host,
    source,
    stateDir: join(dir, 'state'),
    policy: () => store.policy,
  });
  const socketPath = join(dir, 'tenetd.sock');
  const server = new ApiServer({
    socketPath,
    allowedUids: [process.getuid?.() ?? 0],
    allowedGids: [],
    log,
    context: {
      store,
      hostName: host,
      agentVersion: 'test',
      startedUnixMs: Date.now(),
      stateFile: () => 'disabled',
      log,
      metering: ledger,
    },
  });
  await server.listen();
  await store.initialize();
  server.setServing(true);
  const client = new TenetClient(socketPath);
  return {
    dir,
    client,
    ledger,
    store,
    async close() {
      client.close();
      await server.close(100);
      ledger.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const meter = (c: TenetClient, method: string, req: Plain = {}) =>
  c.call('MeteringService', method, req);

/** `class/direction -> [packets, bytes, packetsSinceReset, bytesSinceReset]` of one port. */
function totals(res: Plain, port = 'blue-vm1'): Record<string, number[]> {
  const p = ((res.ports as Plain[]) ?? []).find((x) => x.port === port) ?? (res.port as Plain);
  const out: Record<string, number[]> = {};
  for (const t of (p?.totals as Plain[]) ?? [])
    out[`${t.meterClass}/${t.direction}`] = [
      Number(t.packets ?? 0),
      Number(t.bytes ?? 0),
      Number(t.packetsSinceReset ?? 0),
      Number(t.bytesSinceReset ?? 0),
    ];
  return out;
}

const V4 = packet()
  .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:12' })
  .ipv4({ src: '198.19.1.11', dst: '198.19.1.12', ttl: 64, df: true, id: 1 })
  .udp({ sport: 40000, dport: 5000 })
  .payload('metered frame')
  .build();
const V6 = packet()
  .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:12' })
  .ipv6({ src: 'fd00:1:1::11', dst: 'fd00:1:1::12', hopLimit: 64 })
  .udp({ sport: 40000, dport: 5000 })
  .payload('metered frame over ipv6')
  .build();

async function code(p: Promise<unknown>): Promise<[string, string[]]> {
  const e: ServiceError = await rejection(p);
  const { status } = await import('@grpc/grpc-js');
  return [status[e.code] as string, fieldViolations(e).map((v) => v.field)];
}

describePrivileged('MeteringService over the real datapath', () => {
  const dp = useDatapath();
  let hv1: Agent;
  let hv2: Agent;
  let ctrs: PerCpuTypedMap<{ ifindex: number; class_id: number; direction: number }, unknown>;

  const send = (frame: Buffer, n: number): void => {
    for (let i = 0; i < n; i++) dp.runPort(frame);
  };
  const apply = (a: Agent, doc: Doc) => a.client.policy('Apply', { text: stringify(doc) });

  beforeAll(async () => {
    hv1 = await startAgent(
      'hv1',
      BpfPolicyTables.openPinned(dp.pinRoot),
      HV1,
      pinnedMeterSource(dp.pinRoot),
    );
    hv2 = await startAgent('hv2', new MemoryPolicyTables(), HV2, staticMeterSource(HV2));
    await apply(hv1, policy('hv1', 'lo'));
    await apply(hv2, policy('hv1', 'lo'));
    // The underlay next hop of hv2's PA, so frames to blue-vm2 are encapsulated and sent.
    const u = Maps.tenet_underlay;
    const underlay = new TypedMap(BpfMap.openPinned(join(dp.pinRoot, u.name)), u.key, u.value);
    underlay.set(0xc6120002, { mac: Uint8Array.of(2, 0, 0, 0, 0x0e, 2) });
    underlay.close();
    const d = Maps.tenet_meter_ctr;
    ctrs = new PerCpuTypedMap(BpfMap.openPinned(join(dp.pinRoot, d.name)), d.key, d.value);
  });
  afterAll(async () => {
    ctrs?.close();
    await hv1?.close();
    await hv2?.close();
  });

  it('Measure: per class and direction, counted by the datapath; the tenant sums its ports', async () => {
    expect(dp.runPort(V4).verdict).toBe('redirect'); // encapsulated towards hv2
    send(V4, 6);
    send(V6, 3);
    const res = await meter(hv1.client, 'Measure', { port: 'blue-vm1' });
    const t = totals(res);
    expect(t['intranet/outbound']).toEqual([7, 7 * V4.length, 7, 7 * V4.length]);
    expect(t['default/outbound']).toEqual([3, 3 * V6.length, 3, 3 * V6.length]);
    expect(t['internet/outbound']).toEqual([0, 0, 0, 0]);
    expect(t['intranet/inbound']).toEqual([0, 0, 0, 0]);
    const tenant = await meter(hv1.client, 'Measure', { routingDomain: 'blue' });
    expect((tenant.ports as Plain[]).map((p) => p.port)).toEqual(['blue-vm1']);
    const sum = Object.fromEntries(
      (tenant.sum as Plain[]).map((s) => [
        `${s.meterClass}/${s.direction}`,
        Number(s.packets ?? 0),
      ]),
    );
    expect(sum['intranet/outbound']).toBe(7);
    expect(sum['default/outbound']).toBe(3);
  });

  it('ResetMeters: since-reset starts from zero, lifetime totals and the BPF counters go on', async () => {
    const raw = (): bigint => {
      let n = 0n;
      for (const [k, v] of ctrs.entries())
        if (k.ifindex === 1) n += (v as { packets: bigint }[]).reduce((a, x) => a + x.packets, 0n);
      return n;
    };
    const before = raw();
    await meter(hv1.client, 'ResetMeters', { port: 'blue-vm1' });
    expect(raw()).toBe(before);
    send(V4, 2);
    const t = totals(await meter(hv1.client, 'Measure', { port: 'blue-vm1' }));
    expect(t['intranet/outbound']).toEqual([9, 9 * V4.length, 2, 2 * V4.length]);
    expect(t['default/outbound']?.slice(2)).toEqual([0, 0]);
  });

  it('refuses bad requests with their status and field, changing nothing', async () => {
    const before = await meter(hv1.client, 'Measure', { port: 'blue-vm1' });
    expect(await code(meter(hv1.client, 'Measure', {}))).toEqual(['INVALID_ARGUMENT', ['target']]);
    expect((await code(meter(hv1.client, 'Measure', { port: 'nope' })))[0]).toBe('NOT_FOUND');
    expect(await code(meter(hv1.client, 'Measure', { port: 'blue-vm2' }))).toEqual([
      'FAILED_PRECONDITION',
      ['port'],
    ]);
    expect((await code(meter(hv1.client, 'ResetMeters', { routingDomain: 'x' })))[0]).toBe(
      'NOT_FOUND',
    );
    expect(await code(meter(hv1.client, 'ExportMeters', { port: 'blue-vm1' }))).toEqual([
      'FAILED_PRECONDITION',
      ['port'],
    ]);
    expect((await code(meter(hv1.client, 'ExportMeters', { port: 'nope' })))[0]).toBe('NOT_FOUND');
    expect(await code(meter(hv1.client, 'ExportMeters', {}))).toEqual([
      'INVALID_ARGUMENT',
      ['port'],
    ]);
    const forged = {
      id: 'hv9:blue-vm1:2',
      sequence: '1',
      port: 'blue-vm1',
      sourceHost: 'hv9',
      totals: [{ meterClass: 'intranet', direction: 'outbound', packets: '5', bytes: '500' }],
    };
    expect(await code(meter(hv1.client, 'ImportMeters', { record: forged }))).toEqual([
      'INVALID_ARGUMENT',
      ['record.id'],
    ]);
    expect(
      await code(
        meter(hv1.client, 'ImportMeters', {
          record: {
            ...forged,
            id: 'hv9:blue-vm1:1',
            totals: [{ ...forged.totals[0], direction: 'up' }],
          },
        }),
      ),
    ).toEqual(['INVALID_ARGUMENT', ['record.totals[0].direction']]);
    expect(await code(meter(hv1.client, 'ImportMeters', {}))).toEqual([
      'INVALID_ARGUMENT',
      ['record'],
    ]);
    expect(
      await code(
        meter(hv1.client, 'ImportMeters', {
          record: { ...forged, id: 'hv9:blue-vm2:1', port: 'blue-vm2' },
        }),
      ),
    ).toEqual(['FAILED_PRECONDITION', ['port']]);
    expect(await meter(hv1.client, 'Measure', { port: 'blue-vm1' })).toEqual(before);
  });

  it('an interface change folds the old counters into the base and deletes them; totals go on', async () => {
    await apply(hv1, policy('hv1', 'vm-gone'));
    const t = totals(await meter(hv1.client, 'Measure', { port: 'blue-vm1' }));
    expect(t['intranet/outbound']?.[0]).toBe(9);
    expect([...ctrs.keys()].filter((k) => k.ifindex === 1)).toEqual([]);
    await apply(hv1, policy('hv1', 'lo'));
    send(V4, 4);
    const again = totals(await meter(hv1.client, 'Measure', { port: 'blue-vm1' }));
    expect(again['intranet/outbound']).toEqual([13, 13 * V4.length, 6, 6 * V4.length]);
    expect(again['default/outbound']?.[0]).toBe(3);
  });

  it('migration: export on the source (idempotent), import once on the destination, release', async () => {
    await apply(hv1, policy('hv2', 'lo'));
    await apply(hv2, policy('hv2', 'lo'));
    send(V4, 5); // the port is gone from hv1's datapath: dropped, never metered
    expect(await code(meter(hv1.client, 'Measure', { port: 'blue-vm1' }))).toEqual([
      'FAILED_PRECONDITION',
      ['port'],
    ]);
    const exp = await meter(hv1.client, 'ExportMeters', { port: 'blue-vm1' });
    const records = exp.records as Plain[];
    expect(records).toHaveLength(1);
    const rec = records[0] as Plain;
    expect(rec.id).toBe('hv1:blue-vm1:1');
    expect(await meter(hv1.client, 'ExportMeters', { port: 'blue-vm1' })).toEqual(exp);
    const byKey = Object.fromEntries(
      (rec.totals as Plain[]).map((c) => [`${c.meterClass}/${c.direction}`, Number(c.packets)]),
    );
    expect(byKey).toEqual({ 'intranet/outbound': 13, 'default/outbound': 3 });
    expect(await code(meter(hv1.client, 'ImportMeters', { record: rec }))).toEqual([
      'FAILED_PRECONDITION',
      ['record.source_host'],
    ]);

    const imported = totals(await meter(hv2.client, 'ImportMeters', { record: rec }), 'blue-vm1');
    expect(imported['intranet/outbound']).toEqual([13, 13 * V4.length, 6, 6 * V4.length]);
    const [c] = await code(meter(hv2.client, 'ImportMeters', { record: rec }));
    expect(c).toBe('ALREADY_EXISTS');
    expect(totals(await meter(hv2.client, 'Measure', { port: 'blue-vm1' }))).toEqual(imported);

    // Metrics on the destination: the imported base, passing promtool.
    const registry = new Registry();
    registerMeterMetrics(registry, hv2.ledger);
    const text = await registry.metrics();
    await promtool(text);
    expect(text).toMatch(
      /tenet_port_meter_packets_total\{port="blue-vm1",class="intranet",direction="outbound"\} 13\n/,
    );

    const released = await meter(hv1.client, 'ExportMeters', {
      port: 'blue-vm1',
      releaseIds: [rec.id],
    });
    expect(released.records ?? []).toEqual([]);
    expect((await code(meter(hv1.client, 'ExportMeters', { port: 'blue-vm1' })))[0]).toBe(
      'NOT_FOUND',
    );
  });
});

async function promtool(text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`promtool: ${out}`))));
    p.stdin.end(text);
  });
}

describe('meter totals survive a tenetd kill -9 (durable ledger)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-meter-restart-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const interfaces = Object.entries({ eth0: 2, 'vm-blue1': 10, 'vm-red1': 11 })
    .map(([n, i]) => `    ${n}: { ifindex: ${i}, mac: '02:00:00:00:0e:0${i % 10}', mtu: 1500 }`)
    .join('\n');
  const config = tenetdConfig(dir, {
    pinRoot: join(dir, 'pins'),
    metricsListen: null,
    datapath: `datapath:\n  backend: memory\n  interfaces:\n${interfaces}\n`,
  });
  const socket = join(dir, 'run', 'tenetd.sock');

  it('keeps imported bases, reset baselines and imported ids', async () => {
    let d = startDaemon(config);
    let client = new TenetClient(socket);
    try {
      await waitServing(socket, performance.now());
      const doc = demo();
      doc.portAcls = [METER_ACL];
      await client.policy('Apply', { text: stringify(doc) });
      const record = {
        id: 'hv2:blue-vm1:4',
        sequence: '4',
        port: 'blue-vm1',
        sourceHost: 'hv2',
        totals: [
          { meterClass: 'internet', direction: 'inbound', packets: '40', bytes: '4000' },
          { meterClass: 'intranet', direction: 'outbound', packets: '7', bytes: '700' },
        ],
        baseline: [{ meterClass: 'internet', direction: 'inbound', packets: '10', bytes: '1000' }],
        resetUnixMs: '1700000000000',
      };
      await meter(client, 'ImportMeters', { record });
      const before = totals(await meter(client, 'Measure', { port: 'blue-vm1' }));
      expect(before['internet/inbound']).toEqual([40, 4000, 30, 3000]);
      expect(before['intranet/outbound']).toEqual([7, 700, 7, 700]);

      client.close();
      await killDaemon(d);
      d = startDaemon(config);
      client = new TenetClient(socket);
      await waitServing(socket, performance.now());
      expect(totals(await meter(client, 'Measure', { port: 'blue-vm1' }))).toEqual(before);
      expect((await code(meter(client, 'ImportMeters', { record })))[0]).toBe('ALREADY_EXISTS');
      await meter(client, 'ResetMeters', { routingDomain: 'blue' });

      client.close();
      await killDaemon(d);
      d = startDaemon(config);
      client = new TenetClient(socket);
      await waitServing(socket, performance.now());
      const after = totals(await meter(client, 'Measure', { port: 'blue-vm1' }));
      expect(after['internet/inbound']).toEqual([40, 4000, 0, 0]);
    } finally {
      client.close();
      await killDaemon(d);
    }
  }, 60_000);

  it('tenetctl meter show|reset|export|import', async () => {
    const d = startDaemon(config);
    const cli = async (...args: string[]) => {
      try {
        const r = await execFileP(
          process.execPath,
          ['--import', 'tsx', join(ROOT, 'agent/cli/main.ts'), '--socket', socket, ...args],
          { cwd: ROOT, timeout: 60_000 },
        );
        return { code: 0, ...r };
      } catch (e) {
        const err = e as { code: number; stdout: string; stderr: string };
        return { code: err.code, stdout: err.stdout, stderr: err.stderr };
      }
    };
    try {
      await waitServing(socket, performance.now());
      const show = await cli('meter', 'show', '--port', 'blue-vm1');
      expect(show.code).toBe(0);
      expect(show.stdout).toMatch(/blue-vm1\s+internet\s+inbound\s+40\s+4000\s+0\s+0/);
      const json = JSON.parse(
        (await cli('meter', 'show', '--tenant', 'blue', '-o', 'json')).stdout,
      );
      expect(json.sum).toContainEqual({
        meterClass: 'internet',
        direction: 'inbound',
        packets: '40',
        bytes: '4000',
      }); // proto3 JSON leaves the zero since-reset totals out
      const file = join(dir, 'export.json');
      writeFileSync(
        file,
        JSON.stringify({
          records: [
            {
              id: 'hv3:blue-vm1:1',
              sequence: '1',
              port: 'blue-vm1',
              sourceHost: 'hv3',
              totals: [
                { meterClass: 'intranet', direction: 'inbound', packets: '2', bytes: '200' },
              ],
            },
          ],
        }),
      );
      const imp = await cli('meter', 'import', '-f', file);
      expect(imp.code).toBe(0);
      expect(imp.stdout).toMatch(/imported hv3:blue-vm1:1/);
      expect(imp.stdout).toMatch(/blue-vm1\s+intranet\s+inbound\s+2\s+200\s+2\s+200/);
      const again = await cli('meter', 'import', '-f', file);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/ALREADY_EXISTS/);
      const exp = await cli('meter', 'export', 'blue-vm1');
      expect(exp.code).toBe(1);
      expect(exp.stderr).toMatch(/FAILED_PRECONDITION.*still on this host/);
      expect((await cli('meter', 'reset', '--tenant', 'blue')).stdout).toMatch(/reset blue-vm1/);
      expect((await cli('meter', 'show')).code).toBe(2);
    } finally {
      await killDaemon(d);
    }
  }, 180_000);

  it('a damaged meter state file is set aside and reported; the agent serves', async () => {
    const path = join(dir, 'state', 'meters.state');
    writeFileSync(path, 'TENET-METERS 1 length=3 sha256=00\ngarbage');
    const d = startDaemon(config);
    const client = new TenetClient(socket);
    try {
      await waitServing(socket, performance.now());
      const log = await d.waitLog((l) => l.event === 'meter_state_quarantined', 10_000);
      expect(String(log.movedTo)).toMatch(/meters\.state\.quarantine-/);
      expect(
        readdirSync(join(dir, 'state')).some((f) => f.startsWith('meters.state.quarantine-')),
      ).toBe(true);
      // The imported base is gone with the file (the datapath has nothing for a memory backend).
      const t = totals(await meter(client, 'Measure', { port: 'blue-vm1' }));
      expect(t['internet/inbound']).toEqual([0, 0, 0, 0]);
    } finally {
      client.close();
      await killDaemon(d);
    }
  }, 60_000);
});
