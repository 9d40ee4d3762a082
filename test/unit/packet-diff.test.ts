import { existsSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { packet } from '../../agent/packet/builder.js';
import { readPcap } from '../../agent/packet/pcap.js';
import {
  PacketMismatchError,
  artifactPath,
  expectPacket,
  hexDiff,
} from '../helpers/packet-diff.js';

const NAME = `packet-diff-selftest-${process.pid}`;
afterAll(() => rmSync(artifactPath(NAME), { force: true }));

const base = () =>
  packet()
    .eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: '198.18.0.1', dst: '198.18.0.2' })
    .udp({ sport: 1, dport: 2 });

describe('hexDiff', () => {
  it('marks differing bytes side by side', () => {
    const a = Buffer.from('000102030405060708090a0b0c0d0e0f1011', 'hex');
    const b = Buffer.from('000102ff0405060708090a0b0c0d0e0f10', 'hex');
    const d = hexDiff(a, b);
    const lines = d.split('\n');
    expect(lines[0]).toMatch(/expected .*\| actual/);
    expect(lines[1]).toMatch(/^! 0000 00 01 02 03 .*\| 00 01 02 ff /);
    // Marker row: '^^' under byte 3 on both sides.
    expect(lines[2]?.indexOf('^^')).toBe(7 + 9);
    expect(lines[3]).toMatch(/^! 0010 10 11 .*\| 10\s*$/);
    expect(lines[4]).toContain('--');
    expect(d).toMatch(
      /2 byte\(s\) differ; expected 18 bytes, actual 17 bytes; first difference at offset 3/,
    );
  });

  it('reports identical buffers', () => {
    expect(hexDiff(Buffer.from([1, 2]), Buffer.from([1, 2]))).toMatch(
      /^ {7}expected[\s\S]*0 byte\(s\) differ/,
    );
    expect(hexDiff(Buffer.alloc(0), Buffer.alloc(0))).toContain('0 byte(s) differ');
  });
});

describe('expectPacket', () => {
  it('passes on equal packets (bytes or builders)', () => {
    expect(() => expectPacket(base().build(), base(), { name: NAME })).not.toThrow();
    expect(existsSync(artifactPath(NAME))).toBe(false);
  });

  it('throws with decodes and hex diff, and writes a pcap of both', () => {
    const expected = base().payload('abc').build();
    const actual = base().payload('abd').build();
    let err: unknown;
    try {
      expectPacket(actual, expected, { name: NAME });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PacketMismatchError);
    const msg = (err as Error).message;
    expect(msg).toContain(`packet mismatch (${NAME})`);
    expect(msg).toContain(
      'expected: 02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 198.18.0.1 > 198.18.0.2 ttl 64 UDP 1 > 2 len 3',
    );
    expect(msg).toMatch(/actual: {3}02:00:00:00:00:01 > .* UDP 1 > 2 len 3/);
    expect(msg).toContain('first difference at offset 40');
    const path = (err as PacketMismatchError).pcapPath;
    expect(path).toBe(artifactPath(NAME));
    expect(path).toMatch(/test-artifacts\/packet-diff-selftest-\d+\.pcap$/);
    expect(readPcap(path).records.map((r) => r.data)).toEqual([expected, actual]);
  });

  it('sanitises artifact names', () => {
    expect(artifactPath('a/b c:../d')).toMatch(/test-artifacts\/a_b_c_.._d\.pcap$/);
  });
});
