// Dynamic steering's decision (agent/steering/balance.ts) as a pure function: it moves the busiest
// movable port off a CPU above the high watermark to the least loaded candidate below the low
// one, and the hysteresis (watermark gap, dwell time, cooldown, never carrying the saturation
// across) keeps it from flapping. A simulation closes the loop: with load that follows the
// ports, the decisions converge and stop.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  balanceConfigProblems,
  decideMove,
  initialCpu,
  type AutoPort,
  type BalanceConfig,
} from '../../agent/steering/balance.js';

const CFG: BalanceConfig = {
  capacityPps: 1000,
  high: 0.8,
  low: 0.5,
  minDwellMs: 5000,
  cooldownMs: 1000,
};
const NOW = 100_000;
const port = (name: string, cpu: number, pps: number, over: Partial<AutoPort> = {}): AutoPort => ({
  port: name,
  cpu,
  pps,
  candidates: [0, 1],
  since: 0,
  ...over,
});
const loads = (...l: number[]) => new Map(l.map((v, i) => [i, v]));

describe('decideMove', () => {
  it('moves the busiest port that fits off an overloaded CPU to an idle one', () => {
    const m = decideMove(
      {
        now: NOW,
        cpuPps: loads(900, 100),
        ports: [port('a', 0, 300), port('b', 0, 600), port('c', 1, 100)],
        lastMoveAt: -Infinity,
      },
      CFG,
    );
    // b (600) fits: 100 + 600 = 700 <= 800 and 700 < 900.
    expect(m).toEqual({ port: 'b', from: 0, to: 1, portPps: 600, fromPps: 900, toPps: 100 });
  });

  it('skips a port that would only carry the saturation across, and takes the next', () => {
    const m = decideMove(
      {
        now: NOW,
        cpuPps: loads(950, 300),
        ports: [port('big', 0, 700), port('small', 0, 250)],
        lastMoveAt: -Infinity,
      },
      CFG,
    );
    expect(m).toMatchObject({ port: 'small', to: 1 });
  });

  it('does nothing when one port alone saturates its CPU (moving it would just move the problem)', () => {
    expect(
      decideMove(
        { now: NOW, cpuPps: loads(950, 300), ports: [port('hog', 0, 950)], lastMoveAt: -Infinity },
        CFG,
      ),
    ).toBeUndefined();
  });

  const none: Array<[string, Parameters<typeof decideMove>[0]]> = [
    [
      'no CPU above the high watermark (imbalance alone is no reason)',
      { now: NOW, cpuPps: loads(790, 0), ports: [port('a', 0, 790)], lastMoveAt: -Infinity },
    ],
    [
      'the only other CPU is not below the low watermark',
      { now: NOW, cpuPps: loads(900, 500), ports: [port('a', 0, 200)], lastMoveAt: -Infinity },
    ],
    [
      'the port moved less than minDwellMs ago',
      {
        now: NOW,
        cpuPps: loads(900, 0),
        ports: [port('a', 0, 300, { since: NOW - 4999 })],
        lastMoveAt: -Infinity,
      },
    ],
    [
      'another port moved less than cooldownMs ago',
      { now: NOW, cpuPps: loads(900, 0), ports: [port('a', 0, 300)], lastMoveAt: NOW - 999 },
    ],
    [
      'the idle CPU is not among the port candidates',
      {
        now: NOW,
        cpuPps: loads(900, 0),
        ports: [port('a', 0, 300, { candidates: [0] })],
        lastMoveAt: -Infinity,
      },
    ],
    [
      'ports without load are not moved',
      { now: NOW, cpuPps: loads(900, 0), ports: [port('a', 0, 0)], lastMoveAt: -Infinity },
    ],
  ];
  it.each(none)('no move: %s', (_name, input) => {
    expect(decideMove(input, CFG)).toBeUndefined();
  });

  it('picks the least loaded target among several', () => {
    const m = decideMove(
      {
        now: NOW,
        cpuPps: loads(900, 400, 50, 300),
        ports: [port('a', 0, 300, { candidates: [0, 1, 2, 3] })],
        lastMoveAt: -Infinity,
      },
      CFG,
    );
    expect(m).toMatchObject({ to: 2 });
  });

  it('rejects nonsensical configurations', () => {
    expect(balanceConfigProblems(CFG)).toEqual([]);
    expect(balanceConfigProblems({ ...CFG, low: 0.9 })).toEqual([
      'low: must be in (0, high), got 0.9',
    ]);
    expect(balanceConfigProblems({ ...CFG, capacityPps: 0 })[0]).toMatch(/capacityPps/);
  });

  it('converges and then stops moving (load follows the ports)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 8, maxLength: 8 }),
        (rates, startCpus) => {
          const cpus = [0, 1, 2, 3];
          const ports = rates.map((pps, i) => ({
            port: `p${i}`,
            cpu: startCpus[i] as number,
            pps,
            candidates: cpus,
            since: 0,
          }));
          let lastMoveAt = -Infinity;
          let moves = 0;
          let now = NOW;
          // 200 intervals of 1 s: more than enough to settle.
          for (let t = 0; t < 200; t++, now += 1000) {
            const cpuPps = new Map(cpus.map((c) => [c, 0]));
            for (const p of ports) cpuPps.set(p.cpu, (cpuPps.get(p.cpu) ?? 0) + p.pps);
            const m = decideMove({ now, cpuPps, ports, lastMoveAt }, CFG);
            if (m === undefined) continue;
            const p = ports.find((x) => x.port === m.port)!;
            // Every move strictly lowers the hottest of the two CPUs involved.
            expect(Math.max(m.fromPps - m.portPps, m.toPps + m.portPps)).toBeLessThan(m.fromPps);
            p.cpu = m.to;
            p.since = now;
            lastMoveAt = now;
            moves++;
          }
          // Bounded: never more moves than ports times CPUs (no flapping).
          expect(moves).toBeLessThanOrEqual(ports.length * cpus.length);
          // Settled: the final state gives no further move.
          const cpuPps = new Map(cpus.map((c) => [c, 0]));
          for (const p of ports) cpuPps.set(p.cpu, (cpuPps.get(p.cpu) ?? 0) + p.pps);
          expect(decideMove({ now: now + 1e9, cpuPps, ports, lastMoveAt }, CFG)).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('initialCpu', () => {
  it('spreads new auto ports: fewest ports first, then load, then lowest number', () => {
    expect(initialCpu([0, 1], new Map([[0, 1]]), new Map())).toBe(1);
    expect(initialCpu([0, 1], new Map(), new Map([[0, 500]]))).toBe(1);
    expect(initialCpu([3, 2], new Map(), new Map())).toBe(2);
    expect(() => initialCpu([], new Map(), new Map())).toThrow(/no candidate/);
  });
});

describe('tenetd datapath.steering settings', () => {
  it('pass through to the agent and refuse inverted watermarks', async () => {
    const { steeringConfig, steeringOptions } = await import('../../agent/steering/config.js');
    expect(steeringOptions(steeringConfig.parse({ intervalMs: 500, capacityPps: 2e5 }))).toEqual({
      intervalMs: 500,
      balance: { capacityPps: 2e5 },
    });
    expect(steeringOptions(undefined)).toEqual({});
    const bad = steeringConfig.safeParse({ high: 0.5, low: 0.6 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['low']);
  });
});
