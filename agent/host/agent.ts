// The host agent core: owns one host's datapath (BPF objects with maps pinned under a pin root,
// programs attached as pinned links) and makes it carry a policy.
//
//   const agent = await HostAgent.start({ hostName: 'hv1', pinRoot: TENET_PIN_ROOT, logger });
//   await agent.applyPolicy(policy);   // any number of times, serialised
//   await agent.stop();                // the datapath keeps forwarding
//
// start() loads the product objects against the pin root. Maps already pinned there are adopted
// (after checking they are of this agent's ABI) and links under <pinRoot>/links/ stay as they
// are: a restarted agent changes nothing until it is given a policy, and then only the
// difference. Nothing is ever flushed or detached on the way in or out.
//
// applyPolicy(policy), one at a time:
//   1. facts: the host's interfaces (ifindex, MAC, MTU) from the kernel;
//   2. compile: the policy's tables for this host; a policy naming an interface that does not
//      exist fails here (CompileError), before anything is touched;
//   3. underlay: next hops of the remote PAs the records name, resolved and written before any
//      record that needs them becomes visible;
//   4. attach the programs to interfaces that need them and do not have them yet. Attaching
//      before the policy is published means a new port is never without its program while the
//      maps already call it a port: the program sees an unknown port (and drops) until the flip,
//      instead of the port's traffic going to the host stack unfiltered;
//   5. reconcile: stage, flip one generation, settle (agent/reconciler). If it fails before the
//      flip, nothing became visible, and the attachments made in step 4 are removed again;
//   6. detach the programs from interfaces that left the policy (a VM migrated away), only now
//      that the published policy no longer names them; prune underlay entries nobody names.
// Re-applying the same policy writes nothing and attaches nothing.
//
// ABI migration: when the pin root is versioned (<base>/v<N>, TENET_PIN_ROOT) and a sibling of an
// OLDER version holds a live datapath, start() checks it can be migrated (agent/host/migrate.ts:
// refuses, changing nothing, next to a NEWER version's pins or when a map's old layout has no
// migration function) and loads the new objects with their maps under <base>/v<N>, but attaches
// nothing: the old datapath keeps forwarding. The cutover waits for the first applyPolicy, since
// the new policy maps can only be filled from the policy (the daemon's first apply is the
// persisted or the orchestrator's policy): before step 4 of that apply the new maps are
// reconciled, counters copied (converted where the layout changed), every old pinned link
// switched to the new program with an atomic link update (same link id: no forwarding gap) and
// re-pinned under <base>/v<N>/links/, the remaining counts copied, and only then the old pins
// removed. Steps 4-6 then find the attachments in place.
//
// The agent manages the network namespace it runs in, or another one given as a path (`netns`,
// for labs and tests): iproute2 runs there through nsenter and the binding's attach calls enter it.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Maps, TENET_ABI_VERSION, TENET_PIN_ROOT } from '../abi/generated.js';
import { BpfMap, type BpfProgram, type XdpMode } from '../bpf/index.js';
import { compileHostAcls, type CompiledPortAcl } from '../compiler/acl.js';
import {
  compile,
  compileSteering,
  type CompiledSteering,
  type CompiledTables,
} from '../compiler/index.js';
import {
  readOnlineCpus,
  STEER_CPU_PROGRAM,
  SteeringController,
  type SteeringOptions,
} from '../steering/controller.js';
import { RecordFlags } from '../compiler/tables.js';
import { datapathKnobs, loadObject, type ObjectName } from '../datapath/objects.js';
import { ipOf, networkOf, numberToIpv4, prefixContains } from '../policy/index.js';
import type { Policy } from '../policy/index.js';
import { AclTables } from '../reconciler/acl.js';
import { BpfPolicyTables, type TableOps } from '../reconciler/bpf-tables.js';
import {
  planTransaction,
  readInstalled,
  reconcile,
  reconcileDelta,
  type TableDelta,
  SettleError,
  StageError,
  type ApplyResult,
  type TransactionPlan,
} from '../reconciler/index.js';
import {
  ATTACHMENTS,
  Attachments,
  pinName,
  type AttachSpec,
  type AttachmentInfo,
  type DesiredAttachment,
} from './attach.js';
import { commandRunner, type CommandRunner } from './command.js';
import { readHostInterfaces, type HostInterfaces } from './facts.js';
import { errFields, silentLogger, type Logger } from './log.js';
import {
  addCounters,
  planMigration,
  removeOldPins,
  switchLink,
  type MigrationPlan,
} from './migrate.js';
import { checkPinnedMaps, preparePinRoot, type PinnedMapsReport } from './pins.js';
import { compileQos, type QosPlan } from '../compiler/qos.js';
import { QosManager, type QosApplyReport, type QosStatus } from './qos.js';
import {
  abortRecordsResize,
  beginRecordsResize,
  copyRecords,
  DEFAULT_RECORDS_CAPACITY,
  finishRecordsResize,
  RECORDS_MAP,
  type RecordsResize,
} from './capacity.js';
import {
  UnderlayResolver,
  type UnderlayOptions,
  type UnderlayStatus,
  type UnderlayTarget,
} from './underlay.js';

