// Shared runner of the table-driven NVGRE datapath tests: one case = description, input frame
// (from the packet builder), changes to the fixture tables, generation, expected verdict, EXACT
// expected output bytes (built independently with the builder), expected redirect target and
// expected counters. Every case is also run through the reference model, which must agree with
// the kernel on all of it.

import { expect } from 'vitest';
import type { DropReasonName } from '../../agent/abi/generated.js';
import {
  describeResult,
  simulate,
  type Hook,
  type PortCounterDelta,
  type VsidCounterDelta,
} from '../../agent/model/index.js';
import { describePacket } from '../../agent/packet/index.js';
import { expectPacket } from '../helpers/packet-diff.js';
import { normalizeCounters, type Datapath, type RunOptions } from './harness.js';
import { baseTables, type Tables } from './fixture.js';

export type Expect =
  | {
      verdict: 'redirect';
      ifindex: number;
      output: () => Buffer;
      vsid?: Omit<VsidCounterDelta, 'packets'>;
      txIfindex?: number;
    }
  | { verdict: 'pass' }
  | { verdict: 'drop'; reason: DropReasonName };

export interface Case {
  name: string;
  input: () => Buffer;
  tables?: (t: Tables) => void;
  generation?: 0 | 1;
  run?: RunOptions;
  expect: Expect;
  /** Extra checks on the kernel's result. */
  check?: (r: ReturnType<Datapath['runPort']>) => void;
}

/** Runs one case at hook (port-ingress: tc on the loopback port; phys-xdp: XDP). */
export function runCase(dp: Datapath, hook: Hook, c: Case): void {
  const tables = baseTables();
  c.tables?.(tables);
  const gen = c.generation ?? 0;
  dp.install(tables, gen);
  const input = c.input();
  const r = hook.kind === 'port-ingress' ? dp.runPort(input, c.run) : dp.runXdp(input);
  const label = `${c.name}: input ${describePacket(input)}`;

  const e = c.expect;
  expect(r.verdict, label).toBe(e.verdict);
  const ports: PortCounterDelta[] = [
    { ifindex: hook.ifindex, direction: 'rx', packets: 1, bytes: input.length },
  ];
  const vsids: VsidCounterDelta[] = [];
  const drops: Array<{ reason: DropReasonName; packets: number; bytes: number }> = [];
  if (e.verdict === 'redirect') {
    expect(r.redirectIfindex, label).toBe(e.ifindex);
    const out = e.output();
    expectPacket(r.data, out, { name: `datapath-${c.name}` });
    if (e.vsid) vsids.push({ ...e.vsid, packets: 1 });
    if (e.txIfindex !== undefined)
      ports.push({ ifindex: e.txIfindex, direction: 'tx', packets: 1, bytes: out.length });
  } else if (e.verdict === 'pass') {
    expectPacket(r.data, input, { name: `datapath-${c.name}` });
  } else {
    drops.push({ reason: e.reason, packets: 1, bytes: input.length });
  }
  expect(r.counters, label).toEqual(normalizeCounters({ ports, vsids, drops }));
  c.check?.(r);

  // The reference model must say the same (GSO is invisible to it: skip those cases).
  if (c.run?.gsoSize) return;
  const m = simulate(tables, gen, input, hook);
  expect(describeResult(m), `model: ${label}`).toBe(
    `${r.verdict}${r.redirectIfindex !== undefined ? ` -> ifindex ${r.redirectIfindex}` : ''}${
      e.verdict === 'drop' ? ` (${e.reason})` : ''
    }`,
  );
  expect(m.retval).toBe(r.retval);
  if (m.output && r.verdict !== 'drop') expectPacket(m.output, r.data, { name: `model-${c.name}` });
  expect(normalizeCounters(m.counters), `model counters: ${label}`).toEqual(r.counters);
}
