// Runtime half of the agent's view of the BPF ABI. agent/abi/generated.ts (written by
// scripts/gen-abi.ts from the objects' BTF) defines one codec per `struct tenet_*`; this module
// holds what those codecs share: the `Codec` interface that typed maps use, codecs for plain
// integer keys and values, and the checked readers and writers the generated code calls.
//
// Byte order. Map keys and values are the C structs' bytes as the kernel keeps them, in host order.
// tenet runs on little-endian hosts only (x86_64, aarch64; checked when this module loads), so
// plain integer fields are little-endian. Fields the C side declares `__be16`, `__be32` or
// `__be64` hold network byte order in memory; their codecs read and write them big-endian and
// expose the number the wire means: a `__be16` port 443 is `443` here, bytes `01 bb` in the map.
//
// Widths. Fields up to 32 bits are `number`, 64-bit fields are `bigint`, arrays of bytes are
// `Uint8Array`, other arrays are plain arrays. Encoders reject values that do not fit the field
// (RangeError naming the field) rather than wrapping them silently.

import { endianness } from 'node:os';

/** Encodes and decodes one fixed-size C value; what TypedMap<K, V> is built from. */
export interface Codec<T> {
  readonly size: number;
  encode(value: T): Buffer;
  decode(buf: Uint8Array, offset?: number): T;
}

/** A codec for a C struct, which can also write into and read from a larger buffer. */
export interface StructCodec<T> extends Codec<T> {
  /** The C name, without `struct`: `tenet_port_key`. */
  readonly name: string;
  /** Writes value at offset of view, padding included (zeroed). */
  write(view: DataView, offset: number, value: T): void;
  read(view: DataView, offset: number): T;
}

/** Offset and size in bytes of one member of a C struct. */
export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

if (endianness() !== 'LE') {
  throw new Error('tenet ABI codecs assume a little-endian host (x86_64 or aarch64)');
}

/** A DataView over exactly the bytes of buf (a Buffer may be a slice of a larger pool). */
export function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function checkRoom(buf: Uint8Array, offset: number, size: number, name: string): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + size > buf.byteLength) {
    throw new RangeError(
      `${name}: need ${size} bytes at offset ${offset}, buffer has ${buf.byteLength}`,
    );
  }
}

/** Builds the Codec methods of a struct from its generated read and write functions. */
export function defineStruct<T>(def: {
  name: string;
  size: number;
  write(view: DataView, offset: number, value: T): void;
  read(view: DataView, offset: number): T;
}): StructCodec<T> {
  return {
    name: def.name,
    size: def.size,
    write: def.write,
    read: def.read,
    encode(value: T): Buffer {
      const buf = Buffer.alloc(def.size);
      def.write(viewOf(buf), 0, value);
      return buf;
    },
    decode(buf: Uint8Array, offset = 0): T {
      checkRoom(buf, offset, def.size, def.name);
      return def.read(viewOf(buf), offset);
    },
  };
}

// Range checks. `field` names the C member in errors: "tenet_port_key.ifindex".

