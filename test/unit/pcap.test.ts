import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LINKTYPE_ETHERNET,
  decodePcap,
  encodePcap,
  readPcap,
  writePcap,
} from '../../agent/packet/pcap.js';
import { packet } from '../../agent/packet/builder.js';

const dir = mkdtempSync(join(tmpdir(), 'tenet-pcap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const frame = (n: number): Buffer =>
  packet()
    .eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: '198.18.0.1', dst: '198.18.0.2', id: n })
    .udp({ sport: 1000 + n, dport: 2000 })
    .payload(n)
    .build();

describe('pcap writer', () => {
  it('writes the classic global header (LE, µs magic, v2.4, Ethernet)', () => {
    const b = encodePcap([], { snaplen: 65535 });
    expect(b.length).toBe(24);
    expect(b.toString('hex')).toBe(
      'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + 'ffff0000' + '01000000',
    );
  });

  it('writes record headers with microsecond timestamps and lengths', () => {
    const f = frame(3);
    const b = encodePcap([
      { data: f, timestampUs: 1_700_000_000_123_456n },
      { data: f, timestampUs: 5, origLen: 1500 },
    ]);
    const r0 = b.subarray(24, 40);
    expect(r0.readUInt32LE(0)).toBe(1_700_000_000);
    expect(r0.readUInt32LE(4)).toBe(123_456);
    expect(r0.readUInt32LE(8)).toBe(f.length);
    expect(r0.readUInt32LE(12)).toBe(f.length);
    expect(b.subarray(40, 40 + f.length)).toEqual(f);
    const r1 = b.subarray(40 + f.length, 56 + f.length);
    expect([r1.readUInt32LE(0), r1.readUInt32LE(4), r1.readUInt32LE(12)]).toEqual([0, 5, 1500]);
  });

  it('cuts records at snaplen but keeps the original length', () => {
    const f = frame(100);
    const d = decodePcap(encodePcap([f], { snaplen: 64 }));
    expect(d.records[0]?.data.length).toBe(64);
    expect(d.records[0]?.origLen).toBe(f.length);
  });

  it('round-trips through the reader, with increasing default timestamps', () => {
    const frames = [frame(1), frame(2), frame(3)];
    const path = join(dir, 'sub', 'rt.pcap');
    writePcap(path, frames, { baseTimeUs: 1_000_000 });
    const d = readPcap(path);
    expect(d.linktype).toBe(LINKTYPE_ETHERNET);
    expect(d.nanosecond).toBe(false);
    expect(d.records.map((r) => r.data)).toEqual(frames);
    expect(d.records.map((r) => r.timestampUs)).toEqual([1_000_000n, 1_000_001n, 1_000_002n]);
  });

  it('reads big-endian and nanosecond files', () => {
    const be = Buffer.alloc(24 + 16 + 2);
    be.writeUInt32BE(0xa1b23c4d, 0);
    be.writeUInt16BE(2, 4);
    be.writeUInt16BE(4, 6);
    be.writeUInt32BE(65535, 16);
    be.writeUInt32BE(1, 20);
    be.writeUInt32BE(10, 24);
    be.writeUInt32BE(5_000, 28);
    be.writeUInt32BE(2, 32);
    be.writeUInt32BE(2, 36);
    const d = decodePcap(be);
    expect(d.nanosecond).toBe(true);
    expect(d.records[0]?.timestampUs).toBe(10_000_005n);
    expect(() => decodePcap(Buffer.alloc(24))).toThrow(/bad magic/);
    expect(() => decodePcap(be.subarray(0, 30))).toThrow(/truncated/);
  });

  it('is readable by tshark and capinfos-compatible tools', () => {
    const path = join(dir, 'tshark.pcap');
    writePcap(path, [frame(1), frame(2)]);
    const r = spawnSync(
      'tshark',
      [
        '-r',
        path,
        '-n',
        '-T',
        'fields',
        '-e',
        'frame.len',
        '-e',
        'udp.srcport',
        '-e',
        'frame.time_epoch',
      ],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(rows.map((x) => [x[0], x[1]])).toEqual([
      [String(frame(1).length), '1001'],
      [String(frame(2).length), '1002'],
    ]);
    // Timestamps are near now (written with the default base time).
    expect(Math.abs(Number(rows[0]?.[2]) - Date.now() / 1000)).toBeLessThan(600);
    expect(readFileSync(path).readUInt32LE(0)).toBe(0xa1b2c3d4);
  });
});
