// tenetd's Prometheus metrics. The datapath's counters live in per-CPU BPF maps that the agent
// never resets; they are read at scrape time (one backend.counters() per scrape, summed over
// CPUs) and exposed as counters with the map's value, so a restarted agent continues the series
// where it was. Event metrics of the agent itself (reconciles, API calls) are ordinary prom-client
// counters and histograms.
//
// Conventions: base units (seconds, bytes), `_total` on counters, labels are names an operator
// knows (port and interface names, the drop reason's catalogue name, map names, RPC methods and
// status codes), never IP addresses.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  DatapathEventMetrics,
  type DatapathEventStats,
  type SuppressReason,
} from './datapath-events.js';
import type { CounterSnapshot, VsidCounterSample } from '../api/backend.js';

export interface BuildInfo {
  readonly version: string;
  readonly abiVersion: number;
  readonly libbpf: string;
}

export interface MetricsSource {
  /** Datapath counters and map fill levels, read now. */
  counters(): Promise<CounterSnapshot>;
  /** Agent state for gauges. */
  state(): { ready: boolean; policyVersion: bigint; policyKnown: boolean };
  /** Datapath event reader counts (absent: no events on this backend). */
  datapathEvents?(): DatapathEventStats | undefined;
}

const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

const NON_COMPLIANT_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

const EMPTY: CounterSnapshot = { ports: [], drops: [], vsids: [], maps: [] };

export class TenetMetrics {
  readonly registry = new Registry();
  private snapshot: CounterSnapshot = EMPTY;
  private readonly reconcileDuration: Histogram<'kind'>;
  private readonly reconcileErrors: Counter<'kind'>;
  private readonly requests: Counter<'method' | 'code'>;
  private readonly requestDuration: Histogram<'method' | 'code'>;
  private readonly refused: Counter;
  private readonly scrapeErrors: Counter;
  private readonly events: DatapathEventMetrics;

