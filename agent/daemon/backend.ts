// The datapath backend tenetd runs with (config `datapath.backend`):
//
//   host    the BPF datapath of this host through the HostAgent (agent/host): loads or adopts the
//           objects, pins and links under pinRoot, applies policies, leaves the datapath running
//           on stop. Counters come from the pinned per-CPU maps (CounterReader).
//   memory  the real compiler and reconciler over in-memory tables, with the host's interfaces
//           taken from the config: a daemon that touches no kernel state (development, API tests).
//
// The HostAgent is reached through the small HostAgentLike interface below and loaded at run
// time, so the API and daemon do not depend on the host agent's internals at compile time.

import type { QosStatus } from '../host/qos.js';
import { join } from 'node:path';
import { Maps, TENET_ABI_VERSION, type MapName, type UnderlayNh } from '../abi/generated.js';
import {
  ReconcilerBackend,
  isAppliedWithWarning,
  portInterfaces,
  tableChanges,
  vsidSamples,
  type BackendApplyResult,
  type CounterSource,
  type BackendInfo,
  type CounterSnapshot,
  type DatapathEventSample,
  type MapUsageSample,
  type PolicyBackend,
} from '../api/backend.js';
import { ApiError, Code } from '../api/errors.js';
import type { SteeringSource } from '../api/steering.js';
import { steeringOptions } from '../steering/config.js';
import { compileForSimulation, type SimulationInput } from '../api/simulate.js';
import type { HostFacts } from '../compiler/index.js';
import type { TableName } from '../compiler/tables.js';
import type * as EventsModuleNs from '../datapath/events.js';
import type { DatapathEventRecord } from '../datapath/events.js';
import { TABLES, TABLE_NAMES } from '../compiler/tables.js';
import type { Policy } from '../policy/index.js';
import {
  MemoryPolicyTables,
  type ApplyResult,
  type TableDelta,
  type TransactionPlan,
} from '../reconciler/index.js';
import { recordsTableDelta, type RecordDelta } from '../api/records-fast.js';
import type { DatapathEventStats } from '../metrics/datapath-events.js';
import type { Config } from './config.js';

type LogFn = (fields: Record<string, unknown>, message: string) => void;
export interface BackendLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** What tenetd uses of agent/host's HostAgent. */
export interface HostAgentLike {
  applyPolicy(policy: Policy): Promise<{ readonly reconcile: ApplyResult }>;
  applyRecords?(
    policy: Policy,
    delta: TableDelta<'records'>,
  ): Promise<{ readonly reconcile: ApplyResult }>;
  plan(policy: Policy): Promise<{ readonly plan: TransactionPlan }>;
  hasInstalledPolicy(): Promise<boolean>;
  /** The managed namespace's interfaces (what a compile sees). */
  readInterfaces(): Promise<HostFacts>;
  qosStatus?(): Promise<QosStatus>;
  stop(): Promise<void>;
  /** Receive steering (absent when the datapath has none). */
  readonly steering?: SteeringSource | undefined;
}

export interface HostAgentModule {
  HostAgent: {
    start(opts: {
      hostName: string;
      pinRoot?: string;
      netns?: string;
      logger?: BackendLogger;
      dropEvents?: boolean;
      aclConntrackEntries?: number;
      steering?: ReturnType<typeof steeringOptions>;
      recordsCapacity?: number;
    }): Promise<HostAgentLike>;
  };
}

interface CounterReaderLike extends CounterSource {
  close(): void;
}

type EventsModule = typeof EventsModuleNs;
type EventPump = EventsModuleNs.DatapathEventPump;

/** How often an event from an interface we cannot name may trigger a re-read of the names. */
const NAME_REFRESH_MS = 5000;
/** Events held back (per watcher) while the interface names are being read. */
const MAX_WAITING_FOR_NAMES = 1000;

