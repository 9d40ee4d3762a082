// Metrics of datapath events: tenet_datapath_events_total{type} and the reader's pauses come from
// the event reader's counts at scrape time; tenet_watch_events_suppressed_total{reason} counts
// every event a Watch stream did not get, and equals what the EventsSuppressed messages of that
// stream report.

import type { ClientReadableStream } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatapathEventSample, PolicyBackend } from '../../agent/api/backend.js';
import { TenetMetrics } from '../../agent/metrics/index.js';
import type { DatapathEventStats } from '../../agent/metrics/datapath-events.js';
import { startTestApi, type TestApi } from './helpers.js';

type Plain = Record<string, unknown>;

function metricValue(text: string, line: string): number {
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m === undefined ? NaN : Number(m.slice(line.length + 1));
}

describe('datapath event metrics', () => {
  let api: TestApi;
  let emit: ((e: DatapathEventSample) => void) | undefined;
  const stats: DatapathEventStats = { byKind: { drop: 1234 }, malformed: 2, pauses: 3 };
  const metrics = new TenetMetrics(
    {
      counters: async () => ({ ports: [], drops: [], vsids: [], maps: [] }),
      state: () => ({ ready: true, policyVersion: 0n, policyKnown: true }),
      datapathEvents: () => stats,
    },
    () => ({ version: 'test', abiVersion: 1, libbpf: 'none' }),
    { processMetrics: false },
  );
  beforeAll(async () => {
    api = await startTestApi({ metrics });
    (api.store.backend as PolicyBackend).watchDatapath = (listener) => {
      emit = listener;
      return () => {
        emit = undefined;
      };
    };
  });
  afterAll(async () => api.close());

  it('reports the reader counts by type', async () => {
    const text = await metrics.scrape();
    expect(metricValue(text, 'tenet_datapath_events_total{type="drop"}')).toBe(1234);
    expect(metricValue(text, 'tenet_datapath_events_total{type="malformed"}')).toBe(2);
    expect(metricValue(text, 'tenet_datapath_event_reader_pauses_total')).toBe(3);
    expect(metricValue(text, 'tenet_watch_events_suppressed_total{reason="rate_limited"}')).toBe(0);
  });

  it('counts what a watcher did not get, as its EventsSuppressed messages say', async () => {
    const stream: ClientReadableStream<Plain> = api.client.watch({
      datapathEvents: true,
      maxDatapathEventsPerSecond: 5,
    });
    const got: Plain[] = [];
    stream.on('data', (m: Plain) => got.push(m));
    stream.on('error', () => {});
    for (let i = 0; i < 100 && emit === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    const sample: DatapathEventSample = {
      kind: 'drop',
      reason: 'ip_src_spoof',
      ifindex: 10,
      interface: 'vm-blue1',
      port: 'blue-vm1',
      direction: 'rx',
      timeUnixNs: 1n,
      packetLength: 60,
      sample: Buffer.alloc(60),
    };
    for (let i = 0; i < 200; i++) emit?.(sample);
    const deadline = Date.now() + 5000;
    while (!got.some((m) => m.eventsSuppressed !== undefined) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    stream.cancel();
    const sent = got.filter((m) => m.datapathEvent !== undefined).length;
    const reported = got
      .filter((m) => m.eventsSuppressed !== undefined)
      .reduce((n, m) => n + Number((m.eventsSuppressed as Plain).rateLimited), 0);
    expect(sent).toBe(5);
    expect(reported).toBe(195);
    const text = await metrics.scrape();
    expect(metricValue(text, 'tenet_watch_events_suppressed_total{reason="rate_limited"}')).toBe(
      195,
    );
    expect(metricValue(text, 'tenet_watch_events_suppressed_total{reason="backpressure"}')).toBe(0);
  });
});