export interface HostAgentOptions {
  /** This host's name in the policy (providerAddresses[].host, ports[].host). */
  hostName: string;
  /** bpffs directory of this datapath instance (default TENET_PIN_ROOT). */
  pinRoot?: string;
  /**
   * Network namespace to manage, as a path (/run/netns/NAME). Absent: the agent's own. Used for
   * iproute2 (nsenter --net=) and the binding's attach calls.
   */
  netns?: string;
  /** How iproute2 and ping are run (default: commandRunner({ netns })). */
  runner?: CommandRunner;
  logger?: Logger;
  /** The attachment table (default ATTACHMENTS). */
  attachments?: readonly AttachSpec[];
  /** XDP attach mode (default 'auto': the driver's XDP where there is one). */
  xdpMode?: XdpMode;
  /** tc through tcx links (default true); false forces netlink filters. */
  preferTcx?: boolean;
  /** Underlay next-hop resolution knobs. */
  underlay?: Omit<UnderlayOptions, 'runner' | 'map' | 'logger'>;
  /**
   * Load the programs with drop events on (the tenet_cfg_drop_events knob): every drop also
   * sends a record to the tenet_events ring buffer. Default false. A restarted agent whose
   * setting differs from the attached programs' upgrades them atomically (attach.ts compares
   * the programs' .rodata, not only their tags).
   */
  dropEvents?: boolean;
  /** Size of the ACL connection tracking table (tenet_acl_ct) when it is created; 262,144. */
  aclConntrackEntries?: number;
  /**
   * The ABI version this agent speaks (default TENET_ABI_VERSION). Tests only: with `bpfDir`
   * pointing at objects built with -DTENET_ABI_VERSION_OVERRIDE=<n> it stands in for another
   * release's agent (migration between versioned pin roots).
   */
  abiVersion?: number;
  /** Directory of the BPF objects (default: $TENET_BPF_DIR or build/bpf/). */
  bpfDir?: string;
  /** Receive steering: dynamic mode's interval and thresholds, queue size. */
  steering?: SteeringOptions;
  /**
   * Entries of the lookup-records map (default TENET_RECORDS_MAX, the size of existing pins). A
   * pinned map of another size is resized without a forwarding gap (agent/host/capacity.ts);
   * a size below the records it holds refuses the start (CapacityError, nothing changed).
   */
  recordsCapacity?: number;
}

export interface ApplyReport {
  /** What the reconcile did (unchanged: no map was written). */
  readonly reconcile: ApplyResult;
  /** Attachments made, upgraded and removed by this apply (pin names `<ifname>:<program>`). */
  readonly attached: readonly string[];
  readonly upgraded: readonly string[];
  readonly detached: readonly string[];
  readonly underlay: UnderlayStatus;
  /** Underlay entries deleted because no record names their PA any more. */
  readonly underlayPruned: number;
  /** tc commands and QoS map writes this apply made (agent/host/qos.ts). */
  readonly qos: QosApplyReport;
  readonly durationMs: number;
}

export interface PlanReport {
  /** The reconciler's plan; plan.changes counts what readers would see change per table. */
  readonly plan: TransactionPlan;
  /** Attachments (pin names) that would be made and removed. */
  readonly attach: readonly string[];
  readonly detach: readonly string[];
}

export interface WriteCounters {
  readonly policy: Readonly<TableOps>;
  readonly underlay: { readonly writes: number; readonly deletes: number };
  readonly links: { readonly created: number; readonly updated: number; readonly removed: number };
}

