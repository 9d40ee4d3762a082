// Map operations through the binding against the real kernel: element ops, batches at scale,
// per-CPU layouts, map-in-map, pinning, and the typed layer on top.

import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Codec, U32, U64 } from '../../agent/abi/codec.js';
import {
  BatchError,
  BpfError,
  BpfMap,
  BpfObject,
  MapFlags,
  MapOfMaps,
  MapType,
  PerCpuTypedMap,
  TypedMap,
  getInnerId,
  numPossibleCpus,
  setInner,
  sumPerCpu,
} from '../../agent/bpf/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fixture, makeBpffsDir, removeBpffsDir, shortId } from './fixtures.js';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

interface Stats {
  packets: bigint;
  bytes: bigint;
}

/** struct binding_stats { __u64 packets; __u64 bytes; } */
const StatsCodec: Codec<Stats> = {
  size: 16,
  encode(v) {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(v.packets, 0);
    b.writeBigUInt64LE(v.bytes, 8);
    return b;
  },
  decode(buf, offset = 0) {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    return { packets: b.readBigUInt64LE(offset), bytes: b.readBigUInt64LE(offset + 8) };
  },
};

/** A 12-byte value: per-CPU slots are padded to 16, which the layout must honour. */
const Triple: Codec<[number, number, number]> = {
  size: 12,
  encode(v) {
    const b = Buffer.alloc(12);
    v.forEach((x, i) => b.writeUInt32LE(x, i * 4));
    return b;
  },
  decode(buf, offset = 0) {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    return [b.readUInt32LE(offset), b.readUInt32LE(offset + 4), b.readUInt32LE(offset + 8)];
  },
};

describe('sumPerCpu', () => {
  it('sums numbers, bigints and named fields', () => {
    expect(sumPerCpu([1, 2, 3])).toBe(6);
    expect(sumPerCpu([1n, 2n])).toBe(3n);
    expect(
      sumPerCpu(
        [
          { packets: 1n, bytes: 100n, name: 'a' },
          { packets: 2n, bytes: 50n, name: 'b' },
        ],
        ['packets', 'bytes'],
      ),
    ).toEqual({ packets: 3n, bytes: 150n });
    expect(() => sumPerCpu([1, 2n] as unknown as number[])).toThrow(TypeError);
  });
});

