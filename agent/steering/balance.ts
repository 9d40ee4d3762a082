// Dynamic steering (Hyper-V's dynamic VMQ) as a pure decision: given the receive-pipeline load of
// every CPU and the ports in mode auto with where they are now, which one port (if any) moves
// where. The steering controller (agent/steering/controller.ts) measures, calls this once per
// interval and applies the answer with one map update.
//
// Load is packets per second of pipeline work (decapsulation and delivery to VM ports) per CPU,
// from the per-CPU port counters; capacityPps says what one CPU handles before it saturates, and
// the watermarks are fractions of it. A move is made only when all of these hold:
//   - the source CPU is above the high watermark (saturated, or about to be);
//   - the target is below the low watermark (it idles) and is one of the port's candidates;
//   - the port has stayed where it is for at least minDwellMs, and no port moved in the last
//     cooldownMs (the load figures of the interval after a move still show the old placement);
//   - after the move the target stays at or below the high watermark and below what the source
//     had, so a move never just carries the saturation across (which would flap back).
// The gap between the watermarks, the dwell time and the cooldown are the hysteresis. Among the
// movable ports of the busiest saturated CPU the busiest one that fits is moved: the fewest moves
// that relieve it. One move per decision.

export interface BalanceConfig {
  /** Packets per second one CPU's receive pipeline handles before it saturates. */
  readonly capacityPps: number;
  /** Above high * capacity a CPU is overloaded (0 < low < high <= 1). */
  readonly high: number;
  /** Below low * capacity a CPU has room. */
  readonly low: number;
  /** A port moved (or placed) less than this long ago stays. */
  readonly minDwellMs: number;
  /** At most one move per this long. */
  readonly cooldownMs: number;
}

export const DEFAULT_BALANCE: BalanceConfig = {
  capacityPps: 1_000_000,
  high: 0.8,
  low: 0.5,
  minDwellMs: 10_000,
  cooldownMs: 2_000,
};

export interface AutoPort {
  readonly port: string;
  /** The CPU the port is on now. */
  readonly cpu: number;
  /** Where it may go (its policy set, or every online CPU). */
  readonly candidates: readonly number[];
  /** Its own pipeline load, packets per second. */
  readonly pps: number;
  /** When it was last placed or moved (ms). */
  readonly since: number;
}

export interface BalanceInput {
  readonly now: number;
  /** Pipeline load per CPU, packets per second: every CPU that could be a target must be here. */
  readonly cpuPps: ReadonlyMap<number, number>;
  readonly ports: readonly AutoPort[];
  /** When any port last moved (ms; -Infinity: never). */
  readonly lastMoveAt: number;
}

export interface Move {
  readonly port: string;
  readonly from: number;
  readonly to: number;
  readonly portPps: number;
  /** Loads before the move, packets per second. */
  readonly fromPps: number;
  readonly toPps: number;
}

/** Checks a configuration; returns the problems (field: message). */
export function balanceConfigProblems(c: BalanceConfig): string[] {
  const p: string[] = [];
  if (!(c.capacityPps > 0)) p.push(`capacityPps: must be > 0, got ${c.capacityPps}`);
  if (!(c.low > 0 && c.low < c.high)) p.push(`low: must be in (0, high), got ${c.low}`);
  if (!(c.high > 0 && c.high <= 1)) p.push(`high: must be in (0, 1], got ${c.high}`);
  if (!(c.minDwellMs >= 0)) p.push(`minDwellMs: must be >= 0, got ${c.minDwellMs}`);
  if (!(c.cooldownMs >= 0)) p.push(`cooldownMs: must be >= 0, got ${c.cooldownMs}`);
  return p;
}

/** The one move to make now, or undefined. */
export function decideMove(input: BalanceInput, cfg: BalanceConfig): Move | undefined {
  if (input.now - input.lastMoveAt < cfg.cooldownMs) return undefined;
  const high = cfg.high * cfg.capacityPps;
  const low = cfg.low * cfg.capacityPps;
  const load = (cpu: number): number => input.cpuPps.get(cpu) ?? 0;
  const hot = [...input.cpuPps.keys()]
    .filter((c) => load(c) > high)
    .sort((a, b) => load(b) - load(a) || a - b);
  for (const from of hot) {
    const movable = input.ports
      .filter((p) => p.cpu === from && p.pps > 0 && input.now - p.since >= cfg.minDwellMs)
      .sort((a, b) => b.pps - a.pps || (a.port < b.port ? -1 : 1));
    for (const p of movable) {
      const targets = p.candidates
        .filter((t) => t !== from && load(t) < low)
        .sort((a, b) => load(a) - load(b) || a - b);
      for (const to of targets) {
        const after = load(to) + p.pps;
        if (after <= high && after < load(from)) {
          return {
            port: p.port,
            from,
            to,
            portPps: p.pps,
            fromPps: load(from),
            toPps: load(to),
          };
        }
      }
    }
  }
  return undefined;
}

/**
 * Where a newly auto port starts: the candidate with the fewest auto ports on it (then the
 * lowest load, then the lowest number), so ports spread before any load is seen.
 */
export function initialCpu(
  candidates: readonly number[],
  portsPerCpu: ReadonlyMap<number, number>,
  cpuPps: ReadonlyMap<number, number>,
): number {
  const sorted = [...candidates].sort(
    (a, b) =>
      (portsPerCpu.get(a) ?? 0) - (portsPerCpu.get(b) ?? 0) ||
      (cpuPps.get(a) ?? 0) - (cpuPps.get(b) ?? 0) ||
      a - b,
  );
  const first = sorted[0];
  if (first === undefined) throw new Error('initialCpu: no candidate CPUs');
  return first;
}
