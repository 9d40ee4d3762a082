// The agent's side of receive steering: writes each steered port's entry (tenet_steer) and the
// per-CPU queues it needs (tenet_cpumap, each running the cpumap program tenet_xdp_cpu), and in
// dynamic mode (policy mode auto) measures per-CPU pipeline load every interval and moves ports
// between CPUs (agent/steering/balance.ts decides; a move is one map update, counted and logged).
//
// Load comes from the per-CPU port counters: a VM port's tx counter is bumped by whichever CPU
// delivered the frame, so its per-CPU deltas say where each port's receive pipeline ran, steered
// or not. Moving a port may reorder the frames of its flows that are in flight at that instant
// (some still queued on the old CPU while new ones run on the new one); between moves nothing is
// reordered.
//
// State that matters survives the agent: the entries are in pinned maps, and a restarted agent
// keeps an auto port on the CPU its entry names (if still a candidate) instead of reshuffling.
// The move count and dwell times are the running agent's own.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Maps, SteerMode, type SteerEntry } from '../abi/generated.js';
import { openPinnedPerCpu } from '../datapath/pinned.js';
import { U32 } from '../abi/codec.js';
import type { PerCpuTypedMap } from '../bpf/index.js';
import { BpfMap, TypedMap, isBpfError, numPossibleCpus, type BpfProgram } from '../bpf/index.js';
import { parseCpuList, type CompiledSteering } from '../compiler/steering.js';
import { errFields, silentLogger, type Logger } from '../host/log.js';
import {
  DEFAULT_BALANCE,
  balanceConfigProblems,
  decideMove,
  initialCpu,
  type BalanceConfig,
  type Move,
} from './balance.js';

/** Name of the cpumap program in the tenet_xdp object. */
export const STEER_CPU_PROGRAM = 'tenet_xdp_cpu';
const SET_MAX = 16;
const DIR_TX = 1;

export interface SteeringOptions {
  /** How often dynamic mode samples the counters and may move a port (default 1000 ms). */
  readonly intervalMs?: number;
  /** Dynamic mode's thresholds (defaults: DEFAULT_BALANCE). */
  readonly balance?: Partial<BalanceConfig>;
  /** Frames each CPU's cpumap queue holds (default 2048). */
  readonly qsize?: number;
}

export interface SteeringCpuCounters {
  readonly cpu: number;
  /** Frames delivered to the port by this CPU (its pipeline ran here), from the port counters. */
  readonly delivered: bigint;
  readonly steered: bigint;
  readonly local: bigint;
  readonly fallback: bigint;
  readonly pipeline: bigint;
}

export interface PortSteeringStatus {
  readonly port: string;
  readonly interface: string;
  readonly ifindex: number;
  readonly mode: 'fixed' | 'spread' | 'auto';
  /** The policy's set (auto: the candidates). */
  readonly cpus: readonly number[];
  /** The CPUs the datapath entry names now (auto: the one it is on). */
  readonly current: readonly number[];
  /** Times dynamic mode moved this port (since this agent started). */
  readonly moves: number;
  /** Pipeline load measured in the last interval, packets per second. */
  readonly pps: number;
}

export interface SteeringStatus {
  readonly ports: readonly PortSteeringStatus[];
  readonly moves: number;
  /** Pipeline load per CPU in the last interval, packets per second. */
  readonly cpuPps: ReadonlyArray<{ cpu: number; pps: number }>;
  readonly balance: BalanceConfig;
  readonly intervalMs: number;
}

interface PortState {
  compiled: CompiledSteering;
  /** auto: the CPU it is on. */
  cpu: number;
  since: number;
  moves: number;
  pps: number;
}

/** The host's online CPUs (/sys/devices/system/cpu/online: CPUs are not per network namespace). */
export function readOnlineCpus(): number[] {
  return parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
}

