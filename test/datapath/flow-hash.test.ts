// The FlowID function (bpf/lib/flow_hash.h, agent/model/flow-hash.ts) against a second,
// deliberately plain implementation of its written definition (BigInt arithmetic, bytes read one
// by one), and pinned vectors so neither side can drift silently. The datapath tests check that
// the kernel computes the same FlowIDs (encapsulation cases and the differential test).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { flowId } from '../../agent/model/index.js';
import { ipToBytes } from '../../agent/packet/index.js';

const M32 = (1n << 32n) - 1n;

function reference(
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  proto: number,
): number {
  const bytes = [...src, ...dst, sport >> 8, sport & 255, dport >> 8, dport & 255, 0, 0, 0, proto];
  let h = 0x811c9dc5n;
  for (let i = 0; i < bytes.length; i += 4) {
    const w =
      BigInt(((bytes[i] as number) << 24) >>> 0) +
      BigInt((bytes[i + 1] as number) << 16) +
      BigInt((bytes[i + 2] as number) << 8) +
      BigInt(bytes[i + 3] as number);
    h = ((h ^ w) * 0x01000193n) & M32;
  }
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & M32;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & M32;
  h ^= h >> 16n;
  return Number(h & 0xffn);
}

describe('NVGRE FlowID', () => {
  it('matches its written definition for any IPv4 or IPv6 flow', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 255 }),
        (v4, s, d, sp, dp, p) => {
          const src = v4 ? s.subarray(0, 4) : s;
          const dst = v4 ? d.subarray(0, 4) : d;
          expect(flowId(src, dst, sp, dp, p)).toBe(reference(src, dst, sp, dp, p));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps its pinned values', () => {
    const f = (s: string, d: string, sp: number, dp: number, p: number) =>
      flowId(ipToBytes(s), ipToBytes(d), sp, dp, p);
    expect([
      f('198.18.10.11', '198.18.10.14', 40000, 5000, 17),
      f('198.18.10.11', '198.18.10.14', 40002, 5000, 17),
      f('198.18.10.11', '198.18.10.14', 0, 0, 1),
      f('fd00:10::11', 'fd00:10::14', 40001, 443, 6),
    ]).toEqual([1, 208, 218, 39]);
    // The kernel's FlowID for the first flow, read off the wire in the smoke run (key 0x0013897c).
    expect(f('198.18.10.11', '198.18.10.14', 1, 2, 17)).toBe(0x7c);
  });

  it('spreads flows over the 256 values', () => {
    const seen = new Set<number>();
    for (let sport = 1024; sport < 1024 + 2000; sport++)
      seen.add(flowId(ipToBytes('198.18.10.11'), ipToBytes('198.18.10.14'), sport, 443, 6));
    expect(seen.size).toBeGreaterThan(240);
  });
});
