import { readFileSync } from 'node:fs';

/**
 * Just enough of an ELF64 little-endian reader to check a prebuilt addon for
 * another architecture without running it: the header, the dynamic symbols and
 * the libraries it needs (what `readelf -h --dyn-syms -d` shows).
 */

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
const ET_DYN = 3;
const SHT_DYNAMIC = 6;
const SHT_DYNSYM = 11;
const DT_NEEDED = 1;

export interface ElfSymbol {
  readonly name: string;
  /** Defined in this file (st_shndx is not SHN_UNDEF). */
  readonly defined: boolean;
  /** STB_GLOBAL (1) or STB_WEAK (2); local symbols are not listed. */
  readonly bind: number;
}

export interface ElfInfo {
  readonly machine: number;
  /** A shared object (ET_DYN), as an addon must be. */
  readonly sharedObject: boolean;
  readonly symbols: readonly ElfSymbol[];
  readonly needed: readonly string[];
}

export function readElf(path: string): ElfInfo {
  const b = readFileSync(path);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${path}: not ELF64 little-endian`);
  const type = b.readUInt16LE(16);
  const machine = b.readUInt16LE(18);
  const shoff = Number(b.readBigUInt64LE(40));
  const shentsize = b.readUInt16LE(58);
  const shnum = b.readUInt16LE(60);

  const sections = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(at + 4),
      offset: Number(b.readBigUInt64LE(at + 24)),
      size: Number(b.readBigUInt64LE(at + 32)),
      link: b.readUInt32LE(at + 40),
      entsize: Number(b.readBigUInt64LE(at + 56)),
    };
  });
  const stringAt = (table: number, offset: number): string => {
    const strtab = sections[table];
    if (strtab === undefined) throw new Error(`${path}: bad string table index ${table}`);
    const start = strtab.offset + offset;
    return b.toString('latin1', start, b.indexOf(0, start));
  };

  const symbols: ElfSymbol[] = [];
  const needed: string[] = [];
  for (const s of sections) {
    if (s.type === SHT_DYNSYM) {
      for (let at = s.offset + s.entsize; at < s.offset + s.size; at += s.entsize) {
        const bind = (b[at + 4] ?? 0) >> 4;
        if (bind === 0) continue;
        symbols.push({ name: stringAt(s.link, b.readUInt32LE(at)), defined: b.readUInt16LE(at + 6) !== 0, bind });
      }
    } else if (s.type === SHT_DYNAMIC) {
      for (let at = s.offset; at < s.offset + s.size; at += 16) {
        if (b.readBigInt64LE(at) === BigInt(DT_NEEDED))
          needed.push(stringAt(s.link, Number(b.readBigUInt64LE(at + 8))));
      }
    }
  }
  return { machine, sharedObject: type === ET_DYN, symbols, needed };
}

/** The PE machine of a Windows DLL (0x8664 for x64), and whether it is a DLL at all. */
export function readPe(path: string): { machine: number; dll: boolean } {
  const b = readFileSync(path);
  if (b.toString('latin1', 0, 2) !== 'MZ') throw new Error(`${path}: not a PE file`);
  const pe = b.readUInt32LE(0x3c);
  if (b.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new Error(`${path}: no PE signature`);
  const IMAGE_FILE_DLL = 0x2000;
  return { machine: b.readUInt16LE(pe + 4), dll: (b.readUInt16LE(pe + 22) & IMAGE_FILE_DLL) !== 0 };
}
