// Packet comparison for tests: side-by-side hex diff, one-line decodes, and a pcap of both
// packets under test-artifacts/ when they differ.

import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { describePacket } from '../../agent/packet/parser.js';
import { writePcap } from '../../agent/packet/pcap.js';

/** Repository root (two levels above this file). */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS_DIR = process.env.TENET_TEST_ARTIFACTS ?? join(REPO_ROOT, 'test-artifacts');

const ROW = 16;

function rowHex(buf: Uint8Array, start: number): string {
  const cells: string[] = [];
  for (let i = start; i < start + ROW; i++) {
    if (i >= buf.length) {
      cells.push('  ');
      continue;
    }
    const h = (buf[i] as number).toString(16).padStart(2, '0');
    cells.push(h);
  }
  // Group by 8 for readability.
  return `${cells.slice(0, 8).join(' ')}  ${cells.slice(8).join(' ')}`;
}

function rowMarks(a: Uint8Array, b: Uint8Array, start: number, self: Uint8Array): string {
  const cells: string[] = [];
  for (let i = start; i < start + ROW; i++) {
    const differs = i < a.length !== i < b.length || (i < a.length && a[i] !== b[i]);
    cells.push(differs && i < self.length ? '^^' : differs ? '--' : '  ');
  }
  return `${cells.slice(0, 8).join(' ')}  ${cells.slice(8).join(' ')}`;
}

/**
 * Side-by-side hex rows (expected | actual), 16 bytes each. Rows that differ start with '!' and are
 * followed by a marker row with '^^' under each differing byte ('--' where one side has no byte).
 */
export function hexDiff(expected: Uint8Array, actual: Uint8Array): string {
  const len = Math.max(expected.length, actual.length);
  const width = ROW * 3 + 1;
  const lines: string[] = [];
  lines.push(`       ${'expected'.padEnd(width)} | actual`);
  let diffs = 0;
  for (let off = 0; off < len || off === 0; off += ROW) {
    let rowDiff = false;
    for (let i = off; i < off + ROW && i < len; i++) {
      if (i >= expected.length || i >= actual.length || expected[i] !== actual[i]) {
        rowDiff = true;
        diffs++;
      }
    }
    const e = rowHex(expected, off).padEnd(width);
    const a = rowHex(actual, off);
    lines.push(`${rowDiff ? '!' : ' '} ${off.toString(16).padStart(4, '0')} ${e} | ${a}`);
    if (rowDiff) {
      lines.push(
        `       ${rowMarks(expected, actual, off, expected).padEnd(width)} | ${rowMarks(expected, actual, off, actual)}`,
      );
    }
    if (len === 0) break;
  }
  lines.push(
    `${diffs} byte(s) differ; expected ${expected.length} bytes, actual ${actual.length} bytes` +
      (diffs ? `; first difference at offset ${firstDiff(expected, actual)}` : ''),
  );
  return lines.join('\n');
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

export interface ExpectPacketOptions {
  /** Used for the artifact file name test-artifacts/<name>.pcap (sanitised). */
  name: string;
}

type PacketLike = Uint8Array | { build(): Buffer };

function bytesOf(p: PacketLike): Buffer {
  if (p instanceof Uint8Array) return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  return p.build();
}

export class PacketMismatchError extends Error {
  constructor(
    message: string,
    readonly pcapPath: string,
  ) {
    super(message);
    this.name = 'PacketMismatchError';
  }
}

/** Path where expectPacket writes the pcap for `name`. */
export function artifactPath(name: string): string {
  const safe =
    name
      .replace(/[^A-Za-z0-9_.-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 120) || 'packet';
  return join(ARTIFACTS_DIR, `${safe}.pcap`);
}

/**
 * Assert two packets are byte-identical. On mismatch write test-artifacts/<name>.pcap (frame 1 =
 * expected, frame 2 = actual) and throw an error with both one-line decodes and the hex diff.
 */
export function expectPacket(
  actual: PacketLike,
  expected: PacketLike,
  opts: ExpectPacketOptions,
): void {
  const a = bytesOf(actual);
  const e = bytesOf(expected);
  if (a.equals(e)) return;
  const path = artifactPath(opts.name);
  let wrote = true;
  try {
    writePcap(path, [e, a]);
  } catch {
    wrote = false;
  }
  const msg = [
    `packet mismatch (${opts.name})`,
    `expected: ${describePacket(e)}`,
    `actual:   ${describePacket(a)}`,
    hexDiff(e, a),
    wrote ? `pcap (frame 1 expected, frame 2 actual): ${path}` : `(could not write ${path})`,
  ].join('\n');
  throw new PacketMismatchError(msg, path);
}
