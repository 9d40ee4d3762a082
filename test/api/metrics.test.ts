// Metrics: the exposition passes `promtool check metrics`; datapath counters are read from real
// pinned per-CPU maps at scrape time (CounterReader), summed over CPUs, attributed to ports by
// name (never by address); API and reconcile metrics count what happened; only loopback serves.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Maps,
  TENET_ABI_VERSION,
  type Counter,
  type PortKey,
  type VsidCounters,
} from '../../agent/abi/generated.js';
import type { CounterSource } from '../../agent/api/backend.js';
import { TenetClient } from '../../agent/api/client.js';
import { parseListen } from '../../agent/daemon/config.js';
import { TenetMetrics } from '../../agent/metrics/metrics.js';
import { serveMetrics } from '../../agent/metrics/server.js';
import type { BpfMap as BpfMapHandle } from '../../agent/bpf/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { startDaemon, writeConfig } from './daemon-helpers.js';
import { demoPolicyText, startTestApi, type TestApi } from './helpers.js';

const run = promisify(execFile);

/** Runs promtool check metrics on the text; resolves with its output (rejects on problems). */
async function promtool(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`promtool: ${out}`))));
    p.stdin.end(text);
  });
}

function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('metrics exposition', () => {
  let api: TestApi;
  let metrics: TenetMetrics;
  const counters: CounterSource = {
    portTraffic: () => [
      { ifindex: 10, direction: 'rx', packets: 5n, bytes: 640n },
      { ifindex: 10, direction: 'tx', packets: 7n, bytes: 900n },
      { ifindex: 99, direction: 'rx', packets: 1n, bytes: 60n }, // not a port of the policy
    ],
    dropTotals: () => [{ reason: 'ipv4_truncated', packets: 3n, bytes: 120n }],
    vsidTraffic: () => [
      {
        vsid: 5001,
        encap_packets: 11n,
        encap_bytes: 1100n,
        decap_packets: 12n,
        decap_bytes: 1200n,
      },
    ],
  };

  beforeAll(async () => {
    api = await startTestApi({ counters });
    metrics = new TenetMetrics(
      {
        counters: () => api.store.backend.counters(),
        state: () => ({
          ready: api.store.ready,
          policyVersion: api.store.version,
          policyKnown: api.store.known,
        }),
      },
      () => ({ version: '0.1.0', abiVersion: TENET_ABI_VERSION, libbpf: 'v1.1' }),
    );
    await api.client.policy('Apply', { text: demoPolicyText() });
    metrics.observeReconcile(0.004, true, false);
    metrics.observeReconcile(0.002, false, true);
    metrics.observeRequest('Apply', 'OK', 0.01);
    metrics.observeRequest('CreatePort', 'INVALID_ARGUMENT', 0.001);
    metrics.connectionRefused();
  });
  afterAll(async () => {
    await api.close();
  });

  it('passes promtool check metrics', async () => {
    const text = await metrics.scrape();
    await promtool(text);
  });

  it('has the datapath counters by port name and drop reason, and no addresses in labels', async () => {
    const text = await metrics.scrape();
    expect(
      sample(text, 'tenet_port_packets_total', {
        port: 'blue-vm1',
        interface: 'vm-blue1',
        direction: 'rx',
      }),
    ).toBe(5);
    expect(sample(text, 'tenet_port_bytes_total', { port: 'blue-vm1', direction: 'tx' })).toBe(900);
    expect(text).not.toMatch(/ifindex|="99"/);
    expect(sample(text, 'tenet_drops_total', { reason: 'ipv4_truncated' })).toBe(3);
    expect(sample(text, 'tenet_drop_bytes_total', { reason: 'ipv4_truncated' })).toBe(120);
    expect(
      sample(text, 'tenet_vsid_encap_packets_total', { vsid: '5001', virtual_subnet: 'blue-web' }),
    ).toBe(11);
    expect(sample(text, 'tenet_vsid_decap_bytes_total', { vsid: '5001' })).toBe(1200);
    expect(sample(text, 'tenet_map_entries', { map: 'tenet_ports' })).toBe(2);
    expect(sample(text, 'tenet_map_capacity_entries', { map: 'tenet_ports' })).toBe(
      Maps.tenet_ports.maxEntries,
    );
    expect(
      sample(text, 'tenet_build_info', { version: '0.1.0', abi_version: '1', libbpf: 'v1.1' }),
    ).toBe(1);
    expect(sample(text, 'tenet_reconcile_duration_seconds_count', { kind: 'apply' })).toBe(1);
    expect(sample(text, 'tenet_reconcile_errors_total', { kind: 'dry_run' })).toBe(1);
    expect(
      sample(text, 'tenet_api_requests_total', { method: 'CreatePort', code: 'INVALID_ARGUMENT' }),
    ).toBe(1);
    expect(
      sample(text, 'tenet_api_request_duration_seconds_count', { method: 'Apply', code: 'OK' }),
    ).toBe(1);
    expect(sample(text, 'tenet_api_connections_refused_total')).toBe(1);
    expect(sample(text, 'tenet_ready')).toBe(1);
    expect(sample(text, 'tenet_policy_version')).toBe(1);
    // No IPv4/IPv6 address anywhere in a label value.
    for (const line of text.split('\n').filter((l) => l.startsWith('tenet_'))) {
      expect(line).not.toMatch(/="[^"]*(\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f]*:[0-9a-f:]*)"/);
    }
  });

  it('is served over HTTP on loopback', async () => {
    const server = await serveMetrics(metrics, '127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await res.text()).toMatch(/^tenet_port_packets_total\{/m);
      expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('the config accepts only loopback listen addresses', () => {
    expect(parseListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListen('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseListen('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(parseListen('0.0.0.0:9464')).toMatch(/not a loopback/);
    expect(parseListen('198.18.0.1:9464')).toMatch(/not a loopback/);
    expect(parseListen('[::]:9464')).toMatch(/not a loopback/);
    expect(parseListen('127.0.0.1')).toMatch(/host:port/);
  });
});

describe('tenetd /metrics', () => {
  it('serves metrics that pass promtool, with API requests counted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenetd-metrics-'));
    const d = startDaemon(writeConfig(dir));
    try {
      const line = await d.waitLog((l) => l.msg === 'metrics listening');
      await d.waitLog((l) => l.event === 'ready');
      const client = new TenetClient(join(dir, 'run', 'tenetd.sock'));
      await client.policy('Apply', { text: demoPolicyText() });
      await client.policy('GetPort', { name: 'nope' }).catch(() => undefined);
      client.close();
      const text = await (await fetch(`http://127.0.0.1:${String(line.port)}/metrics`)).text();
      await promtool(text);
      expect(sample(text, 'tenet_api_requests_total', { method: 'Apply', code: 'OK' })).toBe(1);
      expect(
        sample(text, 'tenet_api_requests_total', { method: 'GetPort', code: 'NOT_FOUND' }),
      ).toBe(1);
      expect(sample(text, 'tenet_reconcile_duration_seconds_count', { kind: 'apply' })).toBe(1);
      expect(sample(text, 'tenet_map_entries', { map: 'tenet_records' })).toBe(16);
      expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    } finally {
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describePrivileged('metrics from real pinned per-CPU counter maps', () => {
  const pinRoot = `/sys/fs/bpf/tenet-test-${randomBytes(4).toString('hex')}`;
  let api: TestApi;
  let ncpus = 0;

  beforeAll(async () => {
    const { BpfMap, PerCpuTypedMap, MapType, numPossibleCpus } = await import(
      '../../agent/bpf/index.js'
    );
    const { CounterReader } = await import('../../agent/datapath/counters.js');
    mkdirSync(pinRoot, { recursive: true });
    ncpus = numPossibleCpus();
    // Every per-CPU counter map exactly as the datapath declares it (agent/abi/generated.ts).
    const created = new Map<string, BpfMapHandle>();
    for (const d of Object.values(Maps)) {
      if (!d.perCpu || !d.name.endsWith('_ctrs')) continue;
      const m = BpfMap.create({
        type: d.type === 'percpu_array' ? MapType.PERCPU_ARRAY : MapType.PERCPU_HASH,
        keySize: d.keySize,
        valueSize: d.valueSize,
        maxEntries: d.maxEntries,
        name: d.name,
      });
      m.pin(join(pinRoot, d.name));
      created.set(d.name, m);
    }
    const ports = created.get('tenet_port_ctrs') as BpfMapHandle;
    const drops = created.get('tenet_drop_ctrs') as BpfMapHandle;
    const vsidMap = new PerCpuTypedMap<number, VsidCounters>(
      created.get('tenet_vsid_ctrs') as BpfMapHandle,
      Maps.tenet_vsid_ctrs.key,
      Maps.tenet_vsid_ctrs.value,
    );
    vsidMap.set(
      5001,
      Array.from({ length: ncpus }, () => ({
        encap_packets: 4n,
        encap_bytes: 400n,
        decap_packets: 5n,
        decap_bytes: 500n,
      })),
    );
    vsidMap.close();
    for (const [name, m] of created)
      if (name !== 'tenet_port_ctrs' && name !== 'tenet_drop_ctrs') m.close();
    const portMap = new PerCpuTypedMap<PortKey, Counter>(
      ports,
      Maps.tenet_port_ctrs.key,
      Maps.tenet_port_ctrs.value,
    );
    const dropMap = new PerCpuTypedMap<number, Counter>(
      drops,
      Maps.tenet_drop_ctrs.key,
      Maps.tenet_drop_ctrs.value,
    );
    // Per CPU i: rx of vm-blue1 (ifindex 10) = i+1 packets, 100*(i+1) bytes.
    const perCpu = (f: (i: number) => number): Counter[] =>
      Array.from({ length: ncpus }, (_, i) => ({
        packets: BigInt(f(i)),
        bytes: BigInt(f(i) * 100),
      }));
    portMap.set(
      { ifindex: 10, direction: 0 },
      perCpu((i) => i + 1),
    );
    portMap.set(
      { ifindex: 11, direction: 1 },
      perCpu(() => 2),
    );
    dropMap.set(
      4,
      perCpu(() => 3),
    );
    portMap.close();
    dropMap.close();
    api = await startTestApi({ counters: new CounterReader(pinRoot) });
    await api.client.policy('Apply', { text: demoPolicyText() });
  });
  afterAll(async () => {
    await api?.close();
    rmSync(pinRoot, { recursive: true, force: true });
  });

  it('sums over CPUs, names ports and reasons, passes promtool', async () => {
    const metrics = new TenetMetrics(
      {
        counters: () => api.store.backend.counters(),
        state: () => ({ ready: true, policyVersion: api.store.version, policyKnown: true }),
      },
      () => ({ version: 'test', abiVersion: TENET_ABI_VERSION, libbpf: 'v1.1' }),
      { processMetrics: false },
    );
    const text = await metrics.scrape();
    await promtool(text);
    const n = (ncpus * (ncpus + 1)) / 2;
    expect(sample(text, 'tenet_port_packets_total', { port: 'blue-vm1', direction: 'rx' })).toBe(n);
    expect(sample(text, 'tenet_port_bytes_total', { port: 'blue-vm1', direction: 'rx' })).toBe(
      n * 100,
    );
    expect(sample(text, 'tenet_port_packets_total', { port: 'red-vm1', direction: 'tx' })).toBe(
      2 * ncpus,
    );
    expect(sample(text, 'tenet_drops_total', { reason: 'ipv4_truncated' })).toBe(3 * ncpus);
    expect(
      sample(text, 'tenet_vsid_encap_packets_total', { vsid: '5001', virtual_subnet: 'blue-web' }),
    ).toBe(4 * ncpus);
    expect(sample(text, 'tenet_vsid_decap_bytes_total', { vsid: '5001' })).toBe(500 * ncpus);
    const counters = await api.client.agent('GetCounters');
    expect(counters.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ port: 'blue-vm1', interface: 'vm-blue1', rxPackets: String(n) }),
      ]),
    );
    expect(counters.drops).toEqual([
      { reason: 'ipv4_truncated', packets: String(3 * ncpus), bytes: String(300 * ncpus) },
    ]);
    void run;
  });
});