export interface AgentStatus {
  readonly hostName: string;
  readonly pinRoot: string;
  readonly generation: 0 | 1;
  readonly attachments: readonly AttachmentInfo[];
  readonly underlay: UnderlayStatus;
  readonly writes: WriteCounters;
  /** Kernel ids of the pinned maps, by name. */
  readonly mapIds: Readonly<Record<string, number>>;
  readonly policyApplied: boolean;
}

/** The remote PAs the compiled records name, with how to reach each. */
export function underlayTargets(
  policy: Policy,
  hostName: string,
  compiled: CompiledTables,
  interfaces: HostInterfaces,
): UnderlayTarget[] {
  const local = policy.providerAddresses.filter((p) => p.host === hostName);
  const localPas = new Set([...compiled.localPas.values()].map((r) => r.key));
  const pas = new Set<number>();
  for (const { value } of compiled.records.values()) {
    if (value.pa !== 0 && (value.flags & RecordFlags.local) === 0 && !localPas.has(value.pa))
      pas.add(value.pa);
  }
  const targets: UnderlayTarget[] = [];
  for (const n of [...pas].sort((a, b) => a - b)) {
    const pa = numberToIpv4(n);
    const addr = ipOf(pa);
    // The local PA whose on-link prefix holds the remote one; else the only local PA.
    const onLink = local.find((l) => {
      if (l.prefixLength === undefined) return false;
      return prefixContains(networkOf(ipOf(l.address), l.prefixLength), addr);
    });
    const via = onLink ?? (local.length === 1 ? local[0] : undefined);
    const dev = via !== undefined && interfaces.has(via.interface) ? via.interface : undefined;
    const nextHop = onLink === undefined ? via?.underlayNextHop : undefined;
    targets.push({
      pa,
      ...(dev === undefined ? {} : { dev }),
      ...(nextHop === undefined ? {} : { nextHop }),
    });
  }
  return targets;
}

export class HostAgent {
  readonly hostName: string;
  readonly pinRoot: string;
  readonly netns: string | undefined;
  private readonly log: Logger;
  private readonly runner: CommandRunner;
  private readonly specs: readonly AttachSpec[];
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private policyApplied = false;
  /** Port ACL maps (agent/reconciler/acl.ts), opened on the first apply. */
  private acl: AclTables | undefined;
  /** Receive steering (absent when the XDP object has no cpumap program). */
  steering: SteeringController | undefined;
  /** Remote PAs the underlay follows and this host's PAs, as of the last full apply. */
  private targetPas = new Set<string>();
  private localPas = new Set<string>();
  /** Counters of the old datapath already added to the new maps (a retried cutover). */
  private migrationBase: Map<string, Map<string, Buffer>> | undefined;
  /** Uplink shaping and QoS maps (agent/host/qos.ts). */
  readonly qos: QosManager;

  private constructor(
    opts: HostAgentOptions,
    private readonly programs: ReadonlyMap<string, BpfProgram>,
    private readonly tables: BpfPolicyTables,
    private readonly underlay: UnderlayResolver,
    private readonly links: Attachments,
    /** What the pin root held when this agent started. */
    readonly adopted: PinnedMapsReport,
    /** A datapath of an older ABI waiting to be migrated by the next applyPolicy. */
    private migration: MigrationPlan | undefined,
    /** A resize of the records map waiting for its cutover at the next applyPolicy. */
    private resize: RecordsResize | undefined,
  ) {
    this.hostName = opts.hostName;
    this.pinRoot = opts.pinRoot ?? TENET_PIN_ROOT;
    this.netns = opts.netns;
    this.log = opts.logger ?? silentLogger;
    this.runner =
      opts.runner ?? commandRunner(opts.netns === undefined ? {} : { netns: opts.netns });
    this.specs = opts.attachments ?? ATTACHMENTS;
    this.qos = new QosManager({ pinRoot: this.pinRoot, runner: this.runner, logger: this.log });
  }

