// Reference model of the port ACL stage (docs/acl.md): what lib/acl.h must do to a packet, written
// from the policy's rules directly (no bitmaps, no tries: a walk over the rules in precedence
// order), with the same connection tracking and fragment state. The datapath tests compare the
// BPF program against this, verdict by verdict and counter by counter.
//
// Semantics, in order, for a port with allow/deny rules in the packet's direction (a port without
// any allows everything and keeps no state):
//   1. a non-first fragment takes the verdict stored for its first fragment (same port,
//      direction, addresses, protocol, IP id), counted on the same rule; none stored: dropped
//      (acl_fragment);
//   2. a packet of a tracked flow going opposite to the packets that opened it (a reply) is
//      admitted if the entry is not idle past its timeout; an ICMP error whose quoted packet
//      belongs to a live tracked flow is admitted ("related");
//   3. otherwise the matching rule of highest precedence decides: weight descending (no weight
//      = 0), deny before allow at equal weight, then document order; no matching rule: allowed;
//      an allowing stateful rule opens or refreshes the flow's entry;
//   4. a first fragment's verdict is stored for the later ones.
// Remote MAC: the destination MAC of what the VM sends, the source MAC of what it receives.

import { prefixOf } from '../policy/addr.js';
import type { AclRule, PolicyDocument } from '../policy/model.js';

export type AclDir = 'inbound' | 'outbound';

/** Idle timeout of stateful rules without idleTimeoutSeconds (agent/compiler/acl.ts agrees). */
export const MODEL_DEFAULT_IDLE_TIMEOUT_S = 300;
/** IPv6 extension headers walked (TENET_ACL_V6_EXT_MAX). */
export const MODEL_V6_EXT_MAX = 6;

export type AclModelVerdict =
  | {
      verdict: 'allow';
      by: 'no-acl' | 'no-rule' | 'rule' | 'reply' | 'related' | 'fragment';
      rule?: string;
    }
  | { verdict: 'drop'; reason: 'acl_deny' | 'acl_fragment' | 'acl_unclassifiable'; rule?: string };

export interface AclStats {
  no_match: number;
  ct_insert: number;
  ct_reply: number;
  ct_related: number;
  ct_expired: number;
  ct_miss: number;
  frag_stored: number;
  frag_hit: number;
  frag_miss: number;
}

export const emptyStats = (): AclStats => ({
  no_match: 0,
  ct_insert: 0,
  ct_reply: 0,
  ct_related: 0,
  ct_expired: 0,
  ct_miss: 0,
  frag_stored: 0,
  frag_hit: 0,
  frag_miss: 0,
});

/** A flow as seen from a port (local = the VM's end). */
interface Flow {
  family: 4 | 6;
  proto: number;
  laddr: Uint8Array;
  raddr: Uint8Array;
  lport: number;
  rport: number;
}

interface Parsed {
  flow: Flow;
  /** Ports for matching: TCP/UDP only, else 0. */
  mlport: number;
  mrport: number;
  frag: 'none' | 'first' | 'later';
  fragId: number;
  embedded?: Flow;
}

class Unclassifiable extends Error {}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const flowKey = (ifindex: number, f: Flow): string =>
  `${ifindex}|${f.family}|${f.proto}|${f.lport}|${f.rport}|${hex(f.laddr)}|${hex(f.raddr)}`;

function addrAt(b: Uint8Array, off: number, len: number): Uint8Array {
  if (off + len > b.length) throw new Unclassifiable('truncated');
  const a = new Uint8Array(16);
  a.set(b.subarray(off, off + len));
  return a;
}

const be16 = (b: Uint8Array, o: number): number => {
  if (o + 2 > b.length) throw new Unclassifiable('truncated');
  return ((b[o] as number) << 8) | (b[o + 1] as number);
};

/** TCP/UDP ports, ICMP echo identifier (as sport) and whether it is an ICMP error. */
function l4Of(b: Uint8Array, off: number, proto: number, family: 4 | 6) {
  if (proto === 6 || proto === 17) {
    if (off + 4 > b.length) throw new Unclassifiable('l4');
    return { sport: be16(b, off), dport: be16(b, off + 2), err: false };
  }
  const icmp = (proto === 1 && family === 4) || (proto === 58 && family === 6);
  if (!icmp) return { sport: 0, dport: 0, err: false };
  if (off + 8 > b.length) throw new Unclassifiable('icmp');
  const type = b[off] as number;
  if (family === 4) {
    if (type === 8 || type === 0) return { sport: be16(b, off + 4), dport: 0, err: false };
    return { sport: 0, dport: 0, err: type === 3 || type === 11 || type === 12 };
  }
  if (type === 128 || type === 129) return { sport: be16(b, off + 4), dport: 0, err: false };
  return { sport: 0, dport: 0, err: type >= 1 && type <= 4 };
}

