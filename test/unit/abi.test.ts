// The BPF ABI as the agent sees it (agent/abi/generated.ts) against the compiled objects.
//
// Needs clang (make -C bpf), bpftool and llvm-objdump; no root. The objects' BTF is read here with
// a few lines of independent code rather than with the generator's reader, so a bug in the
// generator cannot hide itself. The generator's own rules (rejections, merging, every kind of
// member) are checked on the fixtures in bpf/testing/abi_*.bpf.c.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import fc from 'fast-check';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { StructCodec } from '../../agent/abi/codec.js';
import * as abi from '../../agent/abi/generated.js';
import { enumKeys } from '../../scripts/abi/emit.js';
import { AbiError, GENERATED_FILE, REPO_ROOT, generateAbi } from '../../scripts/abi/index.js';

const BUILD = join(REPO_ROOT, 'build', 'bpf');
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', `abi-${process.pid}`);
const PRODUCT = readdirSync(join(REPO_ROOT, 'bpf'))
  .filter((f) => f.endsWith('.bpf.c'))
  .map((f) => f.replace(/\.bpf\.c$/, '.o'))
  .sort();
const FIXTURES = ['abi_fixture.o', 'abi_reject.o', 'abi_conflict.o'];
const product = (o: string): string => join(BUILD, o);
const fixture = (o: string): string => join(BUILD, 'testing', o);
const PAD = /^_*pad\d*$/;

