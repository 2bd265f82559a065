// Guests that go as far as a chosen CPU mode and then power QEMU off through isa-debug-exit
// (value 0x2a: QEMU exits with status 85), as a boot sector (disk) or as the whole firmware
// (-bios): what a KVM that runs some code and not the rest (a paravirtual kvm-pvm) is told apart
// by. Assembled at test time with binutils, like test/support/boot-sector.ts.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../provider/core/exec";

/**
 * How far the guest goes: real mode only; protected mode (lgdt, CR0.PE, far jump); then an
 * iret in protected mode; then long mode (paging, EFER.LME) after that iret.
 */
export type Reach = "real" | "protected" | "iret" | "long";

const STAGE: Record<Reach, number> = { real: 0, protected: 1, iret: 2, long: 3 };

/** Addresses: a boot sector runs at 0x7c00; a 64 KiB firmware is mapped at 0xf0000 (CS f000). */
function source(reach: Reach, firmware: boolean): string {
  return `.set STAGE, ${STAGE[reach]}
.set BASE, ${firmware ? "0xf0000" : "0"}
.code16
.globl _start
_start:
  cli
  mov ${firmware ? "$0xf000" : "$0"}, %ax
  mov %ax, %ds
  xor %ax, %ax
  mov %ax, %ss
  mov $0x7000, %sp
.if STAGE >= 1
  lgdtl gdtdesc - BASE
  mov %cr0, %eax
  or $1, %al
  mov %eax, %cr0
  ljmpl $0x08, $pm32
.code32
pm32:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7000, %esp
.if STAGE >= 2
  pushfl
  pushl $0x08
  pushl $after_iret
  iret
after_iret:
.endif
.if STAGE >= 3
  # Identity-map the first 2 MiB: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000.
  mov $0x1000, %edi
  xor %eax, %eax
  mov $0xc00, %ecx
  rep stosl
  movl $0x2003, 0x1000
  movl $0x3003, 0x2000
  movl $0x83, 0x3000
  mov %cr4, %eax
  or $0x20, %eax
  mov %eax, %cr4
  mov $0x1000, %eax
  mov %eax, %cr3
  mov $0xc0000080, %ecx
  rdmsr
  or $0x100, %eax
  wrmsr
  mov %cr0, %eax
  or $0x80000000, %eax
  mov %eax, %cr0
  ljmp $0x18, $lm64
.code64
lm64:
.endif
.endif
  mov $0x501, %dx
  mov $0x2a, %al
  out %al, %dx
1: hlt
  jmp 1b
.p2align 3
gdt:
  .quad 0
  .quad 0x00cf9a000000ffff
  .quad 0x00cf92000000ffff
  .quad 0x00af9a000000ffff
gdtdesc:
  .word gdtdesc - gdt - 1
  .long gdt
${
  firmware
    ? `.code16
.org 0xfff0
  ljmp $0xf000, $_start - BASE
.org 0x10000`
    : `.org 510
.byte 0x55, 0xaa`
}
`;
}

/**
 * Builds the guest in `dir`: a 1 MiB raw disk whose boot sector does it, or (firmware) a 64 KiB
 * image for -bios that does it from the reset vector, without any BIOS. Returns its path.
 */
export async function modeGuest(
  dir: string,
  reach: Reach,
  { firmware = false }: { firmware?: boolean } = {},
): Promise<string> {
  const name = `${reach}-${firmware ? "firmware" : "sector"}`;
  const asm = join(dir, `${name}.S`);
  await writeFile(asm, source(reach, firmware));
  await run("as", ["--64", "-o", join(dir, `${name}.o`), asm]);
  const binary = join(dir, `${name}.bin`);
  const base = firmware ? "0xf0000" : "0x7c00";
  await run("ld", [
    "-m",
    "elf_x86_64",
    `-Ttext=${base}`,
    "--oformat",
    "binary",
    "-o",
    binary,
    join(dir, `${name}.o`),
  ]);
  if (firmware) return binary;
  const disk = join(dir, `${name}.raw`);
  await run("truncate", ["-s", "1M", disk]);
  await run("dd", [`if=${binary}`, `of=${disk}`, "conv=notrunc", "status=none"]);
  return disk;
}
