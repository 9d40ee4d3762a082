// What the API needs from the datapath side of the agent, and one implementation of it.
//
// PolicyBackend is the seam between the control API (which owns the desired policy document,
// validates it and persists it) and whatever makes a host's datapath hold it: the HostAgent in
// production (agent/host), or ReconcilerBackend below, which runs the real compiler and the
// real reconciler over any PolicyTables (the BPF maps, or MemoryPolicyTables for tests and for a
// daemon started with `datapath.backend: memory`).
//
// Failures are classified by what they say, not by class identity, so any backend's errors
// work: a CompileError-like `issues` list (the host cannot realise a valid policy: an interface is
// missing) becomes FAILED_PRECONDITION naming the fields; a full map (E2BIG/ENOSPC, MapFullError)
// becomes RESOURCE_EXHAUSTED; a SettleError (the new policy is live, tidying up failed) counts as
// applied with a warning. A backend must leave the datapath as it was when apply() rejects.

import type { QosStatus } from '../host/qos.js';
import { CompileError, compile, type HostFacts } from '../compiler/index.js';
import type { SteeringSource } from './steering.js';
import type { TableName } from '../compiler/tables.js';
import { TABLES, TABLE_NAMES } from '../compiler/tables.js';
import { Maps, TENET_ABI_VERSION, type UnderlayNh } from '../abi/generated.js';
import type { Policy } from '../policy/index.js';
import {
  applyPlan,
  planTransaction,
  reconcileDelta,
  readInstalled,
  SettleError,
  type ApplyResult,
  type PolicyTables,
} from '../reconciler/index.js';
import { ApiError, Code, policyRejected } from './errors.js';
import { compileForSimulation, type SimulationInput } from './simulate.js';
import { recordsTableDelta, type RecordDelta } from './records-fast.js';
import type { DatapathEventStats } from '../metrics/datapath-events.js';

export interface TableChangeCount {
  readonly table: string;
  readonly added: number;
  readonly changed: number;
  readonly removed: number;
}

export interface BackendApplyResult {
  /** What changed (or would change, for a dry run) in this host's datapath tables. */
  readonly tables: readonly TableChangeCount[];
  /** Applied, with something an operator should see. */
  readonly warnings: readonly string[];
}

export interface PortCounterSample {
  readonly port: string;
  readonly interface: string;
  readonly direction: 'rx' | 'tx';
  readonly packets: bigint;
  readonly bytes: bigint;
}

export interface DropCounterSample {
  /** Catalogue name (DropReasonByValue). */
  readonly reason: string;
  readonly packets: bigint;
  readonly bytes: bigint;
}

export interface VsidCounterSample {
  readonly vsid: number;
  /** The virtual subnet's name in the applied policy ('' when it has none). */
  readonly virtualSubnet: string;
  readonly encapPackets: bigint;
  readonly encapBytes: bigint;
  readonly decapPackets: bigint;
  readonly decapBytes: bigint;
}

export interface MapUsageSample {
  readonly map: string;
  readonly entries: number;
  readonly capacity: number;
}

export interface CounterSnapshot {
  readonly ports: readonly PortCounterSample[];
  readonly drops: readonly DropCounterSample[];
  /** NVGRE traffic per virtual subnet (encapsulated to / decapsulated from the underlay). */
  readonly vsids: readonly VsidCounterSample[];
  readonly maps: readonly MapUsageSample[];
}

/** A datapath event (agent/datapath/events.ts) named for operators. */
export interface DatapathEventSample {
  /** 'drop'. */
  readonly kind: string;
  /** The drop reason's catalogue name. */
  readonly reason: string;
  readonly ifindex: number;
  /** The interface's name ('' when it is gone). */
  readonly interface: string;
  /** The VM port's name when the interface is one ('' otherwise). */
  readonly port: string;
  /** 'rx' or 'tx'. */
  readonly direction: string;
  /** Nanoseconds since the Unix epoch. */
  readonly timeUnixNs: bigint;
  readonly packetLength: number;
  /** The frame's first bytes. */
  readonly sample: Buffer;
}

export interface BackendInfo {
  readonly abiVersion: number;
  readonly libbpfVersion: string;
}

