// The port ACL compiler (agent/compiler/acl.ts): precedence, the bitmaps of each field's LPM
// entries, port ranges as prefixes, capacity errors and the encodings the datapath reads. The
// expectations are worked out by hand from the rules, not taken from the compiler.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CompileError } from '../../agent/compiler/compile.js';
import { parsePolicy } from '../../agent/policy/index.js';
import {
  ACL_BITS_BYTES,
  ACL_HOST_RULES_MAX,
  ACL_RULES_MAX,
  AclCompileError,
  bitsValueBytes,
  compileAcls,
  compileHostAcls,
  compileDirection,
  compileField,
  fieldKeyBytes,
  portRangePrefixes,
  rankRules,
  type AclFieldEntry,
} from '../../agent/compiler/acl.js';
import type { AclRule } from '../../agent/policy/model.js';

const ROOT = join(import.meta.dirname, '..', '..');

const r = (name: string, o: Partial<AclRule> = {}): AclRule => ({
  name,
  direction: 'outbound',
  action: 'deny',
  ...o,
});

const ranks = (e: AclFieldEntry): number[] => {
  const out: number[] = [];
  for (let i = 0; i < e.bits.length * 32; i++)
    if ((e.bits[i >>> 5] as number) & (1 << (i & 31))) out.push(i);
  return out;
};
const entry = (es: AclFieldEntry[], length: number, hex: string): AclFieldEntry | undefined =>
  es.find((e) => e.length === length && Buffer.from(e.data).toString('hex').startsWith(hex));

describe('precedence', () => {
  it('weight descending, deny before allow at equal weight, then document order', () => {
    const rules = [
      r('a0', { action: 'allow' }),
      r('d0'),
      r('a5', { action: 'allow', weight: 5 }),
      r('d5', { weight: 5 }),
      r('d0b'),
      r('in', { direction: 'inbound', weight: 100 }),
      r('both', { direction: 'both', action: 'allow', weight: 1 }),
      r('m', { action: 'meter', meteringClass: 'x', remotePrefix: '0.0.0.0/0' }),
    ];
    expect(rankRules(rules, 'outbound').map((x) => x.name)).toEqual([
      'd5',
      'a5',
      'both',
      'd0',
      'd0b',
      'a0',
    ]);
    expect(rankRules(rules, 'inbound').map((x) => x.name)).toEqual(['in', 'both']);
  });

  it('stateful rules get their idle timeout or the 300 s default', () => {
    const [a, b] = rankRules(
      [
        r('a', { action: 'allow', stateful: true, idleTimeoutSeconds: 9 }),
        r('b', { action: 'allow', stateful: true }),
      ],
      'outbound',
    );
    expect([a?.idleTimeoutS, b?.idleTimeoutS]).toEqual([9, 300]);
  });

  it('a direction without allow/deny rules compiles to nothing (allow all, no work)', () => {
    expect(compileDirection([r('x', { direction: 'inbound' })], 'outbound')).toBeNull();
  });
});