beforeAll(() => {
  // Only the objects this file reads, so a broken object elsewhere does not fail these tests.
  const targets = [...PRODUCT, ...FIXTURES.map((f) => `testing/${f}`)].map(
    (o) => `../build/bpf/${o}`,
  );
  execFileSync('make', ['-C', 'bpf', '--no-print-directory', ...targets], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});

afterAll(() => {
  rmSync(ARTIFACTS, { recursive: true, force: true });
});

// --- independent BTF and ELF readers ---------------------------------------------------------

interface BtfT {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  vars?: { type_id: number }[];
}

function btfOf(obj: string): Map<number, BtfT> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', obj], { encoding: 'utf8' });
  const types = (JSON.parse(out) as { types: BtfT[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

function strip(types: Map<number, BtfT>, id: number): BtfT {
  let t = types.get(id) as BtfT;
  while (['TYPEDEF', 'CONST', 'VOLATILE'].includes(t.kind))
    t = types.get(t.type_id as number) as BtfT;
  return t;
}

function sizeOf(types: Map<number, BtfT>, id: number): number {
  const t = strip(types, id);
  if (t.kind === 'ARRAY') return (t.nr_elems as number) * sizeOf(types, t.type_id as number);
  if (t.kind === 'PTR') return 8;
  return t.size as number;
}

function abiStructs(types: Map<number, BtfT>): BtfT[] {
  return [...types.values()].filter((t) => t.kind === 'STRUCT' && t.name.startsWith('tenet_'));
}

/** Byte offsets of padding members, recursing into nested structs and arrays of structs. */
function paddingBytes(types: Map<number, BtfT>, id: number, base = 0, out = new Set<number>()) {
  const t = strip(types, id);
  if (t.kind === 'ARRAY') {
    const stride = sizeOf(types, t.type_id as number);
    for (let i = 0; i < (t.nr_elems as number); i++) {
      paddingBytes(types, t.type_id as number, base + i * stride, out);
    }
  } else if (t.kind === 'STRUCT') {
    for (const m of t.members ?? []) {
      const off = base + m.bits_offset / 8;
      if (PAD.test(m.name)) {
        for (let i = 0; i < sizeOf(types, m.type_id); i++) out.add(off + i);
      } else {
        paddingBytes(types, m.type_id, off, out);
      }
    }
  }
  return out;
}

/** `__uint(x, n)` is `int (*x)[n]`. */
function mapDefInt(types: Map<number, BtfT>, def: BtfT, name: string): number | undefined {
  const m = def.members?.find((x) => x.name === name);
  if (!m) return undefined;
  const ptr = strip(types, m.type_id);
  return strip(types, ptr.type_id as number).nr_elems;
}

function mapDefSize(types: Map<number, BtfT>, def: BtfT, name: string): number {
  const m = def.members?.find((x) => x.name === name);
  if (!m) return 0;
  return sizeOf(types, strip(types, m.type_id).type_id as number);
}

function mapsOf(types: Map<number, BtfT>): Map<string, BtfT> {
  const sec = [...types.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps');
  const out = new Map<string, BtfT>();
  for (const v of sec?.vars ?? []) {
    const variable = types.get(v.type_id) as BtfT;
    out.set(variable.name, strip(types, variable.type_id as number));
  }
  return out;
}

/** `llvm-objdump -t`: global symbols as { name, section, value, size, type }. */
function symbolsOf(obj: string) {
  const out = execFileSync(process.env.LLVM_OBJDUMP ?? 'llvm-objdump', ['-t', obj], {
    encoding: 'utf8',
  });
  const syms: { name: string; section: string; value: number; size: number; type: string }[] = [];
  for (const line of out.split('\n')) {
    const m = /^([0-9a-f]{16}) g\s+(F|O)\s+(\S+)\s+([0-9a-f]{16}) (\S+)$/.exec(line);
    if (m) {
      syms.push({
        value: parseInt(m[1] as string, 16),
        type: m[2] as string,
        section: m[3] as string,
        size: parseInt(m[4] as string, 16),
        name: m[5] as string,
      });
    }
  }
  return syms;
}

function sectionsOf(obj: string): string[] {
  const out = execFileSync(process.env.LLVM_OBJDUMP ?? 'llvm-objdump', ['-h', obj], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .map((l) => /^\s*\d+\s+(\S+)\s+[0-9a-f]{8}/.exec(l)?.[1])
    .filter((s): s is string => s !== undefined);
}

// --- helpers over a generated module ---------------------------------------------------------

type Module = Record<string, unknown>;

function isStructCodec(v: unknown): v is StructCodec<unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as StructCodec<unknown>).name === 'string' &&
    typeof (v as StructCodec<unknown>).write === 'function'
  );
}

/** C name -> { codec, layout } of every struct codec a generated module exports. */
function structsOf(mod: Module) {
  const out = new Map<
    string,
    { codec: StructCodec<unknown>; layout: Record<string, { offset: number; size: number }> }
  >();
  for (const [k, v] of Object.entries(mod)) {
    if (!k.endsWith('Codec') || !isStructCodec(v)) continue;
    const layout = mod[`${k.slice(0, -'Codec'.length)}Layout`];
    out.set(v.name, {
      codec: v,
      layout: layout as Record<string, { offset: number; size: number }>,
    });
  }
  return out;
}

/** Every struct codec of mod against the struct of the same name in the object's BTF. */
function checkLayouts(mod: Module, obj: string): Set<string> {
  const types = btfOf(obj);
  const byName = new Map(abiStructs(types).map((t) => [t.name, t]));
  const structs = structsOf(mod);
  const checked = new Set<string>();
  for (const [name, s] of structs) {
    const t = byName.get(name);
    if (!t) continue; // another object's struct
    checked.add(name);
    expect(s.codec.size, `sizeof(struct ${name})`).toBe(t.size);
    const expected = Object.fromEntries(
      (t.members ?? []).map((m) => [
        m.name,
        { offset: m.bits_offset / 8, size: sizeOf(types, m.type_id) },
      ]),
    );
    expect(s.layout, `layout of struct ${name}`).toEqual(expected);
  }
  return checked;
}

function checkRoundTrips(mod: Module, obj: string): void {
  const types = btfOf(obj);
  const byName = new Map(abiStructs(types).map((t) => [t.name, t]));
  for (const [name, { codec }] of structsOf(mod)) {
    const t = byName.get(name);
    if (!t) continue;
    const pad = paddingBytes(types, t.id);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: codec.size, maxLength: codec.size }), (bytes) => {
        const value = codec.decode(bytes);
        const encoded = codec.encode(value);
        const expected = Uint8Array.from(bytes, (b, i) => (pad.has(i) ? 0 : b));
        expect(new Uint8Array(encoded)).toEqual(expected);
        expect(codec.decode(encoded)).toEqual(value);
      }),
      { numRuns: 200 },
    );
  }
}

/** Generates from the given objects into ARTIFACTS and imports the result. */
async function generateModule(
  objects: string[],
  name: string,
): Promise<{ file: string; mod: Module }> {
  const file = join(ARTIFACTS, `${name}.ts`);
  const { source } = generateAbi({
    objects,
    codecModule: '../../agent/abi/codec.js',
    descriptorsModule: '../../agent/abi/descriptors.js',
  });
  writeFileSync(file, source);
  return { file, mod: (await import(pathToFileURL(file).href)) as Module };
}