  /**
   * Loads (or adopts) the datapath under the pin root and starts following the underlay. Changes
   * nothing that is already there, except underlay next hops that are out of date.
   */
  static async start(opts: HostAgentOptions): Promise<HostAgent> {
    if (!opts.hostName) throw new TypeError('HostAgent.start: hostName is required');
    const pinRoot = opts.pinRoot ?? TENET_PIN_ROOT;
    const log = opts.logger ?? silentLogger;
    const specs = opts.attachments ?? ATTACHMENTS;
    const runner =
      opts.runner ?? commandRunner(opts.netns === undefined ? {} : { netns: opts.netns });

    const abiVersion = opts.abiVersion ?? TENET_ABI_VERSION;
    // Before anything is created: a refused migration leaves everything as it was.
    const migration = planMigration(pinRoot, abiVersion, new Set(specs.map((s) => s.program)));
    if (migration !== undefined) {
      log.info(
        {
          pinRoot,
          from: migration.from,
          fromVersion: migration.fromVersion,
          toVersion: abiVersion,
          maps: migration.maps.length,
          links: migration.links.length,
        },
        'datapath of an older ABI found: migrating it at the first policy apply',
      );
    }
    preparePinRoot(pinRoot, abiVersion);
    const adopted = checkPinnedMaps(pinRoot, new Set([RECORDS_MAP]));
    const recordsCapacity = opts.recordsCapacity ?? DEFAULT_RECORDS_CAPACITY;
    // Before the load: a refused size leaves everything as it was.
    const resize = beginRecordsResize(pinRoot, recordsCapacity);
    if (resize !== undefined) {
      log.info(
        { pinRoot, map: RECORDS_MAP, ...resize },
        'resizing the lookup-records map: the cutover happens at the next policy apply',
      );
    }
    log.info(
      { pinRoot, adoptedMaps: adopted.adopted.length, newMaps: adopted.absent.length },
      adopted.adopted.length > 0 ? 'adopting pinned datapath' : 'creating datapath',
    );

    const programs = new Map<string, BpfProgram>();
    const closeAll = (): void => {
      for (const p of programs.values()) p.close();
    };
    try {
      const objectNames = [...new Set(specs.map((s) => s.object))] as ObjectName[];
      for (const name of objectNames) {
        const obj = await loadObject(name, pinRoot, {
          knobs: datapathKnobs({ dropEvents: opts.dropEvents === true }),
          mapSizes: { tenet_acl_ct: opts.aclConntrackEntries ?? 262144 },
          maxEntries: { [RECORDS_MAP]: recordsCapacity },
          ...(opts.bpfDir === undefined ? {} : { dir: opts.bpfDir }),
        });
        try {
          const have = obj.programNames();
          for (const spec of specs.filter((s) => s.object === name)) {
            if (!have.includes(spec.program)) {
              throw new Error(
                `attachment table names program ${spec.program}, which object ${name} does not ` +
                  `have (it has: ${have.join(', ')})`,
              );
            }
            if (!programs.has(spec.program)) programs.set(spec.program, obj.program(spec.program));
          }
          if (have.includes(STEER_CPU_PROGRAM) && !programs.has(STEER_CPU_PROGRAM))
            programs.set(STEER_CPU_PROGRAM, obj.program(STEER_CPU_PROGRAM));
        } finally {
          obj.close();
        }
      }
      if (resize !== undefined) {
        const copied = copyRecords(resize);
        log.info({ map: RECORDS_MAP, ...copied }, 'records copied into the resized map');
      }
    } catch (e) {
      closeAll();
      if (resize !== undefined) {
        try {
          abortRecordsResize(resize);
        } catch (e2) {
          log.error(errFields(e2), 'putting the records map pin back failed');
        }
      }
      throw e;
    }

    let tables: BpfPolicyTables | undefined;
    let underlay: UnderlayResolver | undefined;
    try {
      tables = BpfPolicyTables.openPinned(pinRoot);
      underlay = new UnderlayResolver({
        ...opts.underlay,
        runner,
        map: BpfMap.openPinned(join(pinRoot, Maps.tenet_underlay.name)),
        logger: log,
      });
      const links = new Attachments({
        pinRoot,
        ...(opts.netns === undefined ? {} : { netns: opts.netns }),
        logger: log,
        specs,
        ...(opts.xdpMode === undefined ? {} : { xdpMode: opts.xdpMode }),
        ...(opts.preferTcx === undefined ? {} : { preferTcx: opts.preferTcx }),
      });
      const agent = new HostAgent(
        { ...opts, runner },
        programs,
        tables,
        underlay,
        links,
        adopted,
        migration,
        resize,
      );
      const cpuProg = programs.get(STEER_CPU_PROGRAM);
      if (cpuProg !== undefined) {
        agent.steering = new SteeringController(pinRoot, cpuProg, log, opts.steering);
      }
      await agent.adoptUnderlay();
      const found = links.list();
      log.info(
        {
          host: opts.hostName,
          attachments: found.length,
          defunct: found.filter((a) => a.kind === 'link' && a.ifindex === 0).length,
          generation: tables.readGeneration(),
        },
        'host agent started',
      );
      return agent;
    } catch (e) {
      await underlay?.close();
      tables?.close();
      closeAll();
      throw e;
    }
  }

