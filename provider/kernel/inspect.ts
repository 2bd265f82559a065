// What a unikernel binary is: its Solo5 target and ABI version (ABI1 note), the devices it
// declares (MFT1 manifest note), and how a bootloader can start it (Multiboot1 header, Xen PVH
// note). Everything downstream (which image to build, which platform can run it) decides from
// this, never from a file name. docs/platforms.md ("Solo5 binaries") has the layouts.
import { type Elf, ElfFormatError, type ElfNote, readElf, readPrefix } from "./elf";

export type Solo5Target = "hvt" | "spt" | "virtio" | "muen" | "genode" | "xen";

export interface KernelInfo {
  path: string;
  elf: { class: "ELF64" | "ELF32"; machine: "x86_64" | "aarch64" | string; entry: string };
  solo5: { target: Solo5Target; abiVersion: number };
  manifest: { version: number; devices: { name: string; type: "net" | "block" }[] };
  /** The Multiboot1 header: `offset` in the file, `entry` (hex) when it uses the a.out kludge. */
  multiboot: { offset: number; flags: number; aout: boolean; entry?: string } | null;
  xenPvh: { entry: string } | null;
}

/** The file is not a unikernel we can use; the message names the file and says what to do. */
export class KernelFormatError extends Error {
  /** A well-formed ELF file without Solo5's ABI1 note: a native program (a unix build) or other. */
  readonly notSolo5: boolean;
  constructor(message: string, notSolo5 = false) {
    super(message);
    this.name = "KernelFormatError";
    this.notSolo5 = notSolo5;
  }
}

const SOLO5_OWNER = "Solo5";
const ABI1_TYPE = 0x31494241; // "ABI1"
const MFT1_TYPE = 0x3154464d; // "MFT1"
const XEN_OWNER = "Xen";
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

const TARGETS: Record<number, Solo5Target> = {
  1: "hvt",
  2: "spt",
  3: "virtio",
  4: "muen",
  5: "genode",
  6: "xen",
};

