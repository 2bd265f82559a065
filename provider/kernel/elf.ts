// Reading an ELF file's structure: the file header, program and section headers, and notes.
// Only those parts are read (with positioned reads), never the whole file, and every offset and
// size taken from the file is checked against the file's length before use, so a truncated or
// damaged file gives an ElfFormatError that says what is wrong, not a RangeError or garbage.
// What is read is bounded whatever the file says: header tables have the entry size of their
// class and at most so many entries, and all note areas together at most MAX_NOTES_BYTES, read
// once each however many headers name them. A crafted file costs milliseconds and little memory.
import { type FileHandle, open } from "node:fs/promises";

const PT_NOTE = 4;
const SHT_NOTE = 7;
const SHT_NOBITS = 8;

/** Why a file could not be read as ELF. `kind` lets callers give advice fitting the cause. */
export class ElfFormatError extends Error {
  constructor(
    readonly kind: "not-elf" | "truncated" | "malformed",
    message: string,
  ) {
    super(message);
    this.name = "ElfFormatError";
  }
}

export interface ElfHeader {
  class: "ELF32" | "ELF64";
  littleEndian: boolean;
  type: number;
  /** e_machine: 62 x86_64, 183 aarch64, ... */
  machine: number;
  entry: bigint;
}

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  fileSize: number;
  memSize: bigint;
  align: number;
}

export interface SectionHeader {
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  align: number;
}

export interface ElfNote {
  owner: string;
  type: number;
  /** File offset of the note's header; a note's internal alignment is relative to it. */
  offset: number;
  desc: Buffer;
}

export interface Elf {
  path: string;
  size: number;
  header: ElfHeader;
  programHeaders: ProgramHeader[];
  sectionHeaders: SectionHeader[];
  notes: ElfNote[];
}

/**
 * All note areas together: real kernels carry a few notes (Solo5's manifest, the largest, is
 * under 7 KiB); more is not notes anyone writes, so refuse rather than read them.
 */
const MAX_NOTES_BYTES = 1 << 20;
/** Notes kept, from all areas: real kernels have a handful. */
const MAX_NOTES = 256;
/** Program headers: linkers write about ten. */
const MAX_PROGRAM_HEADERS = 256;
/** Section headers: a linked kernel has a few dozen; 4096 entries are 256 KiB to read. */
const MAX_SECTION_HEADERS = 4096;
/** Header entry sizes by class, exactly as the ELF specification lays the entries out. */
const ENTRY_SIZES = {
  program: { ELF32: 32, ELF64: 56 },
  section: { ELF32: 40, ELF64: 64 },
} as const;
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Field readers for one ELF class and byte order. */
class Fields {
  constructor(
    private readonly buf: Buffer,
    private readonly little: boolean,
    readonly wide: boolean,
  ) {}
  u16(at: number): number {
    return this.little ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }
  u32(at: number): number {
    return this.little ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }
  u64(at: number): bigint {
    return this.little ? this.buf.readBigUInt64LE(at) : this.buf.readBigUInt64BE(at);
  }
  /** An address-sized field: 8 bytes in ELF64, 4 in ELF32. */
  word(at: number): bigint {
    return this.wide ? this.u64(at) : BigInt(this.u32(at));
  }
}

/** A file offset or size: must fit a JS number (files beyond 2^53 bytes do not exist). */
function asNumber(value: bigint, what: string, path: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ElfFormatError("malformed", `${path}: ${what} (${value}) is out of range`);
  }
  return Number(value);
}

class Reader {
  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  /** Reads `length` bytes at `offset`, which must lie inside the file. */
  async read(offset: number, length: number, what: string): Promise<Buffer> {
    if (offset + length > this.size) {
      throw new ElfFormatError(
        "truncated",
        `${this.path} is truncated: ${what} (bytes ${offset}..${offset + length}) extend past ` +
          `the end of the file (${this.size} bytes)`,
      );
    }
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < length) {
      throw new ElfFormatError("truncated", `${this.path} shrank while being read`);
    }
    return buf;
  }
}