  /** Seeds the underlay targets from the records the maps hold, so they are kept fresh. */
  private async adoptUnderlay(): Promise<void> {
    const installed = await readInstalled(this.tables);
    const localPas = new Set([...installed.localPas.values()].map((r) => r.key));
    const pas = new Set<number>();
    for (const { entry } of installed.records.values()) {
      for (const g of [0, 1] as const) {
        if ((entry.live & (1 << g)) === 0) continue;
        const v = entry.v[g];
        if (
          v !== undefined &&
          v.pa !== 0 &&
          (v.flags & RecordFlags.local) === 0 &&
          !localPas.has(v.pa)
        ) {
          pas.add(v.pa);
        }
      }
    }
    this.underlay.setTargets(
      [...pas].sort((a, b) => a - b).map((pa) => ({ pa: numberToIpv4(pa) })),
    );
    this.underlay.start();
    if (pas.size > 0) await this.underlay.refresh();
  }

  private serialise<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Makes the datapath carry `policy` (see the file comment). Serialised; throws on failure. */
  applyPolicy(policy: Policy): Promise<ApplyReport> {
    return this.serialise(() => this.doApply(policy));
  }

  private desiredAttachments(policy: Policy, interfaces: HostInterfaces): DesiredAttachment[] {
    const byRole = {
      'pa-nic': policy.providerAddresses
        .filter((p) => p.host === this.hostName)
        .map((p) => p.interface),
      'vm-port': policy.ports.filter((p) => p.host === this.hostName).map((p) => p.interface),
    };
    const out: DesiredAttachment[] = [];
    for (const spec of this.specs) {
      for (const ifname of [...new Set(byRole[spec.role])].sort()) {
        const i = interfaces.get(ifname);
        // compile() has already rejected a policy naming a missing interface.
        if (i === undefined) throw new Error(`interface ${ifname} vanished`);
        out.push({
          spec,
          ifname,
          ifindex: i.ifindex,
          prog: this.programs.get(spec.program) as BpfProgram,
        });
      }
    }
    return out;
  }

