// Minimal reader for the ELF64 little-endian relocatable objects clang writes for BPF: section
// headers, the symbol table and section contents. The ABI generator needs what BTF does not say:
// the section of each program (its type and attach point) and where each load-time knob sits in
// .rodata (clang leaves DATASEC offsets at 0 for libbpf to fill in from these symbols).

const EM_BPF = 247;
const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
export const SHF_EXECINSTR = 0x4n;
export const STB_GLOBAL = 1;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  offset: number;
  size: number;
}

export interface ElfSymbol {
  name: string;
  value: number;
  size: number;
  bind: number;
  type: number;
  /** Name of the section the symbol is defined in; null for undefined and special indexes. */
  section: string | null;
}

export class ElfObject {
  readonly sections: ElfSection[] = [];
  readonly symbols: ElfSymbol[] = [];

  constructor(
    readonly source: string,
    private readonly buf: Buffer,
  ) {
    const fail = (what: string): never => {
      throw new Error(`${source}: not a BPF ELF object (${what})`);
    };
    if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) fail('bad magic');
    if (buf[4] !== 2) fail('not ELF64');
    if (buf[5] !== 1) fail('not little-endian');
    if (buf.readUInt16LE(18) !== EM_BPF) fail(`e_machine ${buf.readUInt16LE(18)}`);

    const shoff = Number(buf.readBigUInt64LE(0x28));
    const shentsize = buf.readUInt16LE(0x3a);
    const shnum = buf.readUInt16LE(0x3c);
    const shstrndx = buf.readUInt16LE(0x3e);
    const raw: { nameOff: number; s: ElfSection; link: number; entsize: number }[] = [];
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * shentsize;
      if (o + 64 > buf.length) fail('section header beyond end of file');
      raw.push({
        nameOff: buf.readUInt32LE(o),
        link: buf.readUInt32LE(o + 40),
        entsize: Number(buf.readBigUInt64LE(o + 56)),
        s: {
          index: i,
          name: '',
          type: buf.readUInt32LE(o + 4),
          flags: buf.readBigUInt64LE(o + 8),
          offset: Number(buf.readBigUInt64LE(o + 24)),
          size: Number(buf.readBigUInt64LE(o + 32)),
        },
      });
    }
    const shstr = raw[shstrndx]?.s ?? fail('no section name table');
    for (const r of raw) {
      r.s.name = cString(buf, shstr.offset + r.nameOff);
      this.sections.push(r.s);
    }

    for (const r of raw) {
      if (r.s.type !== SHT_SYMTAB) continue;
      const strtab = raw[r.link]?.s ?? fail('symbol table without string table');
      const entsize = r.entsize || 24;
      for (let o = r.s.offset; o + entsize <= r.s.offset + r.s.size; o += entsize) {
        const info = buf[o + 4] as number;
        const shndx = buf.readUInt16LE(o + 6);
        this.symbols.push({
          name: cString(buf, strtab.offset + buf.readUInt32LE(o)),
          bind: info >> 4,
          type: info & 0xf,
          section: shndx > 0 && shndx < 0xff00 ? (this.sections[shndx]?.name ?? null) : null,
          value: Number(buf.readBigUInt64LE(o + 8)),
          size: Number(buf.readBigUInt64LE(o + 16)),
        });
      }
    }
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** Contents of a section; zeros for .bss-like sections that have no bytes in the file. */
  contents(s: ElfSection): Buffer {
    if (s.type === SHT_NOBITS) return Buffer.alloc(s.size);
    return this.buf.subarray(s.offset, s.offset + s.size);
  }
}

function cString(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}
