// Hand-made boot disks for tests that need a guest the test kernels are not: one that keeps
// running (a watcher must stop it), or one whose exact console text the test chooses. Assembled
// at test time with binutils, like test/support/kernels.ts.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../provider/core/exec";

/**
 * A 1 MiB disk whose boot sector prints `message` on COM1 and then powers QEMU off through
 * isa-debug-exit (exit status 1), keeps running forever, or triple-faults (an interrupt through an
 * empty IDT: the CPU resets, which ends QEMU under -no-reboot): the kinds of guest a watcher meets.
 */
export async function bootSectorDisk(
  dir: string,
  name: string,
  message: string,
  end: "poweroff" | "run" | "triple-fault",
) {
  const ending = {
    poweroff: "  mov $0x501, %dx\n  xor %al, %al\n  out %al, %dx\n",
    run: "",
    "triple-fault": "  lidt noidt\n  int $3\n",
  }[end];
  const source = join(dir, `${name}.S`);
  const escaped = message
    .replaceAll("\\", "\\\\")
    .replaceAll('"', '\\"')
    .replaceAll("\n", "\\r\\n");
  await writeFile(
    source,
    `.code16
.globl _start
_start: cli
  xor %ax, %ax
  mov %ax, %ds
  mov $msg, %si
  mov $0x3f8, %dx
1: lodsb
  test %al, %al
  jz 2f
  out %al, %dx
  jmp 1b
2:
${ending}3: hlt
  jmp 3b
noidt: .word 0
  .long 0
msg: .asciz "${escaped}"
.org 510
.byte 0x55, 0xaa
`,
  );
  await run("as", ["--32", "-o", join(dir, `${name}.o`), source]);
  const sector = join(dir, `${name}.bin`);
  await run("ld", [
    "-m",
    "elf_i386",
    "-Ttext=0x7c00",
    "--oformat",
    "binary",
    "-o",
    sector,
    join(dir, `${name}.o`),
  ]);
  const disk = join(dir, `${name}.raw`);
  await run("truncate", ["-s", "1M", disk]);
  await run("dd", [`if=${sector}`, `of=${disk}`, "conv=notrunc", "status=none"]);
  return disk;
}