export interface PolicyBackend {
  /**
   * Loads or adopts the datapath; never flushes it. Resolves once the backend can take apply()
   * calls. `installed` says whether the datapath already held policy entries (a restarted agent
   * whose state file is gone must then not treat the policy as empty).
   */
  start(): Promise<{ readonly installed: boolean }>;
  /** Makes the datapath hold `policy` (dryRun: only says what would change). */
  apply(policy: Policy, opts: { readonly dryRun: boolean }): Promise<BackendApplyResult>;
  /**
   * Optional: makes the datapath hold `policy`, which differs from `base` only in the lookup
   * records of `delta` (agent/api/records-fast.ts); same guarantees as apply(). A backend whose
   * last applied policy is not `base` applies `policy` whole.
   */
  applyRecords?(policy: Policy, delta: RecordDelta, base: Policy): Promise<BackendApplyResult>;
  /** Optional: what the datapath event reader counted (metrics). */
  datapathEventStats?(): DatapathEventStats | undefined;
  /** Counters read now (summed over CPUs), attributed to ports by name. */
  counters(): Promise<CounterSnapshot>;
  info(): BackendInfo;
  /** Releases the agent's handles; the datapath keeps running. */
  stop(): Promise<void>;
  /**
   * What the reference model needs to answer Simulate for `policy` on this host: the tables
   * compiled from it with the host's interface facts, and the underlay next hops the datapath
   * has. Throws like apply() for a policy the host cannot carry (CompileError). Optional: a
   * backend without it answers Simulate with UNIMPLEMENTED.
   */
  simulationInput?(policy: Policy): Promise<SimulationInput>;
  /**
   * Delivers datapath events as they happen until the returned function is called. Must not
   * block: the listener is called on the event loop for every event. Throws an ApiError
   * (FAILED_PRECONDITION) when this datapath produces none; absent: the backend has no events.
   */
  watchDatapath?(listener: (e: DatapathEventSample) => void): () => void;
  /** Receive steering's state and counters (agent/api/steering.ts); absent: no steering. */
  steering?(): SteeringSource | undefined;
  /** QoS state of the datapath (agent/host/qos.ts); absent: the backend has no QoS. */
  qosStatus?(): Promise<QosStatus>;
}

const CODE_FULL = new Set(['E2BIG', 'ENOSPC', 'ENOMEM']);

function causes(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let cur = e, i = 0; cur !== undefined && cur !== null && i < 8; i++) {
    out.push(cur);
    cur = (cur as { cause?: unknown }).cause;
  }
  return out;
}

function isMapFull(e: unknown): boolean {
  return causes(e).some((c) => {
    const x = c as { name?: unknown; code?: unknown };
    return x.name === 'MapFullError' || (typeof x.code === 'string' && CODE_FULL.has(x.code));
  });
}

/** A backend failure as the status the caller should get. */
export function classifyBackendError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const err = e as { name?: unknown; message?: unknown; issues?: unknown };
  if (e instanceof CompileError || (err?.name === 'CompileError' && Array.isArray(err.issues))) {
    return policyRejected(
      e as CompileError,
      undefined,
      Code.FAILED_PRECONDITION,
      'this host cannot apply the policy',
    );
  }
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (isMapFull(e)) return new ApiError(Code.RESOURCE_EXHAUSTED, `datapath map full: ${message}`);
  return new ApiError(Code.INTERNAL, `datapath update failed: ${message}`);
}

/** True when the error means: applied, but the follow-up work failed (SettleError). */
export function isAppliedWithWarning(e: unknown): boolean {
  return e instanceof SettleError || (e as { name?: unknown })?.name === 'SettleError';
}

/** Per-table change counts of a reconciler result, in the reconciler's table order. */
export function tableChanges(changes: ApplyResult['changes']): TableChangeCount[] {
  return TABLE_NAMES.map((t) => ({ table: TABLES[t].map, ...changes[t] }));
}

export interface VsidTrafficSample {
  vsid: number;
  encap_packets: bigint;
  encap_bytes: bigint;
  decap_packets: bigint;
  decap_bytes: bigint;
}

/** What the API reads of the datapath's counters (CounterReader provides it). */
export interface CounterSource {
  portTraffic(): { ifindex: number; direction: 'rx' | 'tx'; packets: bigint; bytes: bigint }[];
  dropTotals(): { reason: string; packets: bigint; bytes: bigint }[];
  /** Per-VSID NVGRE counters (datapaths with tenet_vsid_ctrs). */
  vsidTraffic?(): VsidTrafficSample[];
}

/** Per-VSID samples named after the policy's virtual subnets. */
export function vsidSamples(
  source: CounterSource,
  policy: Policy | undefined,
): VsidCounterSample[] {
  if (source.vsidTraffic === undefined) return [];
  const names = new Map<number, string>();
  for (const d of policy?.routingDomains ?? [])
    for (const s of d.virtualSubnets) names.set(s.vsid, s.name);
  return source.vsidTraffic().map((v) => ({
    vsid: v.vsid,
    virtualSubnet: names.get(v.vsid) ?? '',
    encapPackets: v.encap_packets,
    encapBytes: v.encap_bytes,
    decapPackets: v.decap_packets,
    decapBytes: v.decap_bytes,
  }));
}

