// Error paths of the libbpf binding: every failure must surface as a BpfError with the right errno
// name and operation (or a TypeError for misuse), never as a crash or a silent success.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchError,
  BpfError,
  BpfMap,
  BpfObject,
  BpfProgram,
  MapType,
  UpdateFlags,
  ifNameToIndex,
  libbpfVersion,
  numPossibleCpus,
  xdpQuery,
} from '../../agent/bpf/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fixture, makeBpffsDir, removeBpffsDir } from './fixtures.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Runs fn and returns what it threw (failing the test if it did not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

describe('native binding basics', () => {
  it('reports the libbpf version and possible CPUs', () => {
    expect(libbpfVersion()).toMatch(/^v1\.\d+/);
    expect(numPossibleCpus()).toBeGreaterThanOrEqual(1);
  });

  it('a missing addon fails with a message saying how to build it', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '-e', "await import('./agent/bpf/native.ts')"],
      {
        cwd: REPO,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, TENET_NATIVE_ADDON: '/nonexistent/tenet_native.node' },
      },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/tenet native addon not found.*scripts\/setup/);
  });

  it('refuses direct construction of handle classes', () => {
    const Ctor = BpfMap as unknown as new () => unknown;
    expect(() => new Ctor()).toThrow(TypeError);
    const P = BpfProgram as unknown as new () => unknown;
    expect(() => new P()).toThrow(/BpfProgram cannot be constructed directly/);
  });

  it('rejects bad argument types with TypeError', () => {
    expect(() => BpfObject.open(42 as unknown as string)).toThrow(TypeError);
    expect(() => BpfMap.create({} as never)).toThrow(/type, keySize, valueSize and maxEntries/);
    expect(() => ifNameToIndex({})).toThrow(/ifindex or ifname is required/);
    expect(() => ifNameToIndex({ ifindex: 1, ifname: 'lo' })).toThrow(/not both/);
    expect(() => ifNameToIndex({ ifname: 'x'.repeat(16) })).toThrow(TypeError);
  });
});