function tsErrors(file: string): string[] {
  const config = ts.readConfigFile(join(REPO_ROOT, 'tsconfig.json'), (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, REPO_ROOT);
  const program = ts.createProgram([file], { ...parsed.options, noEmit: true });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

// --- the product ABI ---------------------------------------------------------------------------

describe('generated ABI module', () => {
  it('is not stale: regenerating from the current objects gives the committed file', () => {
    const { source } = generateAbi();
    expect(
      source === readFileSync(GENERATED_FILE, 'utf8'),
      'run: make -C bpf && npm run gen:abi',
    ).toBe(true);
  });

  it('does not depend on the order of the objects', () => {
    const objects = PRODUCT.map(product);
    expect(generateAbi({ objects: [...objects].reverse() }).source).toBe(
      generateAbi({ objects }).source,
    );
  });

  it('the gen:abi --check command passes on the committed file and fails on a stale one', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gen-abi.ts', ...args], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
      });
    const ok = run('--check');
    expect(ok.status, ok.stderr).toBe(0);

    const stale = join(ARTIFACTS, 'stale.ts');
    writeFileSync(
      stale,
      readFileSync(GENERATED_FILE, 'utf8').replace('TENET_ABI_VERSION = ', 'TENET_ABI_VERSION = 9'),
    );
    const bad = run('--check', '--out', stale);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/is stale .*line \d+/);
  });

  it('has a struct layout equal to the BTF of every product object, member by member', () => {
    const checked = new Set(PRODUCT.flatMap((o) => [...checkLayouts(abi, product(o))]));
    expect([...checked].sort()).toEqual([...structsOf(abi).keys()].sort());
    expect([...checked]).toEqual(
      expect.arrayContaining(['tenet_counter', 'tenet_event_record', 'tenet_port_key']),
    );
  });

  it('codecs round-trip any bytes, with padding written as zeros', () => {
    for (const o of PRODUCT) checkRoundTrips(abi, product(o));
  });

  it('encodes a port key to the bytes the kernel expects (little-endian, zeroed pad)', () => {
    const bytes = abi.PortKeyCodec.encode({ ifindex: 0x01020304, direction: abi.Direction.tx });
    expect([...bytes]).toEqual([0x04, 0x03, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00]);
    expect(abi.PORT_KEY_SIZE).toBe(8);
    const counter = abi.CounterCodec.decode(
      Buffer.from('ff' + '0500000000000000' + '0001000000000000', 'hex'),
      1,
    );
    expect(counter).toEqual({ packets: 5n, bytes: 256n });
  });

  it('rejects values that do not fit a field, naming it', () => {
    expect(() => abi.PortKeyCodec.encode({ ifindex: -1, direction: 0 })).toThrow(
      /tenet_port_key\.ifindex/,
    );
    expect(() => abi.PortKeyCodec.encode({ ifindex: 2 ** 32, direction: 0 })).toThrow(RangeError);
    expect(() => abi.PortKeyCodec.encode({ ifindex: 1, direction: 256 })).toThrow(/direction/);
    expect(() => abi.PortKeyCodec.encode({ ifindex: 1.5, direction: 0 })).toThrow(/ifindex/);
    expect(() => abi.CounterCodec.encode({ packets: -1n, bytes: 0n })).toThrow(/packets/);
    expect(() => abi.CounterCodec.encode({ packets: 1n << 64n, bytes: 0n })).toThrow(/packets/);
    const sample = new Uint8Array(63);
    const record = {
      timestamp_ns: 0n,
      ifindex: 1,
      pkt_len: 0,
      kind: 0,
      reason: 0,
      sample_len: 0,
      direction: 0,
      sample,
    };
    expect(() => abi.EventRecordCodec.encode(record)).toThrow(
      /sample: expected a Uint8Array of 64/,
    );
    expect(() => abi.CounterCodec.decode(new Uint8Array(15))).toThrow(
      /tenet_counter: need 16 bytes/,
    );
  });

  it('carries the ABI version and the versioned pin root', () => {
    expect(abi.TENET_ABI_VERSION).toBeGreaterThanOrEqual(1);
    expect(abi.TENET_PIN_ROOT).toBe(`/sys/fs/bpf/tenet/v${abi.TENET_ABI_VERSION}`);
    const header = readFileSync(join(REPO_ROOT, 'bpf', 'abi', 'version.h'), 'utf8');
    // The product value (tests may build other versions with -DTENET_ABI_VERSION_OVERRIDE).
    expect(header).toMatch(
      new RegExp(`#define TENET_ABI_VERSION_VALUE ${abi.TENET_ABI_VERSION}\\n`),
    );
  });
});

