// The parser must survive anything: truncation at every offset, random bytes, and random
// mutations of valid packets. It reports `truncated`/`error` instead of throwing.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describePacket, parsePacket, type ParsedPacket } from '../../agent/packet/parser.js';
import { packet } from '../../agent/packet/builder.js';
import { corpus } from '../helpers/packet-corpus.js';

/** mulberry32: small seeded PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function check(buf: Buffer): ParsedPacket {
  const p = parsePacket(buf);
  expect(p.length).toBe(buf.length);
  expect(typeof describePacket(buf)).toBe('string');
  if (p.error) expect(p.error.message).not.toMatch(/^internal/);
  // Offsets reported are inside the buffer.
  if (p.truncated) expect(p.truncated.offset).toBeLessThanOrEqual(buf.length);
  if (p.payloadOffset !== undefined) expect(p.payloadOffset).toBeLessThanOrEqual(buf.length);
  return p;
}

const entries = corpus();

describe('parser robustness', () => {
  it.each(entries.map((e) => [e.name, e] as const))('truncation at every offset: %s', (_n, e) => {
    const full = e.builder.build();
    const padded = /padded|raw-ethertype/.test(e.name);
    for (let n = 0; n < full.length; n++) {
      const p = check(full.subarray(0, n));
      // A cut valid packet looks truncated, never malformed: every layer with a length field
      // notices (raw Ethernet payloads and Ethernet padding carry no length to check against).
      expect(p.error, `cut at ${n}`).toBeUndefined();
      if (!padded) expect(p.truncated, `cut at ${n} of ${full.length}`).toBeDefined();
    }
  });

  it('random byte strings (seeded)', () => {
    const r = rng(0x7e4e7);
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(r() * 200);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(r() * 256);
      // Bias a third of them towards IP/GRE so deeper layers are reached.
      if (len >= 24 && i % 3 === 0) {
        b.writeUInt16BE([0x0800, 0x86dd, 0x8100, 0x0806][i % 4] as number, 12);
        if (b.readUInt16BE(12) === 0x0800) {
          b[14] = 0x45;
          b[23] = [6, 17, 1, 47][(i >> 2) % 4] as number;
        }
      }
      check(b);
    }
  });

  it('random mutations of valid packets (fast-check)', () => {
    const bases = entries.map((e) => e.builder.build());
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: bases.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.option(fc.nat(), { nil: undefined }),
        (which, edits, cut) => {
          const b = Buffer.from(bases[which] as Buffer);
          for (const [pos, val] of edits) b[pos % b.length] = val;
          const buf = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
          check(buf);
        },
      ),
      { numRuns: 3000, seed: 4242 },
    );
  });

  it('arbitrary bytes with any start layer (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 256 }),
        fc.constantFrom('eth' as const, 'ipv4' as const, 'ipv6' as const),
        (u8, start) => {
          const p = parsePacket(u8, { start });
          expect(p.length).toBe(u8.length);
          expect(typeof describePacket(p)).toBe('string');
        },
      ),
      { numRuns: 2000, seed: 7 },
    );
  });

  it('bounds GRE nesting depth', () => {
    // GRE-in-GRE many levels deep: parsing stops recursing at maxDepth without throwing.
    const b = packet();
    for (let i = 0; i < 50; i++) b.ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }).gre();
    const inner = b.ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }).payload(4).build();
    const p = parsePacket(inner, { start: 'ipv4', maxDepth: 4 });
    let depth = 0;
    for (let q: ParsedPacket | undefined = p; q?.inner; q = q.inner) depth++;
    expect(depth).toBe(4);
    expect(parsePacket(inner, { start: 'ipv4' }).error).toBeUndefined();
  });
});
