// Reads the BTF of a BPF object through `bpftool -j btf dump file`, and resolves types through
// typedefs and qualifiers. Only what the ABI generator needs: no attempt at a full BTF library.

import { execFileSync } from 'node:child_process';

export interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  /** Present (and non-zero) for bitfields in structs that carry the kind flag. */
  bitfield_size?: number;
}

export interface BtfEnumValue {
  name: string;
  /** bpftool prints enum values beyond 2^53 too; they are kept exact here. */
  val: bigint;
}

export interface BtfVarSecinfo {
  type_id: number;
  offset: number;
  size: number;
}

export interface BtfParam {
  name: string;
  type_id: number;
}

/** One entry of bpftool's JSON: the fields present depend on kind. */
export interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  nr_bits?: number;
  bits_offset?: number;
  encoding?: string;
  linkage?: string;
  members?: BtfMember[];
  values?: BtfEnumValue[];
  vars?: BtfVarSecinfo[];
  params?: BtfParam[];
}

export class Btf {
  readonly byId = new Map<number, BtfType>();

  constructor(
    readonly source: string,
    types: readonly BtfType[],
  ) {
    for (const t of types) this.byId.set(t.id, t);
  }

  get(id: number): BtfType {
    const t = this.byId.get(id);
    if (t === undefined) throw new Error(`${this.source}: BTF type id ${id} does not exist`);
    return t;
  }

  *all(): Iterable<BtfType> {
    yield* this.byId.values();
  }

  /** Named types of a kind, e.g. every STRUCT called tenet_*. */
  find(kind: string, name: string): BtfType | undefined {
    for (const t of this.byId.values()) if (t.kind === kind && t.name === name) return t;
    return undefined;
  }

  /**
   * Follows typedefs and qualifiers to the underlying type. Returns it and the typedef names
   * passed on the way, nearest first (`__be16`, `__u16` for a __be16 member).
   */
  resolve(id: number): { type: BtfType; typedefs: string[] } {
    const typedefs: string[] = [];
    let t = this.get(id);
    for (;;) {
      if (t.kind === 'TYPEDEF') typedefs.push(t.name);
      else if (!QUALIFIERS.has(t.kind)) return { type: t, typedefs };
      t = this.get(t.type_id as number);
    }
  }

  /** Size in bytes of a type, through typedefs, qualifiers and arrays. */
  sizeOf(id: number): number {
    const { type } = this.resolve(id);
    switch (type.kind) {
      case 'INT':
      case 'STRUCT':
      case 'UNION':
      case 'ENUM':
      case 'ENUM64':
      case 'FLOAT':
        return type.size as number;
      case 'PTR':
        return 8;
      case 'ARRAY':
        return (type.nr_elems as number) * this.sizeOf(type.type_id as number);
      default:
        throw new Error(`${this.source}: no size for BTF ${type.kind} ${type.name} (id ${id})`);
    }
  }
}

const QUALIFIERS = new Set(['CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG']);

/** Runs bpftool on an object file and returns its BTF. */
export function readBtf(objectPath: string, bpftool = 'bpftool'): Btf {
  let out: string;
  try {
    out = execFileSync(bpftool, ['-j', 'btf', 'dump', 'file', objectPath], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`bpftool btf dump file ${objectPath} failed: ${e.stderr?.trim() || e.message}`);
  }
  // Enum values can exceed 2^53 (bpftool sign-extends 32-bit values with the top bit set to 64
  // bits): quote them before parsing so that no digit is lost, and make them bigints.
  const quoted = out.replace(/"val":\s*(-?\d+)/g, '"val":"$1"');
  const parsed = JSON.parse(quoted, (k: string, v: unknown) =>
    k === 'val' && typeof v === 'string' ? BigInt(v) : v,
  ) as { types?: BtfType[] };
  if (!Array.isArray(parsed.types)) throw new Error(`${objectPath}: bpftool printed no BTF types`);
  return new Btf(objectPath, parsed.types);
}
