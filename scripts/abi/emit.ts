// Turns the ABI model (model.ts) into the TypeScript module agent/abi/generated.ts. The output
// depends on nothing but the model: no timestamps, no absolute paths, every list sorted, so the
// same objects always give the same bytes and CI can compare.

import type {
  AbiModel,
  EnumModel,
  FieldType,
  MapModel,
  Scalar,
  StructModel,
  TypeRef,
} from './model.js';

export interface EmitOptions {
  /** Paths of the inputs as they should appear in the header (relative, posix). */
  sources: readonly string[];
  /** Module specifiers the generated file imports from. */
  codecModule?: string;
  descriptorsModule?: string;
}

/** `tenet_port_key` -> `PortKey`. */
export function tsName(cname: string): string {
  return cname
    .replace(/^tenet_/, '')
    .split('_')
    .filter((p) => p !== '')
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join('');
}

/** `tenet_port_key` -> `PORT_KEY`. */
function constName(cname: string): string {
  return cname.replace(/^tenet_/, '').toUpperCase();
}

/**
 * Member names of an enum without their common prefix, in lower case: TENET_DROP_ETH_TRUNCATED
 * becomes eth_truncated. The prefix ends at an underscore and leaves every name non-empty.
 */
export function enumKeys(names: readonly string[]): string[] {
  const first = names[0] ?? '';
  let prefix = first.slice(0, first.lastIndexOf('_') + 1);
  while (prefix !== '' && !names.every((n) => n.startsWith(prefix) && n.length > prefix.length)) {
    prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('_') + 1);
  }
  return names.map((n) => n.slice(prefix.length).toLowerCase());
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (k: string): string => (IDENT.test(k) ? k : `'${k}'`);

const SCALAR_TS: Record<Scalar, string> = {
  u8: 'number',
  u16: 'number',
  u32: 'number',
  u64: 'bigint',
  s8: 'number',
  s16: 'number',
  s32: 'number',
  s64: 'bigint',
  be16: 'number',
  be32: 'number',
  be64: 'bigint',
};

const cap = (s: string): string => s[0]?.toUpperCase() + s.slice(1);
const putFn = (s: Scalar): string => `put${cap(s)}`;
const getFn = (s: Scalar): string => `get${cap(s)}`;

class Imports {
  readonly values = new Set<string>();
  readonly types = new Set<string>();
}

function tsType(t: FieldType): string {
  switch (t.kind) {
    case 'scalar':
      return SCALAR_TS[t.scalar];
    case 'bytes':
      return 'Uint8Array';
    case 'array': {
      const e = tsType(t.elem);
      return /^\w+$/.test(e) ? `${e}[]` : `(${e})[]`;
    }
    case 'struct':
      return tsName(t.struct);
  }
}

function describe(t: FieldType): string {
  switch (t.kind) {
    case 'scalar':
      return t.ctype;
    case 'bytes':
      return `${t.ctype}[${t.length}]`;
    case 'array':
      return `${describe(t.elem)}[${t.length}]`;
    case 'struct':
      return `struct ${t.struct}`;
  }
}

/** Expression writing value expr x of type t at offset expression o of view v. */
function writeExpr(t: FieldType, o: string, x: string, field: string, imp: Imports): string {
  switch (t.kind) {
    case 'scalar':
      imp.values.add(putFn(t.scalar));
      return `${putFn(t.scalar)}(v, ${o}, ${x}, '${field}')`;
    case 'bytes':
      imp.values.add('putBytes');
      return `putBytes(v, ${o}, ${t.length}, ${x}, '${field}')`;
    case 'struct':
      return `${tsName(t.struct)}Codec.write(v, ${o}, ${x})`;
    case 'array': {
      imp.values.add('putArray');
      const elem = elemWriter(t.elem, imp);
      return `putArray(v, ${o}, ${t.length}, ${t.stride}, ${x}, '${field}', ${elem})`;
    }
  }
}

function elemWriter(t: FieldType, imp: Imports): string {
  if (t.kind === 'scalar') {
    imp.values.add(putFn(t.scalar));
    return putFn(t.scalar);
  }
  if (t.kind === 'struct') return `(v, o, x) => ${tsName(t.struct)}Codec.write(v, o, x)`;
  throw new Error(`unsupported array element ${t.kind}`);
}

function readExpr(t: FieldType, o: string, imp: Imports): string {
  switch (t.kind) {
    case 'scalar':
      imp.values.add(getFn(t.scalar));
      return `${getFn(t.scalar)}(v, ${o})`;
    case 'bytes':
      imp.values.add('getBytes');
      return `getBytes(v, ${o}, ${t.length})`;
    case 'struct':
      return `${tsName(t.struct)}Codec.read(v, ${o})`;
    case 'array': {
      imp.values.add('getArray');
      const e = t.elem;
      let elem: string;
      if (e.kind === 'scalar') {
        imp.values.add(getFn(e.scalar));
        elem = getFn(e.scalar);
      } else if (e.kind === 'struct') {
        elem = `(v, o) => ${tsName(e.struct)}Codec.read(v, o)`;
      } else {
        throw new Error(`unsupported array element ${e.kind}`);
      }
      return `getArray(v, ${o}, ${t.length}, ${t.stride}, ${elem})`;
    }
  }
}

