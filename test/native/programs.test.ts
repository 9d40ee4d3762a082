// Objects, programs and ring buffers through the binding: loading, BPF_PROG_TEST_RUN, record
// delivery through the Node event loop, and resource hygiene (no fd leaks across many cycles, in
// finalizers, or at environment teardown).

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  BpfMap,
  BpfObject,
  BpfProgram,
  MapType,
  PerCpuTypedMap,
  ProgType,
  RingBuffer,
  TcAction,
  XdpAction,
  liveHandles,
  setInner,
  sumPerCpu,
} from '../../agent/bpf/index.js';
import type { Codec } from '../../agent/abi/codec.js';
import { U32 } from '../../agent/abi/codec.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fixture, makeBpffsDir, openFdCount, removeBpffsDir } from './fixtures.js';

const ADDON = fileURLToPath(
  new URL('../../native/build/Release/tenet_native.node', import.meta.url),
);

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** A 64-byte Ethernet-sized test frame with recognisable bytes. */
function frame(len = 64): Buffer {
  return Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + 1) & 0xff));
}

/** struct binding_event { __u32 seq, pkt_len, inner_value, pad; } */
function decodeEvent(b: Buffer): { seq: number; pktLen: number; inner: number } {
  return { seq: b.readUInt32LE(0), pktLen: b.readUInt32LE(4), inner: b.readUInt32LE(8) };
}

