// Lays out a bootable disk from a bootloader's Layout: a sparse file of the final size, the MBR,
// mkfs.fat, the bootloader's installer, mtools copies, then fixed file times. No root, no loop
// device. What the tools did not write stays a hole.
import { mkdir, open, symlink } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../core/exec";
import {
  DISK_ID,
  HEADS,
  masterBootRecord,
  PARTITION_OFFSET,
  SECTOR,
  SECTORS_PER_CLUSTER,
  SECTORS_PER_TRACK,
} from "./disk";
import { fixTimes, readFat32 } from "./fat";
import { type Layout, type ToolOptions, toolRun } from "./layout";

const VOLUME_LABEL = "MIRAGE";

/**
 * mtools reads /etc/mtools.conf and ~/.mtoolsrc; these override anything there that would change
 * the names it writes, so the same files give the same directory entries on every machine.
 */
const MTOOLS_ENV = {
  MTOOLS_SKIP_CHECK: "1",
  MTOOLS_NO_VFAT: "0",
  MTOOLS_LOWER_CASE: "0",
  MTOOLS_NAME_NUMERIC_TAIL: "1",
  MTOOLSRC: "/dev/null",
};

export interface DiskOptions {
  layout: Layout;
  disk: string;
  size: number;
  scratch: string;
  tools: ToolOptions;
}

export async function buildDisk({
  layout,
  disk,
  size,
  scratch,
  tools,
}: DiskOptions): Promise<void> {
  const tool = toolRun(tools, MTOOLS_ENV);
  const file = await open(disk, "wx");
  try {
    await file.truncate(size);
    await file.write(masterBootRecord(layout.bootCode, size), 0, SECTOR, 0);
    if (layout.gap) await file.write(layout.gap, 0, layout.gap.length, SECTOR);
  } finally {
    await file.close();
  }
  // --invariant fixes the creation time and volume id; -i after it sets our own volume id (given
  // before --invariant, it is overridden by --invariant's constant). The geometry is given rather
  // than guessed from the file, and the hidden sectors (the partition's start, which mkfs.fat
  // leaves at 0 with --offset) are set for whatever reads the boot sector.
  await run(
    "mkfs.fat",
    [
      "-F",
      "32",
      "-S",
      String(SECTOR),
      "-s",
      String(SECTORS_PER_CLUSTER),
      "-g",
      `${HEADS}/${SECTORS_PER_TRACK}`,
      "-h",
      String(PARTITION_OFFSET / SECTOR),
      "-n",
      VOLUME_LABEL,
      "--invariant",
      "-i",
      DISK_ID.toString(16),
      `--offset=${PARTITION_OFFSET / SECTOR}`,
      disk,
      String((size - PARTITION_OFFSET) / 1024),
    ],
    tool,
  );
  await layout.install?.(disk);
  const image = `${disk}@@${PARTITION_OFFSET}`;
  if (layout.directories.length > 0)
    await run("mmd", ["-i", image, ...layout.directories.map((dir) => `::/${dir}`)], tool);
  // mcopy names a copy after its source: each file is staged as a symlink under its final name.
  const dirs = [...new Set(layout.files.map((f) => f.dir))];
  for (const [index, dir] of dirs.entries()) {
    const stage = join(scratch, "stage", String(index));
    await mkdir(stage, { recursive: true });
    const sources: string[] = [];
    for (const f of layout.files.filter((f) => f.dir === dir)) {
      const staged = join(stage, f.name);
      await symlink(f.source, staged);
      sources.push(staged);
    }
    await run("mcopy", ["-o", "-i", image, ...sources, dir === "" ? "::/" : `::/${dir}/`], tool);
  }
  const handle = await open(disk, "r+");
  try {
    await fixTimes(handle, await readFat32(handle, PARTITION_OFFSET));
  } finally {
    await handle.close();
  }
}