export interface ReconcilerBackendOptions {
  readonly hostName: string;
  readonly tables: PolicyTables;
  /** The host's interfaces, read when a policy is compiled. */
  readonly facts: () => HostFacts | Promise<HostFacts>;
  /** The datapath's counters (a CounterReader over pinned maps); none: no counters. */
  readonly counters?: CounterSource;
  /** Entries per table, for map fill levels (default: counted with getAll()). */
  readonly capacity?: Partial<Record<TableName, number>>;
  readonly libbpfVersion?: string;
  /** Underlay next hops (remote PA -> MAC) for Simulate (default: none resolved). */
  readonly underlay?: () => ReadonlyMap<number, UnderlayNh>;
}

/** The real compiler and reconciler over a PolicyTables. */
export class ReconcilerBackend implements PolicyBackend {
  private ifnames = new Map<number, { port: string; interface: string }>();
  private applied: Policy | undefined;

  constructor(private readonly opts: ReconcilerBackendOptions) {}

  async start(): Promise<{ installed: boolean }> {
    const installed = await readInstalled(this.opts.tables);
    return { installed: TABLE_NAMES.some((t) => installed[t].size > 0) };
  }

  async apply(policy: Policy, { dryRun }: { dryRun: boolean }): Promise<BackendApplyResult> {
    const facts = await this.opts.facts();
    const desired = compile(policy, this.opts.hostName, facts);
    const tables = this.opts.tables;
    const active = await tables.readGeneration();
    const plan = planTransaction(await readInstalled(tables), desired, active);
    if (dryRun) return { tables: tableChanges(plan.changes), warnings: [] };
    const warnings: string[] = [];
    let changes = plan.changes;
    try {
      changes = (await applyPlan(tables, plan)).changes;
    } catch (e) {
      if (!isAppliedWithWarning(e)) throw e;
      warnings.push((e as Error).message);
    }
    this.ifnames = portInterfaces(policy, this.opts.hostName, facts);
    this.applied = policy;
    return { tables: tableChanges(changes), warnings };
  }

  async applyRecords(
    policy: Policy,
    delta: RecordDelta,
    base: Policy,
  ): Promise<BackendApplyResult> {
    if (this.applied !== base) return this.apply(policy, { dryRun: false });
    const warnings: string[] = [];
    let changes: ApplyResult['changes'] | undefined;
    try {
      changes = (await reconcileDelta(this.opts.tables, recordsTableDelta(delta))).changes;
    } catch (e) {
      if (!isAppliedWithWarning(e)) throw e;
      warnings.push((e as Error).message);
    }
    this.applied = policy;
    return { tables: changes === undefined ? [] : tableChanges(changes), warnings };
  }

  async counters(): Promise<CounterSnapshot> {
    const ports: PortCounterSample[] = [];
    const drops: DropCounterSample[] = [];
    const vsids: VsidCounterSample[] = [];
    if (this.opts.counters !== undefined) {
      vsids.push(...vsidSamples(this.opts.counters, this.applied));
      for (const t of this.opts.counters.portTraffic()) {
        const who = this.ifnames.get(t.ifindex);
        // Counters of an interface that is no longer a port of this policy are not reported:
        // their label would have to be an ifindex, which means nothing to an operator.
        if (who === undefined) continue;
        ports.push({ ...who, direction: t.direction, packets: t.packets, bytes: t.bytes });
      }
      drops.push(...this.opts.counters.dropTotals());
    }
    const maps: MapUsageSample[] = [];
    for (const t of TABLE_NAMES) {
      const def = TABLES[t];
      const rows = await this.opts.tables.table(t).getAll();
      maps.push({
        map: def.map,
        entries: rows.length,
        capacity: this.opts.capacity?.[t] ?? Maps[def.map].maxEntries,
      });
    }
    return { ports, drops, vsids, maps };
  }

  info(): BackendInfo {
    return { abiVersion: TENET_ABI_VERSION, libbpfVersion: this.opts.libbpfVersion ?? 'none' };
  }

  async simulationInput(policy: Policy): Promise<SimulationInput> {
    const facts = await this.opts.facts();
    return {
      compiled: compileForSimulation(policy, this.opts.hostName, facts),
      facts,
      underlay: this.opts.underlay?.() ?? new Map(),
    };
  }

  async stop(): Promise<void> {}
}

/** ifindex -> port and interface name, for this host's ports. */
export function portInterfaces(
  policy: Policy,
  hostName: string,
  facts: HostFacts,
): Map<number, { port: string; interface: string }> {
  const out = new Map<number, { port: string; interface: string }>();
  const get = (name: string) =>
    facts instanceof Map
      ? facts.get(name)
      : Object.hasOwn(facts, name)
        ? (facts as Record<string, { ifindex: number }>)[name]
        : undefined;
  for (const port of policy.ports) {
    if (port.host !== hostName) continue;
    const f = get(port.interface);
    if (f !== undefined) out.set(f.ifindex, { port: port.name, interface: port.interface });
  }
  return out;
}