function orient(
  family: 4 | 6,
  proto: number,
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  dir: AclDir,
): Flow {
  const out = dir === 'outbound';
  const f: Flow = {
    family,
    proto,
    laddr: out ? src : dst,
    raddr: out ? dst : src,
    lport: out ? sport : dport,
    rport: out ? dport : sport,
  };
  if (proto !== 6 && proto !== 17) {
    f.lport = sport;
    f.rport = 0;
  }
  return f;
}

const EXT = new Set([0, 43, 44, 51, 60]);

function ipHeader(b: Uint8Array, off: number, family: 4 | 6) {
  if (family === 4) {
    if (off + 20 > b.length) throw new Unclassifiable('ipv4');
    return {
      src: addrAt(b, off + 12, 4),
      dst: addrAt(b, off + 16, 4),
      proto: b[off + 9] as number,
      l4: off + ((b[off] as number) & 0xf) * 4,
      fragOff: be16(b, off + 6),
      id: be16(b, off + 4),
    };
  }
  if (off + 40 > b.length) throw new Unclassifiable('ipv6');
  return {
    src: addrAt(b, off + 8, 16),
    dst: addrAt(b, off + 24, 16),
    proto: b[off + 6] as number,
    l4: off + 40,
    fragOff: 0,
    id: 0,
  };
}

/** The packet's flow as lib/acl.h extracts it from the frame (IP header at l3Off). */
function parse(frame: Uint8Array, l3Off: number, family: 4 | 6, dir: AclDir): Parsed {
  const ip = ipHeader(frame, l3Off, family);
  let proto = ip.proto;
  let l4 = ip.l4;
  let frag: Parsed['frag'] = 'none';
  let fragId = 0;
  if (family === 4) {
    if (ip.fragOff & 0x3fff) {
      fragId = ip.id;
      frag = ip.fragOff & 0x1fff ? 'later' : 'first';
    }
  } else {
    for (let i = 0; i < MODEL_V6_EXT_MAX && EXT.has(proto); i++) {
      if (l4 + 8 > frame.length) throw new Unclassifiable('ext');
      const next = frame[l4] as number;
      const hlen = frame[l4 + 1] as number;
      if (proto === 44) {
        fragId = Buffer.from(frame.subarray(l4 + 4, l4 + 8)).readUInt32BE(0);
        frag = be16(frame, l4 + 2) & 0xfff8 ? 'later' : 'first';
        l4 += 8;
      } else if (proto === 51) {
        l4 += (hlen + 2) * 4;
      } else {
        l4 += (hlen + 1) * 8;
      }
      proto = next;
    }
    if (EXT.has(proto)) throw new Unclassifiable('too many extension headers');
  }
  let sport = 0;
  let dport = 0;
  let err = false;
  if (frag !== 'later') ({ sport, dport, err } = l4Of(frame, l4, proto, family));
  const flow = orient(family, proto, ip.src, ip.dst, sport, dport, dir);
  const ported = proto === 6 || proto === 17;
  const parsed: Parsed = {
    flow,
    mlport: ported ? flow.lport : 0,
    mrport: ported ? flow.rport : 0,
    frag,
    fragId,
  };
  if (err) {
    try {
      const q = ipHeader(frame, l4 + 8, family);
      const ql = l4Of(frame, q.l4, q.proto, family);
      parsed.embedded = orient(
        family,
        q.proto,
        q.src,
        q.dst,
        ql.sport,
        ql.dport,
        dir === 'outbound' ? 'inbound' : 'outbound',
      );
    } catch {
      // A quote cut short relates to nothing: the error is classified by the rules.
    }
  }
  return parsed;
}

/** Parsed prefixes by text: rules are evaluated per packet, parsing once is enough. */
const PREFIXES = new Map<string, ReturnType<typeof prefixOf>>();

function prefixMatch(text: string, family: 4 | 6, addr: Uint8Array): boolean {
  let p = PREFIXES.get(text);
  if (p === undefined) {
    p = prefixOf(text);
    if (PREFIXES.size > 65536) PREFIXES.clear();
    PREFIXES.set(text, p);
  }
  if (p.family !== family) return false;
  for (let bit = 0; bit < p.length; bit++) {
    const m = 0x80 >> (bit & 7);
    if (((p.bytes[bit >> 3] as number) & m) !== ((addr[bit >> 3] as number) & m)) return false;
  }
  return true;
}

