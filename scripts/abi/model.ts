// Builds the ABI model of tenet's BPF objects from their BTF and ELF symbols: the layouts of the
// `struct tenet_*` that cross into user space (map keys and values, globals such as the anchors
// of bpf/lib/btf_anchors.h), the `enum tenet_*` catalogues, the maps of the `.maps` section, the
// programs and the load-time knobs. It also enforces the ABI rules of bpf/abi/ that a compiler cannot: no unions,
// no bitfields, no enum-typed or pointer members, no implicit padding, and one definition of every
// type and map across all objects. Every violation is collected, so one run reports them all.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import { type Btf, type BtfMember, type BtfType, readBtf } from './btf.js';
import { ElfObject, SHF_EXECINSTR, STB_GLOBAL, STT_FUNC, STT_OBJECT } from './elf.js';

export type Scalar =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 's8'
  | 's16'
  | 's32'
  | 's64'
  | 'be16'
  | 'be32'
  | 'be64';

export type FieldType =
  | { kind: 'scalar'; scalar: Scalar; ctype: string }
  /** `__u8 x[n]` (or char): a byte string. */
  | { kind: 'bytes'; length: number; ctype: string }
  | { kind: 'array'; length: number; stride: number; elem: FieldType }
  | { kind: 'struct'; struct: string };

export interface FieldModel {
  name: string;
  offset: number;
  size: number;
  /** Named pad, padN, _pad...: zeroed by encoders, absent from decoded values. */
  padding: boolean;
  type: FieldType;
}

export interface StructModel {
  name: string;
  size: number;
  fields: FieldModel[];
}

export interface EnumModel {
  name: string;
  values: { name: string; value: number }[];
}

/** What a map's key or value is, as far as codecs go. */
export type TypeRef =
  | { kind: 'scalar'; scalar: Scalar }
  | { kind: 'struct'; struct: string }
  /** Anything else (arrays, foreign structs): sizes only, no codec. */
  | { kind: 'opaque'; ctype: string };

