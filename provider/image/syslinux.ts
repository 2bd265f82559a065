// The virtio layout (docs/platforms.md, Disk images): syslinux's MBR code, ldlinux installed in the
// FAT32 partition, and mboot.c32 loading the kernel as Multiboot with `-aout` (Solo5's multiboot
// entry differs from its ELF entry, and without -aout the kernel does not boot), console on COM1 at
// 115200.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../core/exec";
import { PARTITION_OFFSET } from "./disk";
import { type Layout, requireFile, type ToolOptions, toolRun } from "./layout";

const MBR = "/usr/lib/syslinux/mbr/mbr.bin";
const MODULES = "/usr/lib/syslinux/modules/bios";

/** The kernel's file name on the disk; mboot.c32 passes it as the command line's first word. */
export const KERNEL_NAME = "unikernel.bin";

function syslinuxConfig(bootArgs: readonly string[]): string {
  // APPEND takes the rest of the line as is; checkBootArgs has made sure each argument survives.
  const append = ["-aout", KERNEL_NAME, ...bootArgs].join(" ");
  return [
    "SERIAL 0 115200",
    "DEFAULT unikernel",
    "LABEL unikernel",
    "  KERNEL mboot.c32",
    `  APPEND ${append}`,
    "",
  ].join("\n");
}

export async function syslinuxLayout(
  kernel: string,
  bootArgs: readonly string[],
  scratch: string,
  tools: ToolOptions,
): Promise<Layout> {
  const bootCode = await readFile(await requireFile(MBR, "syslinux-common"));
  const mboot = await requireFile(join(MODULES, "mboot.c32"), "syslinux-common");
  const libcom32 = await requireFile(join(MODULES, "libcom32.c32"), "syslinux-common");
  const config = join(scratch, "syslinux.cfg");
  await writeFile(config, syslinuxConfig(bootArgs));
  return {
    bootCode,
    directories: [],
    files: [
      { dir: "", name: "syslinux.cfg", source: config },
      { dir: "", name: "mboot.c32", source: mboot },
      { dir: "", name: "libcom32.c32", source: libcom32 },
      { dir: "", name: KERNEL_NAME, source: kernel },
    ],
    install: async (disk) => {
      await run(
        "syslinux",
        ["--offset", String(PARTITION_OFFSET), "--install", disk],
        toolRun(tools),
      );
    },
    // ldlinux.sys (~58 KiB) and ldlinux.c32 (~117 KiB), with room to spare.
    installedBytes: 256 * 1024,
  };
}