describe('field bitmaps', () => {
  it('an address entry holds the rules covering all of its prefix, wildcards included', () => {
    const rules = rankRules(
      [
        r('host', { remotePrefix: '198.18.10.12/32' }), // rank 0
        r('net', { remotePrefix: '198.18.10.0/24' }), // rank 1
        r('any'), // rank 2: no remote prefix
        r('v6', { remotePrefix: 'fd00::/8' }), // rank 3: never in the IPv4 field
        r('other', { remotePrefix: '198.18.20.0/24' }), // rank 4
      ],
      'outbound',
    );
    const es = compileField(rules, 1);
    expect(es).toHaveLength(4); // /0, two /24, one /32
    expect(ranks(entry(es, 0, '') as AclFieldEntry)).toEqual([2]);
    expect(ranks(entry(es, 24, 'c6120a') as AclFieldEntry)).toEqual([1, 2]);
    expect(ranks(entry(es, 32, 'c6120a0c') as AclFieldEntry)).toEqual([0, 1, 2]);
    expect(ranks(entry(es, 24, 'c61214') as AclFieldEntry)).toEqual([2, 4]);
    const v6 = compileField(rules, 2);
    expect(ranks(entry(v6, 0, '') as AclFieldEntry)).toEqual([2]);
    expect(ranks(entry(v6, 8, 'fd') as AclFieldEntry)).toEqual([2, 3]);
  });

  it('protocol and local port share one field: protocol /8, ranges below it', () => {
    const rules = rankRules(
      [
        r('web', { protocol: 6, localPorts: { from: 80, to: 80 } }), // rank 0
        r('tcp', { protocol: 6 }), // rank 1
        r('any'), // rank 2
        r('udp-range', { protocol: 17, localPorts: { from: 1000, to: 1003 } }), // rank 3
      ],
      'outbound',
    );
    const es = compileField(rules, 5);
    expect(ranks(entry(es, 0, '') as AclFieldEntry)).toEqual([2]);
    expect(ranks(entry(es, 8, '06') as AclFieldEntry)).toEqual([1, 2]);
    expect(ranks(entry(es, 24, '060050') as AclFieldEntry)).toEqual([0, 1, 2]);
    // 1000..1003 = 0x03e8/14: one prefix, holding the UDP range rule and the wildcard.
    expect(ranks(entry(es, 22, '1103e8') as AclFieldEntry)).toEqual([2, 3]);
    // Remote ports: rules without remote ports are wildcards there, even with a protocol.
    const rp = compileField(rules, 6);
    expect(rp).toHaveLength(1);
    expect(ranks(rp[0] as AclFieldEntry)).toEqual([0, 1, 2, 3]);
  });

  it('MAC and VSID are exact values with a wildcard entry', () => {
    const rules = rankRules(
      [r('mac', { remoteMac: '02:00:00:00:01:04' }), r('vsid', { isolationVsid: 5002 }), r('any')],
      'outbound',
    );
    const mac = compileField(rules, 7);
    expect(ranks(entry(mac, 48, '020000000104') as AclFieldEntry)).toEqual([0, 1, 2]);
    expect(ranks(entry(mac, 0, '') as AclFieldEntry)).toEqual([1, 2]);
    const vsid = compileField(rules, 8);
    expect(ranks(entry(vsid, 32, '0000138a') as AclFieldEntry)).toEqual([0, 1, 2]);
    expect(ranks(entry(vsid, 0, '') as AclFieldEntry)).toEqual([0, 2]);
  });
});

describe('open fields', () => {
  it('marks the fields no rule constrains, so the datapath skips their lookups', () => {
    const d = compileDirection(
      [r('a', { remotePrefix: '198.18.10.0/24', protocol: 6 }), r('b', { action: 'allow' })],
      'outbound',
    );
    const open = [1, 2, 3, 4, 5, 6, 7, 8].filter((f) => ((d?.openFields ?? 0) >> f) & 1);
    // remote4 (a names it) and proto+local port (a names tcp) are not open; remote6 is not
    // open either: rule a can never match IPv6, so its /0 entry does not hold every rule.
    expect(open).toEqual([3, 4, 6, 7, 8]);
  });
});

describe('port ranges', () => {
  it('become the minimal aligned prefixes', () => {
    expect(portRangePrefixes(80, 80)).toEqual([{ value: 80, length: 16 }]);
    expect(portRangePrefixes(0, 65535)).toEqual([{ value: 0, length: 0 }]);
    expect(portRangePrefixes(1024, 65535)).toEqual([
      { value: 1024, length: 6 },
      { value: 2048, length: 5 },
      { value: 4096, length: 4 },
      { value: 8192, length: 3 },
      { value: 16384, length: 2 },
      { value: 32768, length: 1 },
    ]);
    expect(portRangePrefixes(1, 6)).toEqual([
      { value: 1, length: 16 },
      { value: 2, length: 15 },
      { value: 4, length: 15 },
      { value: 6, length: 16 },
    ]);
  });

  it('cover exactly the range (every port of 0..2100 checked)', () => {
    const ps = portRangePrefixes(53, 2049);
    for (let p = 0; p <= 2100; p++) {
      const inside = ps.some(
        (x) => p >> (16 - x.length) === x.value >> (16 - x.length) || x.length === 0,
      );
      expect(inside, `port ${p}`).toBe(p >= 53 && p <= 2049);
    }
  });
});

