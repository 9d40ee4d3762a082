// Load-time knobs: the `const volatile` globals of a BPF object (bpf/lib/drop.h
// tenet_cfg_drop_events, ...). They live in the object's '.rodata', which the kernel freezes at
// load, so the verifier treats them as constants and prunes the code they switch off; setting one
// means writing its bytes into '.rodata' between open and load. The layout (offset, size, type of
// every knob) comes from the objects' BTF through the generated Objects[...].knobs, never from
// hand-kept offsets.
//
// Changing a knob changes the loaded program but NOT its tag: the kernel computes the tag over the
// instructions before it resolves the '.rodata' map, so two loads that differ only in a knob have
// the same tag. Code that compares programs (agent/host/attach.ts adoption) must compare the
// '.rodata' contents too: see programIdentity() below.

import { endianness } from 'node:os';
import type { KnobDescriptor, KnobType } from '../abi/descriptors.js';
import { BpfMap, BpfProgram, type BpfObject } from './native.js';

/** A knob's value: a number (or bigint for 64-bit knobs); booleans are 1 and 0. */
export type KnobValue = number | bigint | boolean;

const RANGE: Record<KnobType, [bigint, bigint]> = {
  u8: [0n, 0xffn],
  u16: [0n, 0xffffn],
  u32: [0n, 0xffffffffn],
  u64: [0n, 0xffffffffffffffffn],
  s8: [-0x80n, 0x7fn],
  s16: [-0x8000n, 0x7fffn],
  s32: [-0x80000000n, 0x7fffffffn],
  s64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

/** The bytes of one knob value as the kernel reads them (host byte order). */
export function encodeKnob(knob: KnobDescriptor, value: KnobValue): Buffer {
  const v = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  const [min, max] = RANGE[knob.type];
  if (v < min || v > max) {
    throw new RangeError(`knob ${knob.name}: ${v} is out of range for ${knob.type}`);
  }
  const size = knob.size;
  if (![1, 2, 4, 8].includes(size)) throw new RangeError(`knob ${knob.name}: size ${size}`);
  const out = Buffer.alloc(size);
  const u = v < 0n ? v + (1n << BigInt(size * 8)) : v;
  for (let i = 0; i < size; i++) {
    const byte = Number((u >> BigInt(8 * i)) & 0xffn);
    out[endianness() === 'LE' ? i : size - 1 - i] = byte;
  }
  return out;
}

/**
 * Writes knob values into an opened (not yet loaded) object's '.rodata'. `knobs` is the object's
 * generated layout (Objects[name].knobs); a name it does not have is a TypeError.
 */
export function setKnobs(
  obj: BpfObject,
  knobs: Readonly<Record<string, KnobDescriptor>>,
  values: Readonly<Record<string, KnobValue>>,
): void {
  for (const [name, value] of Object.entries(values)) {
    if (!Object.hasOwn(knobs, name)) {
      const have = Object.keys(knobs);
      throw new TypeError(
        `${obj.path} has no knob ${name} (it has: ${have.length ? have.join(', ') : 'none'})`,
      );
    }
    const knob = knobs[name] as KnobDescriptor;
    obj.writeInitialValue('.rodata', knob.offset, encodeKnob(knob, value));
  }
}

/** The value of each knob in a '.rodata' image (an object's initialValue, or a loaded map's). */
export function readKnobs(
  rodata: Uint8Array,
  knobs: Readonly<Record<string, KnobDescriptor>>,
): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const [name, k] of Object.entries(knobs)) {
    let u = 0n;
    for (let i = 0; i < k.size; i++) {
      const b = BigInt(rodata[k.offset + (endianness() === 'LE' ? i : k.size - 1 - i)] ?? 0);
      u |= b << BigInt(8 * i);
    }
    const signed = k.type.startsWith('s') && u >> BigInt(k.size * 8 - 1) === 1n;
    out[name] = signed ? u - (1n << BigInt(k.size * 8)) : u;
  }
  return out;
}

/**
 * What makes a loaded program what it is: its tag plus the contents of the '.rodata' maps it
 * uses (its load-time knobs and constants). Two programs with equal identities behave the same;
 * equal tags alone do not say so (see the top of this file). The kernel names an object's
 * '.rodata' map `<object name prefix>.rodata`.
 */
export function programIdentity(prog: BpfProgram): string {
  const info = prog.info();
  const parts = [info.tag];
  for (const id of [...info.mapIds].sort((a, b) => a - b)) {
    let map: BpfMap;
    try {
      map = BpfMap.fromId(id);
    } catch {
      continue;
    }
    try {
      const mi = map.info();
      if (!mi.name.endsWith('.rodata') || mi.keySize !== 4 || mi.maxEntries !== 1) continue;
      const value = map.lookup(Buffer.alloc(4));
      parts.push(value === null ? 'none' : value.toString('hex'));
    } finally {
      map.close();
    }
  }
  return parts.join(':');
}

/** programIdentity of a program by kernel id; undefined when it is gone. */
export function programIdentityById(id: number): string | undefined {
  let prog: BpfProgram;
  try {
    prog = BpfProgram.fromId(id);
  } catch {
    return undefined;
  }
  try {
    return programIdentity(prog);
  } catch {
    return undefined;
  } finally {
    prog.close();
  }
}