export class SteeringController {
  readonly balance: BalanceConfig;
  readonly intervalMs: number;
  private readonly qsize: number;
  private readonly steer: TypedMap<number, SteerEntry>;
  private readonly cpumap: BpfMap;
  private readonly portCtrs: PerCpuTypedMap<
    { ifindex: number; direction: number },
    { packets: bigint; bytes: bigint }
  >;
  private readonly steerCtrs: PerCpuTypedMap<
    number,
    { steered: bigint; local: bigint; fallback: bigint; pipeline: bigint }
  >;
  private readonly ports = new Map<string, PortState>();
  /** Every VM port of the host (name -> ifindex): all of them count towards CPU load. */
  private vmPorts = new Map<string, number>();
  private last: { at: number; perPort: Map<number, bigint[]> } | undefined;
  private cpuPps = new Map<number, number>();
  private lastMoveAt = -Infinity;
  private totalMoves = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    pinRoot: string,
    private readonly cpuProgram: BpfProgram,
    private readonly log: Logger = silentLogger,
    opts: SteeringOptions = {},
  ) {
    this.balance = { ...DEFAULT_BALANCE, ...opts.balance };
    const problems = balanceConfigProblems(this.balance);
    if (problems.length > 0) throw new RangeError(`steering.balance: ${problems.join('; ')}`);
    this.intervalMs = opts.intervalMs ?? 1000;
    this.qsize = opts.qsize ?? 2048;
    const open = (name: string) => BpfMap.openPinned(join(pinRoot, name));
    this.steer = new TypedMap(open(Maps.tenet_steer.name), U32, Maps.tenet_steer.value);
    this.cpumap = open(Maps.tenet_cpumap.name);
    this.portCtrs = openPinnedPerCpu(pinRoot, Maps.tenet_port_ctrs);
    this.steerCtrs = openPinnedPerCpu(pinRoot, Maps.tenet_steer_cnt);
  }

  get moves(): number {
    return this.totalMoves;
  }

  /**
   * Makes the datapath steer as compiled (this host's steered ports, by port name); vmPorts: every
   * VM port of the host (name -> ifindex). Queues first, then entries, then removals, so a frame
   * never finds an entry whose queue is missing (it would only fall back, counted).
   */
  apply(
    compiled: ReadonlyMap<string, CompiledSteering>,
    vmPorts: ReadonlyMap<string, number>,
    now: number = Date.now(),
  ): { written: number; deleted: number; queues: number } {
    this.vmPorts = new Map(vmPorts);
    const needed = new Set<number>();
    for (const c of compiled.values()) for (const cpu of c.cpus) needed.add(cpu);
    let queues = this.ensureQueues(needed);

    // Auto ports keep their CPU where they can: ours, or (after a restart) the pinned entry's.
    const perCpu = new Map<number, number>();
    for (const [name, st] of this.ports) {
      const c = compiled.get(name);
      if (c?.mode === 'auto' && c.cpus.includes(st.cpu))
        perCpu.set(st.cpu, (perCpu.get(st.cpu) ?? 0) + 1);
    }
    let written = 0;
    const next = new Map<string, PortState>();
    for (const c of [...compiled.values()].sort((a, b) => (a.port < b.port ? -1 : 1))) {
      const old = this.ports.get(c.port);
      let cpu = c.cpus[0] as number;
      let since = old?.since ?? now;
      if (c.mode === 'auto') {
        const pinned = this.steer.get(c.ifindex);
        if (old?.compiled.mode === 'auto' && c.cpus.includes(old.cpu)) cpu = old.cpu;
        else if (
          pinned?.mode === SteerMode.fixed &&
          pinned.ncpus === 1 &&
          c.cpus.includes(pinned.cpus[0] as number)
        )
          cpu = pinned.cpus[0] as number;
        else {
          cpu = initialCpu(c.cpus, perCpu, this.cpuPps);
          perCpu.set(cpu, (perCpu.get(cpu) ?? 0) + 1);
          since = now;
        }
      }
      const entry = entryOf(c, cpu);
      const have = this.steer.get(c.ifindex);
      if (have === undefined || !sameEntry(have, entry)) {
        this.steer.set(c.ifindex, entry);
        written++;
      }
      next.set(c.port, {
        compiled: c,
        cpu,
        since,
        moves: old?.moves ?? 0,
        pps: old?.pps ?? 0,
      });
    }
    const keep = new Set([...compiled.values()].map((c) => c.ifindex));
    let deleted = 0;
    for (const k of [...this.steer.keys()]) {
      if (!keep.has(k)) {
        this.steer.delete(k);
        deleted++;
      }
    }
    this.ports.clear();
    for (const [k, v] of next) this.ports.set(k, v);
    queues += this.pruneQueues(needed);
    if (written + deleted + queues > 0) {
      this.log.info(
        {
          steered: compiled.size,
          written,
          deleted,
          queueChanges: queues,
          cpus: [...needed].sort((a, b) => a - b),
        },
        'steering applied',
      );
    }
    return { written, deleted, queues };
  }

  /** Writes a queue (with the current cpumap program) for every needed CPU that lacks one. */
  private ensureQueues(needed: ReadonlySet<number>): number {
    const progId = this.cpuProgram.info().id;
    let changed = 0;
    for (const cpu of needed) {
      const have = this.cpumap.lookup(U32.encode(cpu));
      if (have !== null && have.readUInt32LE(0) === this.qsize && have.readUInt32LE(4) === progId)
        continue;
      const v = Buffer.alloc(8);
      v.writeUInt32LE(this.qsize, 0);
      v.writeUInt32LE(this.cpuProgram.fd, 4);
      this.cpumap.update(U32.encode(cpu), v);
      changed++;
    }
    return changed;
  }

  private pruneQueues(needed: ReadonlySet<number>): number {
    let changed = 0;
    const ncpus = Math.min(numPossibleCpus(), Maps.tenet_cpumap.maxEntries);
    for (let cpu = 0; cpu < ncpus; cpu++) {
      if (needed.has(cpu)) continue;
      // A cpumap delete "succeeds" on an empty slot, so look first.
      if (this.cpumap.lookup(U32.encode(cpu)) === null) continue;
      try {
        this.cpumap.delete(U32.encode(cpu));
        changed++;
      } catch (e) {
        if (!isBpfError(e, 'ENOENT')) throw e;
      }
    }
    return changed;
  }

  /** Reads the per-CPU delivery counters of every VM port and updates the loads. */
  sample(now: number = Date.now()): void {
    const perPort = new Map<number, bigint[]>();
    for (const ifindex of this.vmPorts.values()) {
      const v = this.portCtrs.get({ ifindex, direction: DIR_TX });
      perPort.set(
        ifindex,
        (v ?? []).map((x) => x.packets),
      );
    }
    const prev = this.last;
    this.last = { at: now, perPort };
    if (prev === undefined || now <= prev.at) return;
    const secs = (now - prev.at) / 1000;
    const cpuPps = new Map<number, number>();
    const portPps = new Map<number, number>();
    for (const [ifindex, vals] of perPort) {
      const before = prev.perPort.get(ifindex) ?? [];
      let total = 0;
      vals.forEach((p, cpu) => {
        const d = Number(p - (before[cpu] ?? p));
        const r = d > 0 ? d / secs : 0;
        cpuPps.set(cpu, (cpuPps.get(cpu) ?? 0) + r);
        total += r;
      });
      portPps.set(ifindex, total);
    }
    this.cpuPps = cpuPps;
    for (const st of this.ports.values()) st.pps = portPps.get(st.compiled.ifindex) ?? 0;
  }

  /** One dynamic-mode step: sample, decide, and make the move if there is one. */
  tick(now: number = Date.now()): Move | undefined {
    this.sample(now);
    const auto = [...this.ports.values()].filter((p) => p.compiled.mode === 'auto');
    if (auto.length === 0 || this.cpuPps.size === 0) return undefined;
    // Every candidate CPU is a possible target, idle ones included.
    const cpuPps = new Map(this.cpuPps);
    for (const p of auto) for (const c of p.compiled.cpus) if (!cpuPps.has(c)) cpuPps.set(c, 0);
    const move = decideMove(
      {
        now,
        cpuPps,
        lastMoveAt: this.lastMoveAt,
        ports: auto.map((p) => ({
          port: p.compiled.port,
          cpu: p.cpu,
          candidates: p.compiled.cpus,
          pps: p.pps,
          since: p.since,
        })),
      },
      this.balance,
    );
    if (move === undefined) return undefined;
    const st = this.ports.get(move.port) as PortState;
    this.steer.set(st.compiled.ifindex, entryOf(st.compiled, move.to));
    st.cpu = move.to;
    st.since = now;
    st.moves++;
    this.totalMoves++;
    this.lastMoveAt = now;
    this.log.info(
      {
        port: move.port,
        from: move.from,
        to: move.to,
        portPps: Math.round(move.portPps),
        fromCpuPps: Math.round(move.fromPps),
        toCpuPps: Math.round(move.toPps),
        moves: this.totalMoves,
      },
      'steering: moved a port to a less loaded CPU',
    );
    return move;
  }

  /** Runs tick() every intervalMs until stop(). */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      try {
        this.tick();
      } catch (e) {
        this.log.warn(errFields(e), 'steering: dynamic mode step failed');
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  status(): SteeringStatus {
    const ports: PortSteeringStatus[] = [...this.ports.values()]
      .sort((a, b) => (a.compiled.port < b.compiled.port ? -1 : 1))
      .map((st) => {
        const e = this.steer.get(st.compiled.ifindex);
        return {
          port: st.compiled.port,
          interface: st.compiled.interface,
          ifindex: st.compiled.ifindex,
          mode: st.compiled.mode,
          cpus: st.compiled.cpus,
          current: e === undefined ? [] : e.cpus.slice(0, e.ncpus),
          moves: st.moves,
          pps: st.pps,
        };
      });
    return {
      ports,
      moves: this.totalMoves,
      cpuPps: [...this.cpuPps].sort((a, b) => a[0] - b[0]).map(([cpu, pps]) => ({ cpu, pps })),
      balance: this.balance,
      intervalMs: this.intervalMs,
    };
  }

  /**
   * Packets of every VM port of the host per CPU and direction (rx: from the VM, tx: to the VM),
   * from the per-CPU port counters; CPUs with nothing are left out.
   */
  portCpuPackets(): Array<{
    port: string;
    direction: 'rx' | 'tx';
    cpu: number;
    packets: bigint;
  }> {
    const out: Array<{ port: string; direction: 'rx' | 'tx'; cpu: number; packets: bigint }> = [];
    for (const [port, ifindex] of [...this.vmPorts].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      for (const direction of ['rx', 'tx'] as const) {
        const v = this.portCtrs.get({ ifindex, direction: direction === 'rx' ? 0 : DIR_TX });
        (v ?? []).forEach((x, cpu) => {
          if (x.packets > 0n) out.push({ port, direction, cpu, packets: x.packets });
        });
      }
    }
    return out;
  }

  /** Per-CPU counters of one port (delivery from the port counters, steering's own). */
  counters(ifindex: number): SteeringCpuCounters[] {
    return readSteeringCounters(this.portCtrs, this.steerCtrs, ifindex);
  }

  close(): void {
    this.stop();
    this.steer.close();
    this.cpumap.close();
    this.portCtrs.close();
    this.steerCtrs.close();
  }
}