function macText(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ruleMatches(r: AclRule, p: Parsed, rmac: string, remoteVsid: number): boolean {
  const f = p.flow;
  if (r.remotePrefix !== undefined && !prefixMatch(r.remotePrefix, f.family, f.raddr)) return false;
  if (r.localPrefix !== undefined && !prefixMatch(r.localPrefix, f.family, f.laddr)) return false;
  if (r.protocol !== undefined && r.protocol !== f.proto) return false;
  if (r.localPorts !== undefined && (p.mlport < r.localPorts.from || p.mlport > r.localPorts.to))
    return false;
  if (r.remotePorts !== undefined && (p.mrport < r.remotePorts.from || p.mrport > r.remotePorts.to))
    return false;
  if (r.remoteMac !== undefined && r.remoteMac.toLowerCase() !== rmac) return false;
  if (r.isolationVsid !== undefined && r.isolationVsid !== remoteVsid) return false;
  return true;
}

/** The allow/deny rules of a direction in precedence order. */
export function precedenceOrder(rules: readonly AclRule[], dir: AclDir): AclRule[] {
  return rules
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => r.action !== 'meter' && (r.direction === dir || r.direction === 'both'))
    .sort(
      (a, b) =>
        (b.r.weight ?? 0) - (a.r.weight ?? 0) ||
        (a.r.action === 'deny' ? 0 : 1) - (b.r.action === 'deny' ? 0 : 1) ||
        a.i - b.i,
    )
    .map(({ r }) => r);
}

export interface AclPortModel {
  readonly name: string;
  readonly ifindex: number;
  readonly rules: readonly AclRule[];
}

interface CtEntry {
  lastSeenNs: bigint;
  timeoutS: number;
  dir: AclDir;
}

export interface AclEvalInput {
  readonly port: AclPortModel | undefined;
  readonly dir: AclDir;
  readonly frame: Uint8Array;
  readonly l3Off: number;
  readonly family: 4 | 6;
  readonly remoteVsid: number;
  readonly nowNs: bigint;
}

/** Per-rule hit counters keyed `${port}|${direction}|${rule}`. */
export type AclRuleCounters = Map<string, { packets: number; bytes: number }>;

export class AclModel {
  readonly ct = new Map<string, CtEntry>();
  readonly frags = new Map<string, { allow: boolean; rule?: string; dir: AclDir }>();
  readonly counters: AclRuleCounters = new Map();
  stats: AclStats = emptyStats();
  private readonly order = new Map<string, AclRule[]>();

  private ordered(port: AclPortModel, dir: AclDir): AclRule[] {
    const k = `${port.name}|${port.ifindex}|${dir}`;
    let o = this.order.get(k);
    if (!o || (o as unknown as { src?: unknown }).src !== port.rules) {
      o = precedenceOrder(port.rules, dir);
      (o as unknown as { src?: unknown }).src = port.rules;
      this.order.set(k, o);
    }
    return o;
  }

  private count(port: AclPortModel, dir: AclDir, rule: string, bytes: number): void {
    const k = `${port.name}|${dir}|${rule}`;
    const c = this.counters.get(k) ?? { packets: 0, bytes: 0 };
    c.packets++;
    c.bytes += bytes;
    this.counters.set(k, c);
  }

  private live(e: CtEntry | undefined, now: bigint): boolean {
    return e !== undefined && now - e.lastSeenNs <= BigInt(e.timeoutS) * 1_000_000_000n;
  }

  /** Sets a tracked flow's last-seen time (tests: make an entry idle). */
  ageAll(lastSeenNs: bigint): void {
    for (const e of this.ct.values()) e.lastSeenNs = lastSeenNs;
  }