function isBigEndian(t: FieldType): boolean {
  if (t.kind === 'scalar') return t.scalar.startsWith('be');
  return t.kind === 'array' && isBigEndian(t.elem);
}

const at = (off: number): string => (off === 0 ? 'o' : `o + ${off}`);

function emitStruct(s: StructModel, imp: Imports): string {
  const name = tsName(s.name);
  const data = s.fields.filter((f) => !f.padding);
  const out: string[] = [];

  out.push(`/** struct ${s.name}: ${s.size} bytes. */`);
  out.push(`export interface ${name} {`);
  for (const f of data) {
    const be = isBigEndian(f.type) ? ', big-endian in the map' : '';
    out.push(`  /** ${describe(f.type)} at ${f.offset}${be} */`);
    out.push(`  ${key(f.name)}: ${tsType(f.type)};`);
  }
  out.push('}');
  out.push('');
  out.push(`export const ${constName(s.name)}_SIZE = ${s.size};`);
  out.push('');
  imp.types.add('FieldLayout');
  out.push(`export const ${name}Layout = {`);
  for (const f of s.fields) {
    out.push(`  ${key(f.name)}: { offset: ${f.offset}, size: ${f.size} },`);
  }
  out.push('} as const satisfies Record<string, FieldLayout>;');
  out.push('');
  imp.values.add('defineStruct');
  imp.types.add('StructCodec');
  out.push(`export const ${name}Codec: StructCodec<${name}> = defineStruct<${name}>({`);
  out.push(`  name: '${s.name}',`);
  out.push(`  size: ${s.size},`);
  out.push(`  write(v, o, x) {`);
  for (const f of s.fields) {
    if (f.padding) {
      imp.values.add('putZero');
      out.push(`    putZero(v, ${at(f.offset)}, ${f.size});`);
    } else {
      out.push(
        `    ${writeExpr(f.type, at(f.offset), `x.${f.name}`, `${s.name}.${f.name}`, imp)};`,
      );
    }
  }
  out.push('  },');
  if (data.length === 0) {
    out.push('  read() {');
    out.push('    return {};');
  } else {
    out.push('  read(v, o) {');
    out.push('    return {');
    for (const f of data) out.push(`      ${key(f.name)}: ${readExpr(f.type, at(f.offset), imp)},`);
    out.push('    };');
  }
  out.push('  },');
  out.push('});');
  return out.join('\n');
}

function emitEnum(e: EnumModel): string {
  const name = tsName(e.name);
  const keys = enumKeys(e.values.map((v) => v.name));
  const out: string[] = [];
  out.push(`/** enum ${e.name}. */`);
  out.push(`export const ${name} = {`);
  e.values.forEach((v, i) => out.push(`  ${key(keys[i] as string)}: ${v.value}, // ${v.name}`));
  out.push('} as const;');
  out.push(`export type ${name}Name = keyof typeof ${name};`);
  out.push(`export type ${name} = (typeof ${name})[${name}Name];`);
  const byValue = new Map<number, string>();
  e.values.forEach((v, i) => {
    if (!byValue.has(v.value)) byValue.set(v.value, keys[i] as string);
  });
  out.push(`/** Name of each value (the first, where names share a value). */`);
  out.push(`export const ${name}ByValue: Readonly<Record<number, ${name}Name>> = {`);
  for (const [value, k] of [...byValue].sort((a, b) => a[0] - b[0])) {
    out.push(`  ${value}: '${k}',`);
  }
  out.push('};');
  return out.join('\n');
}

function refCodec(r: TypeRef | null, imp: Imports): { codec: string; ts: string } {
  if (r === null || r.kind === 'opaque') return { codec: 'null', ts: 'never' };
  if (r.kind === 'struct') return { codec: `${tsName(r.struct)}Codec`, ts: tsName(r.struct) };
  const codec = r.scalar.toUpperCase();
  imp.values.add(codec);
  return { codec, ts: SCALAR_TS[r.scalar] };
}