  private async doApply(policy: Policy): Promise<ApplyReport> {
    if (this.stopped) throw new Error('HostAgent: applyPolicy after stop()');
    const started = Date.now();
    const interfaces = await readHostInterfaces(this.runner);
    let compiled: CompiledTables;
    let acls: CompiledPortAcl[];
    let steering: Map<string, CompiledSteering>;
    try {
      compiled = compile(policy, this.hostName, interfaces);
      acls = compileHostAcls(policy, this.hostName, interfaces);
      steering = compileSteering(policy, this.hostName, interfaces, readOnlineCpus());
    } catch (e) {
      this.log.warn({ host: this.hostName, ...errFields(e) }, 'policy rejected for this host');
      throw e;
    }
    let qosPlan: QosPlan;
    try {
      qosPlan = compileQos(policy, this.hostName, interfaces);
    } catch (e) {
      this.log.warn({ host: this.hostName, ...errFields(e) }, 'QoS policy rejected for this host');
      throw e;
    }
    const desired = this.desiredAttachments(policy, interfaces);
    for (const pa of policy.providerAddresses) {
      if (pa.host !== this.hostName) continue;
      const has = interfaces.get(pa.interface)?.addresses.some((a) => a.address === pa.address);
      if (!has) {
        this.log.warn(
          { pa: pa.address, interface: pa.interface },
          'provider address is not configured on its interface; the host will not answer ARP for it',
        );
      }
    }

    // Next hops first: a record naming a new remote PA must find its MAC when it becomes visible.
    const targets = underlayTargets(policy, this.hostName, compiled, interfaces);
    this.underlay.setTargets(targets);
    this.targetPas = new Set(targets.map((t) => t.pa));
    this.localPas = new Set(
      policy.providerAddresses.filter((p) => p.host === this.hostName).map((p) => p.address),
    );
    const underlay = await this.underlay.refresh();

    if (this.migration !== undefined) await this.migrate(this.migration, compiled);

    // Port ACLs before the programs attach to new ports, so no port runs without its ACL.
    (this.acl ??= new AclTables(this.pinRoot)).apply(acls);
    const links = this.links.ensure(desired);
    if (this.resize !== undefined) {
      // Every attachment runs a program of the resized map now (ensure upgraded them); the old
      // map goes before anything is written to the new one (capacity.ts, step 4).
      finishRecordsResize(this.resize);
      this.log.info(
        { map: RECORDS_MAP, from: this.resize.from, to: this.resize.to, upgraded: links.updated },
        'lookup-records map resized',
      );
      this.resize = undefined;
    }
    let result: ApplyResult | undefined;
    let settleError: SettleError | undefined;
    try {
      result = await reconcile(this.tables, compiled);
    } catch (e) {
      if (e instanceof SettleError) {
        // The new generation is live; only tidying failed (the next reconcile finishes it). What
        // follows depends only on what readers see, so it goes on.
        settleError = e;
        this.log.warn({ host: this.hostName, ...errFields(e) }, 'policy live, settling failed');
      } else {
        if (e instanceof StageError && links.created.length > 0) {
          // Nothing became visible: take back what this apply attached.
          try {
            this.links.remove(links.created);
          } catch (e2) {
            this.log.error(errFields(e2), 'removing attachments after a failed stage failed');
          }
        }
        this.log.error({ host: this.hostName, ...errFields(e) }, 'reconcile failed');
        throw e;
      }
    }
    const keep = new Set(desired.map((d) => pinName(d.ifname, d.spec.program)));
    const detached = this.links.removeExcept(keep);
    const underlayPruned = await this.underlay.prune();
    this.applySteering(policy, steering, interfaces);
    const qos = await this.qos.apply(qosPlan, interfaces.keys());
    this.policyApplied = true;
    if (settleError !== undefined || result === undefined) throw settleError;
    const report: ApplyReport = {
      reconcile: result,
      attached: links.created,
      upgraded: links.updated,
      detached,
      underlay,
      underlayPruned,
      qos,
      durationMs: Date.now() - started,
    };
    this.log.info(
      {
        host: this.hostName,
        unchanged: result.unchanged,
        generation: result.generation,
        flipped: result.flipped,
        staged: result.staged,
        settled: result.settled,
        deleted: result.deleted,
        attached: links.created.length,
        upgraded: links.updated.length,
        detached: detached.length,
        underlayUnresolved: underlay.unresolved.length,
        durationMs: report.durationMs,
      },
      result.unchanged && links.created.length === 0 && detached.length === 0
        ? 'policy unchanged'
        : 'policy applied',
    );
    return report;
  }

  /** Steering follows the published policy; dynamic mode runs while any port is auto. */
  private applySteering(
    policy: Policy,
    steering: Map<string, CompiledSteering>,
    interfaces: HostInterfaces,
  ): void {
    if (this.steering === undefined) {
      if (steering.size > 0) {
        this.log.warn({ ports: steering.size }, 'steering requested, but the XDP object has none');
      }
      return;
    }
    const vmPorts = new Map<string, number>();
    for (const p of policy.ports) {
      const i = p.host === this.hostName ? interfaces.get(p.interface) : undefined;
      if (i !== undefined) vmPorts.set(p.name, i.ifindex);
    }
    try {
      this.steering.apply(steering, vmPorts);
    } catch (e) {
      // The policy is live; steering is placement only, so frames run in place meanwhile.
      this.log.error({ host: this.hostName, ...errFields(e) }, 'applying steering failed');
      throw e;
    }
    if ([...steering.values()].some((s) => s.mode === 'auto')) this.steering.start();
    else this.steering.stop();
  }

  /** A resize of the records map waiting for the next applyPolicy's cutover, if any. */
  get pendingResize(): RecordsResize | undefined {
    return this.resize;
  }

