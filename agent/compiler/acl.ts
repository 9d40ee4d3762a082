// The port ACL compiler: a pure function from a port's allow/deny rules to the contents of the
// datapath's ACL tables (bpf/abi/acl.h, docs/acl.md). No I/O: the reconciler (agent/reconciler/
// acl.ts) stamps a fresh rule set id into the keys and writes them.
//
// Per port and direction the rules are ranked by precedence: weight descending (no weight = 0),
// deny before allow at equal weight, then document order. A rule's rank is its bit in the
// bitmaps. For each match field, every distinct value prefix any rule names becomes an LPM entry
// (plus the /0 wildcard entry, always present) whose bitmap holds every rule that admits ALL of
// that prefix: the rules naming an ancestor-or-equal prefix and the rules that leave the field
// open. The datapath's longest-prefix match then finds, for any packet value, exactly the rules
// that admit the value (the longest entry containing it is covered by each admitting rule's
// prefix, since prefixes nest). Port ranges become the minimal set of aligned prefixes.
//
// Meter rules are not classified here (metering compiles them); they never change a verdict.

import type { AclRule, PolicyDocument, PortAcl } from '../policy/model.js';
import { CompileError } from './compile.js';
import { macBytes, prefixOf } from '../policy/addr.js';

/** Rules per port and direction (TENET_ACL_RULES_MAX). */
export const ACL_RULES_MAX = 10240;
/** Bitmap words (u64) and summary words of struct tenet_acl_bits. */
export const ACL_WORDS = ACL_RULES_MAX / 64;
export const ACL_SUMMARY_WORDS = Math.ceil(ACL_WORDS / 64);
export const ACL_BITS_BYTES = 8 * (ACL_SUMMARY_WORDS + ACL_WORDS);
/**
 * Per-host limits: half the map sizes (TENET_ACL_HOST_RULES_MAX, TENET_ACL_FIELDS_MAX), because a
 * rule set change keeps the old and the new rule set in the maps until the flip has settled.
 */
export const ACL_HOST_RULES_MAX = 32768;
export const ACL_HOST_FIELDS_MAX = 32768;
/** Idle timeout of a stateful rule without idleTimeoutSeconds. */
export const ACL_DEFAULT_IDLE_TIMEOUT_S = 300;

/** Field ids (enum tenet_acl_field) and their value widths in bits. */
export const AclFieldId = {
  remote4: 1,
  remote6: 2,
  local4: 3,
  local6: 4,
  protoLport: 5,
  protoRport: 6,
  rmac: 7,
  vsid: 8,
} as const;
export type AclFieldIdValue = (typeof AclFieldId)[keyof typeof AclFieldId];
export const FIELD_BITS: Record<AclFieldIdValue, number> = {
  1: 32,
  2: 128,
  3: 32,
  4: 128,
  5: 24,
  6: 24,
  7: 48,
  8: 32,
};

export type AclDirectionName = 'inbound' | 'outbound';

/** One ranked allow/deny rule. */
export interface AclRankedRule {
  readonly rank: number;
  readonly name: string;
  /** 1 allow, 2 deny (enum tenet_acl_action). */
  readonly action: 1 | 2;
  readonly stateful: boolean;
  readonly idleTimeoutS: number;
  readonly rule: AclRule;
}

/** One LPM entry of a field: the value's first `length` bits (left-aligned) and its bitmap. */
export interface AclFieldEntry {
  readonly field: AclFieldIdValue;
  /** Bits of data that count (the key's prefixlen is 64 + length). */
  readonly length: number;
  /** 16 bytes, network order, left-aligned, zero beyond length. */
  readonly data: Uint8Array;
  /** Bit r (rank r) at word r >> 5, bit r & 31: the byte layout of the kernel's u64 words. */
  readonly bits: Uint32Array;
}

export interface CompiledAclDirection {
  readonly rules: readonly AclRankedRule[];
  readonly fields: readonly AclFieldEntry[];
  /**
   * Bit f (enum tenet_acl_field): every rule leaves field f open, so the datapath skips its
   * lookup (struct tenet_acl_port.open_fields).
   */
  readonly openFields: number;
}

export interface CompiledPortAcl {
  readonly port: string;
  readonly ifindex: number;
  /** null: no allow/deny rules in this direction (everything allowed, no work per packet). */
  readonly inbound: CompiledAclDirection | null;
  readonly outbound: CompiledAclDirection | null;
}