function emitMap(m: MapModel, imp: Imports): string {
  const k = refCodec(m.key, imp);
  const v = refCodec(m.value, imp);
  const inner = m.inner
    ? `{ type: '${m.inner.type}', typeId: ${m.inner.typeId}, keySize: ${m.inner.keySize}, ` +
      `valueSize: ${m.inner.valueSize}, maxEntries: ${m.inner.maxEntries}, ` +
      `flags: ${m.inner.flags} }`
    : 'null';
  return [
    `  ${key(m.name)}: {`,
    `    name: '${m.name}',`,
    `    type: '${m.type}',`,
    `    typeId: ${m.typeId},`,
    `    keySize: ${m.keySize},`,
    `    valueSize: ${m.valueSize},`,
    `    maxEntries: ${m.maxEntries},`,
    `    flags: ${m.flags},`,
    `    pinning: '${m.pinning}',`,
    `    perCpu: ${m.perCpu},`,
    `    key: ${k.codec},`,
    `    value: ${v.codec},`,
    `    inner: ${inner},`,
    `    objects: [${m.objects.map((o) => `'${o}'`).join(', ')}],`,
    `  } satisfies MapDescriptor<${k.ts}, ${v.ts}>,`,
  ].join('\n');
}

function literal(x: number | bigint): string {
  return typeof x === 'bigint' ? `${x}n` : String(x);
}

export function emit(model: AbiModel, opts: EmitOptions): string {
  const imp = new Imports();
  const body: string[] = [];

  body.push('// ABI version and pin root (enum tenet_abi, bpf/abi/version.h).');
  for (const v of model.enums.find((e) => e.name === 'tenet_abi')?.values ?? []) {
    body.push(`export const ${v.name} = ${v.value};`);
  }
  body.push(`export const TENET_PIN_BASE = '${model.pinBase}';`);
  body.push(`export const TENET_PIN_ROOT = '${model.pinBase}/v${model.abiVersion}';`);

  for (const e of model.enums) {
    if (e.name === 'tenet_abi') continue;
    body.push('', emitEnum(e));
  }
  for (const s of model.structs) body.push('', emitStruct(s, imp));

  imp.types.add('MapDescriptor');
  body.push('', '/** Every map of the objects, by name. */', 'export const Maps = {');
  for (const m of model.maps) body.push(emitMap(m, imp));
  body.push('} as const;', 'export type MapName = keyof typeof Maps;');

  imp.types.add('ObjectDescriptor');
  body.push('', '/** Every object: its programs, the maps it uses, its load-time knobs. */');
  body.push('export const Objects = {');
  for (const o of model.objects) {
    body.push(`  ${key(o.name)}: {`, `    file: '${o.file}',`, '    programs: {');
    for (const p of o.programs) {
      body.push(`      ${key(p.name)}: { name: '${p.name}', section: '${p.section}' },`);
    }
    body.push('    },', `    maps: [${o.maps.map((m) => `'${m}'`).join(', ')}],`, '    knobs: {');
    for (const k of o.knobs) {
      body.push(
        `      ${key(k.name)}: {`,
        `        name: '${k.name}',`,
        `        type: '${k.type}',`,
        `        offset: ${k.offset},`,
        `        size: ${k.size},`,
        `        default: ${literal(k.default)},`,
        '      },',
      );
    }
    body.push('    },', `    rodataSize: ${o.rodataSize},`, '  },');
  }
  body.push('} as const satisfies Record<string, ObjectDescriptor>;');
  body.push('export type ObjectName = keyof typeof Objects;');

  const codecModule = opts.codecModule ?? './codec.js';
  const descriptorsModule = opts.descriptorsModule ?? './descriptors.js';
  const codecImports = [
    ...[...imp.values].sort(),
    ...[...imp.types]
      .filter((t) => t === 'FieldLayout' || t === 'StructCodec')
      .sort()
      .map((t) => `type ${t}`),
  ];
  const descImports = [...imp.types]
    .filter((t) => t !== 'FieldLayout' && t !== 'StructCodec')
    .sort();

  const head = [
    '// Code generated by scripts/gen-abi.ts. DO NOT EDIT.',
    '//',
    '// From the BTF and ELF symbols of:',
    ...opts.sources.map((s) => `//   ${s}`),
    '// Regenerate after changing bpf/: make -C bpf && npm run gen:abi',
    '// CI fails when this file is stale: npm run gen:abi -- --check',
    '//',
    '// Integers up to 32 bits are numbers, 64-bit integers bigints, byte arrays Uint8Arrays.',
    '// Fields declared __be16/__be32/__be64 in C are kept big-endian (network order) in the map and',
    '// carry here the number the wire means (port 443 is 443); every other field is little-endian,',
    '// the host order of the x86_64 and aarch64 hosts tenet runs on (see codec.ts). Padding members',
    '// (pad, padN) are in the layouts but not in the interfaces, and encoders write them as zeros.',
    '',
    `import {`,
    ...codecImports.map((i) => `  ${i},`),
    `} from '${codecModule}';`,
    `import type { ${descImports.join(', ')} } from '${descriptorsModule}';`,
    '',
  ];
  return [...head, ...body, ''].join('\n');
}
