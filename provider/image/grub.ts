// The xen layout (docs/platforms.md, Disk images): GRUB 2's boot.img as MBR code, a core.img made
// by grub-mkimage in the gap before the partition (grub-install refuses image files), and
// /boot/grub/grub.cfg loading the kernel with `multiboot`, console on COM1 at 115200, for the Xen
// HVM path.
//
// In a Xen HVM guest the BIOS leaves the legacy 8259 PICs delivering the timer on vector 8, the
// double-fault vector, and Solo5 xen enables interrupts without masking them: the kernel dies with
// `trap: type=#DF` after its banner. So grub.cfg masks both PICs (GRUB's `outb`, from the iorw
// module) before loading the kernel; on bare QEMU and in a PVH domain this changes nothing.
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../core/exec";
import { PARTITION_OFFSET, SECTOR } from "./disk";
import { ImageError } from "./errors";
import { type Layout, requireFile, type ToolOptions, toolRun } from "./layout";
import { KERNEL_NAME } from "./syslinux";

const GRUB_DIR = "/usr/lib/grub/i386-pc";
const MODULES = [
  "biosdisk",
  "part_msdos",
  "fat",
  "normal",
  "configfile",
  "multiboot",
  "serial",
  "terminal",
  "boot",
  "iorw",
];

function grubConfig(bootArgs: readonly string[]): string {
  // GRUB passes the words after the file name as the command line (grub-core/loader/multiboot.c,
  // argv + 1) and Solo5 xen keeps that command line as it is, so the words are exactly the boot
  // arguments: a placeholder word would reach the unikernel as a positional argument (cmdliner
  // exits 64). Each one is single-quoted, which makes `$ ; # { } * ?` and the like literal;
  // checkBootArgs has refused what quoting cannot carry.
  const words = bootArgs.map((word) => ` '${word}'`).join("");
  return [
    "serial --unit=0 --speed=115200",
    "terminal_input serial",
    "terminal_output serial",
    "outb 0x21 0xff",
    "outb 0xa1 0xff",
    `multiboot /boot/${KERNEL_NAME}${words}`,
    "boot",
    "",
  ].join("\n");
}

export async function grubLayout(
  kernel: string,
  bootArgs: readonly string[],
  scratch: string,
  tools: ToolOptions,
): Promise<Layout> {
  const bootImg = await readFile(await requireFile(join(GRUB_DIR, "boot.img"), "grub-pc-bin"));
  const core = join(scratch, "core.img");
  await run(
    "grub-mkimage",
    ["-O", "i386-pc", "-d", GRUB_DIR, "-p", "(hd0,msdos1)/boot/grub", "-o", core, ...MODULES],
    toolRun(tools),
  );
  const { size } = await stat(core);
  if (size > PARTITION_OFFSET - SECTOR)
    throw new ImageError(
      `GRUB's core.img is ${size} bytes, more than the ${PARTITION_OFFSET - SECTOR} bytes before the partition: check the grub-pc-bin installation.`,
    );
  const config = join(scratch, "grub.cfg");
  await writeFile(config, grubConfig(bootArgs));
  return {
    bootCode: bootImg,
    gap: await readFile(core),
    directories: ["boot", "boot/grub"],
    files: [
      { dir: "boot/grub", name: "grub.cfg", source: config },
      { dir: "boot", name: KERNEL_NAME, source: kernel },
    ],
    installedBytes: 0,
  };
}