describe('product objects', () => {
  it('are the XDP and tc foundation programs', () => {
    expect(PRODUCT).toEqual(expect.arrayContaining(['tenet_tc.o', 'tenet_xdp.o']));
    expect(Object.keys(abi.Objects).sort()).toEqual(PRODUCT.map((o) => o.replace(/\.o$/, '')));
  });

  it('have the expected programs in the expected sections', () => {
    const expected: Record<string, Record<string, string>> = {
      'tenet_xdp.o': { tenet_xdp_rx: 'xdp', tenet_xdp_cpu: 'xdp/cpumap' },
      'tenet_tc.o': { tenet_tc_rx: 'tc', tenet_tc_tx: 'tc' },
      'tenet_port.o': { tenet_port_ingress: 'tc' },
    };
    for (const [obj, progs] of Object.entries(expected)) {
      // Global subprograms (the ACL stages, lib/acl.h) live in .text; programs in their sections.
      const funcs = symbolsOf(product(obj)).filter((s) => s.type === 'F' && s.section !== '.text');
      expect(Object.fromEntries(funcs.map((f) => [f.name, f.section])), obj).toEqual(progs);
      const sections = sectionsOf(product(obj));
      for (const s of [...new Set(Object.values(progs)), '.maps', 'license', '.BTF', '.rodata']) {
        expect(sections, `${obj} section ${s}`).toContain(s);
      }
      const desc = abi.Objects[obj.replace(/\.o$/, '') as abi.ObjectName];
      expect(
        Object.fromEntries(Object.values(desc.programs).map((p) => [p.name, p.section])),
      ).toEqual(progs);
    }
  });

  it('define the expected maps, as the descriptors say', () => {
    for (const o of ['tenet_xdp.o', 'tenet_tc.o', 'tenet_port.o']) {
      const types = btfOf(product(o));
      const maps = mapsOf(types);
      // Port ACL maps (lib/acl.h) are in the objects that run the ACL stage.
      const acl =
        o === 'tenet_tc.o'
          ? []
          : [
              'tenet_acl_ct',
              'tenet_acl_field',
              'tenet_acl_frags',
              'tenet_acl_ports',
              'tenet_acl_rctrs',
              'tenet_acl_rules',
              'tenet_acl_scr',
              'tenet_acl_stats',
            ];
      // Receive steering's maps live in the NIC's XDP object only.
      const steer = ['tenet_cpumap', 'tenet_steer', 'tenet_steer_cnt'];
      expect([...maps.keys()].filter((m) => steer.includes(m)).sort(), o).toEqual(
        o === 'tenet_xdp.o' ? steer : [],
      );
      expect([...maps.keys()].filter((m) => !steer.includes(m)).sort(), o).toEqual([
        ...acl,
        'tenet_drop_ctrs',
        'tenet_events',
        'tenet_gen',
        'tenet_local_pas',
        'tenet_meter_cls',
        'tenet_meter_ctr',
        'tenet_port_ctrs',
        'tenet_ports',
        'tenet_qos_bkts',
        'tenet_qos_cls',
        'tenet_qos_ctrs',
        'tenet_qos_ports',
        'tenet_qos_scr',
        'tenet_qos_tcaps',
        'tenet_records',
        'tenet_redir_dbg',
        'tenet_routes',
        'tenet_scratch',
        'tenet_underlay',
        'tenet_vsid_ctrs',
        'tenet_vsubnets',
        'tenet_zero',
      ]);
      for (const [name, def] of maps) {
        const d = abi.Maps[name as abi.MapName];
        expect(d.objects).toContain(o.replace(/\.o$/, ''));
        expect(d.typeId, name).toBe(mapDefInt(types, def, 'type'));
        expect(d.maxEntries, name).toBe(mapDefInt(types, def, 'max_entries'));
        expect(d.pinning, name).toBe(mapDefInt(types, def, 'pinning') === 1 ? 'by_name' : 'none');
        expect(d.keySize, name).toBe(mapDefSize(types, def, 'key'));
        expect(d.valueSize, name).toBe(mapDefSize(types, def, 'value'));
        for (const side of ['key', 'value'] as const) {
          const m = def.members?.find((x) => x.name === side);
          const target = m && strip(types, strip(types, m.type_id).type_id as number);
          const codec = d[side] as StructCodec<unknown> | null;
          if (target?.kind === 'STRUCT') expect(codec?.name, `${name} ${side}`).toBe(target.name);
          if (codec) expect(codec.size).toBe(side === 'key' ? d.keySize : d.valueSize);
        }
      }
    }
    expect(abi.Maps.tenet_port_ctrs).toMatchObject({
      type: 'percpu_hash',
      perCpu: true,
      keySize: 8,
      valueSize: 16,
    });
    expect(abi.Maps.tenet_port_ctrs.key).toBe(abi.PortKeyCodec);
    expect(abi.Maps.tenet_drop_ctrs).toMatchObject({
      type: 'percpu_array',
      perCpu: true,
      keySize: 4,
    });
    expect(abi.Maps.tenet_drop_ctrs.value).toBe(abi.CounterCodec);
    expect(abi.Maps.tenet_events).toMatchObject({ type: 'ringbuf', key: null, value: null });
    for (const m of Object.values(abi.Maps)) {
      expect(m.pinning, m.name).toBe('by_name');
      expect(m.name.length, m.name).toBeLessThanOrEqual(15);
    }
  });

  it('have load-time knobs where the ELF symbols put them in .rodata', () => {
    for (const o of PRODUCT) {
      const desc = abi.Objects[o.replace(/\.o$/, '') as abi.ObjectName];
      const syms = symbolsOf(product(o)).filter((s) => s.type === 'O' && s.section === '.rodata');
      const knobs = syms.filter((s) => s.name.startsWith('tenet_cfg_'));
      expect(Object.keys(desc.knobs).sort()).toEqual(knobs.map((k) => k.name).sort());
      for (const k of knobs) {
        const d = desc.knobs[k.name as keyof typeof desc.knobs] as { offset: number; size: number };
        expect({ offset: d.offset, size: d.size }, k.name).toEqual({
          offset: k.value,
          size: k.size,
        });
      }
      expect(syms.map((s) => s.name)).toContain('tenet_abi_version');
    }
    expect(abi.Objects.tenet_xdp.knobs.tenet_cfg_drop_events).toMatchObject({
      type: 'u8',
      default: 0,
    });
  });
});