/** Per-CPU counters of one VM port from the two per-CPU maps. */
export function readSteeringCounters(
  portCtrs: PerCpuTypedMap<{ ifindex: number; direction: number }, { packets: bigint }>,
  steerCtrs: PerCpuTypedMap<
    number,
    { steered: bigint; local: bigint; fallback: bigint; pipeline: bigint }
  >,
  ifindex: number,
): SteeringCpuCounters[] {
  const tx = portCtrs.get({ ifindex, direction: DIR_TX }) ?? [];
  const st = steerCtrs.get(ifindex) ?? [];
  const n = Math.max(tx.length, st.length);
  const out: SteeringCpuCounters[] = [];
  for (let cpu = 0; cpu < n; cpu++) {
    out.push({
      cpu,
      delivered: tx[cpu]?.packets ?? 0n,
      steered: st[cpu]?.steered ?? 0n,
      local: st[cpu]?.local ?? 0n,
      fallback: st[cpu]?.fallback ?? 0n,
      pipeline: st[cpu]?.pipeline ?? 0n,
    });
  }
  return out;
}

function entryOf(c: CompiledSteering, cpu: number): SteerEntry {
  const cpus = c.mode === 'spread' ? [...c.cpus] : [cpu];
  return {
    mode: c.mode === 'spread' ? SteerMode.spread : SteerMode.fixed,
    ncpus: cpus.length,
    seed: c.mode === 'spread' ? c.seed : 0,
    cpus: [...cpus, ...new Array<number>(SET_MAX - cpus.length).fill(0)],
  };
}

function sameEntry(a: SteerEntry, b: SteerEntry): boolean {
  return (
    a.mode === b.mode &&
    a.ncpus === b.ncpus &&
    a.seed === b.seed &&
    a.cpus.every((c, i) => c === b.cpus[i])
  );
}