  /**
   * Makes the datapath carry `policy`, which differs from the last applied policy only in the
   * lookup records of `delta` (compiled already: agent/api/records-fast.ts): one staged
   * transaction over those keys (reconciler/delta.ts), with the guarantees of applyPolicy. Falls
   * back to applyPolicy(policy) when a delta record names a remote PA the underlay does not
   * follow yet (its next hop must be resolved first), or a migration or resize is pending.
   */
  applyRecords(policy: Policy, delta: TableDelta<'records'>): Promise<ApplyReport> {
    return this.serialise(async () => {
      const newPa = delta.upserts.find((r) => {
        const pa = numberToIpv4(r.value.pa);
        return r.value.pa !== 0 && !this.localPas.has(pa) && !this.targetPas.has(pa);
      });
      if (
        this.stopped ||
        !this.policyApplied ||
        this.migration !== undefined ||
        this.resize !== undefined ||
        newPa !== undefined
      ) {
        return this.doApply(policy);
      }
      const started = Date.now();
      let result: ApplyResult;
      try {
        result = await reconcileDelta(this.tables, delta);
      } catch (e) {
        if (e instanceof SettleError) {
          this.log.warn({ host: this.hostName, ...errFields(e) }, 'policy live, settling failed');
        } else {
          this.log.error({ host: this.hostName, ...errFields(e) }, 'record delta failed');
        }
        throw e;
      }
      return {
        reconcile: result,
        attached: [],
        upgraded: [],
        detached: [],
        underlay: this.underlay.status(),
        underlayPruned: 0,
        // Records carry no QoS: the delta touches neither tc nor the QoS maps.
        qos: { tc: [], mapWrites: 0, mapDeletes: 0 },
        durationMs: Date.now() - started,
      };
    });
  }

  /** QoS state: kernel capabilities, HTB classes with statistics, per-port QoS counters. */
  qosStatus(): Promise<QosStatus> {
    return this.qos.status();
  }

  /** The older datapath the next applyPolicy migrates from (its pin root), if any. */
  get pendingMigration(): string | undefined {
    return this.migration?.from;
  }

  /** The cutover from an older ABI's datapath (see the file comment and migrate.ts). */
  private async migrate(plan: MigrationPlan, compiled: CompiledTables): Promise<void> {
    const started = Date.now();
    // 1. The new maps carry the policy before any program reads them.
    try {
      await reconcile(this.tables, compiled);
    } catch (e) {
      if (!(e instanceof SettleError)) {
        this.log.error(
          { host: this.hostName, from: plan.from, ...errFields(e) },
          'migration: filling the new maps failed; the old datapath keeps running',
        );
        throw e;
      }
    }
    const counterMaps = plan.maps.filter((m) => m.action === 'counters');
    const opened = counterMaps.map((m) => ({
      plan: m,
      old: BpfMap.openPinned(join(plan.from, m.name)),
      new: BpfMap.openPinned(join(this.pinRoot, m.name)),
    }));
    const switched: Record<string, unknown>[] = [];
    try {
      // 2. Counters so far (once, even if a cutover is retried).
      let base = this.migrationBase;
      if (base === undefined) {
        base = new Map();
        for (const o of opened) {
          base.set(o.plan.name, addCounters(o.old, o.new, o.plan.migration!).read);
        }
        this.migrationBase = base;
      }
      // 3. Every attachment: the same link, the new program, atomically.
      mkdirSync(join(this.pinRoot, 'links'), { recursive: true });
      for (const name of plan.links) {
        const program = name.slice(name.indexOf(':') + 1);
        const prog = this.programs.get(program) as BpfProgram;
        const r = switchLink(
          join(plan.from, 'links', name),
          join(this.pinRoot, 'links', name),
          prog,
        );
        switched.push({ attachment: name, ...r });
      }
      // 4. What the old programs counted until the switch (let runs in flight finish).
      await new Promise((r) => setTimeout(r, 20));
      let copied = 0;
      for (const o of opened) {
        copied += addCounters(o.old, o.new, o.plan.migration!, base.get(o.plan.name)).written;
      }
      // 5. Only now the old pins go.
      const { removed, left } = removeOldPins(plan);
      this.migration = undefined;
      this.migrationBase = undefined;
      this.log.info(
        {
          host: this.hostName,
          from: plan.from,
          to: this.pinRoot,
          fromVersion: plan.fromVersion,
          toVersion: plan.toVersion,
          maps: plan.maps.map(
            (m) =>
              `${m.name}: ${m.action}${m.migration === undefined ? '' : ` (${m.migration.describe})`}`,
          ),
          links: switched,
          counterEntriesTopUp: copied,
          removedPins: removed.length,
          left,
          durationMs: Date.now() - started,
        },
        'migrated the datapath to a new ABI version',
      );
      if (left.length > 0) {
        this.log.warn({ from: plan.from, left }, 'migration: unplanned pins left in the old root');
      }
    } catch (e) {
      this.log.error(
        { host: this.hostName, from: plan.from, switched, ...errFields(e) },
        'migration failed; both datapaths carry the policy, the next apply retries',
      );
      throw e;
    } finally {
      for (const o of opened) {
        o.old.close();
        o.new.close();
      }
    }
  }