/** PolicyBackend over a HostAgent. */
export class HostBackend implements PolicyBackend {
  private agent: HostAgentLike | undefined;
  private reader: CounterReaderLike | undefined;
  private applied: Policy | undefined;
  private libbpf = 'unknown';
  private events: EventsModule | undefined;
  private pump: EventPump | undefined;
  /** ifindex -> interface name, for datapath events (re-read after applies and on a miss). */
  private ifnames = new Map<number, string>();
  private namesReadAt = 0;
  private namesReading: Promise<void> | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: BackendLogger,
    private readonly load: () => Promise<HostAgentModule> = async () =>
      (await import(new URL('../host/index.js', import.meta.url).href)) as HostAgentModule,
  ) {}

  private get host(): HostAgentLike {
    if (this.agent === undefined) throw new Error('the host backend is not started');
    return this.agent;
  }

  async start(): Promise<{ installed: boolean }> {
    const { HostAgent } = await this.load();
    const { libbpfVersion } = await import('../bpf/native.js');
    this.libbpf = libbpfVersion();
    this.agent = await HostAgent.start({
      hostName: this.config.hostName,
      pinRoot: this.config.pinRoot,
      ...(this.config.datapath.netns === undefined ? {} : { netns: this.config.datapath.netns }),
      logger: this.log,
      dropEvents: this.config.datapath.dropEvents,
      aclConntrackEntries: this.config.datapath.aclConntrackEntries,
      steering: steeringOptions(this.config.datapath.steering),
      recordsCapacity: this.config.capacity.lookupRecords,
    });
    if (this.config.datapath.dropEvents) this.events = await import('../datapath/events.js');
    return { installed: await this.agent.hasInstalledPolicy() };
  }

  steering(): SteeringSource | undefined {
    return this.agent?.steering;
  }

  async apply(policy: Policy, { dryRun }: { dryRun: boolean }): Promise<BackendApplyResult> {
    if (dryRun) {
      const report = await this.host.plan(policy);
      return { tables: tableChanges(report.plan.changes), warnings: [] };
    }
    try {
      const report = await this.host.applyPolicy(policy);
      this.applied = policy;
      this.refreshNames();
      return { tables: tableChanges(report.reconcile.changes), warnings: [] };
    } catch (e) {
      if (!isAppliedWithWarning(e)) throw e;
      this.applied = policy;
      this.refreshNames();
      return { tables: [], warnings: [(e as Error).message] };
    }
  }

  async applyRecords(
    policy: Policy,
    delta: RecordDelta,
    base: Policy,
  ): Promise<BackendApplyResult> {
    const host = this.host;
    if (this.applied !== base || host.applyRecords === undefined)
      return this.apply(policy, { dryRun: false });
    try {
      const report = await host.applyRecords(policy, recordsTableDelta(delta));
      this.applied = policy;
      return { tables: tableChanges(report.reconcile.changes), warnings: [] };
    } catch (e) {
      if (!isAppliedWithWarning(e)) throw e;
      this.applied = policy;
      return { tables: [], warnings: [(e as Error).message] };
    }
  }

  datapathEventStats(): DatapathEventStats | undefined {
    return this.pump?.stats;
  }

  /** Re-reads the interface names for datapath events (only while someone watches them). */
  private refreshNames(): void {
    if (this.pump === undefined || this.pump.subscribers === 0 || this.agent === undefined) return;
    if (this.namesReading !== undefined) return;
    this.namesReadAt = Date.now();
    const agent = this.agent;
    this.namesReading = (async () => {
      try {
        const facts = await agent.readInterfaces();
        const entries = facts instanceof Map ? [...facts] : Object.entries(facts);
        this.ifnames = new Map(entries.map(([name, f]) => [f.ifindex, name]));
      } catch (e) {
        this.log.warn({ err: String(e) }, 'cannot read interface names for datapath events');
      } finally {
        this.namesReading = undefined;
      }
    })();
  }

  watchDatapath(listener: (e: DatapathEventSample) => void): () => void {
    if (!this.config.datapath.dropEvents || this.events === undefined) {
      throw new ApiError(
        Code.FAILED_PRECONDITION,
        'drop events are off on this host: set datapath.dropEvents: true in the tenetd config',
      );
    }
    if (this.pump === undefined) {
      this.pump = new this.events.DatapathEventPump(this.config.pinRoot, {
        onError: (e) => this.log.warn({ err: String(e) }, 'datapath event ring'),
      });
    }
    const first = this.pump.subscribers === 0;
    let waiting = 0;
    let active = true;
    const deliver = (r: DatapathEventRecord): void => {
      if (!active) return;
      const name = this.ifnames.get(r.ifindex) ?? '';
      const port =
        this.applied?.ports.find((p) => p.host === this.config.hostName && p.interface === name)
          ?.name ?? '';
      listener({
        kind: r.kind,
        reason: r.reason,
        ifindex: r.ifindex,
        interface: name,
        port,
        direction: r.direction,
        timeUnixNs: r.timeUnixNs,
        packetLength: r.packetLength,
        sample: r.sample,
      });
    };
    const unsubscribe = this.pump.subscribe((r) => {
      if (!this.ifnames.has(r.ifindex)) {
        if (Date.now() - this.namesReadAt > NAME_REFRESH_MS) this.refreshNames();
        // Names are being read: hold a bounded number of events for them, in order.
        const reading = this.namesReading;
        if (reading !== undefined && waiting < MAX_WAITING_FOR_NAMES) {
          waiting++;
          void reading.then(() => {
            waiting--;
            deliver(r);
          });
          return;
        }
      }
      deliver(r);
    });
    if (first) this.refreshNames();
    return () => {
      active = false;
      unsubscribe();
    };
  }

  private async counterReader(): Promise<CounterReaderLike | undefined> {
    if (this.reader !== undefined) return this.reader;
    try {
      const { CounterReader } = await import('../datapath/counters.js');
      this.reader = new CounterReader(this.config.pinRoot);
    } catch (e) {
      this.log.warn({ err: String(e) }, 'datapath counters are not readable');
    }
    return this.reader;
  }

  qosStatus(): Promise<QosStatus> {
    if (this.host.qosStatus === undefined) throw new Error('this host agent has no QoS');
    return this.host.qosStatus();
  }

  async counters(): Promise<CounterSnapshot> {
    const reader = await this.counterReader();
    const { ifNameToIndex } = await import('../bpf/native.js');
    const ports = [];
    if (reader !== undefined && this.applied !== undefined) {
      const facts: Record<string, { ifindex: number }> = {};
      for (const p of this.applied.ports) {
        if (p.host !== this.config.hostName) continue;
        try {
          facts[p.interface] = {
            ifindex: ifNameToIndex({
              ifname: p.interface,
              ...(this.config.datapath.netns === undefined
                ? {}
                : { netns: this.config.datapath.netns }),
            }),
          };
        } catch {
          /* the interface is gone */
        }
      }
      const names = portInterfaces(this.applied, this.config.hostName, facts as never);
      for (const t of reader.portTraffic()) {
        const who = names.get(t.ifindex);
        if (who !== undefined)
          ports.push({ ...who, direction: t.direction, packets: t.packets, bytes: t.bytes });
      }
    }
    return {
      ports,
      drops: reader?.dropTotals() ?? [],
      vsids: reader === undefined ? [] : vsidSamples(reader, this.applied),
      maps: await pinnedMapUsage(this.config.pinRoot),
    };
  }

  info(): BackendInfo {
    return { abiVersion: TENET_ABI_VERSION, libbpfVersion: this.libbpf };
  }

  async simulationInput(policy: Policy): Promise<SimulationInput> {
    const facts = await this.host.readInterfaces();
    return {
      compiled: compileForSimulation(policy, this.config.hostName, facts),
      facts,
      underlay: await pinnedUnderlay(this.config.pinRoot),
    };
  }

  async stop(): Promise<void> {
    this.pump?.close();
    this.pump = undefined;
    await this.namesReading;
    this.reader?.close();
    this.reader = undefined;
    await this.agent?.stop();
  }
}