function checkInt(value: number, min: number, max: number, type: string, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${field}: ${String(value)} is not a ${type}`);
  }
  return value;
}

const U64_MAX = (1n << 64n) - 1n;
const S64_MIN = -(1n << 63n);
const S64_MAX = (1n << 63n) - 1n;

function checkBig(value: bigint, min: bigint, max: bigint, type: string, field: string): bigint {
  if (typeof value !== 'bigint' || value < min || value > max) {
    throw new RangeError(`${field}: ${String(value)} is not a ${type}`);
  }
  return value;
}

// Writers and readers the generated codecs call. Little-endian unless the name says `Be`.

export function putU8(v: DataView, o: number, x: number, field: string): void {
  v.setUint8(o, checkInt(x, 0, 0xff, 'u8', field));
}
export function putU16(v: DataView, o: number, x: number, field: string): void {
  v.setUint16(o, checkInt(x, 0, 0xffff, 'u16', field), true);
}
export function putU32(v: DataView, o: number, x: number, field: string): void {
  v.setUint32(o, checkInt(x, 0, 0xffffffff, 'u32', field), true);
}
export function putU64(v: DataView, o: number, x: bigint, field: string): void {
  v.setBigUint64(o, checkBig(x, 0n, U64_MAX, 'u64', field), true);
}
export function putS8(v: DataView, o: number, x: number, field: string): void {
  v.setInt8(o, checkInt(x, -0x80, 0x7f, 's8', field));
}
export function putS16(v: DataView, o: number, x: number, field: string): void {
  v.setInt16(o, checkInt(x, -0x8000, 0x7fff, 's16', field), true);
}
export function putS32(v: DataView, o: number, x: number, field: string): void {
  v.setInt32(o, checkInt(x, -0x80000000, 0x7fffffff, 's32', field), true);
}
export function putS64(v: DataView, o: number, x: bigint, field: string): void {
  v.setBigInt64(o, checkBig(x, S64_MIN, S64_MAX, 's64', field), true);
}
export function putBe16(v: DataView, o: number, x: number, field: string): void {
  v.setUint16(o, checkInt(x, 0, 0xffff, 'be16', field), false);
}
export function putBe32(v: DataView, o: number, x: number, field: string): void {
  v.setUint32(o, checkInt(x, 0, 0xffffffff, 'be32', field), false);
}
export function putBe64(v: DataView, o: number, x: bigint, field: string): void {
  v.setBigUint64(o, checkBig(x, 0n, U64_MAX, 'be64', field), false);
}

export const getU8 = (v: DataView, o: number): number => v.getUint8(o);
export const getU16 = (v: DataView, o: number): number => v.getUint16(o, true);
export const getU32 = (v: DataView, o: number): number => v.getUint32(o, true);
export const getU64 = (v: DataView, o: number): bigint => v.getBigUint64(o, true);
export const getS8 = (v: DataView, o: number): number => v.getInt8(o);
export const getS16 = (v: DataView, o: number): number => v.getInt16(o, true);
export const getS32 = (v: DataView, o: number): number => v.getInt32(o, true);
export const getS64 = (v: DataView, o: number): bigint => v.getBigInt64(o, true);
export const getBe16 = (v: DataView, o: number): number => v.getUint16(o, false);
export const getBe32 = (v: DataView, o: number): number => v.getUint32(o, false);
export const getBe64 = (v: DataView, o: number): bigint => v.getBigUint64(o, false);

/** Zeroes len bytes at o: padding members. */
export function putZero(v: DataView, o: number, len: number): void {
  for (let i = 0; i < len; i++) v.setUint8(o + i, 0);
}

/** A `__u8 name[len]` member: exactly len bytes. */
export function putBytes(v: DataView, o: number, len: number, x: Uint8Array, field: string): void {
  if (!(x instanceof Uint8Array) || x.length !== len) {
    throw new RangeError(`${field}: expected a Uint8Array of ${len} bytes`);
  }
  for (let i = 0; i < len; i++) v.setUint8(o + i, x[i] as number);
}

export function getBytes(v: DataView, o: number, len: number): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset + o, len).slice();
}

/** An array member of any other element type: exactly len elements, stride bytes apart. */
export function putArray<T>(
  v: DataView,
  o: number,
  len: number,
  stride: number,
  x: readonly T[],
  field: string,
  put: (v: DataView, o: number, x: T, field: string) => void,
): void {
  if (!Array.isArray(x) || x.length !== len) {
    throw new RangeError(`${field}: expected an array of ${len} elements`);
  }
  for (let i = 0; i < len; i++) put(v, o + i * stride, x[i] as T, `${field}[${i}]`);
}

export function getArray<T>(
  v: DataView,
  o: number,
  len: number,
  stride: number,
  get: (v: DataView, o: number) => T,
): T[] {
  const out: T[] = [];
  for (let i = 0; i < len; i++) out.push(get(v, o + i * stride));
  return out;
}

function scalar<T>(
  name: string,
  size: number,
  put: (v: DataView, o: number, x: T, field: string) => void,
  get: (v: DataView, o: number) => T,
): StructCodec<T> {
  return defineStruct<T>({ name, size, write: (v, o, x) => put(v, o, x, name), read: get });
}

// Codecs for maps whose key or value is a plain integer (`__type(key, __u32)`).
export const U8: StructCodec<number> = scalar('__u8', 1, putU8, getU8);
export const U16: StructCodec<number> = scalar('__u16', 2, putU16, getU16);
export const U32: StructCodec<number> = scalar('__u32', 4, putU32, getU32);
export const U64: StructCodec<bigint> = scalar('__u64', 8, putU64, getU64);
export const S8: StructCodec<number> = scalar('__s8', 1, putS8, getS8);
export const S16: StructCodec<number> = scalar('__s16', 2, putS16, getS16);
export const S32: StructCodec<number> = scalar('__s32', 4, putS32, getS32);
export const S64: StructCodec<bigint> = scalar('__s64', 8, putS64, getS64);
export const BE16: StructCodec<number> = scalar('__be16', 2, putBe16, getBe16);
export const BE32: StructCodec<number> = scalar('__be32', 4, putBe32, getBe32);
export const BE64: StructCodec<bigint> = scalar('__be64', 8, putBe64, getBe64);