describePrivileged('BPF maps through the binding', () => {
  let pinDir: string | undefined;

  beforeAll(() => {
    pinDir = makeBpffsDir('maps');
  });
  afterAll(() => {
    removeBpffsDir(pinDir);
  });

  it('creates a map and reports its info', () => {
    const name = `tn_info_${shortId()}`;
    const m = BpfMap.create({
      type: MapType.HASH,
      keySize: 4,
      valueSize: 16,
      maxEntries: 128,
      flags: MapFlags.NO_PREALLOC,
      name,
    });
    try {
      expect(m.info()).toMatchObject({
        name,
        type: MapType.HASH,
        keySize: 4,
        valueSize: 16,
        maxEntries: 128,
        flags: MapFlags.NO_PREALLOC,
      });
      expect(m.info().id).toBeGreaterThan(0);
      expect(m.fd).toBeGreaterThan(2);
      expect([m.keySize, m.valueSize, m.valueBufferSize, m.maxEntries]).toEqual([4, 16, 16, 128]);
      const again = BpfMap.fromId(m.info().id);
      expect(again.fd).not.toBe(m.fd);
      expect(again.info().id).toBe(m.info().id);
      again.close();
    } finally {
      m.close();
    }
  });

  it('batch update and batch lookup of 1,000,000 entries agree with what was written', () => {
    const N = 1_000_000;
    const m = BpfMap.create({
      type: MapType.HASH,
      keySize: 4,
      valueSize: 8,
      maxEntries: N,
      name: `tn_1m_${shortId()}`,
    });
    try {
      // key(i) = i ^ 0x5a5a5a5a (a bijection, so keys are unique and not sequential);
      // value(i) = { lo: ~key, hi: i }, so every value is checkable from its own key.
      const keys = new Uint32Array(N);
      const values = new Uint32Array(2 * N);
      for (let i = 0; i < N; i++) {
        const k = (i ^ 0x5a5a5a5a) >>> 0;
        keys[i] = k;
        values[2 * i] = ~k >>> 0;
        values[2 * i + 1] = i;
      }
      const keyBytes = Buffer.from(keys.buffer);
      const valueBytes = Buffer.from(values.buffer);
      const CHUNK = 65_536;
      let written = 0;
      for (let off = 0; off < N; off += CHUNK) {
        const n = Math.min(CHUNK, N - off);
        written += m.updateBatch(
          keyBytes.subarray(off * 4, (off + n) * 4),
          valueBytes.subarray(off * 8, (off + n) * 8),
          n,
        );
      }
      expect(written).toBe(N);

      const seen = new Uint8Array(N);
      let total = 0;
      let bad = 0;
      let token: Buffer | null = null;
      for (;;) {
        const r = m.lookupBatch({ inBatch: token, count: CHUNK });
        const ks = new Uint32Array(r.keys.buffer, r.keys.byteOffset, r.count);
        // Buffer copies are 8-byte aligned only by luck: read the values with a DataView.
        const vs = new DataView(r.values.buffer, r.values.byteOffset, r.values.byteLength);
        for (let j = 0; j < r.count; j++) {
          const k = ks[j] as number;
          const i = (k ^ 0x5a5a5a5a) >>> 0;
          const lo = vs.getUint32(j * 8, true);
          const hi = vs.getUint32(j * 8 + 4, true);
          if (i >= N || seen[i] || lo !== ~k >>> 0 || hi !== i) bad++;
          else seen[i] = 1;
        }
        total += r.count;
        if (r.nextBatch === null) break;
        token = r.nextBatch;
      }
      expect(bad).toBe(0);
      expect(total).toBe(N);
      expect(seen.every((s) => s === 1)).toBe(true);
    } finally {
      m.close();
    }
  }, 180_000);

  it('lookupBatch returns the final partial batch with nextBatch null', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 64 });
    try {
      for (let i = 0; i < 10; i++) m.update(u32(i), u32(i * 10));
      let token: Buffer | null = null;
      const got = new Map<number, number>();
      let calls = 0;
      for (;;) {
        const r = m.lookupBatch({ inBatch: token, count: 4 });
        calls++;
        for (let j = 0; j < r.count; j++) {
          got.set(r.keys.readUInt32LE(j * 4), r.values.readUInt32LE(j * 4));
        }
        if (!r.nextBatch) break;
        token = r.nextBatch;
      }
      expect(calls).toBeGreaterThanOrEqual(3);
      expect([...got.entries()].sort((a, b) => a[0] - b[0])).toEqual(
        Array.from({ length: 10 }, (_, i) => [i, i * 10]),
      );
      // An empty map is exhausted at once.
      const empty = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 4 });
      expect(empty.lookupBatch({ count: 4 })).toMatchObject({ count: 0, nextBatch: null });
      empty.close();
    } finally {
      m.close();
    }
  });

  it('TypedMap: get/set/delete/has, iteration and chunked batches', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 100_000 });
    const tm = new TypedMap(m, U32, U64);
    try {
      expect(tm.get(1)).toBeUndefined();
      tm.set(1, 10n);
      expect(tm.get(1)).toBe(10n);
      expect(tm.has(1)).toBe(true);
      expect(tm.delete(1)).toBe(true);
      expect(tm.has(1)).toBe(false);

      const entries = Array.from({ length: 100_000 }, (_, i) => [i, BigInt(i) * 3n] as const);
      expect(tm.setBatch(entries, { chunkSize: 7_000 })).toEqual({ done: 100_000 });
      const all = tm.getBatch({ chunkSize: 5_000 });
      expect(all.length).toBe(100_000);
      expect(all.every(([k, v]) => v === BigInt(k) * 3n)).toBe(true);
      expect(new Set(all.map(([k]) => k)).size).toBe(100_000);

      // A chunk of 1 is smaller than some hash buckets: getBatch grows it on ENOSPC.
      const small = new TypedMap(
        BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 2 }),
        U32,
        U64,
      );
      small.setBatch([
        [1, 1n],
        [2, 2n],
      ]);
      expect(new Map(small.getBatch({ chunkSize: 1 }))).toEqual(
        new Map([
          [1, 1n],
          [2, 2n],
        ]),
      );
      expect(new Map(small.entries())).toEqual(new Map(small));
      expect([...small.keys()].sort()).toEqual([1, 2]);
      small.close();

      expect(
        tm.deleteBatch(
          Array.from({ length: 50_000 }, (_, i) => i),
          { chunkSize: 9_999 },
        ),
      ).toEqual({
        done: 50_000,
      });
      expect(tm.getBatch().length).toBe(50_000);
    } finally {
      tm.close();
    }
  });

  it('TypedMap batches report partial progress when the kernel stops part-way', () => {
    const tm = new TypedMap(
      BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 10 }),
      U32,
      U64,
    );
    try {
      const entries = Array.from({ length: 15 }, (_, i) => [i, BigInt(i)] as const);
      let err: unknown;
      try {
        tm.setBatch(entries, { chunkSize: 4 });
      } catch (e) {
        err = e;
      }
      // Chunks 0-3 and 4-7 apply; in 8-11, 8 and 9 apply, then the map is full.
      expect(err).toBeInstanceOf(BatchError);
      expect(err).toMatchObject({ code: 'E2BIG', op: 'bpf_map_update_batch', done: 10 });
      expect(tm.getBatch().length).toBe(10);

      let derr: unknown;
      try {
        tm.deleteBatch([0, 1, 2, 3, 4, 99, 5], { chunkSize: 3 });
      } catch (e) {
        derr = e;
      }
      expect(derr).toMatchObject({ code: 'ENOENT', done: 5 });
      expect(tm.has(5)).toBe(true);

      // Codec errors happen before anything is written.
      expect(() =>
        tm.setBatch([
          [20, 1n],
          [21, -1n],
        ]),
      ).toThrow(RangeError);
      expect(tm.has(20)).toBe(false);
      // Key codec size must match the map.
      expect(() => new TypedMap(tm.map, U64, U64)).toThrow(/key codec is 8 bytes/);
    } finally {
      tm.close();
    }
  });

  it('per-CPU values are numPossibleCpus slots of round_up(valueSize, 8)', () => {
    const ncpus = numPossibleCpus();
    const m = BpfMap.create({
      type: MapType.PERCPU_ARRAY,
      keySize: 4,
      valueSize: 12,
      maxEntries: 2,
    });
    try {
      expect(m.valueBufferSize).toBe(ncpus * 16);
      const raw = m.lookup(u32(0));
      expect(raw?.length).toBe(ncpus * 16);
      expect(() => m.update(u32(0), Buffer.alloc(12))).toThrow(
        new TypeError(`BpfMap.update: value must be ${ncpus * 16} bytes, got 12`),
      );

      const pm = new PerCpuTypedMap(m, U32, Triple);
      expect(() => new TypedMap(m, U32, Triple)).toThrow(/use PerCpuTypedMap/);
      const perCpu = Array.from(
        { length: ncpus },
        (_, c) => [c, c + 100, c + 200] as [number, number, number],
      );
      pm.set(1, perCpu);
      expect(pm.get(1)).toEqual(perCpu);
      pm.setAll(0, [7, 8, 9]);
      const got = pm.get(0);
      expect(got).toHaveLength(ncpus);
      expect(got?.every((v) => v[0] === 7 && v[2] === 9)).toBe(true);
      expect(() => pm.set(0, perCpu.slice(0, ncpus - 1))).toThrow(RangeError);
      const batch = pm.getBatch();
      expect(batch).toHaveLength(2);
      expect(batch.find(([k]) => k === 1)?.[1]).toEqual(perCpu);

      const ph = new PerCpuTypedMap(
        BpfMap.create({ type: MapType.PERCPU_HASH, keySize: 4, valueSize: 16, maxEntries: 8 }),
        U32,
        StatsCodec,
      );
      const rows = Array.from({ length: ncpus }, (_, c) => ({
        packets: BigInt(c + 1),
        bytes: 100n,
      }));
      ph.setBatch([[5, rows]]);
      const back = ph.get(5);
      expect(back).toEqual(rows);
      const n = BigInt(ncpus);
      expect(sumPerCpu(back ?? [], ['packets', 'bytes'])).toEqual({
        packets: (n * (n + 1n)) / 2n,
        bytes: 100n * n,
      });
      ph.close();
    } finally {
      m.close();
    }
  });

  it('map-in-map: an inner map set by fd reads back as its id', () => {
    const tmpl = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    const outer = BpfMap.create({
      type: MapType.ARRAY_OF_MAPS,
      keySize: 4,
      valueSize: 4,
      maxEntries: 4,
      innerMap: tmpl,
    });
    const hashOuter = BpfMap.create({
      type: MapType.HASH_OF_MAPS,
      keySize: 4,
      valueSize: 4,
      maxEntries: 4,
      innerMap: tmpl,
    });
    const inner = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    try {
      expect(getInnerId(outer, u32(2))).toBeNull();
      setInner(outer, u32(2), inner);
      expect(getInnerId(outer, u32(2))).toBe(inner.info().id);

      const typed = new MapOfMaps(hashOuter, U32);
      expect(typed.getId(9)).toBeNull();
      typed.set(9, inner);
      expect(typed.getId(9)).toBe(inner.info().id);
      const opened = typed.open(9);
      expect(opened?.info().id).toBe(inner.info().id);
      opened?.update(u32(0), u32(1234));
      expect(inner.lookup(u32(0))?.readUInt32LE(0)).toBe(1234);
      opened?.close();
      expect(typed.delete(9)).toBe(true);
      expect(typed.getId(9)).toBeNull();

      // An inner map of another shape is refused by the kernel.
      const wrong = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 });
      expect(() => setInner(outer, u32(1), wrong)).toThrow(BpfError);
      wrong.close();
      expect(() => new MapOfMaps(inner, U32)).toThrow(/not a map-of-maps/);
    } finally {
      for (const m of [tmpl, outer, hashOuter, inner]) m.close();
    }
  });

  it('pin, openPinned and unpin', () => {
    const path = `${pinDir}/pin_roundtrip`;
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 4 });
    try {
      m.update(u32(1), u32(11));
      m.pin(path);
      expect(existsSync(path)).toBe(true);
      expect(() => m.pin(path)).toThrow(
        expect.objectContaining({ code: 'EEXIST', op: 'bpf_obj_pin' }),
      );
      const id = m.info().id;
      m.close();

      const p = BpfMap.openPinned(path);
      expect(p.info().id).toBe(id);
      expect(p.lookup(u32(1))?.readUInt32LE(0)).toBe(11);
      p.close();
      BpfMap.unpin(path);
      expect(existsSync(path)).toBe(false);
      expect(() => BpfMap.openPinned(path)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      m.close();
      if (existsSync(path)) BpfMap.unpin(path);
    }
  });

  it('object maps: pinned by name under pinRoot and reused by a second object', async () => {
    const root = `${pinDir}/byname`;
    mkdirSync(root);
    const a = BpfObject.open(fixture('binding_maps'), {
      pinRoot: root,
      mapPinPaths: { small_hash: `${root}/small_by_path` },
    });
    const b = BpfObject.open(fixture('binding_maps'), {
      pinRoot: root,
      mapPinPaths: { small_hash: `${root}/small_by_path` },
    });
    try {
      expect(a.mapNames()).toEqual(
        expect.arrayContaining([
          'small_hash',
          'percpu_stats',
          'outer_maps',
          'pinned_counter',
          'events',
        ]),
      );
      await a.load();
      expect(a.loaded).toBe(true);
      expect(existsSync(`${root}/pinned_counter`)).toBe(true);
      expect(existsSync(`${root}/small_by_path`)).toBe(true);
      const counterA = a.map('pinned_counter');
      counterA.update(u32(0), Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]));

      await b.load();
      const counterB = b.map('pinned_counter');
      expect(counterB.info().id).toBe(counterA.info().id);
      expect(counterB.lookup(u32(0))?.readBigUInt64LE(0)).toBe(5n);
      const smallB = b.map('small_hash');
      const smallPinned = BpfMap.openPinned(`${root}/small_by_path`);
      expect(smallB.info().id).toBe(smallPinned.info().id);
      // Not pinned: each object gets its own percpu_stats.
      const statsA = a.map('percpu_stats');
      const statsB = b.map('percpu_stats');
      expect(statsB.info().id).not.toBe(statsA.info().id);
      for (const h of [counterA, counterB, smallB, smallPinned, statsA, statsB]) h.close();
    } finally {
      a.close();
      b.close();
    }
  });
});