describe('drop reasons', () => {
  const snapshot = JSON.parse(
    readFileSync(join(REPO_ROOT, 'test', 'unit', 'drop-reasons.snapshot.json'), 'utf8'),
  ) as Record<string, number>;
  const current: Record<string, number> = abi.DropReason;

  it('never renumber or remove a released reason', () => {
    for (const [name, value] of Object.entries(snapshot)) {
      expect(current[name], `drop reason ${name}`).toBe(value);
    }
  });

  it('append new reasons after the released ones, without reusing a number', () => {
    const released = Math.max(...Object.values(snapshot));
    for (const [name, value] of Object.entries(current)) {
      if (!(name in snapshot)) expect(value, `new drop reason ${name}`).toBeGreaterThan(released);
    }
    const values = Object.values(current);
    expect(new Set(values).size).toBe(values.length);
    expect(current.none).toBe(0);
  });

  it('are all in the snapshot (append new ones to test/unit/drop-reasons.snapshot.json)', () => {
    expect(Object.keys(current).filter((n) => !(n in snapshot))).toEqual([]);
  });

  it('fit the drop counter array and are usable as metric labels', () => {
    for (const [name, value] of Object.entries(current)) {
      expect(value).toBeLessThan(abi.Maps.tenet_drop_ctrs.maxEntries);
      expect(name).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(abi.DropReasonByValue[value]).toBe(name);
    }
  });
});

// --- the generator on fixtures -----------------------------------------------------------------