/** Reads up to `length` bytes from the start of the file (less if the file is shorter). */
export async function readPrefix(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function parseHeader(ident: Buffer, path: string): { header: ElfHeader; fields: Fields } {
  const elfClass = ident[4];
  const data = ident[5];
  if (elfClass !== 1 && elfClass !== 2) {
    throw new ElfFormatError("malformed", `${path}: unknown ELF class ${elfClass}`);
  }
  if (data !== 1 && data !== 2) {
    throw new ElfFormatError("malformed", `${path}: unknown ELF byte order ${data}`);
  }
  const fields = new Fields(ident, data === 1, elfClass === 2);
  return {
    fields,
    header: {
      class: elfClass === 2 ? "ELF64" : "ELF32",
      littleEndian: data === 1,
      type: fields.u16(16),
      machine: fields.u16(18),
      entry: fields.word(24),
    },
  };
}

/**
 * Refuses a header table whose entries are not of its class's size, or that has more entries
 * than any real file: reading them would cost what the file says, not what a kernel needs.
 */
function checkTable(
  reader: Reader,
  kind: "program" | "section",
  wide: boolean,
  table: { entrySize: number; count: number },
): void {
  const size = ENTRY_SIZES[kind][wide ? "ELF64" : "ELF32"];
  if (table.entrySize !== size) {
    throw new ElfFormatError(
      "malformed",
      `${reader.path}: ${kind} header size ${table.entrySize}, where an ${wide ? "ELF64" : "ELF32"} ` +
        `file has ${size}`,
    );
  }
  const max = kind === "program" ? MAX_PROGRAM_HEADERS : MAX_SECTION_HEADERS;
  if (table.count > max) {
    throw new ElfFormatError(
      "malformed",
      `${reader.path}: ${table.count} ${kind} headers, more than any real kernel has (at most ${max} are read)`,
    );
  }
}

/** Refuses a segment or section whose bytes extend past the end of the file. */
function checkWithinFile(reader: Reader, what: string, offset: number, size: number): void {
  if (offset + size > reader.size) {
    throw new ElfFormatError(
      "truncated",
      `${reader.path} is truncated: ${what} (bytes ${offset}..${offset + size}) extends ` +
        `past the end of the file (${reader.size} bytes)`,
    );
  }
}

async function readProgramHeaders(
  reader: Reader,
  wide: boolean,
  little: boolean,
  table: { offset: number; entrySize: number; count: number },
): Promise<ProgramHeader[]> {
  if (table.count === 0) return [];
  checkTable(reader, "program", wide, table);
  const buf = await reader.read(table.offset, table.entrySize * table.count, "the program headers");
  const f = new Fields(buf, little, wide);
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < table.count; i++) {
    const at = i * table.entrySize;
    // ELF64 moves p_flags up to second place; the other fields keep their order.
    const raw = wide
      ? {
          type: f.u32(at),
          flags: f.u32(at + 4),
          offset: f.u64(at + 8),
          vaddr: f.u64(at + 16),
          paddr: f.u64(at + 24),
          fileSize: f.u64(at + 32),
          memSize: f.u64(at + 40),
          align: f.u64(at + 48),
        }
      : {
          type: f.u32(at),
          offset: BigInt(f.u32(at + 4)),
          vaddr: BigInt(f.u32(at + 8)),
          paddr: BigInt(f.u32(at + 12)),
          fileSize: BigInt(f.u32(at + 16)),
          memSize: BigInt(f.u32(at + 20)),
          flags: f.u32(at + 24),
          align: BigInt(f.u32(at + 28)),
        };
    const what = `program header ${i}`;
    const header: ProgramHeader = {
      ...raw,
      offset: asNumber(raw.offset, `${what}'s offset`, reader.path),
      fileSize: asNumber(raw.fileSize, `${what}'s file size`, reader.path),
      align: asNumber(raw.align, `${what}'s alignment`, reader.path),
    };
    checkWithinFile(reader, `segment ${i}`, header.offset, header.fileSize);
    headers.push(header);
  }
  return headers;
}

async function readSectionHeaders(
  reader: Reader,
  wide: boolean,
  little: boolean,
  table: { offset: number; entrySize: number; count: number },
): Promise<SectionHeader[]> {
  if (table.offset === 0) return [];
  checkTable(reader, "section", wide, table);
  let count = table.count;
  if (count === 0) {
    // Extended numbering: more than 0xff00 sections, the real count is section 0's sh_size.
    const first = new Fields(
      await reader.read(table.offset, table.entrySize, "section header 0"),
      little,
      wide,
    );
    count = asNumber(wide ? first.u64(32) : BigInt(first.u32(20)), "section count", reader.path);
    checkTable(reader, "section", wide, { ...table, count });
  }
  const buf = await reader.read(table.offset, table.entrySize * count, "the section headers");
  const f = new Fields(buf, little, wide);
  const headers: SectionHeader[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * table.entrySize;
    const w = wide ? 8 : 4;
    // Both classes share the field order; only address-sized fields change width.
    const type = f.u32(at + 4);
    const flags = f.word(at + 8);
    const addr = f.word(at + 8 + w);
    const offset = asNumber(f.word(at + 8 + 2 * w), `section ${i}'s offset`, reader.path);
    const size = asNumber(f.word(at + 8 + 3 * w), `section ${i}'s size`, reader.path);
    const align = asNumber(f.word(at + 16 + 4 * w), `section ${i}'s alignment`, reader.path);
    // A NOBITS section (.bss) occupies no bytes in the file.
    if (type !== SHT_NOBITS) checkWithinFile(reader, `section ${i}`, offset, size);
    headers.push({ type, flags, addr, offset, size, align });
  }
  return headers;
}

const align4 = (n: number) => (n + 3) & ~3;