const MACHINES: Record<number, string> = { 3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64" };

/** An ELF header's e_machine as we name it: x86_64, aarch64, ... or EM_N. */
export function elfMachineName(machine: number): string {
  return MACHINES[machine] ?? `EM_${machine}`;
}

// The manifest layout of Solo5's mft_abi.h (MFT_VERSION 1): struct mft { u32 version;
// u32 entries; struct mft_entry e[] } is 8-aligned relative to the note's start, so its
// descriptor (at note offset 20) begins with 4 bytes of padding. Each entry is 104 bytes:
// char name[68]; u32 type; a 16-byte union of device properties; an 8-byte union
// { int hostfd; void *data }; bool attached; padding.
const MFT_VERSION = 1;
const MFT_ALIGN = 8;
const NOTE_HEADER_SIZE = 20; // n_namesz, n_descsz, n_type, "Solo5\0" padded to 8
const MFT_ENTRY_SIZE = 104;
const MFT_NAME_SIZE = 68;
const MFT_MAX_ENTRIES = 64;
const MFT_TYPES: Record<number, "block" | "net"> = { 1: "block", 2: "net" };
/** Types from here up are reserved; solo5-elftool always writes one such entry first. */
const MFT_RESERVED_FIRST = 1 << 30;

const MULTIBOOT_MAGIC = 0x1badb002;
/** Multiboot1: the header must lie, 4-aligned, within the file's first 8 KiB. */
const MULTIBOOT_SEARCH = 8192;
const MULTIBOOT_AOUT_KLUDGE = 1 << 16;

/**
 * The largest file taken for a kernel: real unikernels are a few MB, the largest, with debug
 * information, some tens of MB. Bigger is the wrong file, refused before anything hashes or
 * copies it.
 */
export const MAX_KERNEL_BYTES = 2 * 1024 ** 3;

const hex = (value: bigint | number) => `0x${value.toString(16)}`;

const BUILD_ADVICE =
  "pass the binary mirage builds for a Solo5 target, dist/NAME.virtio (or .xen, .hvt, .spt, " +
  "...), made by `mirage configure -t virtio && make depend && make build`";

function malformed(path: string, what: string): KernelFormatError {
  return new KernelFormatError(
    `${path}: malformed ${what}; the binary is damaged or was built by a Solo5 version this ` +
      "tool does not know (it reads Solo5's ABI1 note and version 1 of its MFT1 manifest): " +
      "rebuild it with a current mirage",
  );
}

function toKernelError(error: ElfFormatError, path: string): KernelFormatError {
  switch (error.kind) {
    case "not-elf":
      return new KernelFormatError(
        `${path} is not an ELF file: a MirageOS unikernel built for a Solo5 target is an ELF ` +
          `binary; ${BUILD_ADVICE}`,
      );
    case "truncated":
      return new KernelFormatError(
        `${error.message}; the file is incomplete (an interrupted build or copy?): rebuild it ` +
          "with `make build` or copy it again",
      );
    case "malformed":
      return new KernelFormatError(
        `${error.message}; the file is not a valid ELF binary: rebuild it with \`make build\``,
      );
  }
}

function solo5Note(elf: Elf, type: number): ElfNote | undefined {
  return elf.notes.find((n) => n.owner === SOLO5_OWNER && n.type === type);
}

function readAbi(elf: Elf): KernelInfo["solo5"] {
  const note = solo5Note(elf, ABI1_TYPE);
  if (!note) {
    throw new KernelFormatError(
      `${elf.path} is an ELF file but not a Solo5 unikernel (it has no Solo5 ABI1 note): ` +
        "unix builds are native executables; build with `mirage configure -t virtio` " +
        "(or xen, hvt, spt, muen, genode) and pass dist/NAME.virtio",
      true,
    );
  }
  if (note.desc.length < 8) {
    throw malformed(elf.path, `Solo5 ABI1 note (${note.desc.length}-byte descriptor, needs 8)`);
  }
  const number = note.desc.readUInt32LE(0);
  const target = TARGETS[number];
  if (!target) throw malformed(elf.path, `Solo5 ABI1 note (unknown target number ${number})`);
  return { target, abiVersion: note.desc.readUInt32LE(4) };
}

function readManifest(elf: Elf): KernelInfo["manifest"] {
  const note = solo5Note(elf, MFT1_TYPE);
  if (!note) {
    throw malformed(elf.path, "Solo5 unikernel: it has an ABI1 note but no MFT1 manifest note");
  }
  const pad = Math.ceil(NOTE_HEADER_SIZE / MFT_ALIGN) * MFT_ALIGN - NOTE_HEADER_SIZE;
  const mft = note.desc.subarray(pad);
  if (mft.length < 8) throw malformed(elf.path, "Solo5 manifest (too short for its header)");
  const version = mft.readUInt32LE(0);
  if (version !== MFT_VERSION) {
    throw malformed(elf.path, `Solo5 manifest (version ${version}, expected ${MFT_VERSION})`);
  }
  const entries = mft.readUInt32LE(4);
  if (entries > MFT_MAX_ENTRIES || 8 + entries * MFT_ENTRY_SIZE > mft.length) {
    throw malformed(
      elf.path,
      `Solo5 manifest (${entries} entries do not fit its ${mft.length}-byte descriptor)`,
    );
  }
  const devices: KernelInfo["manifest"]["devices"] = [];
  for (let i = 0; i < entries; i++) {
    const entry = mft.subarray(8 + i * MFT_ENTRY_SIZE, 8 + (i + 1) * MFT_ENTRY_SIZE);
    const type = entry.readUInt32LE(MFT_NAME_SIZE);
    if (type >= MFT_RESERVED_FIRST) continue;
    const nameBytes = entry.subarray(0, MFT_NAME_SIZE);
    const nul = nameBytes.indexOf(0);
    if (nul <= 0) {
      throw malformed(elf.path, `Solo5 manifest (entry ${i} has an empty or unterminated name)`);
    }
    const name = nameBytes.subarray(0, nul).toString("latin1");
    const kind = MFT_TYPES[type];
    if (!kind)
      throw malformed(elf.path, `Solo5 manifest (device ${name} has unknown type ${type})`);
    devices.push({ name, type: kind });
  }
  return { version, devices };
}

/** Solo5 builds only ELF64 kernels for x86_64 and aarch64: anything else carrying its notes is not one. */
const SOLO5_MACHINES = [62, 183];

function checkArchitecture(elf: Elf, path: string): void {
  const { class: elfClass, machine } = elf.header;
  if (elfClass === "ELF64" && SOLO5_MACHINES.includes(machine)) return;
  const what = `${elfClass} ${MACHINES[machine] ?? `machine ${machine}`}`;
  throw new KernelFormatError(
    `${path} carries Solo5 notes but is an ${what} binary: Solo5 kernels are ELF64 for x86_64 or aarch64; ${BUILD_ADVICE}`,
  );
}

/** Finds a Multiboot1 header: magic, flags and checksum summing to 0, 4-aligned, in 8 KiB. */
function findMultiboot(prefix: Buffer): KernelInfo["multiboot"] {
  const limit = Math.min(prefix.length, MULTIBOOT_SEARCH);
  for (let at = 0; at + 12 <= limit; at += 4) {
    if (prefix.readUInt32LE(at) !== MULTIBOOT_MAGIC) continue;
    const flags = prefix.readUInt32LE(at + 4);
    if ((MULTIBOOT_MAGIC + flags + prefix.readUInt32LE(at + 8)) % 2 ** 32 !== 0) continue;
    const aout = (flags & MULTIBOOT_AOUT_KLUDGE) !== 0;
    // With the a.out kludge the header goes on with header/load/load_end/bss_end/entry addresses.
    if (aout && at + 32 <= prefix.length) {
      return { offset: at, flags, aout, entry: hex(prefix.readUInt32LE(at + 28)) };
    }
    return { offset: at, flags, aout };
  }
  return null;
}

function readXenPvh(elf: Elf): KernelInfo["xenPvh"] {
  const note = elf.notes.find((n) => n.owner === XEN_OWNER && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note) return null;
  if (note.desc.length !== 4 && note.desc.length !== 8) {
    throw malformed(elf.path, `Xen PVH entry note (${note.desc.length}-byte descriptor)`);
  }
  const entry =
    note.desc.length === 8 ? note.desc.readBigUInt64LE(0) : BigInt(note.desc.readUInt32LE(0));
  return { entry: hex(entry) };
}

/**
 * Reads what a unikernel binary is. Only the ELF headers, the notes and the first 8 KiB are
 * read, and a file above MAX_KERNEL_BYTES is refused. Throws KernelFormatError, naming the file and what to do, when it is not a usable
 * Solo5 unikernel.
 */
export async function inspectKernel(path: string): Promise<KernelInfo> {
  let elf: Elf;
  try {
    elf = await readElf(path);
  } catch (error) {
    if (error instanceof ElfFormatError) throw toKernelError(error, path);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`${path}: no such file; ${BUILD_ADVICE}`);
    if (code === "EISDIR") throw new Error(`${path} is a directory; ${BUILD_ADVICE}`);
    throw error;
  }
  if (elf.size > MAX_KERNEL_BYTES)
    throw new KernelFormatError(
      `${path} is ${elf.size} bytes, more than the ${MAX_KERNEL_BYTES / 1024 ** 3} GiB taken for a ` +
        "kernel (real unikernels are a few MB, with debug information some tens of MB): is it the " +
        "right file? A release build, stripped of debug information, is smaller",
    );
  const solo5 = readAbi(elf);
  checkArchitecture(elf, path);
  const manifest = readManifest(elf);
  const { machine, entry } = elf.header;
  return {
    path,
    elf: {
      class: elf.header.class,
      machine: elfMachineName(machine),
      entry: hex(entry),
    },
    solo5,
    manifest,
    multiboot: findMultiboot(await readPrefix(path, MULTIBOOT_SEARCH)),
    xenPvh: readXenPvh(elf),
  };
}