describe('capacity and bad input', () => {
  const many = (n: number): AclRule[] =>
    Array.from({ length: n }, (_, i) =>
      r(`r${i}`, { remotePrefix: `198.18.${(i >> 8) & 255}.${i & 255}/32` }),
    );

  it(`accepts ${ACL_RULES_MAX} rules per port and direction, rejects one more, naming the port`, () => {
    expect(compileDirection(many(ACL_RULES_MAX), 'outbound')?.rules).toHaveLength(ACL_RULES_MAX);
    const run = () => compileAcls([{ port: 'web1', rules: many(ACL_RULES_MAX + 1) }], () => 7);
    expect(run).toThrow(AclCompileError);
    expect(run).toThrow(/portAcls\[0\] \(port web1\).*10241 outbound .* limit of 10240 per port/);
  });

  it('rejects a host over its rule limit, naming the port that crosses it', () => {
    const acls = [0, 1, 2, 3].map((i) => ({ port: `p${i}`, rules: many(9000) }));
    expect(() => compileAcls(acls, () => 3)).toThrow(
      new RegExp(`portAcls\\[3\\] \\(port p3\\).*36000 .* limit of ${ACL_HOST_RULES_MAX} per host`),
    );
  });

  it('for a host agent, an over-capacity ACL is a CompileError naming the port and the limit', () => {
    const doc = parse(readFileSync(join(ROOT, 'scripts/lab/demo-policy.yaml'), 'utf8')) as Record<
      string,
      unknown
    >;
    const policy = parsePolicy({
      ...doc,
      portAcls: [{ port: 'blue-vm1', rules: many(ACL_RULES_MAX + 1) }],
    });
    const interfaces = new Map([['vm-blue1', { ifindex: 5 }]]);
    expect(() => compileHostAcls(policy, 'hv1', interfaces)).toThrow(CompileError);
    expect(() => compileHostAcls(policy, 'hv1', interfaces)).toThrow(
      /cannot compile the policy for host hv1:[\s\S]*port blue-vm1[\s\S]*limit of 10240 per port and direction/,
    );
    // The same policy on the other host has nothing of blue-vm1's to compile.
    expect(compileHostAcls(policy, 'hv2', new Map())).toEqual([]);
  });

  it('compiles only the ports of this host', () => {
    const out = compileAcls(
      [
        { port: 'here', rules: [r('a')] },
        { port: 'elsewhere', rules: [r('b')] },
      ],
      (p) => (p === 'here' ? 5 : undefined),
    );
    expect(out.map((p) => [p.port, p.ifindex])).toEqual([['here', 5]]);
  });

  it('throws on a malformed prefix instead of compiling something else', () => {
    expect(() =>
      compileDirection([r('bad', { remotePrefix: '198.18.0.0/33' })], 'outbound'),
    ).toThrow();
  });
});

describe('encodings', () => {
  it('field key: prefixlen counts the 64 fixed bits, rsid little-endian, data left-aligned', () => {
    const [e] = compileField(
      rankRules([r('a', { remotePrefix: '198.18.10.0/24' })], 'outbound'),
      1,
    ).filter((x) => x.length === 24);
    expect(fieldKeyBytes(0x01020304, e as AclFieldEntry).toString('hex')).toBe(
      '58000000' + '04030201' + '01000000' + 'c6120a00' + '00'.repeat(12),
    );
  });

  it('bitmap value: summary bit w set iff word w is non-zero', () => {
    const bits = new Uint32Array(ACL_RULES_MAX / 32);
    bits[0] = 1; // rank 0: word 0
    bits[2 * 70 + 1] = 0x80000000; // rank 70*64+63: word 70
    const v = bitsValueBytes(bits);
    expect(v.length).toBe(ACL_BITS_BYTES);
    expect(v.readBigUInt64LE(0)).toBe(1n);
    expect(v.readBigUInt64LE(8)).toBe(1n << 6n); // word 70 = summary word 1, bit 6
    expect(v.readBigUInt64LE(16)).toBe(0n);
    expect(v.readBigUInt64LE(24)).toBe(1n);
    expect(v.readBigUInt64LE(24 + 70 * 8)).toBe(1n << 63n);
  });
});