export class AclCompileError extends Error {
  override readonly name = 'AclCompileError';
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

/** The allow/deny rules of one direction, in precedence order (rank = index). */
export function rankRules(rules: readonly AclRule[], dir: AclDirectionName): AclRankedRule[] {
  const picked = rules
    .map((rule, index) => ({ rule, index }))
    .filter(
      ({ rule }) =>
        rule.action !== 'meter' && (rule.direction === dir || rule.direction === 'both'),
    );
  picked.sort((a, b) => {
    const wa = a.rule.weight ?? 0;
    const wb = b.rule.weight ?? 0;
    if (wa !== wb) return wb - wa;
    const da = a.rule.action === 'deny' ? 0 : 1;
    const db = b.rule.action === 'deny' ? 0 : 1;
    if (da !== db) return da - db;
    return a.index - b.index;
  });
  return picked.map(({ rule }, rank) => ({
    rank,
    name: rule.name,
    action: rule.action === 'allow' ? 1 : 2,
    stateful: rule.stateful === true,
    idleTimeoutS:
      rule.stateful === true ? (rule.idleTimeoutSeconds ?? ACL_DEFAULT_IDLE_TIMEOUT_S) : 0,
    rule,
  }));
}

/** A prefix as a left-aligned bigint of `width` bits. */
interface Prefix {
  readonly value: bigint;
  readonly length: number;
}

function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** The minimal aligned prefixes (of 16 bits) covering the inclusive range from..to. */
export function portRangePrefixes(
  from: number,
  to: number,
): Array<{ value: number; length: number }> {
  const out: Array<{ value: number; length: number }> = [];
  let lo = from;
  while (lo <= to) {
    let size = 1;
    // Grow the block while it stays aligned and inside the range.
    while (size < 65536 && lo % (size * 2) === 0 && lo + size * 2 - 1 <= to) size *= 2;
    out.push({ value: lo, length: 16 - Math.log2(size) });
    lo += size;
  }
  return out;
}

/** What a rule admits of a field: null = anything (wildcard), [] = nothing, else prefixes. */
function rulePrefixes(rule: AclRule, field: AclFieldIdValue): Prefix[] | null {
  const width = FIELD_BITS[field];
  const addr = (text: string | undefined, family: 4 | 6): Prefix[] | null => {
    if (text === undefined) return null;
    const p = prefixOf(text);
    if (p.family !== family) return [];
    return [{ value: bytesToBig(p.bytes), length: p.length }];
  };
  switch (field) {
    case 1:
      return addr(rule.remotePrefix, 4);
    case 2:
      return addr(rule.remotePrefix, 6);
    case 3:
      return addr(rule.localPrefix, 4);
    case 4:
      return addr(rule.localPrefix, 6);
    case 5:
    case 6: {
      const range = field === 5 ? rule.localPorts : rule.remotePorts;
      if (rule.protocol === undefined) return null;
      const proto = BigInt(rule.protocol) << 16n;
      if (range === undefined) return field === 5 ? [{ value: proto, length: 8 }] : null;
      return portRangePrefixes(range.from, range.to).map((p) => ({
        value: proto | BigInt(p.value),
        length: 8 + p.length,
      }));
    }
    case 7:
      return rule.remoteMac === undefined
        ? null
        : [{ value: bytesToBig(macBytes(rule.remoteMac)), length: width }];
    case 8:
      return rule.isolationVsid === undefined
        ? null
        : [{ value: BigInt(rule.isolationVsid), length: width }];
  }
}

function maskTo(value: bigint, width: number, length: number): bigint {
  if (length === 0) return 0n;
  const keep = ((1n << BigInt(length)) - 1n) << BigInt(width - length);
  return value & keep;
}

function dataBytes(value: bigint, width: number): Uint8Array {
  const out = new Uint8Array(16);
  const n = width / 8;
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

const WORDS32 = ACL_RULES_MAX / 32;

/** Entries of one field for ranked rules (the /0 entry first). */
export function compileField(
  rules: readonly AclRankedRule[],
  field: AclFieldIdValue,
): AclFieldEntry[] {
  const width = FIELD_BITS[field];
  const own = new Map<string, { prefix: Prefix; ranks: number[] }>();
  const keyOf = (p: Prefix): string => `${p.length}/${p.value.toString(16)}`;
  const root: Prefix = { value: 0n, length: 0 };
  own.set(keyOf(root), { prefix: root, ranks: [] });
  for (const r of rules) {
    const ps = rulePrefixes(r.rule, field);
    if (ps === null) {
      (own.get(keyOf(root)) as { ranks: number[] }).ranks.push(r.rank);
      continue;
    }
    for (const p0 of ps) {
      const p = { value: maskTo(p0.value, width, p0.length), length: p0.length };
      const k = keyOf(p);
      let e = own.get(k);
      if (!e) own.set(k, (e = { prefix: p, ranks: [] }));
      e.ranks.push(r.rank);
    }
  }
  const entries = [...own.values()].sort((a, b) => a.prefix.length - b.prefix.length);
  const lengths = [...new Set(entries.map((e) => e.prefix.length))].sort((a, b) => b - a);
  const bitsOf = new Map<string, Uint32Array>();
  const out: AclFieldEntry[] = [];
  for (const e of entries) {
    const bits = new Uint32Array(WORDS32);
    // The nearest shorter entry that contains this one carries every covering rule above it.
    for (const len of lengths) {
      if (len >= e.prefix.length) continue;
      const parent = bitsOf.get(`${len}/${maskTo(e.prefix.value, width, len).toString(16)}`);
      if (parent) {
        bits.set(parent);
        break;
      }
    }
    for (const r of e.ranks) bits[r >>> 5] = (bits[r >>> 5] as number) | (1 << (r & 31));
    bitsOf.set(keyOf(e.prefix), bits);
    out.push({ field, length: e.prefix.length, data: dataBytes(e.prefix.value, width), bits });
  }
  return out;
}

export const ALL_FIELDS: readonly AclFieldIdValue[] = [1, 2, 3, 4, 5, 6, 7, 8];

/** One direction of a port's ACL, or null if it has no allow/deny rules. */
export function compileDirection(
  rules: readonly AclRule[],
  dir: AclDirectionName,
  path = 'portAcls',
): CompiledAclDirection | null {
  const ranked = rankRules(rules, dir);
  if (ranked.length === 0) return null;
  if (ranked.length > ACL_RULES_MAX) {
    throw new AclCompileError(
      path,
      `${ranked.length} ${dir} allow/deny rules exceed the limit of ${ACL_RULES_MAX} per port and direction`,
    );
  }
  let openFields = 0;
  const fields = ALL_FIELDS.flatMap((f) => {
    const es = compileField(ranked, f);
    const root = es[0] as AclFieldEntry;
    const all = ranked.every((r) => ((root.bits[r.rank >>> 5] as number) >>> (r.rank & 31)) & 1);
    if (es.length === 1 && all) openFields |= 1 << f;
    return es;
  });
  return { rules: ranked, fields, openFields };
}

/**
 * This host's port ACLs. ifindexOf: the host-side interface index of a port of this host by
 * port name, undefined for ports elsewhere (their ACLs are compiled on their own host). Throws
 * AclCompileError naming the port and the limit when a rule set is over capacity; then nothing
 * is to be applied.
 */
export function compileAcls(
  portAcls: readonly PortAcl[],
  ifindexOf: (port: string) => number | undefined,
): CompiledPortAcl[] {
  const out: CompiledPortAcl[] = [];
  let hostRules = 0;
  let hostFields = 0;
  portAcls.forEach((acl, i) => {
    const ifindex = ifindexOf(acl.port);
    if (ifindex === undefined) return;
    const path = `portAcls[${i}] (port ${acl.port})`;
    const inbound = compileDirection(acl.rules, 'inbound', path);
    const outbound = compileDirection(acl.rules, 'outbound', path);
    for (const d of [inbound, outbound]) {
      if (!d) continue;
      hostRules += d.rules.length;
      hostFields += d.fields.length;
    }
    if (hostRules > ACL_HOST_RULES_MAX) {
      throw new AclCompileError(
        path,
        `the host's port ACLs reach ${hostRules} allow/deny rules, over the limit of ${ACL_HOST_RULES_MAX} per host`,
      );
    }
    if (hostFields > ACL_HOST_FIELDS_MAX) {
      throw new AclCompileError(
        path,
        `the host's port ACLs compile to ${hostFields} field entries, over the limit of ${ACL_HOST_FIELDS_MAX} per host (port ranges expand to prefixes)`,
      );
    }
    out.push({ port: acl.port, ifindex, inbound, outbound });
  });
  return out;
}

/** struct tenet_acl_field_key for rule set rsid (28 bytes). */
export function fieldKeyBytes(rsid: number, e: AclFieldEntry): Buffer {
  const k = Buffer.alloc(28);
  k.writeUInt32LE(64 + e.length, 0);
  k.writeUInt32LE(rsid >>> 0, 4);
  k.writeUInt8(e.field, 8);
  k.set(e.data, 12);
  return k;
}

/** struct tenet_acl_bits: summary (bit w: word w non-zero) then the words. */
export function bitsValueBytes(bits: Uint32Array): Buffer {
  const v = Buffer.alloc(ACL_BITS_BYTES);
  const words = Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength);
  words.copy(v, 8 * ACL_SUMMARY_WORDS);
  for (let w = 0; w < ACL_WORDS; w++) {
    if ((bits[2 * w] as number) !== 0 || (bits[2 * w + 1] as number) !== 0) {
      const byte = w >>> 3;
      v[byte] = (v[byte] as number) | (1 << (w & 7));
    }
  }
  return v;
}

/**
 * compileAcls for one host of a policy: its ports' interfaces give the ifindexes. Over-capacity
 * rule sets become a CompileError (the policy is rejected for this host, nothing applied).
 */
export function compileHostAcls(
  policy: PolicyDocument,
  hostName: string,
  interfaces: ReadonlyMap<string, { readonly ifindex: number }>,
): CompiledPortAcl[] {
  const ifindex = new Map<string, number>();
  for (const p of policy.ports) {
    if (p.host !== hostName) continue;
    const i = interfaces.get(p.interface);
    if (i !== undefined) ifindex.set(p.name, i.ifindex);
  }
  try {
    return compileAcls(policy.portAcls, (name) => ifindex.get(name));
  } catch (e) {
    if (e instanceof AclCompileError) {
      throw new CompileError(hostName, [{ path: e.path, message: e.detail }]);
    }
    throw e;
  }
}