  /**
   * What applyPolicy(policy) would do, without doing it: the planned table changes and the
   * attachments it would make and remove. Throws like applyPolicy for a policy this host cannot
   * carry (CompileError).
   */
  plan(policy: Policy): Promise<PlanReport> {
    return this.serialise(async () => {
      const interfaces = await readHostInterfaces(this.runner);
      const compiled = compile(policy, this.hostName, interfaces);
      const active = await this.tables.readGeneration();
      const plan = planTransaction(await readInstalled(this.tables), compiled, active);
      const wanted = this.desiredAttachments(policy, interfaces).map((d) =>
        pinName(d.ifname, d.spec.program),
      );
      const have = new Set(this.links.names());
      return {
        plan,
        attach: wanted.filter((n) => !have.has(n)),
        detach: [...have].filter((n) => !wanted.includes(n)),
      };
    });
  }

  /** True when the policy maps hold any entry (a datapath with policy was adopted or applied). */
  async hasInstalledPolicy(): Promise<boolean> {
    const installed = await readInstalled(this.tables);
    return Object.values(installed).some((rows) => rows.size > 0);
  }

  /** The managed namespace's interfaces, read now (what a compile of a policy would see). */
  readInterfaces(): Promise<HostInterfaces> {
    return readHostInterfaces(this.runner);
  }

  /** Resolves the underlay next hops now (also runs on neighbour changes and periodically). */
  refreshUnderlay(): Promise<UnderlayStatus> {
    return this.underlay.refresh({ reroute: true });
  }

  /** Map and link writes since start. */
  writes(): WriteCounters {
    return {
      policy: { ...this.tables.ops },
      underlay: { ...this.underlay.ops },
      links: { ...this.links.ops },
    };
  }

  status(): AgentStatus {
    return {
      hostName: this.hostName,
      pinRoot: this.pinRoot,
      generation: this.tables.readGeneration(),
      attachments: this.links.list(),
      underlay: this.underlay.status(),
      writes: this.writes(),
      mapIds: mapIds(this.pinRoot),
      policyApplied: this.policyApplied,
    };
  }

  /**
   * Stops the agent: waits for an apply in flight, stops the underlay monitor and closes every
   * handle. The datapath keeps running from its pins; a new start() on the pin root adopts it.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.queue.catch(() => undefined);
    await this.underlay.close();
    this.steering?.close();
    this.tables.close();
    this.acl?.close();
    for (const p of this.programs.values()) p.close();
    this.log.info({ host: this.hostName }, 'host agent stopped; datapath left running');
  }

  /**
   * Removes the datapath from the host: detaches every attachment under links/ and stops. The
   * pinned maps stay (remove the pin root to drop them). For decommissioning and tests.
   */
  async teardown(): Promise<string[]> {
    await this.queue.catch(() => undefined);
    const removed = this.links.removeExcept(new Set());
    await this.stop();
    return removed;
  }
}

/** Kernel ids of the maps pinned under pinRoot, by name. */
export function mapIds(pinRoot: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const desc of Object.values(Maps)) {
    if (desc.pinning !== 'by_name') continue;
    try {
      const m = BpfMap.openPinned(join(pinRoot, desc.name));
      try {
        out[desc.name] = m.info().id;
      } finally {
        m.close();
      }
    } catch {
      /* not pinned */
    }
  }
  return out;
}