export interface InnerMapModel {
  type: string;
  typeId: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface MapModel extends InnerMapModel {
  name: string;
  pinning: 'none' | 'by_name';
  perCpu: boolean;
  key: TypeRef | null;
  value: TypeRef | null;
  inner: InnerMapModel | null;
  objects: string[];
}

export interface KnobModel {
  name: string;
  type: Exclude<Scalar, 'be16' | 'be32' | 'be64'>;
  offset: number;
  size: number;
  default: number | bigint;
}

export interface ProgramModel {
  name: string;
  section: string;
}

export interface ObjectModel {
  /** File name without .o: tenet_xdp. */
  name: string;
  file: string;
  programs: ProgramModel[];
  maps: string[];
  knobs: KnobModel[];
  rodataSize: number;
}

export interface AbiModel {
  abiVersion: number;
  pinBase: string;
  objects: ObjectModel[];
  structs: StructModel[];
  enums: EnumModel[];
  maps: MapModel[];
}

export class AbiError extends Error {
  constructor(readonly problems: string[]) {
    super(`the BPF ABI breaks ${problems.length} rule(s):\n  - ${problems.join('\n  - ')}`);
    this.name = 'AbiError';
  }
}

/** BPF_MAP_TYPE_* by number (include/uapi/linux/bpf.h; numbers never change). */
export const MAP_TYPES: readonly string[] = [
  'unspec',
  'hash',
  'array',
  'prog_array',
  'perf_event_array',
  'percpu_hash',
  'percpu_array',
  'stack_trace',
  'cgroup_array',
  'lru_hash',
  'lru_percpu_hash',
  'lpm_trie',
  'array_of_maps',
  'hash_of_maps',
  'devmap',
  'sockmap',
  'cpumap',
  'xskmap',
  'sockhash',
  'cgroup_storage',
  'reuseport_sockarray',
  'percpu_cgroup_storage',
  'queue',
  'stack',
  'sk_storage',
  'devmap_hash',
  'struct_ops',
  'ringbuf',
  'inode_storage',
  'task_storage',
  'bloom_filter',
  'user_ringbuf',
  'cgrp_storage',
  'arena',
];

const PER_CPU_TYPES = new Set([
  'percpu_hash',
  'percpu_array',
  'lru_percpu_hash',
  'percpu_cgroup_storage',
]);

const PAD_NAME = /^_*pad\d*$/;
const ABI_PREFIX = 'tenet_';
const KNOB_PREFIX = 'tenet_cfg_';

export interface ModelOptions {
  /** Object files, in any order; the model is the same for every order. */
  objects: readonly string[];
  /** bpf/abi/version.h: TENET_PIN_BASE and TENET_PIN_ROOT are read from it. */
  versionHeader: string;
  bpftool?: string;
}

export function buildModel(opts: ModelOptions): AbiModel {
  const problems: string[] = [];
  const structs = new Map<string, { model: StructModel; from: string }>();
  const enums = new Map<string, { model: EnumModel; from: string }>();
  const maps = new Map<string, { model: MapModel; from: string }>();
  const objects: ObjectModel[] = [];
  if (opts.objects.length === 0) problems.push('no BPF objects given (run make -C bpf first)');

  for (const path of [...opts.objects].sort()) {
    const file = basename(path);
    const btf = readBtf(path, opts.bpftool);
    const elf = new ElfObject(path, readFileSync(path));

    const mapsSec = btf.find('DATASEC', '.maps');
    const abiTypes = crossingTypes(btf);
    for (const t of btf.all()) {
      if (!t.name.startsWith(ABI_PREFIX)) continue;
      if ((t.kind === 'STRUCT' || t.kind === 'UNION') && !abiTypes.has(t.id)) continue;
      if (t.kind === 'UNION') {
        problems.push(`union ${t.name} (${file}): unions are not allowed in the ABI`);
      } else if (t.kind === 'STRUCT') {
        const model = structModel(btf, t, problems);
        if (model) merge(structs, `struct ${t.name}`, model, file, problems);
      } else if (t.kind === 'ENUM' || t.kind === 'ENUM64') {
        const model = enumModel(t, problems);
        if (model) merge(enums, `enum ${t.name}`, model, file, problems);
      }
    }

    const objectMaps: string[] = [];
    for (const v of mapsSec?.vars ?? []) {
      const varType = btf.get(v.type_id);
      const model = mapModel(btf, varType, file, problems);
      if (!model) continue;
      objectMaps.push(model.name);
      const prev = maps.get(model.name);
      if (prev) {
        prev.model.objects.push(file.replace(/\.o$/, ''));
        const a = JSON.stringify({ ...prev.model, objects: [] });
        const b = JSON.stringify({ ...model, objects: [] });
        if (a !== b) {
          problems.push(
            `map ${model.name} is defined differently in ${prev.from} and ${file}; ` +
              'pinned by name, both objects would share one map',
          );
        }
      } else {
        maps.set(model.name, { model, from: file });
      }
    }

    if (!btf.find('VAR', 'tenet_abi_version')) {
      problems.push(`${file} has no tenet_abi_version: include "lib/btf_anchors.h"`);
    }

    objects.push({
      name: file.replace(/\.o$/, ''),
      file,
      programs: programs(elf),
      maps: objectMaps.sort(),
      knobs: knobs(btf, elf, file, problems),
      rodataSize: elf.section('.rodata')?.size ?? 0,
    });
  }

  // Nested members must name structs that are part of the ABI.
  for (const { model } of structs.values()) {
    for (const f of model.fields) {
      const s = innermost(f.type);
      if (s.kind === 'struct' && !structs.has(s.struct)) {
        problems.push(`${model.name}.${f.name}: struct ${s.struct} is not in the ABI`);
      }
    }
  }

  const abi = enums.get('tenet_abi')?.model.values.find((v) => v.name === 'TENET_ABI_VERSION');
  if (!abi) problems.push('no enum tenet_abi { TENET_ABI_VERSION } in any object');
  const abiVersion = abi?.value ?? 0;
  const pinBase = readPinBase(opts.versionHeader, abiVersion, problems);

  if (problems.length > 0) throw new AbiError(problems);

  const byName = <T extends { name: string }>(a: T, b: T): number =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  return {
    abiVersion,
    pinBase,
    objects: objects.sort(byName),
    structs: [...structs.values()].map((s) => s.model).sort(byName),
    enums: [...enums.values()].map((e) => e.model).sort(byName),
    maps: [...maps.values()]
      .map((m) => ({ ...m.model, objects: [...m.model.objects].sort() }))
      .sort(byName),
  };
}

function merge<T>(
  into: Map<string, { model: T; from: string }>,
  what: string,
  model: T,
  file: string,
  problems: string[],
): void {
  const key = (model as { name: string }).name;
  const prev = into.get(key);
  if (!prev) {
    into.set(key, { model, from: file });
  } else if (JSON.stringify(prev.model) !== JSON.stringify(model)) {
    problems.push(
      `${what} differs between ${prev.from} and ${file}: objects built from different sources ` +
        '(rebuild with make -C bpf)',
    );
  }
}

/**
 * ABI enums are catalogues of values stored in fixed-width unsigned fields, so their values must
 * be in 0..2^31-1. (BTF from clang 14 does not say whether an enum is signed: 0xffffffff could be
 * -1 or 4294967295, and bpftool prints either as 2^64-1.)
 */
function enumModel(t: BtfType, problems: string[]): EnumModel | null {
  const mask = (1n << BigInt((t.size ?? 4) * 8)) - 1n;
  const values: EnumModel['values'] = [];
  for (const v of t.values ?? []) {
    const value = v.val & mask;
    if (value > 0x7fffffffn) {
      problems.push(
        `enum ${t.name}: ${v.name} = ${value} (or negative); ABI enum values must be in 0..2^31-1`,
      );
      return null;
    }
    values.push({ name: v.name, value: Number(value) });
  }
  return { name: t.name, values };
}

/**
 * Ids of the structs and unions that cross into user space: map keys and values (inner maps' too)
 * and the types of globals (knobs, BTF anchors), with whatever they nest. Those named tenet_* are
 * the ABI. Other tenet_* structs are the datapath's own (struct tenet_ctx, struct tenet_pkt) and
 * may reach BTF through a function's parameters without becoming part of the contract.
 */
function crossingTypes(btf: Btf): Set<number> {
  const out = new Set<number>();
  const visit = (id: number): void => {
    const t = btf.resolve(id).type;
    if (t.kind === 'PTR' || t.kind === 'ARRAY') {
      visit(t.type_id as number);
    } else if ((t.kind === 'STRUCT' || t.kind === 'UNION') && !out.has(t.id)) {
      out.add(t.id);
      for (const m of t.members ?? []) visit(m.type_id);
    }
  };
  const visitMapDef = (def: BtfType): void => {
    for (const m of def.members ?? []) {
      const target = btf.resolve(m.type_id).type;
      if ((m.name === 'key' || m.name === 'value') && target.kind === 'PTR') {
        visit(target.type_id as number);
      } else if (m.name === 'values' && target.kind === 'ARRAY') {
        const ptr = btf.resolve(target.type_id as number).type;
        const inner = ptr.kind === 'PTR' ? btf.resolve(ptr.type_id as number).type : undefined;
        if (inner?.kind === 'STRUCT') visitMapDef(inner);
      }
    }
  };
  for (const sec of btf.all()) {
    if (sec.kind !== 'DATASEC') continue;
    for (const v of sec.vars ?? []) {
      const variable = btf.get(v.type_id);
      if (variable.kind !== 'VAR') continue;
      if (sec.name === '.maps') visitMapDef(btf.resolve(variable.type_id as number).type);
      else visit(variable.type_id as number);
    }
  }
  return out;
}

function innermost(t: FieldType): FieldType {
  return t.kind === 'array' ? innermost(t.elem) : t;
}

function scalarOf(btf: Btf, id: number): { scalar: Scalar; ctype: string } | string {
  const { type, typedefs } = btf.resolve(id);
  const ctype = typedefs[0] ?? type.name;
  if (type.kind !== 'INT') return `${type.kind.toLowerCase()} ${ctype}`;
  const size = type.size as number;
  if (type.encoding === 'BOOL') return 'bool (use __u8)';
  if (type.nr_bits !== size * 8 || (type.bits_offset ?? 0) !== 0) return 'a bitfield';
  if (![1, 2, 4, 8].includes(size)) return `a ${size}-byte integer`;
  const be = typedefs.find((n) => /^__be(16|32|64)$/.test(n));
  if (be) {
    if (`__be${size * 8}` !== be) return `${be} over a ${size}-byte integer`;
    return { scalar: `be${size * 8}` as Scalar, ctype };
  }
  const signed = type.encoding === 'SIGNED';
  return { scalar: `${signed ? 's' : 'u'}${size * 8}` as Scalar, ctype };
}

function fieldType(btf: Btf, id: number, where: string, problems: string[]): FieldType | null {
  const { type, typedefs } = btf.resolve(id);
  switch (type.kind) {
    case 'INT': {
      const s = scalarOf(btf, id);
      if (typeof s === 'string') {
        problems.push(`${where}: ${s} is not allowed in the ABI`);
        return null;
      }
      return { kind: 'scalar', ...s };
    }
    case 'ARRAY': {
      const length = type.nr_elems as number;
      const elemId = type.type_id as number;
      const elem = fieldType(btf, elemId, `${where}[]`, problems);
      if (!elem) return null;
      if (elem.kind === 'scalar' && (elem.scalar === 'u8' || elem.scalar === 's8')) {
        return { kind: 'bytes', length, ctype: elem.ctype };
      }
      if (elem.kind === 'bytes' || elem.kind === 'array') {
        problems.push(`${where}: multi-dimensional arrays are not allowed in the ABI`);
        return null;
      }
      return { kind: 'array', length, stride: btf.sizeOf(elemId), elem };
    }
    case 'STRUCT':
      if (!type.name.startsWith(ABI_PREFIX)) {
        problems.push(
          `${where}: struct ${type.name || '(anonymous)'} is not in the ABI (name it tenet_*)`,
        );
        return null;
      }
      return { kind: 'struct', struct: type.name };
    case 'UNION':
      problems.push(`${where}: unions are not allowed in the ABI`);
      return null;
    case 'PTR':
      problems.push(`${where}: pointers are not allowed in the ABI`);
      return null;
    case 'ENUM':
    case 'ENUM64':
      problems.push(
        `${where}: enum-typed members are not allowed in the ABI; use a fixed-width integer ` +
          `(__u8/__u16/__u32) and name enum ${type.name || '(anonymous)'} in a comment`,
      );
      return null;
    default:
      problems.push(
        `${where}: ${type.kind.toLowerCase()} ${typedefs[0] ?? type.name} is not allowed in the ABI`,
      );
      return null;
  }
}

function structModel(btf: Btf, t: BtfType, problems: string[]): StructModel | null {
  const size = t.size as number;
  const fields: FieldModel[] = [];
  let expected = 0;
  let ok = true;
  for (const m of t.members ?? []) {
    const where = `struct ${t.name}.${m.name || '(anonymous)'}`;
    if ((m.bitfield_size ?? 0) !== 0 || m.bits_offset % 8 !== 0) {
      problems.push(`${where}: bitfields are not allowed in the ABI`);
      ok = false;
      continue;
    }
    if (!m.name) {
      problems.push(`${where}: anonymous members are not allowed in the ABI`);
      ok = false;
      continue;
    }
    const offset = m.bits_offset / 8;
    const type = fieldType(btf, m.type_id, where, problems);
    if (!type) {
      ok = false;
      continue;
    }
    const fsize = btf.sizeOf(m.type_id);
    if (offset !== expected) {
      problems.push(
        `${where}: ${offset - expected} byte(s) of implicit padding before offset ${offset}; ` +
          'add an explicit pad member',
      );
      ok = false;
    }
    expected = offset + fsize;
    fields.push({ name: m.name, offset, size: fsize, padding: PAD_NAME.test(m.name), type });
  }
  if (ok && expected !== size) {
    problems.push(
      `struct ${t.name}: ${size - expected} byte(s) of implicit tail padding; ` +
        'add an explicit pad member',
    );
    ok = false;
  }
  return ok ? { name: t.name, size, fields } : null;
}

/** `__uint(name, n)` is `int (*name)[n]`: the number is the array's length. */
function defInt(btf: Btf, m: BtfMember, where: string): number {
  const ptr = btf.resolve(m.type_id).type;
  const arr = ptr.kind === 'PTR' ? btf.resolve(ptr.type_id as number).type : undefined;
  if (arr?.kind !== 'ARRAY') throw new Error(`${where}: ${m.name} is not __uint(${m.name}, ...)`);
  return arr.nr_elems as number;
}

/** `__type(name, T)` is `T *name`. */
function defType(btf: Btf, m: BtfMember, where: string): number {
  const ptr = btf.resolve(m.type_id).type;
  if (ptr.kind !== 'PTR') throw new Error(`${where}: ${m.name} is not __type(${m.name}, ...)`);
  return ptr.type_id as number;
}

function typeRef(btf: Btf, id: number): TypeRef {
  const { type, typedefs } = btf.resolve(id);
  if (type.kind === 'STRUCT' && type.name.startsWith(ABI_PREFIX)) {
    return { kind: 'struct', struct: type.name };
  }
  if (type.kind === 'INT') {
    const s = scalarOf(btf, id);
    if (typeof s !== 'string') return { kind: 'scalar', scalar: s.scalar };
  }
  return { kind: 'opaque', ctype: typedefs[0] ?? `${type.kind.toLowerCase()} ${type.name}` };
}

interface MapDef {
  typeId: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  pinning: number;
  key: TypeRef | null;
  value: TypeRef | null;
  inner: InnerMapModel | null;
}

function mapDef(btf: Btf, def: BtfType, where: string, problems: string[]): MapDef | null {
  if (def.kind !== 'STRUCT') {
    problems.push(`${where}: not a BTF map definition (legacy struct bpf_map_def?)`);
    return null;
  }
  const d: MapDef = {
    typeId: 0,
    keySize: 0,
    valueSize: 0,
    maxEntries: 0,
    flags: 0,
    pinning: 0,
    key: null,
    value: null,
    inner: null,
  };
  for (const m of def.members ?? []) {
    switch (m.name) {
      case 'type':
        d.typeId = defInt(btf, m, where);
        break;
      case 'max_entries':
        d.maxEntries = defInt(btf, m, where);
        break;
      case 'map_flags':
        d.flags = defInt(btf, m, where);
        break;
      case 'pinning':
        d.pinning = defInt(btf, m, where);
        break;
      case 'key_size':
        d.keySize = defInt(btf, m, where);
        break;
      case 'value_size':
        d.valueSize = defInt(btf, m, where);
        break;
      case 'numa_node':
      case 'map_extra':
        break;
      case 'key': {
        const id = defType(btf, m, where);
        d.key = typeRef(btf, id);
        d.keySize = btf.sizeOf(id);
        break;
      }
      case 'value': {
        const id = defType(btf, m, where);
        d.value = typeRef(btf, id);
        d.valueSize = btf.sizeOf(id);
        break;
      }
      case 'values': {
        // __array(values, struct {...}): an array of pointers to the inner map's definition
        // (map-in-map) or to a function prototype (program arrays). Values are ids: 4 bytes.
        d.valueSize = 4;
        const arr = btf.resolve(m.type_id).type;
        const ptr = btf.resolve(arr.type_id as number).type;
        const target = btf.resolve(ptr.type_id as number).type;
        if (target.kind === 'STRUCT') {
          const inner = mapDef(btf, target, `${where}.values`, problems);
          if (inner) {
            d.inner = {
              type: MAP_TYPES[inner.typeId] ?? `unknown_${inner.typeId}`,
              typeId: inner.typeId,
              keySize: inner.keySize,
              valueSize: inner.valueSize,
              maxEntries: inner.maxEntries,
              flags: inner.flags,
            };
          }
        }
        break;
      }
      default:
        problems.push(`${where}: unknown map definition member ${m.name}`);
    }
  }
  return d;
}

function mapModel(btf: Btf, v: BtfType, file: string, problems: string[]): MapModel | null {
  const where = `map ${v.name} (${file})`;
  if (v.kind !== 'VAR') {
    problems.push(`${where}: .maps entry is a ${v.kind}, not a VAR`);
    return null;
  }
  const d = mapDef(btf, btf.resolve(v.type_id as number).type, where, problems);
  if (!d) return null;
  const type = MAP_TYPES[d.typeId];
  if (type === undefined) {
    problems.push(`${where}: unknown map type ${d.typeId} (update MAP_TYPES in scripts/abi)`);
    return null;
  }
  if (d.pinning > 1) problems.push(`${where}: unknown pinning ${d.pinning}`);
  if (v.name.length > 15) {
    problems.push(`${where}: name longer than 15 characters, the kernel would truncate it`);
  }
  return {
    name: v.name,
    type,
    typeId: d.typeId,
    keySize: d.keySize,
    valueSize: d.valueSize,
    maxEntries: d.maxEntries,
    flags: d.flags,
    pinning: d.pinning === 1 ? 'by_name' : 'none',
    perCpu: PER_CPU_TYPES.has(type),
    key: d.key,
    value: d.value,
    inner: d.inner,
    objects: [file.replace(/\.o$/, '')],
  };
}

function programs(elf: ElfObject): ProgramModel[] {
  const exec = new Set(
    elf.sections.filter((s) => (s.flags & SHF_EXECINSTR) !== 0n).map((s) => s.name),
  );
  return elf.symbols
    .filter(
      (s) =>
        s.type === STT_FUNC &&
        s.bind === STB_GLOBAL &&
        s.section !== null &&
        s.section !== '.text' &&
        exec.has(s.section),
    )
    .map((s) => ({ name: s.name, section: s.section as string }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

function knobs(btf: Btf, elf: ElfObject, file: string, problems: string[]): KnobModel[] {
  const rodata = elf.section('.rodata');
  const out: KnobModel[] = [];
  for (const sym of elf.symbols) {
    if (sym.type !== STT_OBJECT || !sym.name.startsWith(KNOB_PREFIX)) continue;
    const where = `knob ${sym.name} (${file})`;
    if (sym.section !== '.rodata' || !rodata) {
      problems.push(
        `${where}: in ${sym.section ?? 'no section'}, not .rodata: declare it const volatile`,
      );
      continue;
    }
    const v = btf.find('VAR', sym.name);
    const s = v ? scalarOf(btf, v.type_id as number) : 'missing from BTF';
    if (typeof s === 'string' || s.scalar.startsWith('be')) {
      problems.push(`${where}: ${typeof s === 'string' ? s : s.scalar}; knobs are plain integers`);
      continue;
    }
    const bytes = elf.contents(rodata);
    const type = s.scalar as KnobModel['type'];
    const signed = type.startsWith('s');
    let value: number | bigint;
    switch (sym.size) {
      case 1:
        value = signed ? bytes.readInt8(sym.value) : bytes.readUInt8(sym.value);
        break;
      case 2:
        value = signed ? bytes.readInt16LE(sym.value) : bytes.readUInt16LE(sym.value);
        break;
      case 4:
        value = signed ? bytes.readInt32LE(sym.value) : bytes.readUInt32LE(sym.value);
        break;
      default:
        value = signed ? bytes.readBigInt64LE(sym.value) : bytes.readBigUInt64LE(sym.value);
    }
    out.push({ name: sym.name, type, offset: sym.value, size: sym.size, default: value });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

function readPinBase(header: string, version: number, problems: string[]): string {
  const text = readFileSync(header, 'utf8');
  const base = /^#define\s+TENET_PIN_BASE\s+"([^"]+)"/m.exec(text)?.[1];
  const root = /^#define\s+TENET_PIN_ROOT\s+TENET_PIN_BASE\s+"\/v(\d+)"/m.exec(text)?.[1];
  if (base === undefined || root === undefined) {
    problems.push(`${header}: expected #define TENET_PIN_BASE "..." and TENET_PIN_ROOT`);
    return '';
  }
  if (Number(root) !== version) {
    problems.push(
      `${header}: TENET_PIN_ROOT says v${root} but TENET_ABI_VERSION is ${version}; bump both`,
    );
  }
  return base;
}
