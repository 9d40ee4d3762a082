// Datapath events on PolicyService.Watch.
//
// Without privileges: the per-watcher token bucket, and Watch over a real socket with a backend
// that floods events: a watcher gets what its rate allows, and an EventsSuppressed message counts
// the rest; a memory backend and a bad rate are refused with their status codes.
//
// On a lab host: a real tenetd (host backend) first runs without drop events (Watch for them is
// FAILED_PRECONDITION), then restarts with `datapath.dropEvents: true`: the attached programs are
// upgraded in place (same links, new programs: the knob lives in .rodata, which the program tag
// does not cover), and spoofed frames sent from a VM come back as Watch events with the reason
// ip_src_spoof, the interface and port names and the sampled header; what exceeds the watcher's
// rate is counted, not sent.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DatapathEventSample, PolicyBackend } from '../../agent/api/backend.js';
import { TenetClient, fieldViolations } from '../../agent/api/client.js';
import { TokenBucket, WatcherEvents } from '../../agent/api/events.js';
import { watchLine } from '../../agent/cli/main.js';
import { BpfLink, type BpfObject } from '../../agent/bpf/index.js';
import { DatapathEventPump, type DatapathEventRecord } from '../../agent/datapath/events.js';
import { loadObject } from '../../agent/datapath/objects.js';
import { describePacket, packet } from '../../agent/packet/index.js';
import { buildTopology, useLab, type Topology } from '../helpers/lab.js';
import { useObjects } from '../helpers/datapath.js';
import { describePrivileged } from '../helpers/privilege.js';
import { startDaemon, writeConfig, type DaemonProc } from './daemon-helpers.js';
import { demoPolicyText, startTestApi, type TestApi } from './helpers.js';

type Plain = Record<string, unknown>;

