// Applies compiled port ACLs (agent/compiler/acl.ts) to the pinned ACL maps, one port at a time,
// atomically for packets: a changed direction gets a fresh rule set id (rsid); its rules, zeroed
// hit counters and field entries are written under that id while packets keep using the old one;
// then ONE update of the port's struct tenet_acl_port flips both directions; after an RCU grace
// period (an update of a private map-in-map slot returns only once every program that could have
// read the old entry has finished) the old rule sets' entries are deleted. A packet therefore sees
// the old or the new rule set, never a mix. Connection tracking and fragment state are untouched.
//
// The maps are the state: a restarted agent reads the installed rsids from tenet_acl_ports and
// rewrites only what differs from what it last wrote (after a restart: every port once).

import { createHash, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { BpfMap, MapType, numPossibleCpus, setInner } from '../bpf/index.js';
import {
  bitsValueBytes,
  fieldKeyBytes,
  type CompiledAclDirection,
  type CompiledPortAcl,
} from '../compiler/acl.js';

export interface AclApplyResult {
  /** Ports whose rule sets were replaced, added or removed. */
  readonly changed: number;
  readonly fieldWrites: number;
  readonly ruleWrites: number;
  readonly deletes: number;
}

const MAPS = {
  ports: 'tenet_acl_ports',
  fields: 'tenet_acl_field',
  rules: 'tenet_acl_rules',
  counters: 'tenet_acl_rctrs',
  ct: 'tenet_acl_ct',
  stats: 'tenet_acl_stats',
} as const;

/** Slots of struct tenet_acl_stats (enum tenet_acl_stat). */
export const ACL_STAT_NAMES = [
  'no_match',
  'ct_insert',
  'ct_reply',
  'ct_related',
  'ct_expired',
  'ct_miss',
  'frag_stored',
  'frag_hit',
  'frag_miss',
] as const;

/** What the metrics read at scrape time (agent/metrics/acl.ts). */
export interface AclSnapshot {
  readonly rules: ReadonlyArray<{
    port: string;
    direction: string;
    rule: string;
    packets: bigint;
    bytes: bigint;
  }>;
  readonly conntrack: { entries: number; capacity: number };
  readonly stats: Readonly<Record<(typeof ACL_STAT_NAMES)[number], bigint>>;
}

/** The AclTables of this process (tenetd has one per host agent), for the metrics. */
export const liveAclTables = new Set<AclTables>();

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function ruleKey(rsid: number, rank: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(rsid >>> 0, 0);
  b.writeUInt32LE(rank >>> 0, 4);
  return b;
}

/**
 * Content of a rule set in one canonical text per line (rules by rank, then field entries by
 * key), hashed: the same for a compiled direction and for what the maps hold under a rule set id,
 * so a restarted agent recognises the rule sets it wrote and keeps them (and their counters).
 * Rule names are not in the maps and not in the hash.
 */
function canonicalHash(rules: string[], fields: string[]): string {
  const h = createHash('sha256');
  for (const r of rules) h.update(`${r};`);
  for (const f of [...fields].sort()) h.update(`${f};`);
  return h.digest('hex');
}

const ruleLine = (rank: number, action: number, flags: number, idle: number): string =>
  `${rank}|${action}|${flags}|${idle}`;

function directionHash(d: CompiledAclDirection | null): string {
  if (!d) return '-';
  return canonicalHash(
    d.rules.map((r) => ruleLine(r.rank, r.action, r.stateful ? 1 : 0, r.idleTimeoutS)),
    d.fields.map((f) => {
      const k = fieldKeyBytes(0, f);
      return `${k.subarray(0, 4).toString('hex')}${k.subarray(8).toString('hex')}=${bitsValueBytes(f.bits).toString('hex')}`;
    }),
  );
}

/** The rule names of an installed rule set, by rank, for metrics (rsid -> names). */
export type RuleNames = ReadonlyMap<number, { port: string; direction: string; names: string[] }>;

export class AclTables {
  private readonly maps: Record<keyof typeof MAPS, BpfMap>;
  private readonly barrierInner: BpfMap;
  private readonly barrierOuter: BpfMap;
  private readonly cpus = numPossibleCpus();
  /** What this agent wrote per ifindex: hashes per direction. */
  private readonly written = new Map<
    number,
    { inbound: string; outbound: string; rsids: readonly [number, number] }
  >();
  private readonly names = new Map<number, { port: string; direction: string; names: string[] }>();
  private closed = false;

  constructor(pinRoot: string) {
    const opened: Partial<Record<keyof typeof MAPS, BpfMap>> = {};
    try {
      for (const [k, name] of Object.entries(MAPS) as [keyof typeof MAPS, string][]) {
        opened[k] = BpfMap.openPinned(join(pinRoot, name));
      }
    } catch (e) {
      for (const m of Object.values(opened)) m?.close();
      throw e;
    }
    this.maps = opened as Record<keyof typeof MAPS, BpfMap>;
    this.barrierInner = BpfMap.create({
      type: MapType.ARRAY,
      keySize: 4,
      valueSize: 4,
      maxEntries: 1,
      name: 'tenet_aclbar_i',
    });
    this.barrierOuter = BpfMap.create({
      type: MapType.ARRAY_OF_MAPS,
      keySize: 4,
      valueSize: 4,
      maxEntries: 1,
      innerMap: this.barrierInner,
      name: 'tenet_aclbar',
    });
    liveAclTables.add(this);
  }

  /**
   * Per-rule counters of the rule sets this agent wrote, conntrack fill level and the ACL
   * statistics, summed over CPUs. Rule counters restart with each new rule set of a port.
   */
  snapshot(): AclSnapshot {
    const sum = (v: Buffer, off: number): bigint => {
      let n = 0n;
      for (let c = 0; c < this.cpus; c++) n += v.readBigUInt64LE(c * 16 + off);
      return n;
    };
    const rules: Array<AclSnapshot['rules'][number]> = [];
    for (const [rsid, rs] of this.names) {
      rs.names.forEach((rule, rank) => {
        const v = this.maps.counters.lookup(ruleKey(rsid, rank));
        if (v)
          rules.push({
            port: rs.port,
            direction: rs.direction,
            rule,
            packets: sum(v, 0),
            bytes: sum(v, 8),
          });
      });
    }
    let entries = 0;
    for (let k = this.maps.ct.nextKey(null); k !== null; k = this.maps.ct.nextKey(k)) entries++;
    const stats = Object.fromEntries(
      ACL_STAT_NAMES.map((name, slot) => {
        const v = this.maps.stats.lookup(u32(slot));
        return [name, v ? sum(v, 0) : 0n];
      }),
    ) as Record<(typeof ACL_STAT_NAMES)[number], bigint>;
    return { rules, conntrack: { entries, capacity: this.maps.ct.maxEntries }, stats };
  }

  /** Installed rule set ids per port ifindex: [inbound, outbound], 0 = none. */
  installed(): Map<number, [number, number]> {
    const out = new Map<number, [number, number]>();
    let k: Buffer | null = this.maps.ports.nextKey(null);
    while (k !== null) {
      const v = this.maps.ports.lookup(k);
      if (v) out.set(k.readUInt32LE(0), [v.readUInt32LE(0), v.readUInt32LE(4)]);
      k = this.maps.ports.nextKey(k);
    }
    return out;
  }

  /** Content hashes of installed rule sets (one pass over the rule and field maps). */
  private installedHashes(rsids: ReadonlySet<number>): Map<number, string> {
    const rules = new Map<number, Array<[number, string]>>();
    const fields = new Map<number, string[]>();
    for (const id of rsids) {
      rules.set(id, []);
      fields.set(id, []);
    }
    for (let k = this.maps.rules.nextKey(null); k !== null; k = this.maps.rules.nextKey(k)) {
      const list = rules.get(k.readUInt32LE(0));
      const v = list && this.maps.rules.lookup(k);
      if (!list || !v) continue;
      const rank = k.readUInt32LE(4);
      list.push([rank, ruleLine(rank, v.readUInt8(0), v.readUInt8(1), v.readUInt32LE(4))]);
    }
    for (let k = this.maps.fields.nextKey(null); k !== null; k = this.maps.fields.nextKey(k)) {
      const list = fields.get(k.readUInt32LE(4));
      const v = list && this.maps.fields.lookup(k);
      if (!list || !v) continue;
      list.push(
        `${k.subarray(0, 4).toString('hex')}${k.subarray(8).toString('hex')}=${v.toString('hex')}`,
      );
    }
    const out = new Map<number, string>();
    for (const id of rsids) {
      const rs = (rules.get(id) ?? []).sort((x, y) => x[0] - y[0]).map((x) => x[1]);
      out.set(id, rs.length === 0 ? '-' : canonicalHash(rs, fields.get(id) ?? []));
    }
    return out;
  }

  /** Rule names of the installed rule sets this agent wrote (rsid -> port, direction, names). */
  ruleNames(): RuleNames {
    return this.names;
  }

  /** Waits until every program that may still read an old rule set has finished. */
  graceBarrier(): void {
    setInner(this.barrierOuter, u32(0), this.barrierInner);
  }

  private freshRsid(inUse: Set<number>): number {
    for (;;) {
      const id = randomInt(1, 0x7fffffff);
      if (!inUse.has(id) && this.maps.rules.lookup(ruleKey(id, 0)) === null) {
        inUse.add(id);
        return id;
      }
    }
  }

  private writeDirection(
    rsid: number,
    d: CompiledAclDirection,
    port: string,
    dir: string,
  ): {
    fields: number;
    rules: number;
  } {
    const zero = Buffer.alloc(16 * this.cpus);
    for (const r of d.rules) {
      const v = Buffer.alloc(8);
      v.writeUInt8(r.action, 0);
      v.writeUInt8(r.stateful ? 1 : 0, 1);
      v.writeUInt32LE(r.idleTimeoutS, 4);
      this.maps.rules.update(ruleKey(rsid, r.rank), v);
      this.maps.counters.update(ruleKey(rsid, r.rank), zero);
    }
    for (const f of d.fields)
      this.maps.fields.update(fieldKeyBytes(rsid, f), bitsValueBytes(f.bits));
    this.names.set(rsid, { port, direction: dir, names: d.rules.map((r) => r.name) });
    return { fields: d.fields.length, rules: d.rules.length };
  }

  /** Deletes every entry of the given rule sets (after the flip and a grace period). */
  private deleteRuleSets(rsids: Set<number>): number {
    if (rsids.size === 0) return 0;
    let deleted = 0;
    for (const m of [this.maps.rules, this.maps.counters]) {
      const doomed: Buffer[] = [];
      let k: Buffer | null = m.nextKey(null);
      while (k !== null) {
        if (rsids.has(k.readUInt32LE(0))) doomed.push(k);
        k = m.nextKey(k);
      }
      for (const d of doomed) if (m.delete(d)) deleted++;
    }
    const doomed: Buffer[] = [];
    let k: Buffer | null = this.maps.fields.nextKey(null);
    while (k !== null) {
      if (rsids.has(k.readUInt32LE(4))) doomed.push(k);
      k = this.maps.fields.nextKey(k);
    }
    for (const d of doomed) if (this.maps.fields.delete(d)) deleted++;
    for (const id of rsids) this.names.delete(id);
    return deleted;
  }

  /**
   * Makes the ACL maps hold exactly `compiled` (ports absent from it lose their ACL). Ports are
   * flipped one by one; each flip is atomic for that port.
   */
  apply(compiled: readonly CompiledPortAcl[]): AclApplyResult {
    const installed = this.installed();
    const inUse = new Set<number>();
    for (const [a, b] of installed.values()) {
      inUse.add(a);
      inUse.add(b);
    }
    // Rule sets this agent has not written (it restarted, or another writer changed them):
    // recognised by content, then kept.
    const mine = (ifindex: number, ids: readonly number[]): boolean => {
      const w = this.written.get(ifindex);
      return w !== undefined && w.rsids[0] === ids[0] && w.rsids[1] === ids[1];
    };
    const unknown = new Set<number>();
    for (const [ifindex, ids] of installed)
      if (!mine(ifindex, ids)) for (const id of ids) if (id) unknown.add(id);
    const adopted = this.installedHashes(unknown);
    let changed = 0;
    let fieldWrites = 0;
    let ruleWrites = 0;
    const old = new Set<number>();
    const wanted = new Set<number>();
    for (const p of compiled) {
      wanted.add(p.ifindex);
      const hashes = { inbound: directionHash(p.inbound), outbound: directionHash(p.outbound) };
      const cur = installed.get(p.ifindex) ?? [0, 0];
      const prev = mine(p.ifindex, cur)
        ? (this.written.get(p.ifindex) as { inbound: string; outbound: string })
        : {
            inbound: cur[0] ? (adopted.get(cur[0]) ?? '?') : '-',
            outbound: cur[1] ? (adopted.get(cur[1]) ?? '?') : '-',
          };
      const next: [number, number] = [cur[0], cur[1]];
      let touched = false;
      (['inbound', 'outbound'] as const).forEach((dir, i) => {
        const d = p[dir];
        const same = prev[dir] === hashes[dir] && (cur[i] !== 0) === (d !== null);
        if (same) {
          // Unchanged rules; names may differ (a rename), and metrics label by name.
          if (d !== null) {
            this.names.set(cur[i] as number, {
              port: p.port,
              direction: dir,
              names: d.rules.map((r) => r.name),
            });
          }
          return;
        }
        touched = true;
        if (cur[i] !== 0) old.add(cur[i] as number);
        if (d === null) {
          next[i] = 0;
          return;
        }
        const rsid = this.freshRsid(inUse);
        const w = this.writeDirection(rsid, d, p.port, dir);
        fieldWrites += w.fields;
        ruleWrites += w.rules;
        next[i] = rsid;
      });
      this.written.set(p.ifindex, { ...hashes, rsids: [next[0], next[1]] });
      if (!touched) continue;
      changed++;
      const v = Buffer.alloc(16);
      v.writeUInt32LE(next[0] >>> 0, 0);
      v.writeUInt32LE(next[1] >>> 0, 4);
      v.writeUInt32LE(
        ((p.inbound?.openFields ?? 0) | ((p.outbound?.openFields ?? 0) << 16)) >>> 0,
        8,
      );
      this.maps.ports.update(u32(p.ifindex), v); // the flip
    }
    for (const [ifindex, [a, b]] of installed) {
      if (wanted.has(ifindex)) continue;
      this.maps.ports.delete(u32(ifindex));
      this.written.delete(ifindex);
      if (a) old.add(a);
      if (b) old.add(b);
      changed++;
    }
    let deletes = 0;
    if (old.size > 0) {
      this.graceBarrier();
      deletes = this.deleteRuleSets(old);
    }
    return { changed, fieldWrites, ruleWrites, deletes };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    liveAclTables.delete(this);
    for (const m of Object.values(this.maps)) m.close();
    this.barrierOuter.close();
    this.barrierInner.close();
  }
}
