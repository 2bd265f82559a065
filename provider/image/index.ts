// Kernel → bootable, deterministic BIOS disk image (and GCE archive): the one entry point the CLI
// and the DiskImage resource call (each checks the kernel against the format first: platform.ts).
// virtio kernels get the syslinux layout, xen kernels the GRUB one (docs/platforms.md, Disk
// images); everything is built in a scratch directory inside the output directory (scratch.ts) and
// renamed into place at the end, so the final names only ever hold complete files.
import { constants } from "node:fs";
import { access, chmod, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { explainFsError, lacksSpace, makeDirectory, noSpace, withFsErrors } from "../fs-errors";
import { sha256File } from "../hash";
import { inspectKernel, KernelFormatError, type KernelInfo } from "../inspect";
import { type LockOptions, withLock } from "../lock";
import { withScratch } from "../scratch";
import { checkBootArgs } from "./bootargs";
import { buildDisk } from "./build-disk";
import { clusterBytes, diskSizeFor } from "./disk";
import { ImageError } from "./errors";
import { writeGceArchive } from "./gce-archive";
import { grubLayout } from "./grub";
import type { Layout, ToolOptions } from "./layout";
import { DISK_IMAGE_TARGETS, IMAGE_FORMATS, type ImageFormat, notBootable } from "./platform";
import { scanDisk } from "./scan";
import { syslinuxLayout } from "./syslinux";

export { checkBootArgs, MAX_BOOT_ARGS_BYTES } from "./bootargs";
export { ImageError } from "./errors";
export { checkPlatform, IMAGE_FORMATS, type ImageFormat } from "./platform";

const DISK_NAME = "disk.raw";
/** Less free space than this where a build failed means the build filled the file system. */
const NEARLY_FULL_BYTES = 1024 * 1024;
export const ARCHIVE_NAME = "image.tar.gz";
/** Held while results are removed or renamed into an output directory (see `replaceResults`). */
const PUBLISH_LOCK = ".publish.lock";

/**
 * Bump whenever this module changes the bytes it makes for the same kernel and arguments: image
 * names (DiskImage's objectName) include it, so a new layout is uploaded under a new name.
 */
export const IMAGE_LAYOUT_VERSION = 2;

export interface ImageFile {
  path: string;
  sha256: string;
  size: number;
}

export interface BuildImageOptions {
  kernel: string;
  outDir: string;
  /** gce adds the archive; raw and aws are the disk alone. */
  format: ImageFormat;
  bootArgs: string[];
  /** Tool output is appended here; failures show its path. */
  logFile?: string;
  /** Progress lines, and what the build waits for (another run publishing into outDir). */
  onProgress?: (line: string) => void;
  /** Aborting stops the build; the output directory is left without results or scratch files. */
  signal?: AbortSignal;
}

export interface BuildImageResult {
  disk: ImageFile;
  archive?: ImageFile;
  seconds: number;
  target: "virtio" | "xen";
}

/** The target we can boot from a BIOS disk, or an ImageError saying why not and what to do. */
function bootableTarget(info: KernelInfo, kernel: string): "virtio" | "xen" {
  const target = info.solo5.target;
  if (target !== "virtio" && target !== "xen")
    throw new ImageError(`${kernel} is a Solo5 ${target} kernel: ${notBootable(target)}.`);
  if (!info.multiboot)
    throw new ImageError(
      `${kernel} is a Solo5 ${target} kernel without a Multiboot1 header in its first 8 KiB, so no BIOS bootloader can start it; rebuild it with \`mirage configure -t ${target}\` (Solo5's own ${target} bindings carry the header) and check that nothing strips or relinks it afterwards.`,
    );
  return target;
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** inspectKernel, with the advice for a file that is no Solo5 kernel at all narrowed to images. */
export async function inspectImageKernel(kernel: string): Promise<KernelInfo> {
  try {
    return await inspectKernel(kernel);
  } catch (error) {
    if (!(error instanceof KernelFormatError)) throw error;
    throw new ImageError(`${error.message}. ${capitalized(DISK_IMAGE_TARGETS)}.`);
  }
}

export async function buildImage(options: BuildImageOptions): Promise<BuildImageResult> {
  const started = performance.now();
  const { format, bootArgs, logFile, onProgress, signal } = options;
  const kernel = resolve(options.kernel);
  const outDir = resolve(options.outDir);
  if (!IMAGE_FORMATS.includes(format))
    throw new ImageError(
      `format ${JSON.stringify(format)} is not one of ${IMAGE_FORMATS.join(", ")}.`,
    );
  checkBootArgs(bootArgs);
  const target = bootableTarget(await inspectImageKernel(kernel), kernel);
  // inspectKernel refused a kernel too big for FAT32 (4 GiB) already.
  const kernelSize = (await stat(kernel)).size;

  const asked = `writing the image into ${outDir}`;
  await makeDirectory(outDir, asked);
  // An existing directory we may not write to: say so of it, not of the first file we would make.
  await withFsErrors(outDir, asked, () => access(outDir, constants.W_OK));
  const diskPath = join(outDir, DISK_NAME);
  const archivePath = join(outDir, ARCHIVE_NAME);
  // Another run publishing into outDir holds its lock: say what we wait for.
  const lock = { signal, onWait: (message: string) => onProgress?.(`image: ${message}`) };
  // A failed build must not leave an older result that looks like this one's.
  await withFsErrors(outDir, asked, () => replaceResults(outDir, lock));

  const tools: ToolOptions = { logFile, signal };
  return withFsErrors(outDir, asked, () =>
    withScratch({ name: "image", parent: outDir }, async (scratch) => {
      try {
        return await buildIn(scratch);
      } catch (error) {
        // A tool that ran out of space may say only that it failed (mkfs.fat: "failed whilst
        // writing FAT"); the scratch still fills the disk now, so this tells.
        const unexplained = (await explainFsError(error, outDir, asked)) === error;
        if (unexplained && !signal?.aborted && (await lacksSpace(scratch, NEARLY_FULL_BYTES)))
          throw noSpace(outDir, asked, error);
        throw error;
      }
    }),
  );

  async function buildIn(scratch: string): Promise<BuildImageResult> {
    onProgress?.(`image: ${target} kernel ${kernel}, ${format} format`);
    const layout: Layout =
      target === "virtio"
        ? await syslinuxLayout(kernel, bootArgs, scratch, tools)
        : await grubLayout(kernel, bootArgs, scratch, tools);
    const sizes = await Promise.all(
      layout.files.map(async (f) =>
        f.source === kernel ? kernelSize : (await stat(f.source)).size,
      ),
    );
    const size = diskSizeFor(
      clusterBytes(sizes, layout.directories.length) + layout.installedBytes,
    );
    signal?.throwIfAborted();
    onProgress?.(`image: laying out a ${size / 1024 ** 3} GiB disk`);
    const scratchDisk = join(scratch, DISK_NAME);
    const dataEnd = await buildDisk({ layout, disk: scratchDisk, size, scratch, tools });
    signal?.throwIfAborted();
    onProgress?.(`image: hashing ${DISK_NAME} and mapping its data`);
    const scan = await scanDisk(scratchDisk, dataEnd, signal);
    let archive: ImageFile | undefined;
    const scratchArchive = join(scratch, ARCHIVE_NAME);
    if (format === "gce") {
      onProgress?.("image: writing the GCE archive");
      await writeGceArchive(scratchDisk, scan.regions, scan.size, scratchArchive, signal);
      archive = {
        path: archivePath,
        sha256: await sha256File(scratchArchive),
        size: (await stat(scratchArchive)).size,
      };
    }
    signal?.throwIfAborted();
    // Boot arguments may be secrets (a token, a key): the files holding them are their owner's.
    if (bootArgs.length > 0)
      for (const file of archive ? [scratchDisk, scratchArchive] : [scratchDisk])
        await chmod(file, 0o600);
    // The archive first: disk.raw, the primary result, appears last, and the archive goes again
    // if that fails.
    await replaceResults(outDir, lock, async () => {
      try {
        if (archive) await rename(scratchArchive, archivePath);
        await rename(scratchDisk, diskPath);
      } catch (error) {
        await rm(archivePath, { force: true });
        throw error;
      }
    });
    return {
      disk: { path: diskPath, sha256: scan.sha256, size: scan.size },
      ...(archive ? { archive } : {}),
      seconds: Math.round(performance.now() - started) / 1000,
      target,
    };
  }
}

/**
 * Removes the results in `outDir`, then runs `putNew` (renaming this run's results in), holding
 * `outDir`'s publish lock. Two runs into one directory (other arguments, other formats) take
 * turns, and each withdraws everything the previous one published before putting its own in, so
 * a disk.raw and an image.tar.gz side by side are always one run's: a raw run removes a gce run's
 * archive. disk.raw goes first and comes last: whoever sees it sees its own archive or none.
 * (Two renames cannot be one atomic step; a reader may see no disk.raw while a run publishes.)
 */
async function replaceResults(
  outDir: string,
  lock: LockOptions,
  putNew = async () => {},
): Promise<void> {
  await withLock(
    join(outDir, PUBLISH_LOCK),
    async () => {
      await rm(join(outDir, DISK_NAME), { force: true });
      await rm(join(outDir, ARCHIVE_NAME), { force: true });
      await putNew();
    },
    lock,
  );
}