  constructor(
    private readonly source: MetricsSource,
    /** Read at scrape time (the libbpf version is known once the backend has started). */
    build: () => BuildInfo,
    opts: { processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client names three gauges `_total`, which Prometheus reserves for counters (promtool
      // check metrics rejects them); the same facts are in nodejs_active_handles and friends.
      for (const name of NON_COMPLIANT_DEFAULTS) this.registry.removeSingleMetric(name);
    }

    new Gauge({
      name: 'tenet_build_info',
      help: 'tenetd build: agent version, datapath ABI version and libbpf version (value 1)',
      labelNames: ['version', 'abi_version', 'libbpf'],
      registers,
      collect() {
        const b = build();
        this.reset();
        this.set({ version: b.version, abi_version: String(b.abiVersion), libbpf: b.libbpf }, 1);
      },
    });

    // collect() runs with the metric as `this`; these reach the collector's state.
    const current = (): CounterSnapshot => this.snapshot;
    const state = (): ReturnType<MetricsSource['state']> => this.source.state();
    new Counter({
      name: 'tenet_port_packets_total',
      help: 'Packets through a VM port, by direction (rx: from the VM, tx: to the VM)',
      labelNames: ['port', 'interface', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const p of current().ports) {
          this.inc(
            { port: p.port, interface: p.interface, direction: p.direction },
            Number(p.packets),
          );
        }
      },
    });
    new Counter({
      name: 'tenet_port_bytes_total',
      help: 'Bytes through a VM port, by direction (rx: from the VM, tx: to the VM)',
      labelNames: ['port', 'interface', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const p of current().ports) {
          this.inc(
            { port: p.port, interface: p.interface, direction: p.direction },
            Number(p.bytes),
          );
        }
      },
    });
    new Counter({
      name: 'tenet_drops_total',
      help: 'Packets the datapath dropped, by reason (the drop reason catalogue name)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const d of current().drops) this.inc({ reason: d.reason }, Number(d.packets));
      },
    });
    new Counter({
      name: 'tenet_drop_bytes_total',
      help: 'Bytes of the packets the datapath dropped, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const d of current().drops) this.inc({ reason: d.reason }, Number(d.bytes));
      },
    });
    for (const [name, help, pick] of [
      [
        'tenet_vsid_encap_packets_total',
        'Packets of a virtual subnet encapsulated towards the underlay',
        (v: VsidCounterSample) => v.encapPackets,
      ],
      [
        'tenet_vsid_encap_bytes_total',
        'Bytes of a virtual subnet encapsulated towards the underlay',
        (v: VsidCounterSample) => v.encapBytes,
      ],
      [
        'tenet_vsid_decap_packets_total',
        'Packets of a virtual subnet decapsulated from the underlay',
        (v: VsidCounterSample) => v.decapPackets,
      ],
      [
        'tenet_vsid_decap_bytes_total',
        'Bytes of a virtual subnet decapsulated from the underlay',
        (v: VsidCounterSample) => v.decapBytes,
      ],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: ['vsid', 'virtual_subnet'],
        registers,
        collect() {
          this.reset();
          for (const v of current().vsids) {
            this.inc({ vsid: String(v.vsid), virtual_subnet: v.virtualSubnet }, Number(pick(v)));
          }
        },
      });
    }
    new Gauge({
      name: 'tenet_map_entries',
      help: 'Entries in a datapath map',
      labelNames: ['map'],
      registers,
      collect() {
        this.reset();
        for (const m of current().maps) this.set({ map: m.map }, m.entries);
      },
    });
    new Gauge({
      name: 'tenet_map_capacity_entries',
      help: 'Entries a datapath map can hold (max_entries)',
      labelNames: ['map'],
      registers,
      collect() {
        this.reset();
        for (const m of current().maps) this.set({ map: m.map }, m.capacity);
      },
    });
    new Gauge({
      name: 'tenet_ready',
      help: '1 once the first reconcile has finished',
      registers,
      collect() {
        this.set(state().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tenet_policy_known',
      help: '1 while the agent knows its desired policy (0 after the state was lost, until an Apply)',
      registers,
      collect() {
        this.set(state().policyKnown ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tenet_policy_version',
      help: 'Version of the desired policy (incremented by every change)',
      registers,
      collect() {
        this.set(Number(state().policyVersion));
      },
    });

    this.reconcileDuration = new Histogram({
      name: 'tenet_reconcile_duration_seconds',
      help: 'Time to compile a policy and reconcile the datapath with it (kind: apply or dry_run)',
      labelNames: ['kind'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'tenet_reconcile_errors_total',
      help: 'Reconciles the datapath refused or that failed',
      labelNames: ['kind'],
      registers,
    });
    this.requests = new Counter({
      name: 'tenet_api_requests_total',
      help: 'gRPC requests by method and status code',
      labelNames: ['method', 'code'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'tenet_api_request_duration_seconds',
      help: 'gRPC request latency by method and status code',
      labelNames: ['method', 'code'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.refused = new Counter({
      name: 'tenet_api_connections_refused_total',
      help: 'Control socket connections refused by the peer credential check',
      registers,
    });
    this.scrapeErrors = new Counter({
      name: 'tenet_scrape_errors_total',
      help: 'Scrapes whose datapath counters could not be read',
      registers,
    });
    for (const kind of ['apply', 'dry_run']) this.reconcileErrors.inc({ kind }, 0);
    this.events = new DatapathEventMetrics(this.registry, () => this.source.datapathEvents?.());
  }

  /** A datapath event not sent to a watcher (agent/api/events.ts WatcherEvents). */
  eventsSuppressed(reason: SuppressReason): void {
    this.events.suppressed(reason);
  }

  observeReconcile(seconds: number, ok: boolean, dryRun: boolean): void {
    const kind = dryRun ? 'dry_run' : 'apply';
    this.reconcileDuration.observe({ kind }, seconds);
    if (!ok) this.reconcileErrors.inc({ kind });
  }

  observeRequest(method: string, code: string, seconds: number): void {
    this.requests.inc({ method, code });
    this.requestDuration.observe({ method, code }, seconds);
  }

  connectionRefused(): void {
    this.refused.inc();
  }

  private scrapes: Promise<unknown> = Promise.resolve();

  /** The exposition text, with the datapath read now (one scrape at a time). */
  scrape(): Promise<string> {
    const run = this.scrapes.then(() => this.scrapeNow());
    this.scrapes = run.catch(() => undefined);
    return run;
  }

  private async scrapeNow(): Promise<string> {
    try {
      this.snapshot = await this.source.counters();
    } catch {
      this.snapshot = EMPTY;
      this.scrapeErrors.inc();
    }
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = EMPTY;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
