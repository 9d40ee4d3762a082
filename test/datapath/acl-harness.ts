// Port ACL additions to the datapath harness: installs port ACLs through the real compiler
// (agent/compiler/acl.ts) and reconciler writer (agent/reconciler/acl.ts) into the test file's
// private pin root, reads the per-rule counters and ACL statistics back by name, resets and ages
// the connection tracking and fragment state, and keeps a reference model (agent/model/acl.ts)
// in step so each test-run can be compared with what the model says.

import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { AclStatByValue } from '../../agent/abi/generated.js';
import { BpfMap, numPossibleCpus } from '../../agent/bpf/index.js';
import { compileAcls } from '../../agent/compiler/acl.js';
import {
  AclModel,
  emptyStats,
  type AclPortModel,
  type AclRuleCounters,
  type AclSimContext,
  type AclStats,
} from '../../agent/model/acl.js';
import type { AclRule } from '../../agent/policy/model.js';
import { AclTables } from '../../agent/reconciler/acl.js';
import { useDatapath, type Datapath } from './harness.js';

export interface AclPortSpec {
  readonly name: string;
  readonly ifindex: number;
  readonly rules: readonly AclRule[];
}

export interface AclDatapath {
  readonly dp: Datapath;
  /** Installs these ports' ACLs (others lose theirs); the model gets the same rules. */
  setAcls(ports: readonly AclPortSpec[]): void;
  /** Empties connection tracking and fragment state, in the maps and in the model. */
  resetState(): void;
  /** Per-rule counters `${port}|${direction}|${rule}` of the installed rule sets. */
  ruleCounters(): AclRuleCounters;
  /** ACL statistics (packets), summed over CPUs. */
  stats(): AclStats;
  /** Sets every conntrack entry's last-seen time (BPF and model) to `ns`. */
  ageConntrack(ns: bigint): void;
  /** Conntrack entries in the map. */
  conntrackSize(): number;
  /** The model state the simulator consults (pass to simulate()). */
  sim(): AclSimContext;
  readonly model: { current: AclModel };
  readonly tables: () => AclTables;
}

/** Monotonic clock of bpf_ktime_get_ns (CLOCK_MONOTONIC) for the model. */
export const monoNs = (): bigint => process.hrtime.bigint();

export function useAclDatapath(): AclDatapath {
  const dp = useDatapath();
  let tables: AclTables;
  let ct: BpfMap;
  let frags: BpfMap;
  let stats: BpfMap;
  let rctrs: BpfMap;
  const cpus = numPossibleCpus();
  const model = { current: new AclModel() };
  let ports = new Map<number, AclPortModel>();

  beforeAll(() => {
    tables = new AclTables(dp.pinRoot);
    ct = BpfMap.openPinned(join(dp.pinRoot, 'tenet_acl_ct'));
    frags = BpfMap.openPinned(join(dp.pinRoot, 'tenet_acl_frags'));
    stats = BpfMap.openPinned(join(dp.pinRoot, 'tenet_acl_stats'));
    rctrs = BpfMap.openPinned(join(dp.pinRoot, 'tenet_acl_rctrs'));
  });
  afterAll(() => {
    tables?.close();
    for (const m of [ct, frags, stats, rctrs]) m?.close();
  });

  const clear = (m: BpfMap): void => {
    const keys: Buffer[] = [];
    for (let k = m.nextKey(null); k !== null; k = m.nextKey(k)) keys.push(k);
    for (const k of keys) m.delete(k);
  };
  const sumPerCpu = (v: Buffer, off: number): number => {
    let s = 0n;
    for (let c = 0; c < cpus; c++) s += v.readBigUInt64LE(c * 16 + off);
    return Number(s);
  };

  return {
    dp,
    model,
    tables: () => tables,
    setAcls(specs) {
      const compiled = compileAcls(
        specs.map((s) => ({ port: s.name, rules: s.rules })),
        (name) => specs.find((s) => s.name === name)?.ifindex,
      );
      tables.apply(compiled);
      ports = new Map(
        specs.map((s) => [s.ifindex, { name: s.name, ifindex: s.ifindex, rules: s.rules }]),
      );
    },
    resetState() {
      clear(ct);
      clear(frags);
      const fresh = new AclModel();
      fresh.counters.clear();
      // Counters and statistics keep counting in the maps; the model starts from the maps' totals.
      fresh.stats = this.stats();
      for (const [k, v] of this.ruleCounters()) fresh.counters.set(k, v);
      model.current = fresh;
    },
    ruleCounters() {
      const out: AclRuleCounters = new Map();
      const names = tables.ruleNames();
      for (let k = rctrs.nextKey(null); k !== null; k = rctrs.nextKey(k)) {
        const rs = names.get(k.readUInt32LE(0));
        const v = rctrs.lookup(k);
        if (!rs || !v) continue;
        const name = rs.names[k.readUInt32LE(4)];
        const packets = sumPerCpu(v, 0);
        if (packets === 0) continue;
        out.set(`${rs.port}|${rs.direction}|${name}`, { packets, bytes: sumPerCpu(v, 8) });
      }
      return out;
    },
    stats() {
      const s = emptyStats();
      for (const [slot, name] of Object.entries(AclStatByValue)) {
        const key = Buffer.alloc(4);
        key.writeUInt32LE(Number(slot));
        const v = stats.lookup(key);
        if (v && name in s) s[name as keyof AclStats] = sumPerCpu(v, 0);
      }
      return s;
    },
    ageConntrack(ns) {
      for (let k = ct.nextKey(null); k !== null; k = ct.nextKey(k)) {
        const v = ct.lookup(k);
        if (!v) continue;
        v.writeBigUInt64LE(ns, 0);
        ct.update(k, v);
      }
      model.current.ageAll(ns);
    },
    conntrackSize() {
      let n = 0;
      for (let k = ct.nextKey(null); k !== null; k = ct.nextKey(k)) n++;
      return n;
    },
    sim() {
      return { model: model.current, ports, nowNs: monoNs() };
    },
  };
}
