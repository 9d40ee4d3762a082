// Classic libpcap file format (not pcapng): writer and a small reader.
// Global header: magic 0xa1b2c3d4 (microsecond timestamps), version 2.4, snaplen, linktype.
// Written little-endian; the reader accepts both byte orders and the nanosecond magic.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;

export interface PcapRecord {
  data: Uint8Array;
  /** Microseconds since the epoch; default: the file's base time + index µs. */
  timestampUs?: number | bigint;
  /** Original length on the wire (default data.length). */
  origLen?: number;
}

export interface PcapWriteOptions {
  linktype?: number;
  snaplen?: number;
  /** Base time (µs since epoch) for records without a timestamp; default now. */
  baseTimeUs?: number | bigint;
}

/** Encode packets as a classic pcap file. */
export function encodePcap(
  packets: ReadonlyArray<Uint8Array | PcapRecord>,
  opts: PcapWriteOptions = {},
): Buffer {
  const snaplen = opts.snaplen ?? 262144;
  const base = BigInt(opts.baseTimeUs ?? Date.now() * 1000);
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(PCAP_MAGIC_US, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeInt32LE(0, 8); // thiszone
  gh.writeUInt32LE(0, 12); // sigfigs
  gh.writeUInt32LE(snaplen, 16);
  gh.writeUInt32LE(opts.linktype ?? LINKTYPE_ETHERNET, 20);
  parts.push(gh);
  packets.forEach((pk, i) => {
    const rec: PcapRecord = pk instanceof Uint8Array ? { data: pk } : pk;
    const ts = rec.timestampUs !== undefined ? BigInt(rec.timestampUs) : base + BigInt(i);
    const incl = Math.min(rec.data.length, snaplen);
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(Number(ts / 1_000_000n), 0);
    rh.writeUInt32LE(Number(ts % 1_000_000n), 4);
    rh.writeUInt32LE(incl, 8);
    rh.writeUInt32LE(rec.origLen ?? rec.data.length, 12);
    parts.push(rh, Buffer.from(rec.data.buffer, rec.data.byteOffset, incl));
  });
  return Buffer.concat(parts);
}

/** Write packets to `path` (parent directories are created). */
export function writePcap(
  path: string,
  packets: ReadonlyArray<Uint8Array | PcapRecord>,
  opts: PcapWriteOptions = {},
): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodePcap(packets, opts));
}

export interface PcapFile {
  linktype: number;
  snaplen: number;
  nanosecond: boolean;
  records: Array<{ data: Buffer; timestampUs: bigint; origLen: number }>;
}

/** Decode a classic pcap file (either byte order, µs or ns). Throws on a malformed file. */
export function decodePcap(buf: Buffer): PcapFile {
  if (buf.length < 24) throw new Error('pcap: file shorter than the global header');
  const m = buf.readUInt32LE(0);
  let le: boolean;
  let ns: boolean;
  if (m === PCAP_MAGIC_US || m === PCAP_MAGIC_NS) {
    le = true;
    ns = m === PCAP_MAGIC_NS;
  } else {
    const mb = buf.readUInt32BE(0);
    if (mb !== PCAP_MAGIC_US && mb !== PCAP_MAGIC_NS)
      throw new Error(`pcap: bad magic 0x${m.toString(16)}`);
    le = false;
    ns = mb === PCAP_MAGIC_NS;
  }
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const out: PcapFile = { snaplen: u32(16), linktype: u32(20), nanosecond: ns, records: [] };
  let off = 24;
  while (off < buf.length) {
    if (off + 16 > buf.length) throw new Error(`pcap: truncated record header at ${off}`);
    const sec = BigInt(u32(off));
    const frac = BigInt(u32(off + 4));
    const incl = u32(off + 8);
    const orig = u32(off + 12);
    if (off + 16 + incl > buf.length) throw new Error(`pcap: truncated record data at ${off}`);
    out.records.push({
      data: buf.subarray(off + 16, off + 16 + incl),
      timestampUs: sec * 1_000_000n + (ns ? frac / 1000n : frac),
      origLen: orig,
    });
    off += 16 + incl;
  }
  return out;
}

export function readPcap(path: string): PcapFile {
  return decodePcap(readFileSync(path));
}