describe('generator', () => {
  it('names enum members by their unprefixed, lower-case C names', () => {
    expect(enumKeys(['TENET_DROP_NONE', 'TENET_DROP_ETH_TRUNCATED'])).toEqual([
      'none',
      'eth_truncated',
    ]);
    expect(enumKeys(['TENET_ABI_VERSION'])).toEqual(['version']);
    expect(enumKeys(['TENET_X_A', 'TENET_X_AB', 'TENET_Y'])).toEqual(['x_a', 'x_ab', 'y']);
    expect(enumKeys(['TENET_X_1', 'TENET_X_2'])).toEqual(['1', '2']);
  });

  it('handles every kind of member, matching hand-written bytes', async () => {
    const { file, mod } = await generateModule([fixture('abi_fixture.o')], 'fixture');
    expect(tsErrors(file)).toEqual([]);
    expect([...checkLayouts(mod, fixture('abi_fixture.o'))].sort()).toEqual(
      [...structsOf(mod).keys()].sort(),
    );
    checkRoundTrips(mod, fixture('abi_fixture.o'));

    const codec = mod.FixtureCodec as StructCodec<Record<string, unknown>>;
    const value = {
      be16: 0x1234,
      u8: 0xab,
      s8: -2,
      be32: 0xc6120001,
      s32: -123456,
      u16: 0xbeef,
      s16: -2,
      be64: 0x0102030405060708n,
      u64: 0x1122334455667788n,
      s64: -2n,
      mac: Uint8Array.from([0x02, 0, 0, 0, 0, 0x01]),
      words: [1, 0xfffffffe],
      inner: { port: 443, proto: 6, addr: 0xc6120002 },
      pair: [
        { port: 80, proto: 17, addr: 1 },
        { port: 0xffff, proto: 255, addr: 0xffffffff },
      ],
      u32: 0xdeadbeef,
    };
    const expected = [
      '1234', // be16
      'ab', // u8
      'fe', // s8 -2
      'c6120001', // be32 198.18.0.1
      'c01dfeff', // s32 -123456, little-endian
      'efbe', // u16
      'feff', // s16 -2
      '0102030405060708', // be64
      '8877665544332211', // u64, little-endian
      'feffffffffffffff', // s64 -2
      '020000000001', // mac
      '0000', // pad0
      '00000001fffffffe', // words, big-endian each
      '01bb0600c6120002', // inner: port 443, proto 6, pad, addr 198.18.0.2
      '0050110000000001', // pair[0]
      'ffffff00ffffffff', // pair[1]
      'efbeadde', // u32
      '00000000', // pad1
    ].join('');
    const bytes = codec.encode(value);
    expect(bytes.toString('hex')).toBe(expected);
    expect(codec.decode(bytes)).toEqual(value);

    expect(mod.FixtureKind).toEqual({ zero: 0, seven: 7, alias: 7, max: 0x7fffffff });
    expect(mod.FixtureKindByValue).toEqual({ 0: 'zero', 7: 'seven', [0x7fffffff]: 'max' });

    const maps = mod.Maps as Record<string, Record<string, unknown>>;
    expect(maps.tenet_fx_hash).toMatchObject({
      type: 'hash',
      flags: 1,
      pinning: 'none',
      key: mod.FixtureInnerCodec,
      value: mod.FixtureCodec,
    });
    expect(maps.tenet_fx_outer).toMatchObject({
      type: 'array_of_maps',
      keySize: 4,
      valueSize: 4,
      inner: { type: 'array', typeId: 2, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0 },
    });
    const objects = mod.Objects as Record<string, { knobs: Record<string, unknown> }>;
    expect(objects.abi_fixture?.knobs).toMatchObject({
      tenet_cfg_fixture_delta: { type: 's32', size: 4, default: -5 },
      tenet_cfg_fixture_big: { type: 'u64', size: 8, default: 1n << 40n },
    });
  });

  it('rejects unions, bitfields, holes, enum, pointer and foreign members, negative enums', () => {
    let error: unknown;
    try {
      generateAbi({ objects: [fixture('abi_reject.o')] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AbiError);
    const problems = (error as AbiError).problems.join('\n');
    expect(problems).toMatch(/struct tenet_reject_hole\.b: 3 byte\(s\) of implicit padding/);
    expect(problems).toMatch(/struct tenet_reject_tail: 3 byte\(s\) of implicit tail padding/);
    expect(problems).toMatch(/struct tenet_reject_bitfield\.a: bitfields are not allowed/);
    expect(problems).toMatch(/union tenet_reject_union .*unions are not allowed/);
    expect(problems).toMatch(/struct tenet_reject_member_union\.u: unions are not allowed/);
    expect(problems).toMatch(/struct tenet_reject_enum\.dir: enum-typed members are not allowed/);
    expect(problems).toMatch(/struct tenet_reject_ptr\.p: pointers are not allowed/);
    expect(problems).toMatch(/struct tenet_reject_foreign\.ip: struct iphdr is not in the ABI/);
    expect(problems).toMatch(/enum tenet_reject_negative: .*must be in 0\.\.2\^31-1/);
  });

  it('rejects objects that define one struct or map differently', () => {
    expect(() =>
      generateAbi({ objects: [product('tenet_xdp.o'), fixture('abi_conflict.o')] }),
    ).toThrow(
      /struct tenet_counter differs between tenet_xdp\.o and abi_conflict\.o[^]*map tenet_drop_ctrs is defined differently/,
    );
  });
});