/** Collects a Watch stream's messages; resolves waits on them. */
function collect(stream: ClientReadableStream<Plain>) {
  const messages: Plain[] = [];
  let error: ServiceError | undefined;
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  stream.on('data', (m: Plain) => {
    messages.push(m);
    wake();
  });
  stream.on('error', (e: ServiceError) => {
    error = e;
    wake();
  });
  return {
    messages,
    get error() {
      return error;
    },
    /** Resolves once pred holds (checked on every message), rejects after timeoutMs. */
    async until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
      const end = Date.now() + timeoutMs;
      while (!pred()) {
        if (error !== undefined && !pred()) throw error;
        const left = end - Date.now();
        if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(messages).slice(-2000)}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
}

const spoofed = packet()
  .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:12' })
  .ipv4({ src: '198.19.1.99', dst: '198.19.1.12', id: 0 })
  .udp({ sport: 4000, dport: 5000 })
  .payload(60)
  .build();

describe('the per-watcher rate limit', () => {
  it('passes a burst of `rate`, then `rate` a second; counts the rest', () => {
    let now = 0;
    const bucket = new TokenBucket(10, () => now);
    const first = Array.from({ length: 15 }, () => bucket.take()).filter(Boolean).length;
    expect(first).toBe(10);
    now += 500;
    expect(Array.from({ length: 15 }, () => bucket.take()).filter(Boolean).length).toBe(5);
    now += 10_000;
    expect(Array.from({ length: 15 }, () => bucket.take()).filter(Boolean).length).toBe(10);

    const w = new WatcherEvents(3, () => now);
    const verdicts = Array.from({ length: 6 }, () => w.admit(0));
    expect(verdicts).toEqual([
      'send',
      'send',
      'send',
      'rate_limited',
      'rate_limited',
      'rate_limited',
    ]);
    expect(w.admit(5000)).toBe('backpressure');
    expect(w.report()).toEqual({ rateLimited: 3, backpressure: 1, total: 4 });
    expect(w.report()).toBeUndefined();
  });
});

describe('tenetctl watch lines', () => {
  it('prints a drop, a suppression report and a policy change on one line each', () => {
    const ns = BigInt(Date.UTC(2025, 0, 2, 3, 4, 5, 6)) * 1_000_000n;
    expect(
      watchLine({
        datapathEvent: {
          kind: 'drop',
          reason: 'ip_src_spoof',
          interface: 'vm-blue1',
          port: 'blue-vm1',
          direction: 'rx',
          timeUnixNs: String(ns),
          packetLength: 102,
          sampleDecode: 'IPv4 198.19.1.99 > 198.19.1.12',
        },
      }),
    ).toBe(
      '2025-01-02T03:04:05.006Z drop ip_src_spoof vm-blue1 (port blue-vm1) rx 102 bytes: IPv4 198.19.1.99 > 198.19.1.12',
    );
    expect(watchLine({ eventsSuppressed: { rateLimited: '7', total: '9' } })).toBe(
      'suppressed 7 over the rate, 0 for backpressure (9 in all)',
    );
    expect(watchLine({ version: '3', policyChanged: { method: 'Apply' } })).toBe(
      'version 3 Apply ',
    );
  });
});

describe('Watch with datapath events', () => {
  let api: TestApi;
  let emit: ((e: DatapathEventSample) => void) | undefined;
  let subscribed = 0;
  beforeEach(async () => {
    api = await startTestApi();
    subscribed = 0;
  });
  afterEach(async () => {
    emit = undefined;
    await api.close();
  });

  /** Gives the test backend an event source the test drives. */
  function withEvents(): void {
    (api.store.backend as PolicyBackend).watchDatapath = (listener) => {
      subscribed++;
      emit = listener;
      return () => {
        subscribed--;
        emit = undefined;
      };
    };
  }

  const sample = (i: number): DatapathEventSample => ({
    kind: 'drop',
    reason: 'ip_src_spoof',
    ifindex: 10,
    interface: 'vm-blue1',
    port: 'blue-vm1',
    direction: 'rx',
    timeUnixNs: BigInt(Date.now()) * 1_000_000n + BigInt(i),
    packetLength: spoofed.length,
    sample: spoofed.subarray(0, 64),
  });

  it('FAILED_PRECONDITION on a backend without events; INVALID_ARGUMENT for a bad rate', async () => {
    const w = collect(api.client.watch({ datapathEvents: true }));
    await w.until(() => w.error !== undefined);
    expect(status[w.error?.code ?? 0]).toBe('FAILED_PRECONDITION');
    expect(w.error?.details).toMatch(/produces no datapath events/);
    withEvents();
    const bad = collect(
      api.client.watch({ datapathEvents: true, maxDatapathEventsPerSecond: 100_000 }),
    );
    await bad.until(() => bad.error !== undefined);
    expect(status[bad.error?.code ?? 0]).toBe('INVALID_ARGUMENT');
    expect(fieldViolations(bad.error as ServiceError).map((v) => v.field)).toEqual([
      'max_datapath_events_per_second',
    ]);
    expect(subscribed).toBe(0);
  });

  it('a flood reaches each watcher at its own rate; the excess is counted', async () => {
    withEvents();
    const slow = collect(
      api.client.watch({
        includeCurrent: true,
        datapathEvents: true,
        maxDatapathEventsPerSecond: 10,
      }),
    );
    await slow.until(() => slow.messages.length === 1);
    const unwatched = { policyOnly: collect(api.client.watch({ includeCurrent: true })) };
    await unwatched.policyOnly.until(() => unwatched.policyOnly.messages.length === 1);
    expect(subscribed).toBe(1);
    for (let i = 0; i < 500; i++) emit?.(sample(i));
    const events = (): Plain[] =>
      slow.messages.map((m) => m.datapathEvent as Plain).filter((e) => e !== undefined);
    const suppressed = (): Plain[] =>
      slow.messages.map((m) => m.eventsSuppressed as Plain).filter((e) => e !== undefined);
    await slow.until(() => suppressed().length > 0, 5000);
    expect(events()).toHaveLength(10);
    expect(suppressed()[0]).toEqual({ rateLimited: '490', total: '490' });
    expect(events()[0]).toMatchObject({
      kind: 'drop',
      reason: 'ip_src_spoof',
      port: 'blue-vm1',
      interface: 'vm-blue1',
      ifindex: 10,
      direction: 'rx',
      packetLength: spoofed.length,
      sampleDecode: describePacket(spoofed.subarray(0, 64)),
    });
    expect(Buffer.from(events()[0]?.sample as string, 'base64')).toEqual(spoofed.subarray(0, 64));
    // A watcher that did not ask for datapath events gets none.
    expect(unwatched.policyOnly.messages.every((m) => m.datapathEvent === undefined)).toBe(true);
    // Cancelling the watch unsubscribes from the backend.
    const stream = api.client.watch({ datapathEvents: true });
    const third = collect(stream);
    await new Promise((r) => setTimeout(r, 200));
    expect(subscribed).toBe(2);
    stream.cancel();
    await third.until(() => third.error !== undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(subscribed).toBe(1);
  });
});

describePrivileged('the event pump', () => {
  const loaded = useObjects();
  let obj: BpfObject | undefined;
  afterAll(() => obj?.close());

  it('reads the ring only while subscribed, skips what came before, and caps its rate', async () => {
    obj = await loadObject('tenet_port', loaded.pinRoot, { knobs: { tenet_cfg_drop_events: 1 } });
    const prog = obj.program('tenet_port_ingress');
    const pump = new DatapathEventPump(loaded.pinRoot, { maxPerSecond: 10 });
    try {
      const drop = (n: number): void => {
        for (let i = 0; i < n; i++) expect(prog.testRun({ data: spoofed }).retval).toBe(2);
      };
      drop(5); // before anyone listens: never delivered
      const got: DatapathEventRecord[] = [];
      const unsubscribe = pump.subscribe((e) => got.push(e));
      drop(25);
      await new Promise((r) => setTimeout(r, 400));
      expect(got).toHaveLength(10);
      expect(pump.stats.pauses).toBe(1);
      // What tenet_datapath_events_total{type} reports (agent/metrics/datapath-events.ts).
      expect(pump.stats.byKind).toEqual({ drop: 10 });
      expect(got[0]).toMatchObject({
        kind: 'drop',
        reason: 'port_unknown',
        ifindex: 1,
        direction: 'rx',
        packetLength: spoofed.length,
      });
      expect(got[0]?.sample.equals(spoofed.subarray(0, 64))).toBe(true);
      const unixMs = Number((got[0]?.timeUnixNs ?? 0n) / 1_000_000n);
      expect(Math.abs(unixMs - Date.now())).toBeLessThan(2000);
      // The rest waited in the ring and comes in the next seconds, 10 at a time.
      await new Promise((r) => setTimeout(r, 1300));
      expect(got.length).toBeGreaterThanOrEqual(19);
      expect(got.length).toBeLessThanOrEqual(20);
      unsubscribe();
      expect(pump.subscribers).toBe(0);
      const seen = got.length;
      drop(3);
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toHaveLength(seen);
    } finally {
      pump.close();
      prog.close();
    }
  });
});

describePrivileged('drop events from a real tenetd on a lab host', () => {
  const ref = useLab('tenetd-events', async (lab) => {
    const topo: Topology = await buildTopology(lab, {
      hosts: [
        {
          name: 'hv1',
          phys: { name: 'eth0', addrs: ['198.18.0.1/24'] },
          vms: [
            { name: 'blue1', port: 'vm-blue1', mac: '02:00:00:b1:00:11' },
            { name: 'red1', port: 'vm-red1', mac: '02:00:00:4e:00:11' },
          ],
        },
      ],
    });
    return { topo, pinRoot: join(await lab.bpffsDir(), 'hv1') };
  });
  const dir = mkdtempSync(join(tmpdir(), 'tenetd-events-'));
  let daemon: DaemonProc | undefined;
  afterAll(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function config(dropEvents: boolean): string {
    const netns = ref.value.topo.host('hv1').ns.path;
    return writeConfig(dir, {
      pinRoot: ref.value.pinRoot,
      datapath: `datapath:\n  backend: host\n  netns: ${netns}\n  dropEvents: ${dropEvents}\n`,
    });
  }

  function portLink(): { id: number; progId: number } {
    const link = BpfLink.openPinned(
      join(ref.value.pinRoot, 'links', 'vm-blue1:tenet_port_ingress'),
    );
    try {
      const i = link.info();
      return { id: i.id, progId: i.progId };
    } finally {
      link.close();
    }
  }

  /** Sends `count` copies of `frame` from the VM's eth0 (a raw AF_PACKET socket). */
  async function sendFromVm(frame: Buffer, count: number): Promise<void> {
    const script = [
      'import socket, sys',
      's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
      "s.bind(('eth0', 0))",
      'f = bytes.fromhex(sys.argv[1])',
      'for _ in range(int(sys.argv[2])): s.send(f)',
    ].join('\n');
    await ref.value.topo
      .vm('blue1')
      .ns.execOk(['python3', '-c', script, frame.toString('hex'), String(count)], {
        timeoutMs: 20_000,
      });
  }

  it('knob off: no events; knob on: an atomic program upgrade, then drops on Watch', async () => {
    daemon = startDaemon(config(false));
    await daemon.waitLog((l) => l.event === 'ready', 60_000);
    let client = new TenetClient(join(dir, 'run', 'tenetd.sock'));
    await client.policy('Apply', { text: demoPolicyText() });
    const off = collect(client.watch({ datapathEvents: true }));
    await off.until(() => off.error !== undefined);
    expect(status[off.error?.code ?? 0]).toBe('FAILED_PRECONDITION');
    expect(off.error?.details).toMatch(/dropEvents: true/);
    const before = portLink();
    client.close();
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);

    daemon = startDaemon(config(true));
    await daemon.waitLog((l) => l.event === 'ready', 60_000);
    // Same link, new program: upgraded in place, never detached.
    const after = portLink();
    expect(after.id).toBe(before.id);
    expect(after.progId).not.toBe(before.progId);
    expect(
      daemon.logs.some(
        (l) => l.msg === 'upgraded an attachment to the loaded program' && l.linkId === before.id,
      ),
    ).toBe(true);

    client = new TenetClient(join(dir, 'run', 'tenetd.sock'));
    try {
      const w = collect(
        client.watch({ includeCurrent: true, datapathEvents: true, maxDatapathEventsPerSecond: 5 }),
      );
      await w.until(() => w.messages.length >= 1);
      const sent = Date.now();
      await sendFromVm(spoofed, 50);
      const spoofs = (): Plain[] =>
        w.messages
          .map((m) => m.datapathEvent as Plain | undefined)
          .filter((e): e is Plain => e !== undefined && e.reason === 'ip_src_spoof');
      const suppressedTotal = (): number =>
        w.messages
          .map((m) => m.eventsSuppressed as Plain | undefined)
          .reduce((n, s) => n + Number(s?.rateLimited ?? 0) + Number(s?.backpressure ?? 0), 0);
      const delivered = (): number => w.messages.filter((m) => m.datapathEvent).length;
      await w.until(() => spoofs().length > 0 && delivered() + suppressedTotal() >= 50, 15_000);
      const ev = spoofs()[0] as Plain;
      expect(ev).toMatchObject({
        kind: 'drop',
        reason: 'ip_src_spoof',
        interface: 'vm-blue1',
        port: 'blue-vm1',
        direction: 'rx',
        packetLength: spoofed.length,
      });
      expect(Buffer.from(ev.sample as string, 'base64')).toEqual(spoofed.subarray(0, 64));
      expect(ev.sampleDecode).toMatch(/IPv4 198\.19\.1\.99 > 198\.19\.1\.12/);
      const ms = Number(BigInt(ev.timeUnixNs as string) / 1_000_000n);
      expect(ms).toBeGreaterThanOrEqual(sent - 1000);
      expect(ms).toBeLessThanOrEqual(Date.now() + 1000);
      // At most a burst of 5 and 5 a second more reached the watcher; the rest was counted.
      expect(delivered()).toBeLessThanOrEqual(5 + 5 * Math.ceil((Date.now() - sent) / 1000));
      expect(suppressedTotal()).toBeGreaterThanOrEqual(50 - delivered());
      // The drops were counted by the datapath regardless.
      const counters = await client.agent('GetCounters');
      const drops = counters.drops as { reason: string; packets: string }[];
      expect(
        Number(drops.find((d) => d.reason === 'ip_src_spoof')?.packets ?? 0),
      ).toBeGreaterThanOrEqual(50);
      // tenetd stays responsive, and Simulate on the host backend says the same about the frame.
      expect(await client.agent('GetStatus')).toMatchObject({ ready: true });
      expect(await client.agent('Simulate', { port: 'blue-vm1', frame: spoofed })).toMatchObject({
        ingressInterface: 'vm-blue1',
        verdict: 'DATAPATH_VERDICT_DROP',
        dropReason: 'ip_src_spoof',
      });
    } finally {
      client.close();
    }
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
  });
});