const StatsCodec: Codec<{ packets: bigint; bytes: bigint }> = {
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

/** Runs a CommonJS script in a fresh node with the addon path as argv[2]; returns its JSON output. */
function runChild(script: string, flags: string[] = []): Record<string, unknown> {
  const r = spawnSync(process.execPath, [...flags, '-e', script, ADDON], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

describePrivileged('BPF objects, programs and ring buffers through the binding', () => {
  let pinDir: string | undefined;
  let n = 0;
  /** A fresh pin root per object, so pinned-by-name maps start from zero in every test. */
  const freshRoot = (): string => {
    const d = `${pinDir}/r${n++}`;
    mkdirSync(d);
    return d;
  };

  beforeAll(() => {
    pinDir = makeBpffsDir('progs');
  });
  afterAll(() => {
    removeBpffsDir(pinDir);
  });

  it('test-run returns the verdict, the output bytes and a duration', async () => {
    const obj = BpfObject.open(fixture('binding_maps'), { pinRoot: freshRoot() });
    await obj.load();
    const prog = obj.program('mark_tx');
    obj.close();
    try {
      const input = frame();
      const r = prog.testRun({ data: input });
      expect(r.retval).toBe(XdpAction.TX);
      expect(r.data.length).toBe(64);
      expect(r.data[0]).toBe(0xaa);
      expect(r.data.subarray(1)).toEqual(input.subarray(1));
      expect(r.ctx).toBeNull();
      expect(typeof r.durationNs).toBe('number');

      const many = prog.testRun({ data: input, repeat: 1000 });
      expect(many.retval).toBe(XdpAction.TX);
      expect(many.durationNs).toBeGreaterThan(0);

      // XDP test-runs need at least an Ethernet header (the kernel refuses shorter input).
      expect(() => prog.testRun({ data: frame(10) })).toThrow(
        expect.objectContaining({ code: 'EINVAL', op: 'bpf_prog_test_run_opts' }),
      );
      expect(prog.testRun({ data: frame(14) }).retval).toBe(XdpAction.TX);
      // Output larger than the buffer offered.
      expect(() => prog.testRun({ data: input, dataOutSize: 16 })).toThrow(
        expect.objectContaining({ code: 'ENOSPC', op: 'bpf_prog_test_run_opts' }),
      );

      const info = prog.info();
      expect(info).toMatchObject({ name: 'mark_tx', type: ProgType.XDP });
      expect(info.tag).toMatch(/^[0-9a-f]{16}$/);
      expect(info.xlatedInsns).toBeGreaterThan(0);
      expect(info.verifiedInsns).toBeGreaterThan(0);
      expect(info.jitedLen).toBeGreaterThan(0);

      const path = `${pinDir}/mark_tx`;
      prog.pin(path);
      const pinned = BpfProgram.openPinned(path);
      const byId = BpfProgram.fromId(info.id);
      expect(pinned.info().id).toBe(info.id);
      expect(byId.testRun({ data: input }).retval).toBe(XdpAction.TX);
      pinned.close();
      byId.close();
      BpfMap.unpin(path);
    } finally {
      prog.close();
    }
  });

  it('test-run passes a context in and out (tc __sk_buff)', async () => {
    const obj = BpfObject.open(fixture('noop'));
    await obj.load();
    const tc = obj.program('noop_tc');
    obj.close();
    try {
      const ctx = Buffer.alloc(192); // sizeof(struct __sk_buff)
      const r = tc.testRun({ data: frame(), ctx });
      expect(r.retval).toBe(TcAction.OK);
      expect(r.ctx?.length).toBe(192);
      expect(r.data.length).toBe(64);
    } finally {
      tc.close();
    }
  });

  it('repeat runs the program that many times (per-CPU and pinned counters)', async () => {
    const obj = BpfObject.open(fixture('binding_maps'), { pinRoot: freshRoot() });
    await obj.load();
    const prog = obj.program('emit_event');
    const counter = obj.map('pinned_counter');
    const stats = new PerCpuTypedMap(obj.map('percpu_stats'), U32, StatsCodec);
    obj.close();
    try {
      prog.testRun({ data: frame(100), repeat: 50 });
      prog.testRun({ data: frame(60) });
      expect(counter.lookup(u32(0))?.readBigUInt64LE(0)).toBe(51n);
      const perCpu = stats.get(0) ?? [];
      expect(perCpu.length).toBe(stats.ncpus);
      expect(sumPerCpu(perCpu, ['packets', 'bytes'])).toEqual({
        packets: 51n,
        bytes: 50n * 100n + 60n,
      });
    } finally {
      prog.close();
      counter.close();
      stats.close();
    }
  });

  it('ring buffer records produced by test-runs arrive through the event loop', async () => {
    const obj = BpfObject.open(fixture('binding_maps'), { pinRoot: freshRoot() });
    await obj.load();
    const prog = obj.program('emit_event');
    const events = obj.map('events');
    const outer = obj.map('outer_maps');
    obj.close();
    const inner = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    inner.update(u32(0), u32(77));
    setInner(outer, u32(0), inner);

    const records: Buffer[] = [];
    const rb = new RingBuffer(events, (d) => records.push(d));
    try {
      for (let i = 0; i < 5; i++) prog.testRun({ data: frame(60 + i) });
      // Nothing is delivered synchronously: records come from the poll phase of the loop.
      expect(records.length).toBe(0);
      await waitFor(() => records.length >= 5, 5000, '5 ring buffer records');
      expect(records.map(decodeEvent)).toEqual(
        [0, 1, 2, 3, 4].map((i) => ({ seq: i + 1, pktLen: 60 + i, inner: 77 })),
      );
      expect(records.every((r) => r.length === 16)).toBe(true);

      // consume() drains synchronously.
      prog.testRun({ data: frame() });
      prog.testRun({ data: frame() });
      expect(rb.consume()).toBe(2);
      expect(records.length).toBe(7);
    } finally {
      rb.close();
      rb.close();
      for (const h of [prog, events, outer, inner]) h.close();
    }
    expect(rb.closed).toBe(true);
    expect(() => rb.consume()).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('ring buffer close() from inside the callback stops delivery safely', async () => {
    const obj = BpfObject.open(fixture('binding_maps'), { pinRoot: freshRoot() });
    await obj.load();
    const prog = obj.program('emit_event');
    const events = obj.map('events');
    obj.close();
    const seen: number[] = [];
    const rb: RingBuffer = new RingBuffer(events, (d) => {
      seen.push(d.readUInt32LE(0));
      if (seen.length === 2) rb.close();
    });
    events.close(); // the ring buffer keeps its own fd
    try {
      for (let i = 0; i < 5; i++) prog.testRun({ data: frame() });
      await waitFor(() => rb.closed, 5000, 'close from the callback');
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toEqual([1, 2]);
    } finally {
      rb.close();
      prog.close();
    }
  });

  it('load() runs once at a time, and close() during load finishes after it', async () => {
    const obj = BpfObject.open(fixture('binding_maps'), { pinRoot: freshRoot() });
    const p = obj.load();
    await expect(obj.load()).rejects.toMatchObject({ code: 'EBUSY', op: 'BpfObject.load' });
    expect(() => obj.mapNames()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    obj.close();
    expect(obj.closed).toBe(true);
    await p;
    expect(() => obj.map('events')).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('1,000 open/load/close cycles leak no fd and no handle', async () => {
    const root = freshRoot();
    const path = fixture('binding_maps');
    // Warm up once so lazily opened fds (libbpf feature probes, vmlinux BTF) are not counted.
    const warm = BpfObject.open(path, { pinRoot: root });
    await warm.load();
    warm.close();
    const fdsBefore = openFdCount();
    const handlesBefore = liveHandles();
    for (let i = 0; i < 1000; i++) {
      const obj = BpfObject.open(path, { pinRoot: root });
      await obj.load();
      const m = obj.map('small_hash');
      const p = obj.program('mark_tx');
      obj.close();
      m.close();
      p.close();
    }
    // A failed load must not leak either.
    for (let i = 0; i < 20; i++) {
      const bad = BpfObject.open(fixture('verifier_reject'));
      await bad.load().catch(() => undefined);
      bad.close();
    }
    expect(openFdCount()).toBe(fdsBefore);
    expect(liveHandles()).toBe(handlesBefore);
  }, 300_000);

  it('finalizers close the fds of handles JS dropped without close()', () => {
    const out = runChild(
      `
      const n = require(process.argv[1]);
      const fs = require('fs');
      const count = () => fs.readdirSync('/proc/self/fd').length;
      const before = count();
      (function () {
        for (let i = 0; i < 300; i++) n.BpfMap.create({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1 });
      })();
      const during = count();
      let rounds = 0;
      (function loop() {
        globalThis.gc();
        if (count() > before && rounds++ < 100) return setImmediate(loop);
        console.log(JSON.stringify({ before, during, after: count(), live: n.liveHandles() }));
      })();
      `,
      ['--expose-gc'],
    );
    expect(out.during).toBe((out.before as number) + 300);
    expect(out.after).toBe(out.before);
    expect(out.live).toBe(0);
  });

  it('environment teardown closes every fd a worker thread left open', () => {
    const out = runChild(`
      const { Worker } = require('worker_threads');
      const fs = require('fs');
      const count = () => fs.readdirSync('/proc/self/fd').length;
      const addon = process.argv[1];
      const fixture = ${JSON.stringify(fixture('binding_maps'))};
      const pinRoot = ${JSON.stringify(`${pinDir}/worker`)};
      fs.mkdirSync(pinRoot, { recursive: true });
      // One warm-up worker so the thread machinery's own fds are in the baseline.
      new Worker('0', { eval: true }).on('exit', () => {
        const before = count();
        const w = new Worker(\`
          const n = require(\${JSON.stringify(addon)});
          const { parentPort } = require('worker_threads');
          globalThis.keep = [];
          for (let i = 0; i < 100; i++) keep.push(n.BpfMap.create({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1 }));
          const obj = n.BpfObject.open(\${JSON.stringify(fixture)}, { pinRoot: \${JSON.stringify(pinRoot)} });
          obj.load().then(() => {
            keep.push(obj, obj.map('small_hash'), obj.program('emit_event'));
            // An active, ref'd ring buffer: teardown must close its poll handle too.
            keep.push(new n.RingBuffer(obj.map('events'), () => {}));
            parentPort.postMessage(require('fs').readdirSync('/proc/self/fd').length);
            process.exit(0);
          });
        \`, { eval: true });
        let during = 0;
        w.on('message', (c) => { during = c; });
        w.on('exit', () => {
          setTimeout(() => console.log(JSON.stringify({ before, during, after: count() })), 50);
        });
      });
    `);
    expect(out.during as number).toBeGreaterThan((out.before as number) + 100);
    expect(out.after).toBe(out.before);
  });

  it('a worker exiting with loads in flight neither crashes nor leaks', () => {
    const out = runChild(`
      const { Worker } = require('worker_threads');
      const fs = require('fs');
      const count = () => fs.readdirSync('/proc/self/fd').length;
      const addon = process.argv[1];
      const pinRoot = ${JSON.stringify(`${pinDir}/inflight`)};
      fs.mkdirSync(pinRoot, { recursive: true });
      new Worker('0', { eval: true }).on('exit', () => {
        const before = count();
        const w = new Worker(\`
          const n = require(\${JSON.stringify(addon)});
          for (let i = 0; i < 20; i++) {
            n.BpfObject.open(${JSON.stringify(fixture('binding_maps'))}, { pinRoot: \${JSON.stringify(pinRoot)} }).load();
          }
          setImmediate(() => process.exit(0));
        \`, { eval: true });
        w.on('exit', (code) => {
          setTimeout(() => console.log(JSON.stringify({ code, before, after: count() })), 50);
        });
      });
    `);
    expect(out.code).toBe(0);
    expect(out.after).toBe(out.before);
  });

  it('an exception thrown by a ring buffer callback is an uncaught exception', () => {
    const out = runChild(`
      const n = require(process.argv[1]);
      require('fs').mkdirSync(${JSON.stringify(`${pinDir}/throwing`)}, { recursive: true });
      const obj = n.BpfObject.open(${JSON.stringify(fixture('binding_maps'))}, { pinRoot: ${JSON.stringify(`${pinDir}/throwing`)} });
      obj.load().then(() => {
        let calls = 0;
        const rb = new n.RingBuffer(obj.map('events'), () => { calls++; throw new Error('boom'); });
        process.on('uncaughtException', (e) => {
          setTimeout(() => {
            rb.close();
            console.log(JSON.stringify({ message: e.message, calls }));
          }, 20);
        });
        const prog = obj.program('emit_event');
        for (let i = 0; i < 3; i++) prog.testRun({ data: Buffer.alloc(64) });
      });
    `);
    expect(out.message).toBe('boom');
    // The drain stops at the throwing record.
    expect(out.calls).toBeGreaterThanOrEqual(1);
  });
});