/** Entries and capacity of the pinned policy maps (keys counted with get_next_key). */
async function pinnedMapUsage(pinRoot: string): Promise<MapUsageSample[]> {
  const { BpfMap } = await import('../bpf/native.js');
  const out: MapUsageSample[] = [];
  for (const t of TABLE_NAMES) {
    const name: MapName = TABLES[t].map;
    let map;
    try {
      map = BpfMap.openPinned(join(pinRoot, name));
    } catch {
      continue;
    }
    try {
      let entries = 0;
      for (let key = map.nextKey(null); key !== null; key = map.nextKey(key)) entries++;
      out.push({ map: name, entries, capacity: map.maxEntries });
    } finally {
      map.close();
    }
  }
  return out;
}

/** The underlay next hops the datapath holds (tenet_underlay), by remote PA. */
async function pinnedUnderlay(pinRoot: string): Promise<Map<number, UnderlayNh>> {
  const { BpfMap, TypedMap } = await import('../bpf/index.js');
  const d = Maps.tenet_underlay;
  const out = new Map<number, UnderlayNh>();
  let map;
  try {
    map = new TypedMap(BpfMap.openPinned(join(pinRoot, d.name)), d.key, d.value);
  } catch {
    return out;
  }
  try {
    for (const [pa, nh] of map.entries()) out.set(pa, nh);
  } finally {
    map.close();
  }
  return out;
}

/** The memory backend's underlay next hops (config `datapath.underlay`). */
function configUnderlay(config: Config): Map<number, UnderlayNh> {
  const out = new Map<number, UnderlayNh>();
  for (const [pa, mac] of Object.entries(config.datapath.underlay)) {
    const n = pa.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
    out.set(n, { mac: Uint8Array.from(mac.split(':').map((h) => parseInt(h, 16))) });
  }
  return out;
}

export function memoryBackend(config: Config): PolicyBackend {
  // The BPF maps' capacities, so a full "map" behaves as it would on the real datapath.
  const capacity = Object.fromEntries(
    TABLE_NAMES.map((t) => [t, Maps[TABLES[t].map].maxEntries]),
  ) as Record<TableName, number>;
  capacity.records = config.capacity.lookupRecords;
  const tables = new MemoryPolicyTables({ capacity });
  return new ReconcilerBackend({
    hostName: config.hostName,
    tables,
    facts: () => config.datapath.interfaces,
    underlay: () => configUnderlay(config),
    capacity,
    libbpfVersion: 'none (memory backend)',
  });
}

export function createBackend(config: Config, log: BackendLogger): PolicyBackend {
  return config.datapath.backend === 'memory'
    ? memoryBackend(config)
    : new HostBackend(config, log);
}