describePrivileged('native binding error paths', () => {
  let pinDir: string | undefined;

  beforeAll(() => {
    pinDir = makeBpffsDir('errors');
  });
  afterAll(() => {
    removeBpffsDir(pinDir);
  });

  it('missing object file: ENOENT from bpf_object__open_file', () => {
    const e = thrown(() => BpfObject.open('/nonexistent/tenet.o'));
    expect(e).toBeInstanceOf(BpfError);
    expect(e).toMatchObject({ code: 'ENOENT', errno: 2, op: 'bpf_object__open_file' });
    expect((e as BpfError).message).toContain('/nonexistent/tenet.o');
  });

  it('verifier rejection: load() rejects with the verifier log attached', async () => {
    const obj = BpfObject.open(fixture('verifier_reject'));
    try {
      const err = await obj.load().then(
        () => {
          throw new Error('load should have failed');
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BpfError);
      const be = err as BpfError;
      expect(be.op).toBe('bpf_object__load');
      // The verifier refuses an out-of-bounds packet read with EACCES.
      expect(be.code).toBe('EACCES');
      expect(be.message).toContain('unchecked_read');
      expect(be.log).toMatch(/invalid access to packet/);
      expect(be.libbpfLog).toMatch(/unchecked_read/);
      // A failed load cannot be retried on the same object, and says so.
      await expect(obj.load()).rejects.toMatchObject({ code: 'EALREADY' });
      expect(obj.loaded).toBe(false);
    } finally {
      obj.close();
    }
  });

  it('wrong key or value size: TypeError naming expected and actual size', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 4 });
    try {
      expect(() => m.lookup(Buffer.alloc(3))).toThrow(
        new TypeError('BpfMap.lookup: key must be 4 bytes, got 3'),
      );
      expect(() => m.update(u32(1), Buffer.alloc(4))).toThrow(
        new TypeError('BpfMap.update: value must be 8 bytes, got 4'),
      );
      expect(() => m.updateBatch(Buffer.alloc(8), Buffer.alloc(8), 2)).toThrow(
        /values must be 16 bytes, got 8/,
      );
      expect(() => m.lookup('abcd' as unknown as Uint8Array)).toThrow(TypeError);
    } finally {
      m.close();
    }
  });

  it('map full: E2BIG; NOEXIST on a present key: EEXIST; EXIST on an absent key: ENOENT', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 4 });
    try {
      for (let i = 0; i < 4; i++) m.update(u32(i), u64(i), UpdateFlags.NOEXIST);
      const full = thrown(() => m.update(u32(99), u64(0), UpdateFlags.NOEXIST));
      expect(full).toMatchObject({ code: 'E2BIG', errno: 7, op: 'bpf_map_update_elem' });
      expect((full as Error).message).toMatch(/map is full/);
      // BPF_ANY on a full map is still E2BIG for a new key...
      expect(thrown(() => m.update(u32(99), u64(0)))).toMatchObject({ code: 'E2BIG' });
      // ...but updating a present key works.
      m.update(u32(3), u64(33));
      expect(thrown(() => m.update(u32(1), u64(0), UpdateFlags.NOEXIST))).toMatchObject({
        code: 'EEXIST',
        op: 'bpf_map_update_elem',
      });
      expect(m.delete(u32(0))).toBe(true);
      expect(thrown(() => m.update(u32(0), u64(0), UpdateFlags.EXIST))).toMatchObject({
        code: 'ENOENT',
        op: 'bpf_map_update_elem',
      });
    } finally {
      m.close();
    }
  });

  it('missing key: lookup gives null, delete gives false, nextKey ends with null', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 4 });
    try {
      expect(m.lookup(u32(7))).toBeNull();
      expect(m.delete(u32(7))).toBe(false);
      expect(m.nextKey(null)).toBeNull();
      m.update(u32(7), u64(1));
      expect(m.nextKey(null)).toEqual(u32(7));
      expect(m.nextKey(u32(7))).toBeNull();
    } finally {
      m.close();
    }
  });

  it('batch delete of a missing key: ENOENT with the processed count', () => {
    const m = BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 8 });
    try {
      for (let i = 0; i < 3; i++) m.update(u32(i), u64(i));
      const keys = Buffer.concat([u32(0), u32(1), u32(42), u32(2)]);
      const e = thrown(() => m.deleteBatch(keys, 4));
      expect(e).toMatchObject({ code: 'ENOENT', op: 'bpf_map_delete_batch', processed: 2 });
      expect(m.lookup(u32(2))).not.toBeNull();
    } finally {
      m.close();
    }
  });

  it('use after close: EBADF naming the method; close() is idempotent', async () => {
    const m = BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    m.close();
    m.close();
    expect(m.closed).toBe(true);
    expect(thrown(() => m.lookup(u32(0)))).toMatchObject({
      code: 'EBADF',
      errno: 9,
      op: 'BpfMap.lookup',
    });
    expect(thrown(() => m.update(u32(0), u32(0)))).toMatchObject({
      code: 'EBADF',
      op: 'BpfMap.update',
    });
    expect(thrown(() => m.fd)).toMatchObject({ code: 'EBADF', op: 'BpfMap.fd' });
    expect(thrown(() => m.info())).toMatchObject({ code: 'EBADF', op: 'BpfMap.info' });
    expect(thrown(() => m.lookupBatch({ count: 1 }))).toMatchObject({
      code: 'EBADF',
      op: 'BpfMap.lookupBatch',
    });

    const obj = BpfObject.open(fixture('noop'));
    await obj.load();
    const prog = obj.program('noop_xdp');
    obj.close();
    obj.close();
    expect(thrown(() => obj.map('x'))).toMatchObject({ code: 'EBADF', op: 'BpfObject.map' });
    expect(thrown(() => obj.programNames())).toMatchObject({ code: 'EBADF' });
    await expect(obj.load()).rejects.toMatchObject({ code: 'EBADF', op: 'BpfObject.load' });
    // The program handle owns its own fd: it outlives the object.
    expect(prog.testRun({ data: Buffer.alloc(64) }).retval).toBe(2);
    prog.close();
    prog.close();
    expect(thrown(() => prog.testRun({ data: Buffer.alloc(64) }))).toMatchObject({
      code: 'EBADF',
      op: 'BpfProgram.testRun',
    });
  });

  it('unknown map or program name: ENOENT; handles before load: EINVAL', async () => {
    const obj = BpfObject.open(fixture('binding_maps'), { pinRoot: pinDir });
    try {
      expect(thrown(() => obj.map('small_hash'))).toMatchObject({
        code: 'EINVAL',
        op: 'BpfObject.map',
      });
      await obj.load();
      expect(thrown(() => obj.map('nope'))).toMatchObject({ code: 'ENOENT', op: 'BpfObject.map' });
      expect(thrown(() => obj.program('nope'))).toMatchObject({
        code: 'ENOENT',
        op: 'BpfObject.program',
      });
    } finally {
      obj.close();
    }
    expect(
      thrown(() =>
        BpfObject.open(fixture('binding_maps'), { mapPinPaths: { not_a_map: `${pinDir}/x` } }),
      ),
    ).toMatchObject({ code: 'ENOENT', op: 'bpf_object__find_map_by_name' });
  });

  it('pins: missing pin ENOENT, wrong object kind EINVAL', async () => {
    expect(thrown(() => BpfMap.openPinned(`${pinDir}/missing`))).toMatchObject({
      code: 'ENOENT',
      op: 'bpf_obj_get',
    });
    expect(thrown(() => BpfMap.unpin(`${pinDir}/missing`))).toMatchObject({
      code: 'ENOENT',
      op: 'unlink',
    });
    const obj = BpfObject.open(fixture('noop'));
    await obj.load();
    const prog = obj.program('noop_tc');
    obj.close();
    try {
      prog.pin(`${pinDir}/prog`);
      expect(thrown(() => BpfMap.openPinned(`${pinDir}/prog`))).toMatchObject({
        code: 'EINVAL',
        op: 'bpf_obj_get',
      });
      const again = BpfProgram.openPinned(`${pinDir}/prog`);
      expect(again.info().id).toBe(prog.info().id);
      again.close();
      // Pinning outside bpffs fails in the kernel, not in the binding.
      expect(thrown(() => prog.pin('/tmp/tenet-not-bpffs'))).toBeInstanceOf(BpfError);
    } finally {
      prog.close();
      BpfMap.unpin(`${pinDir}/prog`);
    }
  });

  it('bad interface name: ENODEV from if_nametoindex; bad netns path: ENOENT', () => {
    // Read-only lookups: nothing is changed in the root namespace.
    expect(thrown(() => ifNameToIndex({ ifname: 'tn-nosuchdev0' }))).toMatchObject({
      code: 'ENODEV',
      op: 'if_nametoindex',
    });
    expect(thrown(() => xdpQuery({ ifname: 'tn-nosuchdev0' }))).toMatchObject({
      code: 'ENODEV',
      op: 'if_nametoindex',
    });
    expect(
      thrown(() => ifNameToIndex({ ifname: 'lo', netns: '/run/netns/tn-does-not-exist' })),
    ).toMatchObject({ code: 'ENOENT', op: 'open' });
  });

  it('BatchError is a BpfError carrying overall progress', () => {
    const cause = new BpfError('bpf_map_update_batch: Argument list too long', {
      code: 'E2BIG',
      errno: 7,
      op: 'bpf_map_update_batch',
      processed: 2,
    });
    const e = new BatchError(10, cause);
    expect(e).toBeInstanceOf(BpfError);
    expect(e).toMatchObject({ code: 'E2BIG', done: 10, processed: 10, cause });
  });
});