/**
 * Splits a note area (a PT_NOTE segment or SHT_NOTE section) into notes. Uses the 4-byte note
 * layout (name and descriptor each padded to 4 bytes), which is what Solo5's own loader reads
 * even for its 8-aligned manifest note.
 */
function parseNotes(
  area: Buffer,
  areaOffset: number,
  little: boolean,
  path: string,
  notes: ElfNote[],
): void {
  const f = new Fields(area, little, false);
  let at = 0;
  while (at < area.length) {
    if (notes.length === MAX_NOTES) {
      throw new ElfFormatError(
        "malformed",
        `${path}: more than ${MAX_NOTES} notes, more than any real kernel has`,
      );
    }
    const where = `${path}: the note at byte ${areaOffset + at}`;
    if (at + 12 > area.length) {
      throw new ElfFormatError("malformed", `${where} has an incomplete header`);
    }
    const nameSize = f.u32(at);
    const descSize = f.u32(at + 4);
    const type = f.u32(at + 8);
    const nameAt = at + 12;
    const descAt = nameAt + align4(nameSize);
    // Sizes come from the file: compare against the area before slicing anything.
    if (descAt + descSize > area.length) {
      throw new ElfFormatError(
        "malformed",
        `${where} claims a ${nameSize}-byte owner and a ${descSize}-byte descriptor, more than ` +
          `its ${area.length - at}-byte note area holds`,
      );
    }
    const rawName = area.subarray(nameAt, nameAt + nameSize);
    const nul = rawName.indexOf(0);
    notes.push({
      owner: rawName.subarray(0, nul === -1 ? rawName.length : nul).toString("latin1"),
      type,
      offset: areaOffset + at,
      desc: Buffer.from(area.subarray(descAt, descAt + descSize)),
    });
    at = descAt + align4(descSize);
  }
}

/** Reads every note: from PT_NOTE segments, or from SHT_NOTE sections when there are none. */
async function readNotes(
  reader: Reader,
  little: boolean,
  programHeaders: ProgramHeader[],
  sectionHeaders: SectionHeader[],
): Promise<ElfNote[]> {
  const segments = programHeaders.filter((p) => p.type === PT_NOTE);
  const areas =
    segments.length > 0
      ? segments.map((p, i) => ({ offset: p.offset, size: p.fileSize, what: `note segment ${i}` }))
      : sectionHeaders
          .filter((s) => s.type === SHT_NOTE)
          .map((s, i) => ({ offset: s.offset, size: s.size, what: `note section ${i}` }));
  // Several headers may name one area: it is read, and its notes kept, once.
  const distinct = [...new Map(areas.map((a) => [`${a.offset}+${a.size}`, a])).values()];
  const total = distinct.reduce((sum, area) => sum + area.size, 0);
  if (total > MAX_NOTES_BYTES) {
    throw new ElfFormatError(
      "malformed",
      `${reader.path}: its note areas hold ${total} bytes, more than any real kernel's ` +
        `(at most ${MAX_NOTES_BYTES} are read)`,
    );
  }
  const notes: ElfNote[] = [];
  for (const area of distinct) {
    const buf = await reader.read(area.offset, area.size, area.what);
    parseNotes(buf, area.offset, little, reader.path, notes);
  }
  return notes;
}

/** Reads the structure of the ELF file at `path`: headers and notes, all bounds-checked. */
export async function readElf(path: string): Promise<Elf> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    const reader = new Reader(path, handle, size);
    const magic = await reader.read(0, Math.min(size, 4), "the ELF magic");
    if (magic.length < 4 || !magic.equals(ELF_MAGIC)) {
      throw new ElfFormatError(
        "not-elf",
        `${path} is not an ELF file (it does not start with the bytes 7f 45 4c 46, "\\x7fELF")`,
      );
    }
    const ident = await reader.read(0, 16, "the ELF identification");
    const wide = ident[4] === 2;
    const raw = await reader.read(0, wide ? 64 : 52, "the ELF header");
    const { header, fields } = parseHeader(raw, path);
    // Offsets of the header fields after e_entry differ between the classes.
    const w = wide ? 8 : 4;
    const phoff = asNumber(fields.word(24 + w), "e_phoff", path);
    const shoff = asNumber(fields.word(24 + 2 * w), "e_shoff", path);
    const tail = 24 + 3 * w + 4; // after e_flags
    const programHeaders = await readProgramHeaders(reader, wide, header.littleEndian, {
      offset: phoff,
      entrySize: fields.u16(tail + 2),
      count: fields.u16(tail + 4),
    });
    const sectionHeaders = await readSectionHeaders(reader, wide, header.littleEndian, {
      offset: shoff,
      entrySize: fields.u16(tail + 6),
      count: fields.u16(tail + 8),
    });
    const notes = await readNotes(reader, header.littleEndian, programHeaders, sectionHeaders);
    return { path, size, header, programHeaders, sectionHeaders, notes };
  } finally {
    await handle.close();
  }
}