  evaluate(input: AclEvalInput): AclModelVerdict {
    const { port, dir, frame, nowNs } = input;
    if (!port) return { verdict: 'allow', by: 'no-acl' };
    const rules = this.ordered(port, dir);
    if (rules.length === 0) return { verdict: 'allow', by: 'no-acl' };
    const len = frame.length;
    let p: Parsed;
    try {
      p = parse(frame, input.l3Off, input.family, dir);
    } catch (e) {
      if (e instanceof Unclassifiable) return { verdict: 'drop', reason: 'acl_unclassifiable' };
      throw e;
    }
    const fragKey = `${port.ifindex}|${dir}|${p.flow.family}|${p.flow.proto}|${p.fragId}|${hex(p.flow.laddr)}|${hex(p.flow.raddr)}`;
    if (p.frag === 'later') {
      const f = this.frags.get(fragKey);
      if (!f) {
        this.stats.frag_miss++;
        return { verdict: 'drop', reason: 'acl_fragment' };
      }
      this.stats.frag_hit++;
      if (f.rule !== undefined) this.count(port, f.dir, f.rule, len);
      return f.allow
        ? { verdict: 'allow', by: 'fragment', rule: f.rule }
        : { verdict: 'drop', reason: 'acl_deny', rule: f.rule };
    }
    if (input.l3Off < 14 || input.l3Off > frame.length) {
      return { verdict: 'drop', reason: 'acl_unclassifiable' };
    }
    const macOff = input.l3Off - (dir === 'outbound' ? 14 : 8);
    const rmac = macText(frame.subarray(macOff, macOff + 6));

    const finish = (v: AclModelVerdict): AclModelVerdict => {
      if (p.frag === 'first') {
        this.frags.set(fragKey, {
          allow: v.verdict === 'allow',
          rule: v.rule,
          dir,
        });
        this.stats.frag_stored++;
      }
      return v;
    };

    const key = flowKey(port.ifindex, p.flow);
    let ct = this.ct.get(key);
    if (ct && !this.live(ct, nowNs)) {
      this.stats.ct_expired++;
      ct = undefined;
    }
    if (ct && ct.dir !== dir) {
      ct.lastSeenNs = nowNs;
      this.stats.ct_reply++;
      return finish({ verdict: 'allow', by: 'reply' });
    }
    if (!ct && p.embedded) {
      const rel = this.ct.get(flowKey(port.ifindex, p.embedded));
      if (this.live(rel, nowNs)) {
        this.stats.ct_related++;
        return finish({ verdict: 'allow', by: 'related' });
      }
    }
    if (!ct) this.stats.ct_miss++;

    const rule = rules.find((r) => ruleMatches(r, p, rmac, input.remoteVsid));
    if (!rule) {
      this.stats.no_match++;
      return finish({ verdict: 'allow', by: 'no-rule' });
    }
    this.count(port, dir, rule.name, len);
    if (rule.action === 'deny')
      return finish({ verdict: 'drop', reason: 'acl_deny', rule: rule.name });
    if (rule.stateful === true) {
      if (!this.ct.has(key)) this.stats.ct_insert++;
      this.ct.set(key, {
        lastSeenNs: nowNs,
        timeoutS: rule.idleTimeoutSeconds ?? MODEL_DEFAULT_IDLE_TIMEOUT_S,
        dir,
      });
    }
    return finish({ verdict: 'allow', by: 'rule', rule: rule.name });
  }
}

/** The ACL state the simulator (agent/model/simulate.ts) consults at the three ACL points. */
export interface AclSimContext {
  readonly model: AclModel;
  /** Ports with ACLs by host-side ifindex. */
  readonly ports: ReadonlyMap<number, AclPortModel>;
  readonly nowNs: bigint;
  /** Filled by the simulation: each ACL decision on the packet's path. */
  readonly decisions?: Array<{ port: string; direction: AclDir; result: AclModelVerdict }>;
}

/** One ACL point of the simulated path: undefined to go on, else the drop reason. */
export function aclStage(
  ctx: AclSimContext | undefined,
  dir: AclDir,
  frame: Uint8Array,
  l3Off: number,
  family: number,
  ifindex: number,
  remoteVsid: number,
): 'acl_deny' | 'acl_fragment' | 'acl_unclassifiable' | undefined {
  if (!ctx) return undefined;
  const port = ctx.ports.get(ifindex);
  const result = ctx.model.evaluate({
    port,
    dir,
    frame,
    l3Off,
    family: family === 6 ? 6 : 4,
    remoteVsid,
    nowNs: ctx.nowNs,
  });
  if (port) ctx.decisions?.push({ port: port.name, direction: dir, result });
  return result.verdict === 'drop' ? result.reason : undefined;
}

/**
 * The ACL state for simulating a packet on hostName under policy: the host's port ACLs and
 * empty connection tracking and fragment state (the simulation answers for a packet of a new
 * flow; a reply of a tracked flow would be admitted). ifindexOf: a host interface's index.
 */
export function aclSimContext(
  policy: PolicyDocument,
  hostName: string,
  ifindexOf: (ifname: string) => number | undefined,
): AclSimContext {
  const ports = new Map<number, AclPortModel>();
  const byName = new Map(policy.ports.filter((p) => p.host === hostName).map((p) => [p.name, p]));
  for (const acl of policy.portAcls) {
    const port = byName.get(acl.port);
    const ifindex = port === undefined ? undefined : ifindexOf(port.interface);
    if (ifindex !== undefined) ports.set(ifindex, { name: acl.port, ifindex, rules: acl.rules });
  }
  return { model: new AclModel(), ports, nowNs: 0n, decisions: [] };
}
